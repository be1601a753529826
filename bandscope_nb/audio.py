"""Audio at the I/O edge: load, validate, save.

Inside bandscope-nb audio is always float32 with shape ``(channels, frames)`` and an explicit
sample rate. This module is the only place that converts from and to files.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError, ParameterError
from .files import atomic_path, release_pages
from .names import as_path

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "Audio", "as_audio", "load_audio", "save_audio"]

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
#: Largest sample magnitude accepted. Float audio is nominally within [-1, 1]; integer PCM
#: values stored as floats (up to ~8.4e6 for 24 bit) still pass, while values near float32's
#: limit (3e38) would overflow a model's normalisation into NaN stems.
MAX_AMPLITUDE = 1e8
#: File formats :func:`save_audio` writes, with the sample encoding used for each.
SAVE_SUBTYPES = {"wav": "FLOAT", "flac": "PCM_24"}
#: Frames per block when saving (bounds the memory a save needs).
SAVE_BLOCK = 1 << 18


@dataclass(frozen=True, eq=False)
class Audio:
    """Audio samples with their sample rate.

    Attributes
    ----------
    samples : np.ndarray [shape=(channels, frames), dtype=float32]
    sample_rate : int
    path : pathlib.Path or None
        The file the samples were read from, if any.
    """

    samples: np.ndarray
    sample_rate: int
    path: Path | None = None

    def __post_init__(self):
        name = str(self.path) if self.path else "Audio"
        rate = check_sample_rate(self.sample_rate, name=name)
        object.__setattr__(self, "samples", check_samples(self.samples, rate, name=name))
        object.__setattr__(self, "sample_rate", rate)

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[0])

    @property
    def frames(self) -> int:
        """Number of frames (samples per channel)."""
        return int(self.samples.shape[-1])

    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.frames / self.sample_rate

    def _ipython_display_(self) -> None:
        """In a live kernel, the stem player and its offline copy
        (:func:`bandscope_nb.notebook.widgets.show`); elsewhere the repr."""
        from .notebook.widgets import show

        show(self)

    def _repr_html_(self) -> str:
        """Spectrogram (PNG) and a player for the first 30 s: what static exports show."""
        from .notebook.embed import audio_html

        return audio_html(self)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return (
            f"Audio(channels={self.channels}, frames={self.frames}, "
            f"sample_rate={self.sample_rate}, duration={self.duration:.2f}s{where})"
        )


def frame_range(
    sample_rate: int, frames: int, start: float = 0.0, duration: float | None = None
) -> tuple[int, int]:
    """Frames ``[lo, hi)`` of ``duration`` seconds from ``start`` seconds (None: to the end),
    clipped to a signal of ``frames`` frames: the one place seconds become frames.

    Examples
    --------
    >>> frame_range(8000, 20_000, start=1.0, duration=5.0)
    (8000, 20000)
    """
    lo = min(max(0, int(start * sample_rate)), frames)
    hi = frames if duration is None else min(frames, lo + int(duration * sample_rate))
    return lo, hi


def check_sample_rate(sample_rate: float, *, name: str) -> int:
    """Return ``sample_rate`` as int, or raise :class:`AudioError` naming ``name``."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.number)):
        raise AudioError(f"{name}: sample rate must be a number of Hz, got {sample_rate!r}.")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE or int(sample_rate) != sample_rate:
        raise AudioError(
            f"{name}: sample rate {sample_rate!r} Hz is outside the supported range "
            f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; resample the audio first."
        )
    return int(sample_rate)


def check_finite(block: np.ndarray, *, name: str) -> None:
    """Raise :class:`AudioError` naming ``name`` if ``block`` holds NaN, Inf or samples beyond
    ±:data:`MAX_AMPLITUDE`."""
    if not block.size:
        return
    # two reductions and no temporary array: NaN and Inf both make the max or the min non-finite
    high, low = float(block.max()), float(block.min())
    if not (np.isfinite(high) and np.isfinite(low)):
        raise AudioError(f"{name}: contains NaN or Inf samples; repair or re-export the audio.")
    if (peak := max(high, -low)) > MAX_AMPLITUDE:
        raise AudioError(
            f"{name}: has samples of magnitude {peak:.3g}, far outside audio's [-1, 1] range "
            f"(limit ±{MAX_AMPLITUDE:g}); scale it to [-1, 1] first."
        )


