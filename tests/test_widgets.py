"""Widgets driven the way a user drives them: set a control's value, check what changed."""

from __future__ import annotations

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.dsp.masks import oracle_masks
from bandscope_nb.notebook.lanes import mask_tile
from bandscope_nb.notebook.widgets import MaskExplorer, SpectrogramView, StemExplorer, explore


@pytest.fixture(scope="module")
def demo():
    return bn.demo.load()


def run_in_kernel(*sources: str):
    """Execute code cells in a real IPython kernel (nbclient); return the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    return nb


def test_a_spectrogram_view_is_a_player_of_its_signals(demo):
    mix, truth = demo
    view = SpectrogramView(mix, kind="cqt")
    assert view.tracks == ["audio"] and view.kind == "cqt" and not view.mixer
    np.testing.assert_allclose(view.remix(), mix.samples)  # what it plays
    view.wait(30, audio=False)
    (tile,) = view._lanes  # the whole signal, on the STFT rows until the browser asks
    assert tile["t0"] == 0 and tile["t1"] == pytest.approx(mix.duration)
    ((cqt, data),) = view.tiles(kind="cqt", t0=0.0, t1=2.0, cols=100)
    assert cqt["rows"] == 84 and len(data) == 84 * cqt["cols"]
    with pytest.raises(bn.ParameterError, match="kind"):
        view.kind = "linear"
    stems = SpectrogramView(truth)  # stems get the mixer
    assert stems.tracks == list(truth.names) and stems.mixer and stems.listen == "remix"


def test_a_spectrogram_view_of_arrays_needs_their_rate_and_pads_them():
    with pytest.raises(bn.ParameterError, match="sample_rate"):
        SpectrogramView(np.zeros((2, 1000)))
    view = SpectrogramView({"long": np.ones((2, 8000)), "short": np.ones(4000)}, 8000)
    assert view.tracks == ["long", "short"] and view.duration == pytest.approx(1.0)
    view.listen = "short"
    heard = view.remix()
    assert heard.shape == (2, 8000) and heard[:, :4000].min() == 1 and not heard[:, 4000:].any()
    with pytest.raises(bn.ParameterError, match="channels"):
        SpectrogramView({"a": np.ones((2, 800)), "b": np.ones((3, 800))}, 8000)


def test_in_a_kernel_stems_show_the_player_then_its_offline_copy():
    nb = run_in_kernel(
        "import bandscope_nb as bn\nmix, truth = bn.demo.load()\ntruth",
        "mix",
        "bn.widgets.SpectrogramView(mix)",
        "masks = bn.widgets.MaskExplorer(mix, truth, duration=2.0)\nmasks",
        "import time\nmasks.kind.value = 'ibm'\nmasks.threshold.value = 6.0\ntime.sleep(3)",
    )
    for cell, tracks in zip(nb.cells[:3], (4, 1, 1), strict=True):
        live, offline = cell.outputs
        assert set(live["data"]) == {"application/vnd.jupyter.widget-view+json"}
        html = offline["data"]["text/html"]
        assert html.count('<audio class="bn-track"') == tracks and "BandscopePlayer.upgrade" in html
    live, twin = nb.cells[3].outputs  # the mask explorer: its view, then its static twin ...
    assert set(live["data"]) == {"application/vnd.jupyter.widget-view+json"}
    assert twin["data"]["text/html"].count('<audio class="bn-track"') == 3
    assert "IBM mask of vocals (threshold 6 dB)" in twin["data"]["text/html"]  # ... rewritten
    models = [
        m["model_name"]
        for m in nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"].values()
    ]
    assert models.count("AnyModel") == 4
    # an export without widget state (JupyterLab's default) shows the offline copies, and no
    # raw widget text
    from nbconvert import HTMLExporter

    del nb.metadata["widgets"]
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    assert html.count('<audio class="bn-track"') == 9 and "bn-lane-image" in html
    assert "bandscope-twin" in html
    assert "SpectrogramView(" not in html and "MaskExplorer(" not in html


def test_a_training_plot_leaves_a_static_copy_of_its_last_picture():
    nb = run_in_kernel(
        "import bandscope_nb as bn\nplot = bn.widgets.TrainingPlot()\nplot",
        "plot([{'step': 4, 'loss': 0.2, 'val_sdr': 1.0},\n"
        "      {'step': 8, 'loss': 0.1, 'val_sdr': 2.5}])",
    )
    live, twin = nb.cells[0].outputs
    assert set(live["data"]) == {"application/vnd.jupyter.widget-view+json"}
    html = twin["data"]["text/html"]  # rewritten by the call in the next cell
    assert "bandscope-twin" in html and '<img src="data:image/png;base64,' in html
    assert "has not validated yet" not in html


def test_outside_a_kernel_the_text_is_all(demo, capsys):
    mix, truth = demo
    truth._ipython_display_()
    assert capsys.readouterr().out.startswith("Stems(names=")
    assert isinstance(explore(truth, mix=mix.samples), StemExplorer)
    assert explore(mix).tracks == ["audio"]
    assert "<audio" in truth._repr_html_()  # static HTML stays for other consumers


def sent_pcm(messages: list, track: int, frames: int, channels: int) -> np.ndarray:
    """The newest audio the player sent for ``track`` in "replace" messages, as float."""
    newest = max(m["gen"] for m, _ in messages if m["track"] == track)
    out = np.zeros((channels, frames), np.float32)
    for meta, (data,) in messages:
        if meta["track"] == track and meta["gen"] == newest:
            pcm = np.frombuffer(data, "<i2").reshape(channels, meta["frames"])
            out[:, meta["offset"] : meta["offset"] + meta["frames"]] = pcm * meta["scale"] / 32767
    return out


def test_mask_explorer_irm_matches_the_oracle_and_its_player(demo):
    mix, truth = demo
    short_mix = bn.Audio(mix.samples[:, : 3 * 44100], 44100)
    short = bn.Stems(truth.data[:, :, : 3 * 44100], truth.names, 44100)
    explorer = MaskExplorer(short_mix, short, stem="bass", duration=3.0)
    player = explorer.player
    assert player.lane_order == ["mix", "mask", "masked", "true stem"] and not player.mixer
    assert player.listen == "masked" and player.pictures == ["mask"]
    sent = []
    player.send = lambda content, buffers=None: sent.append((content, buffers))
    for power in (2.0, 0.5):  # (1 is where it starts)
        explorer.exponent.value = power
        oracle = oracle_masks(short_mix, short, kind="irm", power=power)
        np.testing.assert_allclose(explorer.mask, oracle.masks["bass"], atol=1e-6)
        np.testing.assert_allclose(explorer.estimate, oracle.estimates["bass"], atol=1e-5)
        assert explorer.score == pytest.approx(bn.metrics.sdr(short["bass"], explorer.estimate))
        # what the player plays and what it sent the browser are the new estimate
        np.testing.assert_allclose(player.remix(), explorer.estimate, atol=1e-6)
        replaced = [(m, b) for m, b in sent if m.get("type") == "replace"]
        pcm = sent_pcm(replaced, player.tracks.index("masked"), player.frames, 2)
        np.testing.assert_allclose(pcm, explorer.estimate, atol=2 / 32767 * player._scales[1])
    assert [m["gen"] for m, _ in sent if m["type"] == "replace"] == [1, 2]
    assert player._lanes[1]["gen"] == 2 and player._lanes[3]["gen"] == 2  # masked, mask
    assert "IRM mask of bass (exponent 0.5):</b> SDR" in explorer.status.value
    assert explorer.threshold.disabled
    player.listen = "true stem"  # A/B: the true stem, as it is
    np.testing.assert_allclose(player.remix(), short["bass"])
    with pytest.raises(bn.ParameterError, match="remix"):
        player.listen = "remix"  # no mixer here


def test_mask_explorer_binary_threshold_and_stem_choice(demo):
    mix, truth = demo
    explorer = MaskExplorer(mix, truth, stem="vocals", kind="ibm", start=5.0, duration=4.0)
    player = explorer.player
    assert explorer.exponent.disabled and set(np.unique(explorer.mask)) <= {0.0, 1.0}
    kept = explorer.mask.mean()
    player.wait(10)
    mask_lane = player.lane_order.index("mask")  # the mask lane's picture changes with it
    before = player._lanes[len(player.tracks)]["data"]
    explorer.threshold.value = 10.0
    assert explorer.mask.mean() < kept
    after = player._lanes[len(player.tracks)]
    assert after["data"] != before and after["scale"] == "linear" and mask_lane == 1
    _, values = mask_tile(explorer.mask, 44100, 512, cols=after["cols"])
    shown = np.frombuffer(after["data"], np.uint8).reshape(values.shape)
    np.testing.assert_allclose(shown / 255, values, atol=0.5 / 255 + 1e-6)
    explorer.stem.value = "drums"
    assert "IBM mask of drums (threshold 10 dB)" in explorer.status.value
    assert player.loop == [0.0, pytest.approx(4.0)]  # it plays on while the sliders move
    expected = truth["drums"][:, 5 * 44100 : 9 * 44100]
    np.testing.assert_allclose(player._samples["true stem"], expected)
    player.listen = "true stem"
    np.testing.assert_allclose(player.remix(), expected)


def test_mask_explorer_shows_a_trained_networks_masks(demo):
    import torch

    from bandscope_nb.dsp.spectral import istft, stft
    from bandscope_nb.separation.masknet import MaskNet

    mix, truth = demo
    torch.manual_seed(0)
    net = MaskNet(hidden=16, lstm_layers=1).eval()
    explorer = MaskExplorer(mix, truth, stem="bass", kind="learnt", duration=3.0, model=net)
    assert (explorer.n_fft, explorer.hop_length) == (2048, 1024)  # the network's grid
    window = mix.samples[:, : 3 * 44100]
    with torch.no_grad():
        audio = torch.from_numpy(window[None])
        expected = net.mask(net.spectrogram(audio), audio=audio)[0, 1].numpy()
    np.testing.assert_allclose(explorer.mask, np.stack([expected, expected]), atol=1e-6)
    spec = stft(window, n_fft=2048, hop_length=1024)
    heard = istft(explorer.mask * spec, n_fft=2048, hop_length=1024, length=window.shape[-1])
    np.testing.assert_allclose(explorer.estimate, heard, atol=1e-6)
    assert "Learnt mask (the network) of bass (exponent 1)" in explorer.status.value
    assert not explorer.exponent.disabled and explorer.threshold.disabled
    explorer.exponent.value = 4.0  # sharper: the masks still sum to one over the stems
    masks = explorer.learnt**4.0 / (explorer.learnt**4.0).sum(axis=0)
    np.testing.assert_allclose(explorer.mask[0], masks[1], atol=1e-5)
    explorer.kind.value = "irm"  # the oracle on the same grid, for comparison
    assert "IRM mask of bass" in explorer.status.value and explorer.mask.shape == spec.shape
    tiny = MaskExplorer(mix, truth, stem="vocals", kind="learnt", model="bandscope-tiny")
    assert "Learnt mask (bandscope-tiny) of vocals" in tiny.status.value
    assert tiny.score > 0  # the shipped network hears the lead


def test_mask_explorer_needs_a_mask_network_for_learnt_masks(demo, tmp_path):
    from helpers import tiny_htdemucs

    from bandscope_nb.separation.masknet import MaskNet
    from bandscope_nb.separation.modelfiles import save_safetensors

    mix, truth = demo
    with pytest.raises(bn.ParameterError, match="'learnt' needs a model="):
        MaskExplorer(mix, truth, kind="learnt")
    path = save_safetensors(tiny_htdemucs(), tmp_path / "ht.safetensors")
    with pytest.raises(bn.ParameterError, match="not a mask network"):
        MaskExplorer(mix, truth, kind="learnt", model=path)
    with pytest.raises(bn.ParameterError, match="at 22050 Hz"):
        MaskExplorer(mix, truth, kind="learnt", model=MaskNet(samplerate=22050, hidden=8))


def test_mask_explorer_rejects_bad_parameters_before_work(demo):
    mix, truth = demo
    with pytest.raises(bn.ParameterError, match="Unknown stem 'voice'"):
        MaskExplorer(mix, truth, stem="voice")
    with pytest.raises(bn.ParameterError, match="duration"):
        MaskExplorer(mix, truth, duration=60.0)
    with pytest.raises(bn.ParameterError, match="do not match"):
        MaskExplorer(bn.Audio(mix.samples[:, :1000], 44100), truth)
    with pytest.raises(bn.ParameterError, match="kind"):
        MaskExplorer(mix, truth, kind="wiener")
