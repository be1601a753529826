"""The :class:`Separator`: validated input -> model -> cache or engine -> :class:`Stems`."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..digests import SHA256_FORMAT
from ..errors import (
    AudioError,
    ModelFallbackWarning,
    ModelIntegrityError,
    ModelUnavailableError,
    ParameterError,
    SeparationError,
    warn,
)
from ..names import as_path
from ..stems import Stems
from .cache import ResultCache, cache_key
from .config import DEFAULTS, SeparationConfig
from .devices import check_run, default_batch_size
from .inputs import Input, open_source, read_input
from .models import LoadedModel, load_model
from .onnx_backend import LABELS, check_model, onnx_parts
from .pretrained import offline_reason
from .streams import (
    StemWriter,
    open_stems,
)

__all__ = ["Separator", "check_model_source", "open_cache"]


def open_cache(cache) -> ResultCache | None:
    """The result cache ``cache=`` asks for: True the default one, a folder or a
    :class:`ResultCache`; None for False/None."""
    if cache is True:
        return ResultCache()
    if cache is False or cache is None:
        return None
    if isinstance(cache, ResultCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return ResultCache(as_path(cache, what="cache"))
    raise ParameterError(f"Invalid cache: {cache!r}; give True, False, a folder or a ResultCache.")


def check_model_source(repo, sha256) -> tuple[Path | None, str | None]:
    """Check ``repo=`` (an existing folder) and ``sha256=`` (8 to 64 hex digits) before any
    model is looked for; return them normalised."""
    if repo is not None:
        repo = as_path(repo, what="repo")
        if not repo.is_dir():
            raise ModelUnavailableError(f"Model repo {repo} is not a folder; check repo=.")
    if sha256 is not None and not (
        isinstance(sha256, str) and SHA256_FORMAT.fullmatch(sha256.lower())
    ):
        raise ParameterError(
            f"Invalid sha256: {sha256!r}; give the file's sha256 (64 hex digits) or a prefix "
            "of at least 8."
        )
    return repo, sha256


def _result(data: np.ndarray, model: LoadedModel, info: dict, *, cached: bool) -> Stems:
    """The one place a separation's :class:`Stems` are made: the model's names and rate, the
    run's provenance, and whether they came from the cache."""
    return Stems(data, model.sources, model.samplerate, info={**info, "cached": cached})


