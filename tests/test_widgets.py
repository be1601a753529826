"""Widgets driven the way a user drives them: set a control's value, check what changed."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import soundfile as sf
from helpers import five_minute_stems

import bandscope_nb as bn
from bandscope_nb.widgets import SpectrogramView, StemExplorer


@pytest.fixture(scope="module")
def demo():
    return bn.demo.load()


def decode(html: str) -> np.ndarray:
    data = base64.b64decode(re.search(r"base64,([^\"]+)\"", html).group(1))
    return sf.read(io.BytesIO(data), always_2d=True)[0].T


def test_spectrogram_controls_update_the_artists_in_place(demo):
    _, truth = demo
    view = SpectrogramView(truth)
    first_png, artist = view.image.value, view.images[0]
    assert first_png[:8] == b"\x89PNG\r\n\x1a\n" and len(view.images) == 4
    view.kind.value = "mel"
    assert view.images[0] is artist and artist.get_array().shape[0] == 128
    view.kind.value = "cqt"
    assert artist.get_array().shape[0] == 84
    view.kind.value = "stft"
    view.window.value = 5.0
    view.start.value = 10.0
    assert tuple(artist.get_extent()[:2]) == (10.0, 15.0)
    view.db_range.value = 40.0
    low, high = artist.get_clim()
    assert high - low == pytest.approx(40.0)
    assert view.image.value != first_png
    cached = len(view._cache)
    view.kind.value = "mel"
    view.kind.value = "stft"  # back to a view already computed: served from the cache
    assert len(view._cache) == cached + 4


def test_spectrogram_view_of_an_array_needs_its_rate():
    with pytest.raises(bn.ParameterError, match="sample_rate"):
        SpectrogramView(np.zeros((2, 1000)))
    assert len(SpectrogramView(np.zeros((2, 8000)), 8000).images) == 1


def test_mixer_gains_mute_and_solo(demo):
    mix, truth = demo
    explorer = StemExplorer(truth, mix=mix.samples)
    assert set(explorer.players) == {"mix", *truth.names}
    assert explorer.gains() == dict.fromkeys(truth.names, 1.0)
    explorer.gain["bass"].value = -6.0
    assert explorer.gains()["bass"] == pytest.approx(10 ** (-6 / 20))
    explorer.mute["vocals"].value = True
    assert explorer.gains()["vocals"] == 0.0
    explorer.solo["drums"].value = True
    assert explorer.gains() == {"drums": 1.0, "bass": 0.0, "other": 0.0, "vocals": 0.0}


def test_moving_a_gain_rerenders_the_single_remix_player(demo):
    mix, truth = demo
    explorer = StemExplorer(truth, mix=mix.samples)
    explorer.play_length.value = 5.0
    full = decode(explorer.remix_player.value)
    assert full.shape == (2, 5 * 44100)
    before = explorer.remix_player.value
    explorer.mute["drums"].value = True
    assert explorer.remix_player.value != before
    without_drums = decode(explorer.remix_player.value)
    expected = truth.remix({"drums": 0.0})[:, : 5 * 44100]
    corr = np.corrcoef(without_drums.ravel(), expected.ravel())[0, 1]
    assert corr > 0.95
    assert np.sum(without_drums**2) < np.sum(full**2)


def test_players_follow_the_play_window(demo):
    mix, truth = demo
    explorer = StemExplorer(truth, mix=mix.samples)
    explorer.play_start.value = 12.0
    explorer.play_length.value = 4.0
    for player in explorer.players.values():
        assert decode(player.value).shape == (2, 4 * 44100)


def test_five_minute_explorer_stays_small():
    stems = five_minute_stems()
    explorer = StemExplorer(stems, mix=stems.mix())
    payload = sum(len(p.value) for p in explorer.players.values())
    payload += len(explorer.remix_player.value) + len(explorer.view.image.value)
    assert payload < 5_000_000
