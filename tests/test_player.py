"""The stem player's Python side: what it sends, the state it mirrors, what it says is heard."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import five_minute_stems

import bandscope_nb as bn
from bandscope_nb.notebook.player import StemPlayer
from bandscope_nb.notebook.player_page import offline_html

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def demo():
    mix, truth = bn.demo.load()
    short = bn.Stems(truth.data[:, :, : 3 * 44100], truth.names, 44100)
    return mix.samples[:, : 3 * 44100], short


def decoded(player: StemPlayer, index: int) -> np.ndarray:
    """Track ``index`` as the browser builds it from the audio messages: 16-bit planar PCM
    chunks written at their offsets, times the track's scale."""
    out = np.full((player.channels, player.frames), np.nan, np.float32)
    for meta, data in player.audio_chunks():
        if meta["track"] == index:
            pcm = np.frombuffer(data, "<i2").reshape(player.channels, meta["frames"])
            out[:, meta["offset"] : meta["offset"] + meta["frames"]] = pcm / 32767
    return out * player._scales[index]


def test_the_buffers_decode_back_to_the_tracks(demo):
    mix, stems = demo
    player = StemPlayer(stems, mix=mix)
    assert player.tracks == ["mix", *stems.names] and player.stem_names == list(stems.names)
    assert (player.sample_rate, player.frames, player.channels) == (44100, stems.frames, 2)
    assert player.duration == pytest.approx(3.0)
    for index, name in enumerate(player.tracks):
        expected = mix if name == "mix" else stems[name]
        assert np.max(np.abs(decoded(player, index) - expected)) <= 0.51 / 32767 * 1.0001


def test_loud_stems_are_scaled_for_sending_never_clipped():
    data = np.zeros((2, 1, 8000), np.float32)
    data[0, 0, 100] = 2.5  # a stem estimate may exceed full scale
    data[1, 0, :] = 0.25
    player = StemPlayer(bn.Stems(data, ["loud", "quiet"], 8000))
    assert player._scales == [2.5, 1.0]
    assert decoded(player, 0)[0, 100] == pytest.approx(2.5, abs=1e-4)
    assert np.allclose(decoded(player, 1), 0.25, atol=1 / 32767)


def test_remix_is_what_the_mixer_state_plays(demo):
    mix, stems = demo
    player = StemPlayer(stems, mix=mix)
    assert np.allclose(player.remix(), stems.remix({}))
    player.gains = {**player.gains, "bass": -6.0, "other": 3.0}
    player.muted = ["vocals"]
    bass, other = 10 ** (-6 / 20), 10 ** (3 / 20)
    assert np.allclose(player.remix(), stems.remix({"bass": bass, "other": other, "vocals": 0}))
    player.soloed = ["drums", "bass"]  # a solo wins over mutes
    assert player.track_gains() == {
        "mix": 0.0,
        "drums": 1.0,
        "bass": pytest.approx(bass),
        "other": 0.0,
        "vocals": 0.0,
    }
    assert np.allclose(player.remix(), stems.remix({"bass": bass, "other": 0, "vocals": 0}))
    player.listen = "other"  # one stem alone, at its gain, whatever the mutes
    assert np.allclose(player.remix(), other * stems["other"], atol=1e-6)
    player.listen = "mix"  # A/B: the original
    assert np.array_equal(player.remix(), mix) and player.track_gains()["mix"] == 1.0


def test_state_travels_both_ways(demo):
    _, stems = demo
    player = StemPlayer(stems)
    player.gains = {"drums": -3.0}  # Python -> browser: the synced state holds it
    state = player.get_state()
    assert state["gains"] == {"drums": -3.0, "bass": 0.0, "other": 0.0, "vocals": 0.0}
    # Browser -> Python: what ipywidgets does with a front end's update message.
    player.set_state({"muted": ["bass"], "position": 1.5, "playing": True, "loop": [0.5, 2.0]})
    assert (player.muted, player.position, player.playing, player.loop) == (
        ["bass"],
        1.5,
        True,
        [0.5, 2.0],
    )
    assert player.track_gains()["bass"] == 0.0
    player.position = 99.0  # a seek past the end lands on the end
    assert player.position == pytest.approx(3.0)
    assert {"_lanes", "_lut", "_esm", "_scales"} <= set(player.keys)
    assert "_pcm" not in player.keys  # audio goes as messages, not state (see below)
    assert "export default BandscopePlayer.widget" in player._esm


