"""Streaming audio storage for the engine: windows in, finished regions out.

The engine never holds a whole track: it reads windows from a :class:`Source` (an in-memory array
or a raw float32 file on disk) and writes finished regions into a :class:`StemWriter`, a raw
``(sources, channels, frames)`` float32 file that is opened afterwards as a read-only memory map.
Reads and writes use plain file I/O, not memory maps, so the pages touched while separating do
not pile up in the process' resident memory.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import checked_blocks, open_sound
from ..digests import content_digest

__all__ = [
    "ArraySource",
    "RawSource",
    "Staged",
    "StemWriter",
    "array_digest",
    "audio_digest",
    "resample_raw",
    "stage_file",
]

_F32 = np.dtype("<f4")


class Source:
    """A ``(channels, frames)`` signal that is zero outside ``[0, frames)``."""

    channels: int
    frames: int

    def read(self, start: int, stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Return float32 ``(channels, stop - start)``, zero-padded outside the signal (into
        ``out`` when given)."""
        if out is None:
            out = np.zeros((self.channels, stop - start), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
        out[:, : max(lo - start, 0)] = 0
        out[:, max(hi - start, 0) :] = 0
        if hi > lo:
            out[:, lo - start : hi - start] = self._read(lo, hi)
        return out

    def _read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class ArraySource(Source):
    """A source over an in-memory ``(channels, frames)`` array (not copied, never modified)."""

    def __init__(self, samples: np.ndarray):
        self.samples = samples
        self.channels, self.frames = (int(n) for n in samples.shape)

    def _read(self, start: int, stop: int) -> np.ndarray:
        return self.samples[:, start:stop]


class RawSource(Source):
    """A source over a raw little-endian float32 file laid out ``(frames, channels)``."""

    def __init__(self, path: Path, channels: int):
        self.path = Path(path)
        self.channels = channels
        self.frames = self.path.stat().st_size // (_F32.itemsize * channels)

    def _read(self, start: int, stop: int) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(start * self.channels * _F32.itemsize)
            data = np.fromfile(f, dtype=_F32, count=(stop - start) * self.channels)
        return data.reshape(-1, self.channels).T


@dataclass(frozen=True)
class Staged:
    """What one pass over an audio file found: the digest of its decoded samples, its shape and
    rate."""

    digest: str
    channels: int
    sample_rate: int
    frames: int


def audio_digest(channels: int, sample_rate: int):
    """The hash that identifies decoded audio: :func:`content_digest` over its layout, then its
    float32 ``(frames, channels)`` samples, fed in order with ``update``. A file and the array
    it decodes to get the same digest."""
    return content_digest(f"audio:{channels}:{sample_rate}:".encode())


def array_digest(samples: np.ndarray, sample_rate: int, *, blocksize: int = 262_144) -> str:
    """:func:`audio_digest` of ``(channels, frames)`` samples, hashed block by block.

    Examples
    --------
    >>> len(array_digest(np.zeros((2, 10), np.float32), 8000))
    40
    """
    h = audio_digest(samples.shape[0], sample_rate)
    for start in range(0, samples.shape[1], blocksize):
        block = np.ascontiguousarray(samples[:, start : start + blocksize].T, dtype=_F32)
        h.update(memoryview(block).cast("B"))
    return h.hexdigest()


def stage_file(
    path: Path, dest: Path | None, *, blocksize: int = 262_144, name: str | None = None
) -> Staged:
    """Read ``path`` once: decode it block by block, check every block (NaN, Inf, absurd
    magnitudes), hash it (:func:`audio_digest`) and write it to ``dest`` as raw float32
    ``(frames, channels)`` at the file's own rate (``dest=None``: hash only).

    What is hashed is exactly what was decoded and staged, so a file changed while it is read
    can never put one signal's stems under another's key. Memory stays bounded by
    ``blocksize``. Errors name ``name`` (default: the path).
    """
    from concurrent.futures import ThreadPoolExecutor

    label = name or str(path)
    frames, hashing = 0, None
    # One handle: the layout hashed and returned is the one the blocks are decoded with, even
    # if the file is replaced meanwhile. Hashing runs beside decoding and writing (each
    # releases the GIL), one block in flight.
    with (
        open_sound(path, name=label) as sound,
        ThreadPoolExecutor(1) as pool,
        open(dest, "wb") if dest else nullcontext() as out,
    ):
        channels, sample_rate = sound.channels, sound.samplerate
        h = audio_digest(channels, sample_rate)
        for block in checked_blocks(sound, blocksize=blocksize, name=label):
            data = memoryview(np.ascontiguousarray(block, dtype=_F32)).cast("B")
            if hashing is not None:
                hashing.result()
            hashing = pool.submit(h.update, data)
            if out is not None:
                out.write(data)
            frames += block.shape[0]
        if hashing is not None:
            hashing.result()
    return Staged(h.hexdigest(), channels, sample_rate, frames)


def resample_raw(
    src: Path,
    dest: Path,
    channels: int,
    orig_sample_rate: int,
    target_sample_rate: int,
    *,
    blocksize: int = 262_144,
) -> int:
    """Resample a raw float32 ``(frames, channels)`` file into ``dest`` with a streaming soxr
    resampler, ``blocksize`` frames at a time; return the frames written."""
    import soxr

    resampler = soxr.ResampleStream(
        orig_sample_rate, target_sample_rate, channels, dtype="float32", quality="HQ"
    )
    source, frames = RawSource(src, channels), 0
    with open(dest, "wb") as out:
        for start in range(0, source.frames, blocksize):
            block = source.read(start, min(start + blocksize, source.frames)).T
            data = resampler.resample_chunk(np.ascontiguousarray(block), last=False)
            out.write(np.ascontiguousarray(data, dtype=_F32).tobytes())
            frames += data.shape[0]
        tail = resampler.resample_chunk(np.zeros((0, channels), np.float32), last=True)
        out.write(np.ascontiguousarray(tail, dtype=_F32).tobytes())
        frames += tail.shape[0]
    return frames


class StemWriter:
    """Accumulates finished regions of a ``(sources, channels, frames)`` float32 result.

    ``add(start, block)`` adds ``block`` (``(sources, channels, n)``) into frames
    ``[start, start + n)``. On disk (``path`` given) the raw file is zero-filled at creation
    (sparse), so the first pass over a region writes without reading; later passes (shifts, bags
    of models) read, add and write. With ``path=None`` the result is held in :attr:`data` in
    memory, the fallback when no disk space is left.
    """

    def __init__(self, path: Path | None, sources: int, channels: int, frames: int):
        self.shape = (sources, channels, frames)
        self.data: np.ndarray | None = None
        self._file = None
        if path is None:
            self.data = np.zeros(self.shape, dtype=np.float32)
            return
        self.path = Path(path)
        with open(self.path, "wb") as f:
            f.truncate(sources * channels * frames * _F32.itemsize)
        self._file = open(self.path, "r+b")  # closed in close()
        self._written_to = 0  # frames below this have been written at least once

    def _offset(self, source: int, channel: int, frame: int) -> int:
        _, channels, frames = self.shape
        return ((source * channels + channel) * frames + frame) * _F32.itemsize

    def add(self, start: int, block: np.ndarray) -> None:
        """Add ``block`` [shape=(sources, channels, n)] at frame ``start``."""
        n = block.shape[-1]
        if self.data is not None:
            self.data[..., start : start + n] += block
            return
        fresh = start >= self._written_to
        for s in range(self.shape[0]):
            for c in range(self.shape[1]):
                row = block[s, c]
                self._file.seek(self._offset(s, c, start))
                if not fresh:
                    row = row + np.fromfile(self._file, dtype=_F32, count=n)
                    self._file.seek(self._offset(s, c, start))
                self._file.write(memoryview(np.ascontiguousarray(row, dtype=_F32)).cast("B"))
        self._written_to = max(self._written_to, start + n)

    def close(self) -> None:
        """Flush and close the file (no fsync: a killed process loses nothing written; cache
        entries are checked on read)."""
        if self._file is not None:
            self._file.close()


def open_stems(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Open a finished stems file as a read-only memory map of ``shape``."""
    return np.memmap(path, dtype=_F32, mode="r", shape=shape)
