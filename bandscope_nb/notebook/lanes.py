"""Spectrogram tiles for the player's lanes: dB images quantised to bytes, one per time span.

The browser draws and colours them (its own colour map and dB range, so those change with no
kernel work). A tile covers ``[t0, t1)`` seconds in ``cols`` columns and ``rows`` frequency
rows, lowest first; every tile of a player shares one dB reference (``ref_db``: the loudest
overview pixel of any lane), so lanes and zoom levels compare. Byte ``q`` stands for
``ref_db - RANGE_DB + q * RANGE_DB / 255`` dB.

Rows are log-spaced for the STFT (the way the ear spaces pitch), mel bands for ``"mel"`` and
semitones from C1 for ``"cqt"`` (Brown 1991, "Calculation of a constant Q spectral transform");
each tile lists its rows' centre frequencies in Hz for the axis labels.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np

from ..errors import ParameterError
from .display import mono_window

__all__ = ["KINDS", "RANGE_DB", "lane_tile", "mask_tile", "quantise", "row_freqs"]

KINDS = ("stft", "mel", "cqt")
RANGE_DB = 120.0
STFT_ROWS = 192
N_FFT = 4096  # 10.8 Hz bins at 44.1 kHz: bass notes a semitone apart stay apart
LOWEST_HZ = 30.0
CQT_BINS = 84  # seven octaves from C1 (32.7 Hz)


def _frames(y: np.ndarray, cols: int) -> np.ndarray:
    """Power spectra ``(N_FFT // 2 + 1, frames)`` of frames that together cover all of ``y``
    (hop at most half a frame), at least ``cols`` of them where ``y`` is long enough."""
    import librosa

    hop = int(max(1, min(N_FFT // 2, y.shape[-1] // (2 * cols))))
    with warnings.catch_warnings():  # a clip shorter than a frame is zero-padded: fine here
        warnings.filterwarnings("ignore", message="n_fft=.*too large")
        power = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=hop, center=True)) ** 2
    # One FFT size at every zoom level, so tiles compare; a full-scale sine's bin reads 0 dB.
    return power * (16.0 / N_FFT**2)


def _pool(power: np.ndarray, cols: int) -> np.ndarray:
    """Average neighbouring frames down to at most ``cols`` columns."""
    frames = power.shape[-1]
    if frames <= cols:
        return power
    edges = np.linspace(0, frames, cols + 1).astype(int)
    return np.add.reduceat(power, edges[:-1], axis=-1) / np.diff(edges)


def _log_rows(n_fft: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """A matrix ``(STFT_ROWS, bins)`` summing linear bins into log-spaced rows (band power: a
    sine reads its level in whichever row it falls), and the rows' centre frequencies."""
    bins = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    edges = np.geomspace(LOWEST_HZ, sample_rate / 2, STFT_ROWS + 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    weights = np.zeros((STFT_ROWS, bins.size), dtype=np.float32)
    for row, (lo, hi) in enumerate(itertools.pairwise(edges)):
        inside = (bins >= lo) & (bins < hi)
        if inside.any():  # the band's power (as the mel bands sum theirs)
            weights[row, inside] = 1.0
        else:  # narrower than a bin: take the nearest one
            weights[row, np.argmin(np.abs(bins - centres[row]))] = 1.0
    return weights, centres


def row_freqs(kind: str, sample_rate: int) -> np.ndarray:
    """The centre frequencies (Hz) of a tile's rows for one kind, lowest first.

    Examples
    --------
    >>> [len(row_freqs(kind, 44100)) for kind in KINDS]
    [192, 128, 84]
    >>> round(float(row_freqs("cqt", 44100)[0]), 2)  # C1
    32.7
    """
    import librosa

    if kind == "cqt":
        return librosa.cqt_frequencies(CQT_BINS, fmin=librosa.note_to_hz("C1"))
    if kind == "mel":
        return librosa.mel_frequencies(n_mels=130, fmax=sample_rate / 2)[1:-1]
    return _log_rows(N_FFT, sample_rate)[1]


def _power_rows(y: np.ndarray, sample_rate: int, kind: str, cols: int):
    """``(rows, columns)`` power and the rows' centre frequencies for one kind of tile."""
    import librosa

    if kind == "cqt":
        octaves_hop = 2**6  # librosa needs a hop divisible by 2**(octaves - 1)
        hop = max(octaves_hop, y.shape[-1] // (2 * cols) // octaves_hop * octaves_hop)
        fmin = librosa.note_to_hz("C1")
        cqt = librosa.cqt(y, sr=sample_rate, hop_length=hop, fmin=fmin, n_bins=CQT_BINS)
        freqs = row_freqs("cqt", sample_rate)
        # librosa scales bin k by sqrt of its filter length L_k = Q sr / f_k, so a sine of
        # amplitude A reads A sqrt(L_k) / 2: divide that out (a full-scale sine: 0 dB).
        lengths = sample_rate / (2 ** (1 / 12) - 1) / freqs
        return _pool(np.abs(cqt) ** 2 * (4.0 / lengths[:, None]), cols), freqs
    power = _frames(y, cols)
    if kind == "mel":
        # triangles peaking at 1 (norm=None): a sine at a band's centre keeps its level
        bank = librosa.filters.mel(sr=sample_rate, n_fft=N_FFT, n_mels=128, norm=None)
        return _pool(bank @ power, cols), row_freqs("mel", sample_rate)
    weights, freqs = _log_rows(N_FFT, sample_rate)
    return _pool(weights @ power, cols), freqs


def quantise(db: np.ndarray, ref_db: float) -> np.ndarray:
    """dB values to bytes over ``[ref_db - RANGE_DB, ref_db]`` (below: 0, above: 255).

    Examples
    --------
    >>> quantise(np.array([-200.0, -120.0, -60.0, 0.0, 6.0]), 0.0).tolist()
    [0, 0, 128, 255, 255]
    """
    scaled = (np.asarray(db, dtype=np.float64) - (ref_db - RANGE_DB)) * (255.0 / RANGE_DB)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _check_tile(kind: str, cols: int) -> None:
    if kind not in KINDS:
        raise ParameterError(f"Invalid kind: {kind!r}; choose one of {KINDS}.")
    if not 1 <= cols <= 8192:
        raise ParameterError(f"Invalid cols: {cols!r}; a tile is 1 to 8192 columns wide.")


def _tile_span(length: float, t0: float, t1: float | None) -> tuple[float, float]:
    """``(t0, t1)`` checked against a signal of ``length`` seconds (``t1=None``: its end)."""
    t1 = length if t1 is None else min(float(t1), length)
    if not 0.0 <= t0 < t1:
        raise ParameterError(f"Invalid tile span: {t0} s to {t1} s of a {length:.2f} s signal.")
    return float(t0), t1


def _tile(kind: str, t0: float, t1: float, values: np.ndarray, freqs: np.ndarray) -> dict:
    return {
        "kind": kind,
        "t0": t0,
        "t1": t1,
        "rows": int(values.shape[0]),
        "cols": int(values.shape[1]),
        "freqs": [round(float(f), 2) for f in freqs],
    }


def lane_tile(
    samples: np.ndarray,
    sample_rate: int,
    *,
    kind: str = "stft",
    t0: float = 0.0,
    t1: float | None = None,
    cols: int = 1200,
) -> tuple[dict, np.ndarray]:
    """The spectrogram of ``samples[t0:t1]`` (channels averaged) as a tile, in dB.

    Every sample in the span counts: frames overlap by at least half and neighbouring frames
    are averaged down to ``cols`` columns, so a short drum hit is not skipped between frames.
    Every zoom level uses the same FFT size, so a sharper tile shows the same levels.

    Parameters
    ----------
    samples : np.ndarray [shape=(channels, frames) or (frames,)]
    sample_rate : int
    kind : {"stft", "mel", "cqt"}
    t0, t1 : float
        The span in seconds (``t1=None``: to the end).
    cols : int
        Columns wanted (the screen width the tile is drawn at).

    Returns
    -------
    tile : dict
        ``kind``, ``t0``, ``t1``, ``rows``, ``cols`` and ``freqs`` (row centres in Hz).
    db : np.ndarray [shape=(rows, cols)], float32
        Power in dB (a full-scale sine reads about 0 dB in every kind, at any zoom), lowest
        frequency first; :func:`quantise` makes the bytes the browser gets.

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal((2, 3 * 22050)).astype(np.float32)
    >>> tile, db = lane_tile(y, 22050, t1=2.0, cols=100)
    >>> tile["rows"], tile["cols"], tile["t1"], db.shape
    (192, 100, 2.0, (192, 100))
    """
    _check_tile(kind, cols)
    t0, t1 = _tile_span(np.shape(samples)[-1] / sample_rate, t0, t1)
    y = mono_window(samples, sample_rate, t0, t1 - t0)[0]
    power, freqs = _power_rows(y, sample_rate, kind, cols)
    db = (10.0 * np.log10(np.maximum(power, 1e-12))).astype(np.float32)
    return _tile(kind, t0, t1, db, freqs), db


def mask_tile(
    mask: np.ndarray,
    sample_rate: int,
    hop_length: int,
    *,
    kind: str = "stft",
    t0: float = 0.0,
    t1: float | None = None,
    cols: int = 1200,
) -> tuple[dict, np.ndarray]:
    """A time-frequency mask (values 0 to 1 on an STFT grid) as a tile on a lane's rows.

    Each row takes the mask at its centre frequency (linear between the STFT's bins), so a mask
    lane lines up with the spectrogram lanes of the same ``kind``; each column averages the
    frames centred in it (the nearest frame where none is).

    Parameters
    ----------
    mask : np.ndarray [shape=(bins, frames) or (channels, bins, frames)]
        Channels are averaged; ``bins = n_fft // 2 + 1``; frame ``k`` is centred at
        ``k * hop_length`` samples (``center=True``).
    sample_rate, hop_length : int
    kind, t0, t1, cols
        As for :func:`lane_tile`.

    Returns
    -------
    tile : dict
        As for :func:`lane_tile`, with ``"scale": "linear"``.
    values : np.ndarray [shape=(rows, cols)], float32, 0 to 1

    Examples
    --------
    >>> mask = np.zeros((1025, 100), np.float32)
    >>> mask[:, 50:] = 1.0  # the second half of the frames
    >>> tile, values = mask_tile(mask, 22050, 512, t1=100 * 512 / 22050, cols=10)
    >>> values.shape, values[0].round(1).tolist()
    ((192, 10), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    """
    _check_tile(kind, cols)
    mask = np.asarray(mask, dtype=np.float32)
    mask = mask.mean(axis=0) if mask.ndim == 3 else mask
    if mask.ndim != 2 or mask.shape[0] < 2 or not mask.shape[1]:
        raise ParameterError(
            f"A mask is (bins, frames) or (channels, bins, frames), not {mask.shape}."
        )
    bins, frames = mask.shape
    t0, t1 = _tile_span(frames * hop_length / sample_rate, t0, t1)
    # columns: the frames whose centres fall in each column, at least one
    edges = np.linspace(t0, t1, cols + 1) * sample_rate / hop_length
    lo = np.clip(np.ceil(edges[:-1] - 0.5).astype(int), 0, frames - 1)
    hi = np.clip(np.ceil(edges[1:] - 0.5).astype(int), lo + 1, frames)
    summed = np.concatenate([np.zeros((bins, 1)), np.cumsum(mask, axis=1, dtype=np.float64)], 1)
    columns = (summed[:, hi] - summed[:, lo]) / (hi - lo)
    # rows: the mask at each row's centre frequency
    freqs = row_freqs(kind, sample_rate)
    position = np.clip(freqs / (sample_rate / 2) * (bins - 1), 0, bins - 1)
    below = np.minimum(position.astype(int), bins - 2)
    frac = (position - below)[:, None]
    values = columns[below] * (1 - frac) + columns[below + 1] * frac
    values = np.clip(values, 0.0, 1.0).astype(np.float32)
    return {**_tile(kind, t0, t1, values, freqs), "scale": "linear"}, values