@pytest.mark.parametrize(
    ("trait", "value", "match"),
    [
        ("gains", {"voice": 0.0}, "Unknown stem"),
        ("gains", {"bass": float("nan")}, "Invalid gain"),
        ("gains", {"bass": 40.0}, "Invalid gain"),
        ("muted", ["voice"], "Unknown stem.*muted"),
        ("soloed", ["mix"], "Unknown stem.*soloed"),
        ("listen", "mix", "Invalid listen"),  # no mix was given
        ("position", float("nan"), "Invalid position"),
        ("loop", [2.0, 1.0], "Invalid loop"),
        ("view", [0.0], "Invalid view"),
        ("kind", "chroma", "Invalid kind"),
        ("db_range", 5.0, "Invalid db_range"),
    ],
)
def test_bad_state_is_refused_with_the_value_named(demo, trait, value, match):
    _, stems = demo
    player = StemPlayer(stems)
    before = getattr(player, trait)
    with pytest.raises(bn.ParameterError, match=match):
        setattr(player, trait, value)
    assert getattr(player, trait) == before


def test_bad_inputs_raise_before_anything_is_sent(demo):
    mix, stems = demo
    with pytest.raises(bn.AudioError, match="frames"):
        StemPlayer(stems, mix=mix[:, :-10])
    with pytest.raises(bn.AudioError, match="channels"):
        StemPlayer(stems, mix=np.zeros((3, stems.frames), np.float32))
    broken = stems.data.copy()
    broken[2, 0, 5] = np.nan
    with pytest.raises(bn.AudioError, match=r"'other'.*NaN"):
        StemPlayer(bn.Stems(broken, stems.names, 44100))
    with pytest.raises(bn.AudioError, match=r"'mix'.*NaN"):
        StemPlayer(stems, mix=np.full_like(mix, np.inf))
    with pytest.raises(bn.ParameterError, match="plays Stems"):
        StemPlayer(mix)
    named_mix = bn.Stems(stems.data[:2], ["mix", "bass"], 44100)
    with pytest.raises(bn.ParameterError, match="named 'mix'"):
        StemPlayer(named_mix, mix=mix)
    with pytest.raises(bn.ParameterError, match="height"):
        StemPlayer(stems, height=2)


def test_long_material_is_sent_at_a_preview_rate_announced():
    stems = five_minute_stems()  # 4 x 5 min stereo at 22.05 kHz: 106 MB of PCM
    with pytest.warns(bn.BandscopeWarning, match="Preview at 16000 Hz"):
        player = StemPlayer(stems, max_mb=80)
    assert player.sample_rate == 16000 and player.source_rate == 22050
    assert player.frames == 300 * 16000 and "Preview at 16000 Hz" in player.note
    assert sum(len(data) for _, data in player.audio_chunks()) <= 80e6
    assert player.remix().shape == (2, 300 * 22050)  # Python's remix stays at the stems' rate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = StemPlayer(stems)  # the default budget fits it at its own rate
    assert full.sample_rate == 22050 and full.note == ""
    with pytest.raises(bn.ParameterError, match=r"do not fit.*8 kHz"):
        StemPlayer(stems, max_mb=10)


