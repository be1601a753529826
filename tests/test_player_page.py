"""The player's offline copy and standalone page."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

import bandscope_nb as bn
from bandscope_nb.notebook.player import StemPlayer
from bandscope_nb.notebook.player_page import offline_html, save_html


@pytest.fixture(scope="module")
def player():
    mix, truth = bn.demo.load()
    stems = bn.Stems(truth.data[:, :, : 4 * 44100], truth.names, 44100)
    return StemPlayer(stems, mix=mix.samples[:, : 4 * 44100])


def state_of(html: str) -> dict:
    raw = re.search(r'<script type="application/json" class="bn-state">(.*?)</script>', html, re.S)
    return json.loads(raw.group(1))


def test_the_offline_copy_holds_every_track_playable(player):
    html = offline_html(player, seconds=2.5)
    sounds = re.findall(
        r'<audio class="bn-track" data-track="\d" controls preload="metadata" '
        r'src="data:audio/ogg;base64,([^"]+)"',
        html,
    )
    images = re.findall(
        r'<img class="bn-lane-image" data-lane="\d" alt="spectrogram of (\w+)" '
        r'src="data:image/jpeg;base64,',
        html,
    )
    assert images == player.tracks and len(sounds) == 5
    for name, sound in zip(player.tracks, sounds, strict=True):
        decoded, rate = sf.read(io.BytesIO(base64.b64decode(sound)), always_2d=True)
        expected = player._samples[name][:, : int(2.5 * 44100)]
        assert rate == 44100 and decoded.shape[0] == expected.shape[1]
        error = np.sum((decoded.T - expected) ** 2) / max(np.sum(expected**2), 1e-3)
        assert error < 0.1, f"{name}: the Ogg copy is not the track"
    state = state_of(html)
    assert state["tracks"] == player.tracks and state["duration"] == 2.5
    assert state["image_t1"] == pytest.approx(4.0) and "first 2.5 s of 4.0 s" in state["note"]
    assert state["_uid"] == player._uid and f'data-model-id="{player._uid}"' in html
    assert "BandscopePlayer.upgrade(" in html and html.count("<script>") == 1


def test_names_reach_the_page_as_text():
    # Names that could break out of the page never become stems (they are file names too) ...
    with pytest.raises(bn.ParameterError, match="not allowed"):
        bn.Stems(np.zeros((1, 1, 8000), np.float32), ["</script><script>alert(1)"], 8000)
    # ... and the ones allowed arrive intact in the captions and the state.
    name = "lead vox+fx 2.0"
    html = offline_html(StemPlayer(bn.Stems(np.zeros((1, 1, 8000), np.float32), [name], 8000)))
    assert state_of(html)["tracks"] == [name] and f"<figcaption>{name}</figcaption>" in html


def test_save_html_writes_one_offline_page(player, tmp_path):
    page = save_html(player, tmp_path / "studio.html", title="Demo <stems>")
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<title>Demo &lt;stems&gt;</title>" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from the network
    assert state_of(html)["duration"] == pytest.approx(4.0)  # the whole track by default
    assert [p.name for p in tmp_path.iterdir()] == ["studio.html"]  # no temp file left
    assert player.save_html(tmp_path / "again.html", seconds=1).exists()
