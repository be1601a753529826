"""What a separation reads: a validated input (a private snapshot of a file, its bytes in memory,
or samples), opened as a :class:`~.streams.Source` at the model's rate and channel count."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import Audio, as_audio, check_samples, iter_blocks, open_checked, resample
from ..digests import content_digest, file_digest
from ..errors import AudioError
from .streams import (
    ArraySource,
    RawSource,
    Source,
    prepare_file,
)

__all__ = ["Input", "decode_in_memory", "open_source", "read_input"]

_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}


@dataclass(frozen=True)
class Input:
    """A validated input: a private snapshot of a file (what is hashed is what is decoded), the
    file's bytes in memory (no disk space for a snapshot), or in-memory samples."""

    name: str
    digest: str
    channels: int
    sample_rate: int
    path: Path | None = None
    blob: bytes | None = None
    samples: np.ndarray | None = None


class _Upmix(Source):
    """Mono source repeated on ``channels`` channels (mono input, stereo model)."""

    def __init__(self, source: Source, channels: int):
        self.source, self.channels, self.frames = source, channels, source.frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.repeat(self.source._read(start, stop), self.channels, axis=0)


@contextlib.contextmanager
def _file_input(path: Path) -> Iterator[Input]:
    """Check ``path``, then read it once into a private snapshot while hashing those bytes.

    The cache key is the snapshot's digest and the snapshot is what gets decoded, so a file
    changed during (or between) separations can never store one file's stems under another's
    key. With no disk space for the snapshot, the bytes are held in memory instead.
    """
    path, _ = open_checked(path)
    name = str(path)
    with tempfile.TemporaryDirectory(prefix="bandscope-input-") as tmp:
        snapshot = Path(tmp) / f"input{path.suffix.lower()}"
        try:
            digest = file_digest(path, copy_to=snapshot)
            blob = None
        except OSError:  # no space for a copy: hash and keep the bytes in memory
            snapshot.unlink(missing_ok=True)
            blob = path.read_bytes()
            digest = content_digest(blob).hexdigest()
        if blob is None:
            _, info = open_checked(snapshot, name=name)
        else:
            info = _decoded_info(blob, name)
        inp = Input(
            name,
            "file:" + digest,
            info.channels,
            info.samplerate,
            path=snapshot if blob is None else None,
            blob=blob,
        )
        if info.subtype in _FLOAT_SUBTYPES:  # only float files hold NaN/Inf: scan before work
            if blob is None:
                for _ in iter_blocks(snapshot, name=name):
                    pass
            else:
                decode_in_memory(inp)
        yield inp


def _decoded_info(blob: bytes, name: str):
    import soundfile as sf

    try:
        return sf.info(io.BytesIO(blob))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{name}: not a readable audio file ({exc}).") from exc


def decode_in_memory(inp: Input) -> tuple[np.ndarray, int]:
    """Decode a snapshot (or its in-memory bytes) whole, checked: the fallback with no disk
    space. Returns float32 ``(channels, frames)`` samples and their rate."""
    import soundfile as sf

    blob = inp.blob if inp.blob is not None else inp.path.read_bytes()
    try:
        samples, rate = sf.read(io.BytesIO(blob), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioError(f"{inp.name}: decoding failed ({exc}); the file is corrupt.") from exc
    return check_samples(samples.T, rate, name=inp.name), rate


def _array_input(audio: Audio) -> Input:
    samples = np.ascontiguousarray(check_samples(audio.samples, audio.sample_rate))
    h = content_digest(f"{samples.shape}:{audio.sample_rate}".encode())
    h.update(memoryview(samples).cast("B"))
    name = str(audio.path) if audio.path else "audio array"
    return Input(
        name, "samples:" + h.hexdigest(), samples.shape[0], audio.sample_rate, samples=samples
    )


@contextlib.contextmanager
def read_input(audio, sample_rate) -> Iterator[Input]:
    if isinstance(audio, (str, os.PathLike)):
        with _file_input(Path(audio)) as inp:
            yield inp
    else:
        yield _array_input(as_audio(audio, sample_rate))


def open_source(inp: Input, sample_rate: int, channels: int, workdir: Path | None) -> Source:
    """The input as a :class:`Source` at ``sample_rate`` with at least ``channels`` channels:
    staged into ``workdir`` block by block (a file), or in memory (samples, or no disk space)."""
    if inp.samples is None and (workdir is None or inp.path is None):
        samples, found_rate = decode_in_memory(inp)
        source: Source = ArraySource(resample(samples, found_rate, sample_rate))
    elif inp.samples is None:
        raw = workdir / "input.f32"
        staged_channels, _ = prepare_file(
            inp.path, raw, target_sample_rate=sample_rate, name=inp.name
        )
        source = RawSource(raw, staged_channels)
    else:
        source = ArraySource(resample(inp.samples, inp.sample_rate, sample_rate))
    if source.frames == 0:
        raise AudioError(f"{inp.name}: no frames left after resampling; it is too short.")
    if source.channels < channels:
        source = _Upmix(source, channels)
    return source