def test_audio_goes_in_chunks_no_message_too_big(demo, monkeypatch):
    import bandscope_nb.notebook.player_audio as player_audio

    mix, stems = demo
    monkeypatch.setattr(player_audio, "CHUNK_BYTES", 100_000)  # 3 s: 6 chunks a track
    player = StemPlayer(stems, mix=mix)
    chunks = list(player.audio_chunks())
    assert all(len(data) <= 100_000 for _, data in chunks)
    assert {meta["slices"] for meta, _ in chunks} == {6} and len(chunks) == 5 * 6
    # slice by slice, every track's chunk of a slice together: playable after the first five
    assert [(m["slice"], m["track"]) for m, _ in chunks[:6]] == [(0, t) for t in range(5)] + [
        (1, 0)
    ]
    assert np.abs(decoded(player, 1) - stems["drums"]).max() <= 0.51 / 32767 * 1.0001
    player._pusher.join()  # the push made when the widget opened
    sent = []
    player.send = lambda content, buffers=None: sent.append((content, buffers))
    player._handle_custom_msg({"type": "audio"}, [])  # a reloaded page asks again
    player._pusher.join()
    assert [(c["track"], c["offset"]) for c, _ in sent] == [
        (m["track"], m["offset"]) for m, _ in chunks
    ]


def test_sharper_tiles_answer_the_newest_request_only(demo):
    mix, stems = demo
    player = StemPlayer(stems, mix=mix)
    sent = []

    def send(content, buffers=None):  # keep the tile answers (audio chunks may still go out)
        if content["type"] != "audio":
            sent.append((content, buffers))

    player.send = send
    ask = {"type": "tiles", "kind": "mel", "t0": 0.5, "t1": 1.5, "cols": 300}
    player._tiles.submit(lambda: None).result()
    player._latest = 2
    player._reply_tiles(1, {**ask, "request": 1})  # superseded by request 2: no answer
    assert sent == []
    player._handle_custom_msg({**ask, "request": 3}, [])
    player._tiles.submit(lambda: None).result()  # wait for the worker
    ((content, buffers),) = sent
    assert content["type"] == "tiles" and content["request"] == 3
    assert [t["track"] for t in content["tiles"]] == [0, 1, 2, 3, 4]
    for tile, data in zip(content["tiles"], buffers, strict=True):
        assert (tile["kind"], tile["t0"], tile["t1"], tile["rows"]) == ("mel", 0.5, 1.5, 128)
        assert len(data) == tile["rows"] * tile["cols"] and tile["cols"] > 100
    player._handle_custom_msg({**ask, "request": 4, "t0": 2.0, "t1": 1.0}, [])
    player._tiles.submit(lambda: None).result()
    assert sent[-1][0]["type"] == "error" and "Invalid tile span" in sent[-1][0]["message"]


def test_a_notebook_gets_the_widget_then_its_offline_copy(demo, monkeypatch):
    _, stems = demo
    player = StemPlayer(stems)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda data, raw: shown.append(data))
    player._ipython_display_()
    live, offline = shown
    assert set(live) == {WIDGET_VIEW} and live[WIDGET_VIEW]["model_id"] == player.model_id
    html = offline["text/html"]
    assert f'data-model-id="{player._uid}"' in html and html.count('<audio class="bn-track"') == 4


def test_a_failure_drawing_the_lanes_is_said_and_the_audio_still_goes(demo, monkeypatch):
    import bandscope_nb.notebook.player as player_module

    def broken(*args, **kwargs):
        raise MemoryError("no room for the picture")

    monkeypatch.setattr(player_module, "lane_tile", broken)
    _, stems = demo
    player = StemPlayer(stems)
    assert player.wait(30)  # does not hang
    assert player._lanes == [] and "MemoryError: no room for the picture" in player.note
    html = offline_html(player, seconds=1)
    assert html.count('<audio class="bn-track"') == 4 and '<img class="bn-lane-image"' not in html


def stft_mask(samples: np.ndarray, hop: int = 512) -> np.ndarray:
    """A (channels, bins, frames) mask on the STFT grid of ``samples`` (n_fft 2048)."""
    frames = 1 + samples.shape[-1] // hop
    return np.full((samples.shape[0], 1025, frames), 0.25, np.float32)


