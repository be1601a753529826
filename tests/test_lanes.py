"""Spectrogram tiles for the player's lanes."""

from __future__ import annotations

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.notebook.lanes import RANGE_DB, lane_tile, mask_tile, quantise

RATE = 22050


def sine(hz: float, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.sin(2 * np.pi * hz * t)[None].astype(np.float32)


@pytest.mark.parametrize(("kind", "rows"), [("stft", 192), ("mel", 128), ("cqt", 84)])
def test_a_tone_lights_the_row_of_its_frequency(kind, rows):
    tile, db = lane_tile(sine(440.0), RATE, kind=kind, cols=120)
    assert db.shape == (rows, tile["cols"]) and tile["rows"] == rows
    freqs = np.array(tile["freqs"])
    assert np.all(np.diff(freqs) > 0) and len(freqs) == rows
    loudest = int(np.argmax(db[:, db.shape[1] // 2]))
    assert abs(np.log2(freqs[loudest] / 440.0)) < 0.1  # within about a semitone
    if kind == "cqt":
        assert freqs[0] == pytest.approx(32.70, abs=0.01)  # C1


def test_zoom_levels_show_the_same_levels():
    y = sine(1000.0, 20.0)
    levels = [lane_tile(y, RATE, cols=cols)[1].max() for cols in (40, 400, 4000)]
    assert np.ptp(levels) < 0.5, levels
    tile, db = lane_tile(y, RATE, t0=5.0, t1=7.0, cols=200)
    assert (tile["t0"], tile["t1"]) == (5.0, 7.0) and abs(db.max() - levels[0]) < 0.5


@pytest.mark.parametrize("hz", [110.0, 440.0, 3000.0])
def test_a_full_scale_sine_reads_about_0_db_in_every_kind(hz):
    levels = [lane_tile(sine(hz), RATE, kind=k, cols=100)[1].max() for k in ("stft", "mel", "cqt")]
    assert np.all(np.abs(levels) < 2.5), levels  # so one colour scale serves every picture


def test_a_click_between_frames_is_not_skipped():
    y = np.zeros((1, 60 * RATE), np.float32)
    y[0, 30 * RATE + 777 : 30 * RATE + 800] = 1.0  # a 1 ms click in one minute
    _, db = lane_tile(y, RATE, cols=50)
    assert db.max() > -60.0


def test_quantised_bytes_cover_the_range_below_the_reference():
    db = np.array([[-200.0, -60.0, 0.0, 10.0]])
    q = quantise(db, 10.0)
    assert q.dtype == np.uint8 and q.tolist() == [
        [0, 106, 234, 255]
    ]  # (dB - (10 - 120)) * 255 / 120
    assert RANGE_DB == 120.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "chroma"}, "Invalid kind"),
        ({"cols": 0}, "Invalid cols"),
        ({"t0": 3.0, "t1": 2.0}, "Invalid tile span"),
        ({"t0": 9.0}, "Invalid tile span"),
    ],
)
def test_bad_tile_requests_raise(kwargs, match):
    with pytest.raises(bn.ParameterError, match=match):
        lane_tile(sine(440.0), RATE, **kwargs)


@pytest.mark.parametrize("kind", ["stft", "mel", "cqt"])
def test_a_mask_lines_up_with_the_lanes_rows_and_columns(kind):
    hop, n_fft, frames = 256, 1024, 400  # a 4.6 s grid at 22.05 kHz
    bins = np.fft.rfftfreq(n_fft, 1 / RATE)
    mask = np.zeros((2, bins.size, frames), np.float32)
    mask[0][np.ix_(bins < 1000, np.arange(frames) >= 200)] = 1.0  # low, second half, one channel
    tile, values = mask_tile(mask, RATE, hop, kind=kind, cols=40)
    freqs = np.array(tile["freqs"])
    assert tile["scale"] == "linear" and values.shape == (len(freqs), 40)
    assert tile["t1"] == pytest.approx(frames * hop / RATE)
    low, high = freqs < 900, freqs > 1100
    second = np.arange(40) >= 21  # (column 20 straddles the change)
    np.testing.assert_allclose(values[np.ix_(low, second)], 0.5, atol=1e-6)  # channels averaged
    assert values[np.ix_(high, second)].max() < 1e-6 and values[:, :19].max() < 1e-6
    # a zoomed tile is the same mask, sharper
    _, zoomed = mask_tile(mask, RATE, hop, kind=kind, t0=2.5, t1=3.5, cols=10)
    np.testing.assert_allclose(zoomed[low], 0.5, atol=1e-6)


def test_bad_masks_raise():
    with pytest.raises(bn.ParameterError, match="bins, frames"):
        mask_tile(np.zeros(10), RATE, 256)
    with pytest.raises(bn.ParameterError, match="span"):
        mask_tile(np.zeros((513, 10)), RATE, 256, t0=5.0)
