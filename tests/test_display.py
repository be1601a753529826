"""Plotting at screen resolution: sizes, windows, envelopes, figures."""

from __future__ import annotations

import matplotlib.pyplot as plt  # headless: no display here, so matplotlib picks Agg
import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.notebook.display import specshow, spectrogram_image, stems_figure, waveform

SR = 22050


@pytest.mark.parametrize(("kind", "bins"), [("stft", 1025), ("mel", 128), ("cqt", 84)])
def test_image_is_about_screen_wide_whatever_the_length(kind, bins):
    y = np.random.default_rng(0).standard_normal((2, 60 * SR)).astype(np.float32)
    image, extent = spectrogram_image(y, SR, kind=kind, width_px=500)
    assert image.shape[0] == bins
    assert 480 <= image.shape[1] <= 560
    assert extent[:2] == (0.0, 60.0)
    assert np.isfinite(image).all() and image.min() >= -100.0


def test_window_selects_time():
    t = np.arange(6 * SR) / SR
    y = np.where(t >= 3.0, np.sin(2 * np.pi * 1000 * t), 0.0).astype(np.float32)
    before, _ = spectrogram_image(y, SR, start=0.5, duration=2.0)
    after, extent = spectrogram_image(y, SR, start=3.5, duration=2.0)
    assert extent[:2] == (3.5, 5.5)
    row = int(1000 / (SR / 2) * 1024)
    assert after[row].mean() > before[row].mean() + 40
    with pytest.raises(bn.ParameterError, match="Empty window"):
        spectrogram_image(y, SR, start=10.0, duration=1.0)
    with pytest.raises(bn.ParameterError, match="kind"):
        spectrogram_image(y, SR, kind="wavelet")


def test_specshow_and_waveform_return_their_artists():
    fig, (a, b) = plt.subplots(2)
    y = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    img = specshow(y, 8000, ax=a, kind="mel")
    assert img in a.get_images() and img.get_array().shape[0] == 128
    env = waveform(y[None], 8000, ax=b, width_px=100)
    verts = env.get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(y.max(), abs=1e-6)
    assert verts[:, 1].min() == pytest.approx(y.min(), abs=1e-6)
    plt.close(fig)


def test_stems_figure_has_one_row_per_stem_and_mix():
    mix, truth = bn.demo.load()
    fig = stems_figure(truth, mix=mix.samples, duration=5.0)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["mix", *truth.names]


def test_display_functions_draw_on_the_current_axes_by_default():
    fig, ax = plt.subplots()
    y = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    assert specshow(y, 8000) in ax.get_images()
    assert waveform(y[None], 8000) in ax.collections
    plt.close(fig)
