"""Classical separators on synthetic signals whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from bandscope_nb.dsp import classical

SR = 22050


def click_train(seconds=3.0):
    y = np.zeros(int(seconds * SR), np.float32)
    y[:: SR // 4] = 1.0
    return y


def chord(seconds=3.0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))).astype(
        np.float32
    )


def energy_db(a, b):
    return 10 * np.log10(
        np.sum(np.square(a, dtype=np.float64)) / np.sum(np.square(b, dtype=np.float64))
    )


def test_hpss_puts_clicks_in_percussive_and_chord_in_harmonic():
    clicks = classical.hpss(click_train()[None], SR)
    assert energy_db(clicks["percussive"], clicks["harmonic"]) > 10
    tones = classical.hpss(chord()[None], SR)
    assert energy_db(tones["harmonic"], tones["percussive"]) > 10


@pytest.mark.parametrize("func", [classical.hpss, classical.repet_sim, classical.separate_four])
def test_parts_sum_to_the_input(func):
    y = np.stack([click_train() + chord(), chord()])
    stems = func(y, SR)
    np.testing.assert_allclose(stems.mix(), y, atol=1e-5)
    assert stems.channels == 2 and stems.frames == y.shape[1]


def test_repet_sim_finds_the_non_repeating_part():
    # A repeating chord pattern with a held tone entering half-way: the tone is foreground.
    bed = np.tile(chord(0.5) * np.hanning(int(0.5 * SR)).astype(np.float32), 12)
    t = np.arange(bed.size) / SR
    tone = np.where(t > 3.0, 0.3 * np.sin(2 * np.pi * 1500 * t), 0).astype(np.float32)
    stems = classical.repet_sim((bed + tone)[None], SR, width=0.3)
    fg = stems["foreground"][0]
    later, earlier = fg[t > 3.5], fg[(t > 0.5) & (t < 2.5)]
    assert energy_db(later, earlier) > 10


def test_four_stem_recipe_puts_low_harmonics_in_bass():
    t = np.arange(3 * SR) / SR
    bass_tone = (0.5 * np.sin(2 * np.pi * 55 * t)).astype(np.float32)
    stems = classical.separate_four(bass_tone[None], SR)
    assert energy_db(stems["bass"], stems["other"] + stems["vocals"] + stems["drums"]) > 10


def test_nmf_components_sum_and_order():
    y = (chord() + 0.5 * click_train())[None]
    parts, templates, activations = classical.nmf(y, SR, n_components=4)
    np.testing.assert_allclose(parts.mix(), y, atol=1e-5)
    assert templates.shape == (1025, 4) and activations.shape[0] == 4
    freqs = np.arange(1025)
    centroids = (freqs[:, None] * templates).sum(0) / templates.sum(0)
    assert np.all(np.diff(centroids) >= 0)