class Separator:
    """Split music into stems with a Demucs model (or the classical recipe).

    Parameters
    ----------
    model : str, os.PathLike or torch.nn.Module
        A demucs pretrained name (``"htdemucs"``, ``"htdemucs_ft"``, ...), a name in ``repo``, a
        ``.safetensors`` / ``.th`` file, a model folder, a ``torch.nn.Module`` with demucs'
        attributes, ``"bandscope-tiny"`` (bundled, trained on synthetic songs), ``"classical"``
        (no weights needed) or ``"auto"`` (htdemucs when its weights are on disk or
        downloadable, else bandscope-tiny, else classical: a fallback is announced by a
        :class:`~bandscope_nb.errors.ModelFallbackWarning`).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; checked here.
    repo : str or os.PathLike or None
        Local folder of demucs models to look ``model`` up in.
    segment, overlap, shifts, seed, batch_size, precision, backend
        The run options, checked as a :class:`~.config.SeparationConfig` (kept as
        :attr:`config`): seconds per chunk (default the model's own, at most 60 s; HTDemucs
        cannot go above its training length), the fraction shared by neighbouring chunks in
        ``[0, 1)``, random time shifts averaged (0 to 100, drawn from ``seed`` so results
        repeat), chunks per forward pass (``None`` picks one per device, 1 on CPU), and the
        network's arithmetic: ``"fp32"`` (IEEE float32 on every device), ``"tf32"`` (CUDA),
        or mixed ``"bf16"`` (CPU, CUDA) / ``"fp16"`` (CUDA, MPS): faster on GPUs at a small,
        measured cost in fidelity; and what runs the network: ``"torch"``, or
        ``"onnxruntime"`` / ``"openvino"`` (CPU, fp32, HTDemucs models, the ``onnx`` /
        ``openvino`` extra): faster on CPUs, the exported graph checked against torch before
        use and kept in the cache folder.
    cache : bool, str, os.PathLike or ResultCache
        Use the result cache (default location, a given folder, or a given cache); False to skip.
    sha256 : str or None
        Expected checksum of a single weights file: 8 to 64 hex digits. Only the full sha256
        vouches for a ``.th`` file that needs a full unpickle.
    progress : bool or "transient"
        Show a ``tqdm.auto`` progress bar in seconds of audio; ``"transient"``: one that goes
        away when the separation ends (as in :func:`~bandscope_nb.compare`, whose own bar
        stays).

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
        model: Any = DEFAULTS.model,
        *,
        device: str = DEFAULTS.device,
        repo: str | os.PathLike | None = None,
        segment: float | None = DEFAULTS.segment,
        overlap: float = DEFAULTS.overlap,
        shifts: int = DEFAULTS.shifts,
        seed: int = DEFAULTS.seed,
        batch_size: int | None = DEFAULTS.batch_size,
        precision: str = DEFAULTS.precision,
        backend: str = DEFAULTS.backend,
        cache: bool | str | os.PathLike | ResultCache = True,
        sha256: str | None = None,
        progress: bool | str = True,
    ):
        config = SeparationConfig(
            model=model,
            device=device,
            segment=segment,
            overlap=overlap,
            shifts=shifts,
            seed=seed,
            batch_size=batch_size,
            precision=precision,
            backend=backend,
        )
        self.repo, self.sha256 = check_model_source(repo, sha256)
        self.device = check_run(config)
        self.config = config
        self.batch_size = config.batch_size or default_batch_size(self.device)
        if progress != "transient" and progress not in (True, False):
            raise ParameterError(
                f"Invalid progress: {progress!r}; give True, False or 'transient'."
            )
        self.progress = "transient" if progress == "transient" else bool(progress)
        self.cache = open_cache(cache)
        self._model: LoadedModel | None = None

    @classmethod
    def from_config(cls, config: SeparationConfig, **kwargs) -> Separator:
        """A Separator running ``config``; ``kwargs`` are the other arguments (``repo``,
        ``cache``, ``sha256``, ``progress``).

        Examples
        --------
        >>> import bandscope_nb as bn
        >>> config = bn.SeparationConfig(model="classical", device="cpu", overlap=0.5)
        >>> bn.Separator.from_config(config, cache=False).overlap
        0.5
        """
        if not isinstance(config, SeparationConfig):
            raise ParameterError(f"Invalid config: {config!r}; give a SeparationConfig.")
        return cls(**config.options(), **kwargs)

    # The run options, read from :attr:`config` (the one place they are kept).
    model_spec = property(lambda self: self.config.model)
    segment = property(lambda self: self.config.segment)
    overlap = property(lambda self: self.config.overlap)
    shifts = property(lambda self: self.config.shifts)
    seed = property(lambda self: self.config.seed)
    precision = property(lambda self: self.config.precision)
    backend = property(lambda self: self.config.backend)

    def __repr__(self) -> str:
        return (
            f"Separator(model={self.model_spec!r}, device={str(self.device)!r}, "
            f"segment={self.segment}, overlap={self.overlap}, shifts={self.shifts}, "
            f"precision={self.precision!r}, backend={self.backend!r})"
        )

    @property
    def model(self) -> LoadedModel:
        """The loaded model (loaded on first use, once per process and device). A module passed
        as ``model`` is used as it is at each use: when its weights or settings have changed in
        place since (a training step, an option set on it), it is loaded again, with the
        identity of what it now holds (:meth:`.LoadedModel.stale`)."""
        if self._model is not None and self._model.stale():
            self._model = None
        if self._model is None:
            loaded = self._load()
            if self.segment is not None and self.segment > loaded.max_segment:
                raise ParameterError(  # checked on every call until a model is kept
                    f"segment={self.segment} s exceeds {loaded.name}'s maximum of "
                    f"{loaded.max_segment:.2f} s (its training length); use a shorter one "
                    "or segment=None."
                )
            if self.backend != "torch":
                check_model(loaded, self.backend)
            self._model = loaded
        return self._model

    def _load(self) -> LoadedModel:
        from .classical_model import ClassicalModel

        spec = self.model_spec
        if isinstance(spec, str) and spec == "classical":
            return self._classical(ClassicalModel())
        if isinstance(spec, ClassicalModel):  # the recipe with options of its own
            return self._classical(spec)
        if spec == "auto":
            return self._auto()
        return load_model(spec, repo=self.repo, sha256=self.sha256, device=self.device)

    def _auto(self) -> LoadedModel:
        """htdemucs; else the bundled bandscope-tiny; else the classical recipe: each fallback
        announced with a :class:`ModelFallbackWarning` saying what is used and why."""
        from .bundled import BUNDLED
        from .classical_model import ClassicalModel

        try:
            return load_model("htdemucs", device=self.device)
        except ModelUnavailableError:
            why = offline_reason() or "they could not be downloaded"
        fetch = "To use htdemucs, run `bandscope models fetch htdemucs` on a machine with network."
        try:
            tiny = load_model("bandscope-tiny", device=self.device)
        except (ModelUnavailableError, ModelIntegrityError) as exc:
            warn(
                f"model='auto': htdemucs weights are not on this machine and {why}, and the "
                f"bundled bandscope-tiny did not load ({exc}); using the classical separator "
                f"instead (no weights needed). {fetch}",
                ModelFallbackWarning,
            )
            return self._classical(ClassicalModel())
        warn(
            f"model='auto': htdemucs weights are not on this machine and {why}. Using the "
            f"bundled bandscope-tiny instead: {BUNDLED['bandscope-tiny'].about}. For the "
            f"classical separator, pass model='classical'. {fetch}",
            ModelFallbackWarning,
        )
        return tiny

    def _classical(self, module) -> LoadedModel:
        loaded = load_model(module, device=self.device)
        return dataclasses.replace(loaded, name="classical", origin="bandscope_nb.dsp.classical")

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
        with read_input(audio, sample_rate) as inp:
            return self._separate(inp)

    def benchmark(self, audio, sample_rate: int | None = None, *, seconds: float = 30.0):
        """Time this model on this device in every mode the device runs (each precision; ONNX
        Runtime on a CPU with the ``onnx`` extra), on ``seconds`` of ``audio``
        (``bn.demo.path()``, say), with each mode's SNR against fp32: the answer to
        "is this speed normal?" (:func:`~bandscope_nb.separation.benchmark.benchmark`).

        Returns
        -------
        BenchmarkResult
            Prints as a table; ``.rows`` holds the numbers.
        """
        from .benchmark import benchmark

        return benchmark(self, audio, sample_rate, seconds=seconds)

    def cache_key(self, input_digest: str) -> tuple[str, dict]:
        """The result's key for an input of digest ``input_digest`` (``Stems.info`` has it),
        and the parameters in it: everything that changes the stems (loads the model).

        Examples
        --------
        >>> import bandscope_nb as bn
        >>> sep = bn.Separator("classical", device="cpu", cache=False)
        >>> key, params = sep.cache_key("0" * 40)
        >>> len(key), params["overlap"], params["device_type"]
        (40, 0.25, 'cpu')
        """
        return self._key(input_digest, self.model)

    def _key(self, input_digest: str, model: LoadedModel) -> tuple[str, dict]:
        config = self.config
        params = {  # everything that changes the stems, from the config and the model
            "segment": config.segment,
            "overlap": config.overlap,
            "shifts": config.shifts,
            "seed": config.seed if config.shifts else None,
            "precision": config.precision,
            # CPU and GPU arithmetic differ measurably (docs/benchmarks.md): a result computed
            # on one kind of device is not served as another's
            "device_type": self.device.type,
            "rate": model.samplerate,
            "channels": model.audio_channels,
        }
        if config.backend != "torch":  # absent for torch, so keys made before it stay valid
            params["backend"] = config.backend
        return cache_key(audio=input_digest, model=model.identity, params=params), params

    def _separate(self, inp: Input) -> Stems:
        model = self.model
        if inp.channels > model.audio_channels:
            raise AudioError(
                f"{inp.name}: has {inp.channels} channels but {model.name} takes "
                f"{model.audio_channels}; downmix first, e.g. bn.load_audio(path, mono=True)."
            )
        if self.cache is not None:
            key, info = self._info(inp, model)
            try:
                return self._cached(inp, model, key, info)
            except OSError as exc:  # unusable cache folder, disk full: still separate
                warnings.warn(
                    f"Could not use the result cache at {self.cache.root} ({exc}); separating "
                    "without caching.",
                    stacklevel=3,
                )
        try:
            with tempfile.TemporaryDirectory(prefix="bandscope-") as tmp:
                data, seconds = self._timed_run(inp, model, Path(tmp))
        except OSError as exc:  # no disk space at all: hold the result in memory instead
            warnings.warn(
                f"Could not write temporary files ({exc}); separating {inp.name} in memory.",
                stacklevel=3,
            )
            data, seconds = self._timed_run(inp, model, None)
        # uncached, an array's digest is only needed now: it was hashed beside the separation
        _, info = self._info(inp, model)
        info["seconds"] = seconds
        return _result(data, model, info, cached=False)

    def _info(self, inp: Input, model: LoadedModel) -> tuple[str, dict]:
        """The result's cache key and the provenance its :class:`Stems` carry."""
        key, params = self._key(inp.digest, model)
        info = {
            "model": model.name,
            "origin": model.origin,
            "identity": model.identity,
            "device": str(self.device),
            "batch_size": self.batch_size,
            "backend": self.backend,
            "input": inp.name,
            "input_digest": inp.digest,
            "cache_key": key,
            **params,
        }
        return key, info

    def _cached(self, inp: Input, model: LoadedModel, key: str, info: dict) -> Stems:
        cache = self.cache
        entry, computed = self._entry(key, model), False
        if entry is None:
            with cache.lock(key):
                entry = self._entry(key, model)  # another process may have finished it
                if entry is None:
                    computed = True
                    with cache.staging() as folder:
                        data, info["seconds"] = self._timed_run(inp, model, folder)
                        if model.stale():  # changed while it ran: stored under no identity
                            warnings.warn(
                                f"{model.name} changed while it separated {inp.name} (its "
                                "weights or settings); the stems are not cached.",
                                stacklevel=3,
                            )
                            return _result(data, model, info, cached=False)
                        meta = {"names": model.sources, "shape": data.shape, **info}
                        try:
                            entry = cache.commit(key, folder, meta)
                        except OSError as exc:  # the memory map outlives the staging folder
                            warnings.warn(
                                f"Could not store the result in the cache ({exc}); "
                                "returning it uncached.",
                                stacklevel=3,
                            )
                            return _result(data, model, info, cached=False)
        if not computed:  # what computed the stored stems (and how long it took), not now
            stored = ("device", "batch_size", "seconds")
            ran = {k: entry.meta[k] for k in stored if k in entry.meta}
            info = {**info, **ran}
        return _result(entry.data, model, info, cached=not computed)

    def _entry(self, key: str, model: LoadedModel):
        """The cache entry for ``key`` if it holds this model's stems; one whose names or
        channels disagree with the model (a damaged or foreign meta.json) is removed."""
        entry = self.cache.get(key)
        if entry is None:
            return None
        shape = entry.meta["shape"]
        if list(entry.meta["names"]) != list(model.sources) or shape[1] != model.audio_channels:
            warnings.warn(
                f"Cache entry {entry.path} does not match {model.name}'s stems; recomputing.",
                stacklevel=4,
            )
            self.cache.remove(key)
            return None
        return entry

    def _timed_run(self, inp: Input, model: LoadedModel, workdir: Path | None):
        """:meth:`_run` and its wall time in seconds (kept in the stems' info and the cache
        entry, so a cache hit can say how long its separation took)."""
        start = time.perf_counter()
        data = self._run(inp, model, workdir)
        return data, time.perf_counter() - start

    def _run(self, inp: Input, model: LoadedModel, workdir: Path | None) -> np.ndarray:
        """Separate into ``workdir/stems.f32`` and return it as a read-only memory map; with
        ``workdir=None`` (no disk space) everything stays in memory."""
        from .engine import plan_passes, separate_stream

        source = open_source(inp, model.samplerate, model.audio_channels, workdir)
        shape = (len(model.sources), model.audio_channels, source.frames)
        writer = StemWriter(workdir / "stems.f32" if workdir else None, *shape)
        passes = plan_passes(model.parts, source.frames, shifts=self.shifts, seed=self.seed)
        # a shifted pass starts up to 0.5 s before the signal and sweeps that much more
        total = sum(source.frames - p.start for p in passes) / model.samplerate
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=math.ceil(total * 100) / 100,  # never below the sum of the updates
                unit="s",
                desc=Path(inp.name).name[:40],
                bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}]",
                leave=self.progress is True,
            )
        try:
            parts = self._parts(model, bar)
            separate_stream(
                parts,
                source,
                writer,
                device=self.device,
                segment=self.segment,
                overlap=self.overlap,
                shifts=self.shifts,
                seed=self.seed,
                batch_size=self.batch_size,
                precision=self.precision,
                progress=bar.update if bar is not None else None,
            )
        except SeparationError as exc:
            raise SeparationError(f"{inp.name}: {exc}") from None
        finally:
            writer.close()
            if bar is not None:
                bar.close()
        return writer.data if workdir is None else open_stems(workdir / "stems.f32", shape)

    def _parts(self, model: LoadedModel, bar) -> list:
        """The models the engine runs: ``model.parts``, or with ``backend="onnxruntime"`` or
        ``"openvino"`` the same run by that runtime (exported on first use, said on the
        progress bar)."""
        if self.backend == "torch":
            return model.parts
        if bar is None:
            return self._onnx_parts(model)
        desc = bar.desc
        bar.set_description_str(f"{desc} (preparing {LABELS[self.backend]})")
        try:
            return self._onnx_parts(model)
        finally:
            bar.set_description_str(desc)

    def _onnx_parts(self, model: LoadedModel) -> list:
        """:func:`.onnx_parts` with the graphs kept in the cache folder; where that cannot be
        written (a full disk, a foreign ``graphs`` file), announced, in a temporary one."""
        if self.cache is not None:
            try:
                return onnx_parts(model, self.cache.graphs(), self.backend)
            except OSError as exc:
                warnings.warn(
                    f"Could not keep {model.name}'s exported graph in the cache folder "
                    f"{self.cache.root} ({exc}); exporting it for this process only.",
                    stacklevel=5,
                )
        try:
            return onnx_parts(model, None, self.backend)
        except OSError as exc:
            raise SeparationError(
                f"Could not write {model.name}'s exported graph to a temporary folder ({exc}); "
                "free some disk space or use backend='torch'."
            ) from exc