def check_samples(samples: np.ndarray, sample_rate: float, *, name: str = "audio") -> np.ndarray:
    """Validate an in-memory signal and return it as float32 ``(channels, frames)``.

    A 1-D array is taken as mono. The caller's array is never modified.

    Parameters
    ----------
    samples : np.ndarray [shape=(frames,) or (channels, frames)]
    sample_rate : number
    name : str
        How to call the signal in error messages.

    Returns
    -------
    np.ndarray [shape=(channels, frames), dtype=float32]

    Examples
    --------
    >>> check_samples(np.zeros(4), 8000).shape
    (1, 4)
    """
    check_sample_rate(sample_rate, name=name)
    array = np.asarray(samples)
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise AudioError(f"{name}: samples must be real numbers, got dtype {array.dtype}.")
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise AudioError(
            f"{name}: samples must have shape (channels, frames), got shape {array.shape}."
        )
    if array.shape[0] > 64 and array.shape[1] <= 64:
        raise AudioError(
            f"{name}: shape {array.shape} looks like (frames, channels); pass samples.T."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise AudioError(f"{name}: has no samples (shape {array.shape}).")
    array = array.astype(np.float32, copy=False)
    check_finite(array, name=name)
    return array


def _check_path(path: Path, label: str) -> None:
    """A regular, readable, non-empty file (a FIFO or device is refused before it is opened:
    opening one could block or never end)."""
    if not path.exists():
        raise AudioError(f"{label}: no such file; check the path.")
    if path.is_dir():
        raise AudioError(f"{label}: is a directory, not an audio file.")
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise AudioError(f"{label}: is {kind}, not a regular audio file; save the audio first.")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{label}: cannot be read (permission denied); check its permissions.")
    if path.stat().st_size == 0:
        raise AudioError(f"{label}: is an empty file (0 bytes).")


def _check_header(found, label: str) -> None:
    """A header (``sf.info`` or an open ``SoundFile``) with a plausible rate and some frames."""
    check_sample_rate(found.samplerate, name=label)
    if found.frames <= 0:
        raise AudioError(f"{label}: contains no audio frames.")


def _unreadable(label: str, exc: Exception) -> AudioError:
    supported = "supported: wav, flac, ogg, mp3"
    return AudioError(f"{label}: not a readable audio file ({exc}); {supported}.")


def open_checked(
    path: str | os.PathLike, *, name: str | None = None
) -> tuple[Path, sf._SoundFileInfo]:
    """Check that ``path`` is a readable, decodable, non-empty audio file; return its info.

    Raises
    ------
    AudioError
        Naming the file (or ``name``, e.g. the user's file when ``path`` is a private copy of
        it) and what is wrong with it.
    """
    path = Path(path)
    label = name or str(path)
    _check_path(path, label)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise _unreadable(label, exc) from exc
    _check_header(info, label)
    return path, info


def open_sound(path: str | os.PathLike, *, name: str | None = None) -> sf.SoundFile:
    """Check ``path`` as :func:`open_checked` does and open it for decoding, as one handle
    whose header (channels, rate, frames) is the one its blocks are read with. Use it as a
    context manager."""
    path = Path(path)
    label = name or str(path)
    _check_path(path, label)
    try:
        sound = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as exc:
        raise _unreadable(label, exc) from exc
    try:
        _check_header(sound, label)
    except AudioError:
        sound.close()
        raise
    return sound


def checked_blocks(sound: sf.SoundFile, *, blocksize: int = 262_144, name: str):
    """Yield float32 blocks of shape ``(frames, channels)`` from an open file, checking each.

    Raises :class:`AudioError` naming ``name`` if the file turns out corrupt or holds NaN/Inf
    or absurd magnitudes.
    """
    try:
        for block in sound.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
            check_finite(block, name=name)
            yield block
    except sf.LibsndfileError as exc:
        raise AudioError(f"{name}: decoding failed part-way ({exc}); the file is corrupt.") from exc


def iter_blocks(path: Path, *, blocksize: int = 262_144, name: str | None = None):
    """Yield float32 blocks of shape ``(frames, channels)`` from ``path``, checking each
    (:func:`checked_blocks` over :func:`open_sound`)."""
    name = name or str(path)
    with open_sound(path, name=name) as sound:
        yield from checked_blocks(sound, blocksize=blocksize, name=name)


def load_audio(
    path: str | os.PathLike, *, sample_rate: int | None = None, mono: bool = False
) -> Audio:
    """Load an audio file as float32 ``(channels, frames)``.

    Parameters
    ----------
    path : str or os.PathLike
        A wav, flac, ogg or mp3 file.
    sample_rate : int or None
        Resample to this rate (with soxr); ``None`` keeps the file's rate.
    mono : bool
        Average all channels into one.

    Returns
    -------
    Audio

    Raises
    ------
    AudioError
        When the file is missing, unreadable, corrupt, empty, has an absurd sample rate or holds
        NaN/Inf samples.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> audio = bn.load_audio(bn.demo.path())
    >>> audio.samples.dtype, audio.channels, audio.sample_rate
    (dtype('float32'), 2, 44100)
    """
    path, info = open_checked(path)
    blocks = list(iter_blocks(path))
    samples = np.concatenate(blocks, axis=0).T if blocks else np.zeros((info.channels, 0))
    if samples.shape[-1] == 0:
        raise AudioError(f"{path}: contains no audio frames.")
    if mono:
        samples = samples.mean(axis=0, keepdims=True)
    rate = info.samplerate
    if sample_rate is not None and sample_rate != rate:
        samples = resample(samples, rate, check_sample_rate(sample_rate, name="sample_rate"))
        rate = sample_rate
    return Audio(np.ascontiguousarray(samples, dtype=np.float32), int(rate), path)


def as_audio(audio, sample_rate: int | None = None) -> Audio:
    """Coerce what users pass as audio into a validated :class:`Audio`.

    Accepts an :class:`Audio`, a path (loaded with :func:`load_audio`), an ``(array, rate)``
    pair, or an array together with ``sample_rate``.

    Examples
    --------
    >>> as_audio((np.zeros((2, 10)), 8000)).samples.shape
    (2, 10)
    """
    if isinstance(audio, Audio):
        return audio
    if isinstance(audio, (str, os.PathLike)):
        return load_audio(audio)
    if isinstance(audio, tuple) and len(audio) == 2 and sample_rate is None:
        audio, sample_rate = audio
    if sample_rate is None:
        raise ParameterError("An audio array needs its sample_rate; pass (array, rate).")
    return Audio(audio, sample_rate)


def resample(samples: np.ndarray, orig_sample_rate: int, target_sample_rate: int) -> np.ndarray:
    """Resample ``(channels, frames)`` float32 audio with soxr (high quality).

    Examples
    --------
    >>> resample(np.zeros((2, 48000), np.float32), 48000, 44100).shape
    (2, 44100)
    """
    import soxr

    if orig_sample_rate == target_sample_rate:
        return samples
    frames_first = np.ascontiguousarray(samples.T)
    out = soxr.resample(frames_first, orig_sample_rate, target_sample_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def save_audio(
    samples: np.ndarray, sample_rate: int, path: str | os.PathLike, *, format: str = "wav"
) -> Path:
    """Write ``(channels, frames)`` audio atomically (temp file, then rename), block by block.

    WAV is written as 32-bit float (lossless for our stems); FLAC as 24-bit PCM, where samples
    beyond [-1, 1] are clipped with a warning saying how many. Memory stays bounded whatever the
    length: blocks of :data:`SAVE_BLOCK` frames are checked, converted and written in turn, and
    pages of a memory-mapped input are released once written (so saving a cached hour-long stem
    does not grow the process' resident memory).

    Parameters
    ----------
    samples : np.ndarray [shape=(channels, frames) or (frames,)]
    sample_rate : int
    path : str or os.PathLike
    format : {"wav", "flac"}

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ParameterError
        Unknown format, or ``path`` is a folder.
    AudioError
        Invalid samples (NaN/Inf, absurd magnitudes, wrong shape) or sample rate; nothing is
        left at ``path``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = save_audio(np.zeros((2, 100), np.float32), 44100,
    ...                  pathlib.Path(tempfile.mkdtemp()) / "x.wav")
    >>> out.name
    'x.wav'
    """
    if not isinstance(format, str) or format not in SAVE_SUBTYPES:
        raise ParameterError(f"Invalid format: {format!r}; choose one of {sorted(SAVE_SUBTYPES)}.")
    path = as_path(path, what="path")
    if path.is_dir():
        raise ParameterError(f"{path} is a folder; cannot write audio there. Remove or rename it.")
    rate = check_sample_rate(sample_rate, name=str(path))
    array = np.asarray(samples) if not isinstance(samples, np.memmap) else samples
    if array.ndim == 1:
        array = array[np.newaxis, :]
    check_samples(array[:, :1], rate, name=str(path))  # dtype and shape, without a full copy
    clipped = 0
    with (
        atomic_path(path) as tmp,
        sf.SoundFile(
            tmp, "w", rate, array.shape[0], SAVE_SUBTYPES[format], format=format.upper()
        ) as out,
    ):
        for start in range(0, array.shape[1], SAVE_BLOCK):
            view = array[:, start : start + SAVE_BLOCK]
            block = np.array(view, dtype=np.float32)
            check_finite(block, name=str(path))
            if format == "flac":
                over = np.abs(block) > 1.0
                if over.any():
                    clipped += int(np.count_nonzero(over))
                    np.clip(block, -1.0, 1.0, out=block)
            out.write(np.ascontiguousarray(block.T))
            for row in view:
                release_pages(row)
    if clipped:
        warnings.warn(
            f"{path}: {clipped} samples beyond [-1, 1] were clipped for 24-bit FLAC; "
            "save as wav (32-bit float) to keep them.",
            stacklevel=2,
        )
    return path
