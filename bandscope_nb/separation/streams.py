"""Streaming audio storage for the engine: windows in, finished regions out.

The engine never holds a whole track: it reads windows from a :class:`Source` (an in-memory array
or a raw float32 file on disk) and writes finished regions into a :class:`StemWriter`, a raw
``(sources, channels, frames)`` float32 file that is opened afterwards as a read-only memory map.
Reads and writes use plain file I/O, not memory maps, so the pages touched while separating do
not pile up in the process' resident memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import iter_blocks, open_checked

__all__ = ["ArraySource", "RawSource", "StemWriter", "prepare_file"]

_F32 = np.dtype("<f4")


class Source:
    """A ``(channels, frames)`` signal that is zero outside ``[0, frames)``."""

    channels: int
    frames: int

    def read(self, start: int, stop: int) -> np.ndarray:
        """Return float32 ``(channels, stop - start)``, zero-padded outside the signal."""
        out = np.zeros((self.channels, stop - start), dtype=np.float32)
        lo, hi = max(start, 0), min(stop, self.frames)
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


def prepare_file(
    path: Path,
    dest: Path,
    *,
    target_sample_rate: int | None = None,
    blocksize: int = 262_144,
    name: str | None = None,
) -> tuple[int, int]:
    """Decode ``path`` block by block into a raw float32 ``(frames, channels)`` file.

    Every block is checked for NaN/Inf; with ``target_sample_rate`` the audio is resampled with a
    streaming soxr resampler. Memory stays bounded by ``blocksize`` whatever the file's length.
    Errors name ``name`` (default: the path), e.g. the user's file when ``path`` is a copy.

    Returns
    -------
    (channels, frames) : tuple of int
        Of the written file.
    """
    path, info = open_checked(path, name=name)
    resampler = None
    if target_sample_rate is not None and target_sample_rate != info.samplerate:
        import soxr

        resampler = soxr.ResampleStream(
            info.samplerate, target_sample_rate, info.channels, dtype="float32", quality="HQ"
        )
    frames = 0
    with open(dest, "wb") as out:
        for block in iter_blocks(path, blocksize=blocksize, name=name):
            if resampler is not None:
                block = resampler.resample_chunk(block, last=False)
            out.write(np.ascontiguousarray(block, dtype=_F32).tobytes())
            frames += block.shape[0]
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros((0, info.channels), np.float32), last=True)
            out.write(np.ascontiguousarray(tail, dtype=_F32).tobytes())
            frames += tail.shape[0]
    return info.channels, frames


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
                self._file.write(np.ascontiguousarray(row, dtype=_F32).tobytes())
        self._written_to = max(self._written_to, start + n)

    def close(self) -> None:
        """Flush and close the file (no fsync: a killed process loses nothing written; cache
        entries are checked on read)."""
        if self._file is not None:
            self._file.close()


def open_stems(path: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """Open a finished stems file as a read-only memory map of ``shape``."""
    return np.memmap(path, dtype=_F32, mode="r", shape=shape)


