"""What a separation reads: an input decoded, checked, hashed and staged in one pass, then
opened as a :class:`~.streams.Source` at the model's rate and channel count."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import Audio, as_audio, check_samples, load_audio, resample
from ..errors import AudioError
from .streams import ArraySource, RawSource, Source, array_digest, resample_raw, stage_file

__all__ = ["Input", "open_source", "read_input"]


@dataclass(frozen=True)
class Input:
    """A validated input, decoded once: staged as raw float32 ``(frames, channels)`` at its own
    rate (a file), or held as ``(channels, frames)`` samples (an array, or a file when there is
    no disk space to stage it). ``digest`` identifies the decoded audio, whatever it came from.
    """

    name: str
    hashed: str | Future  # the digest, or its computation running on a thread
    channels: int
    sample_rate: int
    staged: Path | None = None
    samples: np.ndarray | None = None

    @property
    def digest(self) -> str:
        """The :func:`~.streams.audio_digest` of the decoded samples (waits for it)."""
        return self.hashed if isinstance(self.hashed, str) else self.hashed.result()


class _Upmix(Source):
    """Mono source repeated on ``channels`` channels (mono input, stereo model)."""

    def __init__(self, source: Source, channels: int):
        self.source, self.channels, self.frames = source, channels, source.frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.repeat(self.source._read(start, stop), self.channels, axis=0)


@contextlib.contextmanager
def _file_input(path: Path) -> Iterator[Input]:
    """Check ``path`` and read it once (:func:`~.streams.stage_file`): decoded, checked block by
    block, hashed and staged into a private folder that lives as long as the input. With no
    disk space to stage it, it is decoded into memory instead."""
    name = str(path)
    with tempfile.TemporaryDirectory(prefix="bandscope-input-") as tmp:
        staged = Path(tmp) / "native.f32"
        try:
            found = stage_file(path, staged, name=name)
        except OSError:  # no space to stage: decode into memory (the check still holds)
            staged.unlink(missing_ok=True)
            inp = _array_input(load_audio(path), name=name)
        else:
            inp = Input(name, found.digest, found.channels, found.sample_rate, staged=staged)
        yield inp


def _array_input(audio: Audio, *, name: str | None = None) -> Input:
    samples = np.ascontiguousarray(check_samples(audio.samples, audio.sample_rate))
    name = name or (str(audio.path) if audio.path else "audio array")
    # hashing (which releases the GIL) runs beside whatever comes next: an uncached separation
    # asks for the digest only when it is done. Not a ``with`` block: its exit would wait for
    # the hash (measured on an H100 machine: a quarter of a second before the first batch).
    pool = ThreadPoolExecutor(1, thread_name_prefix="bandscope-hash")
    digest = pool.submit(array_digest, samples, audio.sample_rate)
    pool.shutdown(wait=False)  # the thread ends once the digest is made
    return Input(name, digest, samples.shape[0], audio.sample_rate, samples=samples)


@contextlib.contextmanager
def read_input(audio, sample_rate) -> Iterator[Input]:
    """The :class:`Input` for a path, an :class:`~bandscope_nb.audio.Audio`, an
    ``(array, rate)`` pair or an array with ``sample_rate``; staged files are removed on exit."""
    if isinstance(audio, (str, os.PathLike)):
        with _file_input(Path(audio)) as inp:
            yield inp
    else:
        yield _array_input(as_audio(audio, sample_rate))


def open_source(inp: Input, sample_rate: int, channels: int, workdir: Path | None) -> Source:
    """The input as a :class:`Source` at ``sample_rate`` with at least ``channels`` channels.

    A staged file at the model's rate is read in place; at another rate it is resampled block
    by block into ``workdir`` (raw float32 in, no second decode), or in memory when ``workdir``
    is None (no disk space).
    """
    if inp.samples is not None:
        source: Source = ArraySource(resample(inp.samples, inp.sample_rate, sample_rate))
    elif inp.sample_rate == sample_rate:
        source = RawSource(inp.staged, inp.channels)
    elif workdir is None:
        staged = RawSource(inp.staged, inp.channels)
        samples = staged.read(0, staged.frames)
        source = ArraySource(resample(samples, inp.sample_rate, sample_rate))
    else:
        raw = workdir / "input.f32"
        resample_raw(inp.staged, raw, inp.channels, inp.sample_rate, sample_rate)
        source = RawSource(raw, inp.channels)
    if source.frames == 0:
        raise AudioError(f"{inp.name}: no frames left after resampling; it is too short.")
    if source.channels < channels:
        source = _Upmix(source, channels)
    return source
