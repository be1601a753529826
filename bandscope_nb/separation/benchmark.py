"""How fast and how faithful each arithmetic is, for one model on this machine.

The answer to "is this speed normal?": :func:`benchmark` separates the same audio once per
mode the device runs: each precision (``fp32`` first, as the reference) and, on a CPU with the
``onnx`` or ``openvino`` extra and an HTDemucs model, ONNX Runtime and OpenVINO, after a short
warm-up, and reports the times real time and each mode's SNR against the fp32 stems. Nothing
is cached or written. On a GPU each mode runs twice and the second run is timed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from ..errors import DeviceError, ParameterError

__all__ = ["BenchmarkResult", "benchmark", "snr_db"]

_WARMUP_SECONDS = 1.0
MAX_BENCH_SECONDS = 600.0


@dataclass(frozen=True)
class BenchmarkResult:
    """One row per mode: ``precision``, ``backend``, ``seconds`` (wall time), ``realtime``
    (audio seconds per second) and ``snr_db`` against torch's fp32 (``inf`` for that)."""

    model: str
    device: str
    batch_size: int
    audio_seconds: float
    rows: tuple[dict, ...]

    def __str__(self) -> str:
        lines = [
            f"{self.model} on {self.device}, batch {self.batch_size}, "
            f"{self.audio_seconds:.1f} s of audio:",
            f"  {'mode':<18}{'seconds':>9}{'x real time':>13}{'SNR vs fp32':>13}",
        ]
        for i, r in enumerate(self.rows):
            snr = "reference" if i == 0 else f"{r['snr_db']:.1f} dB"
            lines.append(f"  {_mode(r):<18}{r['seconds']:>9.2f}{r['realtime']:>13.1f}{snr:>13}")
        lines.append(
            "  (docs/benchmarks.md has reference numbers: htdemucs on 2 CPU cores runs at 1.5 to "
            "2.9x real time, on an H100 at 250-380x with batch 16)"
        )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("mode", "seconds", "× real time", "SNR"))
        body = "".join(
            f"<tr><td>{_mode(r)}</td><td>{r['seconds']:.2f}</td>"
            f"<td>{r['realtime']:.1f}</td><td>{r['snr_db']:.1f} dB</td></tr>"
            for r in self.rows
        )
        caption = f"{self.model} on {self.device}, {self.audio_seconds:.1f} s of audio"
        return f"<table><caption>{caption}</caption><tr>{head}</tr>{body}</table>"


def _mode(row: dict) -> str:
    """``fp32``, ``bf16``..., or ``fp32 onnxruntime`` for another backend than torch."""
    backend = row.get("backend", "torch")
    return row["precision"] if backend == "torch" else f"{row['precision']} {backend}"


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SNR in dB of ``estimate`` against ``reference``, in float64 (``inf`` when equal)."""
    error = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    power = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if error == 0 else 10 * float(np.log10(max(power, 1e-30) / error))


def benchmark(separator, audio, sample_rate: int | None = None, *, seconds: float = 30.0):
    """Time ``separator``'s model in every mode its device runs, on ``seconds`` of audio: each
    precision, and ONNX Runtime and OpenVINO where they run (a CPU, their extras, HTDemucs
    parts).

    Parameters
    ----------
    separator : Separator
        Its model, device, batch size and options are used; its cache is not.
    audio : path, Audio, (array, rate) or array
        What to separate (``bn.demo.path()`` is a good choice), cut or repeated to
        ``seconds``.
    seconds : float
        Audio length timed, in (0, 600].

    Returns
    -------
    BenchmarkResult

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> sep = bn.Separator("classical", device="cpu", progress=False)
    >>> result = sep.benchmark(bn.demo.path(), seconds=2.0)
    >>> [r["precision"] for r in result.rows]
    ['fp32', 'bf16']
    """
    from ..audio import as_audio, load_audio

    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not (0 < seconds <= MAX_BENCH_SECONDS)
    ):
        raise ParameterError(f"Invalid seconds: {seconds!r}; give (0, {MAX_BENCH_SECONDS:g}].")
    if isinstance(audio, str) or hasattr(audio, "__fspath__"):
        audio = load_audio(audio)
    audio = as_audio(audio, sample_rate)
    frames = int(seconds * audio.sample_rate)
    reps = -(-frames // audio.frames)
    samples = np.ascontiguousarray(np.tile(audio.samples, reps)[:, :frames])
    # A GPU picks its kernels per shape on first use (and autocast has its own), so there the
    # warm-up is the whole run; a CPU needs only a first chunk.
    accelerated = separator.device.type != "cpu"
    warmup = samples if accelerated else samples[:, : int(_WARMUP_SECONDS * audio.sample_rate)]
    rows, reference = [], None
    for precision, backend in _modes(separator):
        run = _variant(separator, precision, backend)
        if run is None:
            continue
        run.separate(warmup, audio.sample_rate)
        start = time.perf_counter()
        stems = run.separate(samples, audio.sample_rate)
        elapsed = time.perf_counter() - start
        data = np.asarray(stems.data)
        reference = data if reference is None else reference
        rows.append(
            {
                "precision": precision,
                "backend": backend,
                "seconds": elapsed,
                "realtime": seconds / elapsed,
                "snr_db": snr_db(reference, data),
            }
        )
    model = separator.model.name
    return BenchmarkResult(
        model, str(separator.device), separator.batch_size, frames / audio.sample_rate, tuple(rows)
    )


def _modes(separator) -> list[tuple[str, str]]:
    """``(precision, backend)`` pairs to time: torch in each precision of the device, then
    ONNX Runtime and OpenVINO where they run this model here."""
    from ..errors import MissingDependencyError
    from .devices import _PRECISIONS, check_backend
    from .onnx_backend import LABELS, check_model

    modes = [(p, "torch") for p in _PRECISIONS.get(separator.device.type, ("fp32",))]
    for backend in LABELS:  # the backends that run an exported graph
        try:
            check_backend(separator.device, "fp32", backend)
            check_model(separator.model, backend)
        except (MissingDependencyError, ParameterError, DeviceError):
            continue
        modes.append(("fp32", backend))
    return modes


def _variant(separator, precision: str, backend: str):
    """A copy of ``separator`` running ``precision`` on ``backend``, uncached and quiet; None
    when this GPU cannot run it (bf16 before Ampere)."""
    try:
        run = type(separator).from_config(
            dataclasses.replace(separator.config, precision=precision, backend=backend),
            repo=separator.repo,
            sha256=separator.sha256,
            cache=False,
            progress=False,
        )
    except DeviceError:
        return None
    run._model = separator.model  # one load, shared
    return run
