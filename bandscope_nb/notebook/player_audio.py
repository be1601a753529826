"""What the stem player sends the browser: 16-bit PCM in chunks, at a rate its budget allows.

Each track goes as chunks of at most :data:`CHUNK_BYTES` (custom widget messages with one binary
buffer each), so no single message is huge: a 5-minute mix and four stems at 44.1 kHz are
265 MB of PCM, sent as about 35 messages. The browser writes each chunk into its track's
``AudioBuffer`` where it belongs and plays once every chunk is in. PCM is planar within a chunk
(channel after channel) and scaled so that a track's peak fits 16 bits: a stem whose estimate
exceeds full scale is sent as ``pcm * scale / 32767``, never clipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from ..errors import ParameterError

__all__ = [
    "CHUNK_BYTES",
    "PREVIEW_RATES",
    "at_rate",
    "chunk_edges",
    "pcm_chunks",
    "send_rate",
    "track_peak",
    "track_scale",
]

CHUNK_BYTES = 8_000_000
FIRST_CHUNK_BYTES = 1_000_000  # a small first slice: playable sooner
PREVIEW_RATES = (32000, 24000, 22050, 16000, 11025, 8000)


def send_rate(rate: int, frames: int, channels: int, tracks: int, max_mb: float) -> int:
    """The stems' rate if their PCM fits ``max_mb``, else the highest preview rate that does.

    Examples
    --------
    >>> send_rate(44100, 300 * 44100, 2, 5, 320.0), send_rate(44100, 300 * 44100, 2, 5, 150.0)
    (44100, 24000)
    """
    per_frame = 2 * channels * tracks
    for candidate in (rate, *(r for r in PREVIEW_RATES if r < rate)):
        if frames / rate * candidate * per_frame <= max_mb * 1e6:
            return candidate
    minutes = frames / rate / 60
    raise ParameterError(
        f"{tracks} tracks of {minutes:.1f} min do not fit the player's {max_mb:g} MB even at "
        "8 kHz: play an excerpt (bn.Stems(stems.data[..., start:end], stems.names, rate)) or "
        "raise max_mb."
    )


def at_rate(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``target`` Hz (the same array when the rates agree)."""
    from ..audio import resample

    if rate == target:
        return samples
    return resample(np.ascontiguousarray(samples, dtype=np.float32), rate, target)


def track_peak(samples: np.ndarray) -> float:
    """The largest magnitude in ``samples`` (NaN or inf when there are such samples)."""
    return float(np.max(np.abs(samples))) if samples.size else 0.0


def track_scale(peak: float) -> float:
    """The level a track is divided by before it becomes 16-bit: its peak, at least 1."""
    return max(1.0, peak)


def chunk_edges(channels: int, frames: int) -> list[int]:
    """Where chunks start: a first chunk of :data:`FIRST_CHUNK_BYTES` (so the browser can
    play soon), then chunks of :data:`CHUNK_BYTES`; the end last.

    Examples
    --------
    >>> chunk_edges(2, 1_000_000)
    [0, 250000, 1000000]
    """
    first = max(1, min(FIRST_CHUNK_BYTES, CHUNK_BYTES) // (2 * channels))
    step = max(1, CHUNK_BYTES // (2 * channels))
    return [0, *range(min(first, frames), frames, step), frames]


def pcm_chunks(
    samples: np.ndarray, scale: float, edges: list[int] | None = None
) -> Iterator[tuple[int, int, bytes]]:
    """``(offset, frames, planar int16 bytes)`` for consecutive chunks of a track, between
    ``edges`` (default: :func:`chunk_edges`, read when the first chunk is asked for).

    Examples
    --------
    >>> chunks = list(pcm_chunks(np.full((2, 5), 0.5, np.float32), 1.0))
    >>> [(offset, frames, len(data)) for offset, frames, data in chunks]
    [(0, 5, 20)]
    >>> int(np.frombuffer(chunks[0][2], "<i2")[0])
    16384
    """
    edges = chunk_edges(*samples.shape) if edges is None else edges
    for lo, hi in itertools.pairwise(edges):
        block = np.asarray(samples[:, lo:hi], dtype=np.float32)
        # clipped: a resampled preview may overshoot the peak measured before resampling
        pcm = np.clip(np.rint(block * (32767.0 / scale)), -32767, 32767).astype("<i2")
        yield lo, hi - lo, pcm.tobytes()
