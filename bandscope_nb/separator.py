"""The :class:`Separator`: validated input -> model -> cache or engine -> :class:`Stems`."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audio import (
    Audio,
    as_audio,
    check_samples,
    iter_blocks,
    load_audio,
    open_checked,
    resample,
)
from .cache import ResultCache, cache_key
from .devices import default_batch_size, resolve_device
from .errors import AudioError, ModelUnavailableError, ParameterError
from .models import LoadedModel, load_model, offline_reason
from .stems import Stems
from .streams import (
    ArraySource,
    RawSource,
    Source,
    StemWriter,
    file_digest,
    open_stems,
    prepare_file,
)

__all__ = ["Separator"]

_FLOAT_SUBTYPES = {"FLOAT", "DOUBLE"}
_DIGESTS: dict[tuple, str] = {}  # (path, size, mtime_ns) -> content digest, per process
_DIGEST_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Input:
    """A validated input: either a file (streamed) or in-memory samples."""

    name: str
    digest: str
    channels: int
    sample_rate: int
    path: Path | None = None
    samples: np.ndarray | None = None


class _Upmix(Source):
    """Mono source repeated on ``channels`` channels (mono input, stereo model)."""

    def __init__(self, source: Source, channels: int):
        self.source, self.channels, self.frames = source, channels, source.frames

    def _read(self, start: int, stop: int) -> np.ndarray:
        return np.repeat(self.source._read(start, stop), self.channels, axis=0)


def _file_input(path: Path) -> _Input:
    path, info = open_checked(path)
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _DIGEST_LOCK:
        digest = _DIGESTS.get(memo)
    if digest is None:
        if info.subtype in _FLOAT_SUBTYPES:  # only float files can hold NaN/Inf: scan them now
            for _ in iter_blocks(path):
                pass
        digest = "file:" + file_digest(path)
        with _DIGEST_LOCK:
            _DIGESTS[memo] = digest
    return _Input(str(path), digest, info.channels, info.samplerate, path=path)


def _array_input(audio: Audio) -> _Input:
    samples = np.ascontiguousarray(check_samples(audio.samples, audio.sample_rate))
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{samples.shape}:{audio.sample_rate}".encode())
    h.update(memoryview(samples).cast("B"))
    name = str(audio.path) if audio.path else "audio array"
    return _Input(
        name, "samples:" + h.hexdigest(), samples.shape[0], audio.sample_rate, samples=samples
    )


class Separator:
    """Split music into stems with a Demucs model (or the classical recipe).

    Parameters
    ----------
    model : str, os.PathLike or torch.nn.Module
        A demucs pretrained name (``"htdemucs"``, ``"htdemucs_ft"``, ...), a name in ``repo``, a
        ``.safetensors`` / ``.th`` file, a model folder, a ``torch.nn.Module`` with demucs'
        attributes, ``"classical"`` (no weights needed) or ``"auto"`` (htdemucs when its weights
        are on disk or downloadable, else classical; it prints which and why).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; checked here.
    repo : str or os.PathLike or None
        Local folder of demucs models to look ``model`` up in.
    segment : float or None
        Seconds per chunk; default the model's own. HTDemucs cannot go above its training length.
    overlap : float
        Fraction of each chunk shared with the next, in ``[0, 1)``.
    shifts : int
        Random time shifts averaged (0 = none); drawn from ``seed`` so results repeat.
    seed : int
        Seed of the shifts.
    batch_size : int or None
        Chunks per forward pass; ``None`` picks one per device (1 on CPU).
    cache : bool, str, os.PathLike or ResultCache
        Use the result cache (default location, a given folder, or a given cache); False to skip.
    sha256 : str or None
        Expected checksum of a single weights file.
    progress : bool
        Show a ``tqdm.auto`` progress bar in seconds of audio.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> sep = bn.Separator(model="classical", device="cpu", cache=False, progress=False)
    >>> stems = sep.separate(bn.demo.path())
    >>> stems.names
    ('drums', 'bass', 'other', 'vocals')
    """

    def __init__(
        self,
        model: Any = "htdemucs",
        *,
        device: str = "auto",
        repo: str | os.PathLike | None = None,
        segment: float | None = None,
        overlap: float = 0.25,
        shifts: int = 0,
        seed: int = 0,
        batch_size: int | None = None,
        cache: bool | str | os.PathLike | ResultCache = True,
        sha256: str | None = None,
        progress: bool = True,
    ):
        if segment is not None and (isinstance(segment, bool) or not float(segment) > 0):
            raise ParameterError(f"Invalid segment: {segment!r}; give seconds > 0 or None.")
        if isinstance(overlap, bool) or not 0 <= float(overlap) < 1:
            raise ParameterError(f"Invalid overlap: {overlap!r}; it must be in [0, 1).")
        if isinstance(shifts, bool) or not isinstance(shifts, int) or shifts < 0:
            raise ParameterError(f"Invalid shifts: {shifts!r}; give an int >= 0.")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ParameterError(f"Invalid batch_size: {batch_size!r}; give an int >= 1 or None.")
        if repo is not None and not Path(repo).expanduser().is_dir():
            raise ModelUnavailableError(f"Model repo {repo} is not a folder; check repo=.")
        self.device = resolve_device(device)
        self.model_spec, self.repo, self.sha256 = model, repo, sha256
        self.segment = None if segment is None else float(segment)
        self.overlap, self.shifts, self.seed = float(overlap), shifts, int(seed)
        self.batch_size = batch_size or default_batch_size(self.device)
        self.progress = progress
        if cache is True:
            self.cache: ResultCache | None = ResultCache()
        elif cache is False or cache is None:
            self.cache = None
        elif isinstance(cache, ResultCache):
            self.cache = cache
        else:
            self.cache = ResultCache(cache)
        self._model: LoadedModel | None = None

    def __repr__(self) -> str:
        return (
            f"Separator(model={self.model_spec!r}, device={str(self.device)!r}, "
            f"segment={self.segment}, overlap={self.overlap}, shifts={self.shifts})"
        )

    @property
    def model(self) -> LoadedModel:
        """The loaded model (loaded on first use, once per process and device)."""
        if self._model is None:
            self._model = self._load()
            if self.segment is not None and self.segment > self._model.max_segment:
                raise ParameterError(
                    f"segment={self.segment} s exceeds {self._model.name}'s maximum of "
                    f"{self._model.max_segment:.2f} s (its training length); use a shorter one "
                    "or segment=None."
                )
        return self._model

    def _load(self) -> LoadedModel:
        spec = self.model_spec
        if spec == "classical":
            return self._classical()
        if spec == "auto":
            try:
                loaded = load_model("htdemucs", device=self.device)
            except ModelUnavailableError:
                why = offline_reason() or "they could not be downloaded"
                print(
                    f"model='auto': htdemucs weights are not on this machine and {why}; using the "
                    "classical separator instead (no weights needed). To use htdemucs, run "
                    "`bandscope models fetch htdemucs` on a machine with network."
                )
                return self._classical()
            print(f"model='auto': using htdemucs ({loaded.origin}).")
            return loaded
        return load_model(spec, repo=self.repo, sha256=self.sha256, device=self.device)

    def _classical(self) -> LoadedModel:
        from .classical_model import ClassicalModel

        loaded = load_model(ClassicalModel(), device=self.device)
        return dataclasses.replace(loaded, name="classical", origin="bandscope_nb.classical")

    def separate(self, audio, sample_rate: int | None = None) -> Stems:
        """Separate ``audio`` into the model's stems.

        Parameters
        ----------
        audio : str, os.PathLike, Audio, (np.ndarray, int) or np.ndarray
            A file is streamed block by block (a long file is never held whole in memory).
        sample_rate : int or None
            Needed when ``audio`` is a bare array.

        Returns
        -------
        Stems
            At the model's sample rate, as long as the (resampled) input; read-only memory maps.

        Raises
        ------
        AudioError, ModelUnavailableError, ModelIntegrityError, DeviceError, ParameterError
        """
        if isinstance(audio, (str, os.PathLike)):
            inp = _file_input(Path(audio))
        else:
            inp = _array_input(as_audio(audio, sample_rate))
        model = self.model
        if inp.channels > model.audio_channels:
            raise AudioError(
                f"{inp.name}: has {inp.channels} channels but {model.name} takes "
                f"{model.audio_channels}; downmix first, e.g. bn.load_audio(path, mono=True)."
            )
        params = {
            "segment": self.segment,
            "overlap": self.overlap,
            "shifts": self.shifts,
            "seed": self.seed if self.shifts else None,
            "rate": model.samplerate,
            "channels": model.audio_channels,
        }
        key = cache_key(audio=inp.digest, model=model.identity, params=params)
        info = {
            "model": model.name,
            "origin": model.origin,
            "identity": model.identity,
            "device": str(self.device),
            "input": inp.name,
            "cache_key": key,
            **params,
        }
        if self.cache is not None:
            try:
                return self._cached(inp, model, key, info)
            except OSError as exc:  # unwritable cache folder, disk full: still separate
                warnings.warn(
                    f"Could not use the result cache at {self.cache.root} ({exc}); separating "
                    "without caching.",
                    stacklevel=2,
                )
        try:
            with tempfile.TemporaryDirectory(prefix="bandscope-") as tmp:
                data = self._run(inp, model, Path(tmp))
        except OSError as exc:  # no disk space at all: hold the result in memory instead
            warnings.warn(
                f"Could not write temporary files ({exc}); separating {inp.name} in memory.",
                stacklevel=2,
            )
            data = self._run(inp, model, None)
        return Stems(data, model.sources, model.samplerate, info={**info, "cached": False})

    def _cached(self, inp: _Input, model: LoadedModel, key: str, info: dict) -> Stems:
        cache = self.cache
        entry, computed = cache.get(key), False
        if entry is None:
            with cache.lock(key):
                entry = cache.get(key)  # another process may have finished it meanwhile
                if entry is None:
                    computed = True
                    with cache.staging() as folder:
                        data = self._run(inp, model, folder)
                        meta = {"names": model.sources, "shape": data.shape, **info}
                        try:
                            entry = cache.commit(key, folder, meta)
                        except OSError as exc:  # the memory map outlives the staging folder
                            warnings.warn(
                                f"Could not store the result in the cache ({exc}); "
                                "returning it uncached.",
                                stacklevel=3,
                            )
                            return Stems(
                                data,
                                model.sources,
                                model.samplerate,
                                info={**info, "cached": False},
                            )
        return Stems(
            entry.data, model.sources, model.samplerate, info={**info, "cached": not computed}
        )

    def _source(self, inp: _Input, model: LoadedModel, workdir: Path | None) -> Source:
        if inp.path is not None and workdir is None:
            source: Source = ArraySource(load_audio(inp.path, sample_rate=model.samplerate).samples)
        elif inp.path is not None:
            raw = workdir / "input.f32"
            channels, _ = prepare_file(inp.path, raw, target_rate=model.samplerate)
            source = RawSource(raw, channels)
        else:
            source = ArraySource(resample(inp.samples, inp.sample_rate, model.samplerate))
        if source.frames == 0:
            raise AudioError(f"{inp.name}: no frames left after resampling; it is too short.")
        if source.channels < model.audio_channels:
            source = _Upmix(source, model.audio_channels)
        return source

    def _run(self, inp: _Input, model: LoadedModel, workdir: Path | None) -> np.ndarray:
        """Separate into ``workdir/stems.f32`` and return it as a read-only memory map; with
        ``workdir=None`` (no disk space) everything stays in memory."""
        from .engine import plan_passes, separate_stream

        source = self._source(inp, model, workdir)
        shape = (len(model.sources), model.audio_channels, source.frames)
        writer = StemWriter(workdir / "stems.f32" if workdir else None, *shape)
        total = (
            source.frames
            / model.samplerate
            * len(plan_passes(model.parts, source.frames, shifts=self.shifts, seed=self.seed))
        )
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=round(total, 2),
                unit="s",
                desc=Path(inp.name).name[:40],
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]",
            )
        try:
            separate_stream(
                model.parts,
                source,
                writer,
                device=self.device,
                segment=self.segment,
                overlap=self.overlap,
                shifts=self.shifts,
                seed=self.seed,
                batch_size=self.batch_size,
                progress=bar.update if bar is not None else None,
            )
        finally:
            writer.close()
            if bar is not None:
                bar.close()
        return writer.data if workdir is None else open_stems(workdir / "stems.f32", shape)