def test_without_a_mixer_one_track_is_heard_and_any_can_be_swapped(demo):
    mix, stems = demo
    pair = bn.Stems(stems.data[:2], ["masked", "true stem"], 44100)
    player = StemPlayer(
        pair,
        mix=mix,
        mixer=False,
        masks={"mask": (stft_mask(mix), 512)},
        order=["mix", "mask", "masked", "true stem"],
    )
    assert player.listen == "masked" and player.pictures == ["mask"]
    assert player.track_gains() == {"mix": 0.0, "masked": 1.0, "true stem": 0.0}
    np.testing.assert_allclose(player.remix(), pair["masked"])
    player.listen = "mix"
    np.testing.assert_allclose(player.remix(), mix)
    with pytest.raises(bn.ParameterError, match="remix"):
        player.listen = "remix"
    sent = []
    player.send = lambda content, buffers=None: sent.append((content, buffers))
    player.wait(30)
    louder = np.clip(pair["masked"] * 8.0, -2.0, 2.0)  # above full scale: a new scale comes too
    player.replace_track("masked", louder)
    replace = [(m, b) for m, b in sent if m["type"] == "replace"]
    assert {m["track"] for m, _ in replace} == {1} and {m["gen"] for m, _ in replace} == {1}
    assert sum(m["frames"] for m, _ in replace) == player.frames == replace[0][0]["frames"]
    assert player._scales[1] == pytest.approx(float(np.abs(louder).max()))
    pcm = np.frombuffer(replace[0][1][0], "<i2").reshape(2, -1) / 32767 * replace[0][0]["scale"]
    assert np.max(np.abs(pcm - louder)) <= 0.51 / 32767 * player._scales[1] * 1.0001
    player.listen = "masked"
    np.testing.assert_allclose(player.remix(), louder)
    assert player._lanes[1]["gen"] == 1 and player._lanes[0]["gen"] == 0  # its lane redrawn
    # sharper tiles carry every lane's generation; the mask lane's are linear 0..1
    tiles = player.tiles(kind="cqt", t0=0.5, t1=1.5, cols=200)
    assert [m["gen"] for m, _ in tiles] == [0, 1, 0, 0]
    mask_meta, mask_data = tiles[3]
    assert mask_meta["scale"] == "linear" and mask_meta["rows"] == 84
    assert set(np.frombuffer(mask_data, np.uint8)) == {64}  # 0.25 * 255
    player.set_mask("mask", stft_mask(mix) * 4)
    assert player._lanes[3]["gen"] == 1 and set(player._lanes[3]["data"]) == {255}


def test_bad_swaps_masks_and_orders_are_refused(demo):
    mix, stems = demo
    player = StemPlayer(stems, masks={"m": (stft_mask(mix), 512)})
    with pytest.raises(bn.AudioError, match="same shape"):
        player.replace_track("bass", stems["bass"][:, :-10])
    with pytest.raises(bn.AudioError, match="NaN"):
        player.replace_track("bass", np.full_like(stems["bass"], np.nan))
    with pytest.raises(bn.ParameterError, match="Unknown track 'm'"):
        player.replace_track("m", stems["bass"])
    with pytest.raises(bn.ParameterError, match="same STFT grid"):
        player.set_mask("m", stft_mask(mix)[:, :, :-3])
    with pytest.raises(bn.ParameterError, match="Unknown mask lane"):
        player.set_mask("bass", stft_mask(mix))
    with pytest.raises(bn.ParameterError, match="must be new"):
        StemPlayer(stems, masks={"bass": (stft_mask(mix), 512)})
    with pytest.raises(bn.ParameterError, match="frames of 512 samples"):
        StemPlayer(stems, masks={"m": (stft_mask(mix[:, :44100]), 512)})
    with pytest.raises(bn.ParameterError, match="finite"):
        StemPlayer(stems, masks={"m": (stft_mask(mix) * np.nan, 512)})
    with pytest.raises(bn.ParameterError, match="list every lane once"):
        StemPlayer(stems, order=["drums", "bass"])
