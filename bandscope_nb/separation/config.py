"""Separation options: one frozen, validated record, whose defaults are the only ones.

:class:`Separator`, :func:`separate_many`, the ``bandscope`` command and :func:`run_report` all
build a :class:`SeparationConfig` and take their defaults from :data:`DEFAULTS`, so they cannot
drift apart (a test checks it); the cache key and the provenance record are made from it too.
Nothing here probes the machine: the device is named here and checked where it is used.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError
from .devices import check_device_name
from .model_rules import MAX_SEGMENT, is_number

__all__ = [
    "BACKENDS",
    "DEFAULTS",
    "MAX_BATCH_SIZE",
    "MAX_SHIFTS",
    "OPTION_NAMES",
    "PRECISIONS",
    "REPORT_DEFAULTS",
    "SeparationConfig",
]

MAX_SHIFTS = 100
MAX_BATCH_SIZE = 1024
#: Arithmetic the network runs in: IEEE float32; TF32 convolutions and matrix products (CUDA);
#: or mixed precision (``torch.autocast``) with bfloat16 or float16 matrix work. The STFT, the
#: normalisation and the output stay float32 in every mode.
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
#: What runs the network: torch on every device, or ONNX Runtime or OpenVINO on the CPU for
#: HTDemucs models (the ``onnx`` or ``openvino`` extra; faster on CPUs, see docs/benchmarks.md).
BACKENDS = ("torch", "onnxruntime", "openvino")


def _real(name: str, value: Any) -> float:
    """``value`` as a finite float, or a :class:`ParameterError` naming ``name``."""
    if not is_number(value):
        raise ParameterError(f"Invalid {name}: {value!r}; give a finite number.")
    return float(value)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    if not is_number(value, integral=True) or not low <= value <= high:
        raise ParameterError(f"Invalid {name}: {value!r}; give an int in {low}..{high}.")
    return int(value)


@dataclass(frozen=True)
class SeparationConfig:
    """The options that change how a model is run, checked and normalised on creation.

    Parameters
    ----------
    model : str, os.PathLike or torch.nn.Module
        A demucs pretrained name, ``"bandscope-tiny"``, a weights file or folder,
        ``"classical"``, ``"auto"`` or a module (see
        :class:`~bandscope_nb.separation.separator.Separator`).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (checked against this
        machine where the separation runs).
    segment : float or None
        Seconds per chunk, in ``(0, MAX_SEGMENT]``; None: the model's own.
    overlap : float
        Fraction of each chunk shared with the next, in ``[0, 1)``.
    shifts : int
        Random time shifts averaged, ``0..MAX_SHIFTS``.
    seed : int
        Seed of the shifts.
    batch_size : int or None
        Chunks per forward pass, ``1..MAX_BATCH_SIZE``; None: by device (1 on a CPU; on a
        CUDA GPU 16, 8 or 4 by its memory; 4 on Apple GPUs).
    precision : {"fp32", "tf32", "bf16", "fp16"}
        ``"fp32"`` (IEEE float32 on every device); ``"tf32"``, ``"bf16"``, ``"fp16"`` trade a
        little fidelity for speed on GPUs (docs/benchmarks.md has the measured fidelity).
    backend : {"torch", "onnxruntime", "openvino"}
        What runs the network: ``"torch"``, or ``"onnxruntime"`` / ``"openvino"`` (CPU, fp32,
        HTDemucs models; ``pip install 'bandscope-nb[onnx]'`` / ``'bandscope-nb[openvino]'``):
        faster on CPUs, checked against torch; with them ``device="auto"`` is the CPU.

    Raises
    ------
    ParameterError
        Naming the option and the value.

    Examples
    --------
    >>> SeparationConfig(segment=7, overlap=0.5).segment
    7.0
    >>> SeparationConfig(shifts=-1)
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.ParameterError: Invalid shifts: -1; give an int in 0..100.
    """

    model: Any = "htdemucs"
    device: str = "auto"
    segment: float | None = None
    overlap: float = 0.25
    shifts: int = 0
    seed: int = 0
    batch_size: int | None = None
    precision: str = "fp32"
    backend: str = "torch"

    def __post_init__(self):
        if not isinstance(self.model, (str, os.PathLike)) and not hasattr(self.model, "forward"):
            raise ParameterError(
                f"Invalid model: {self.model!r}; pass a name, a path or a torch.nn.Module."
            )
        normal = {
            "device": check_device_name(self.device),
            "overlap": _real("overlap", self.overlap),
            "shifts": _integer("shifts", self.shifts, 0, MAX_SHIFTS),
            "seed": _integer("seed", self.seed, -(2**63), 2**63 - 1),
        }
        if self.segment is not None:
            normal["segment"] = _real("segment", self.segment)
            if not 0 < normal["segment"] <= MAX_SEGMENT:
                raise ParameterError(
                    f"Invalid segment: {self.segment!r}; give seconds in (0, {MAX_SEGMENT:g}] "
                    "or None."
                )
        if not 0 <= normal["overlap"] < 1:
            raise ParameterError(f"Invalid overlap: {self.overlap!r}; it must be in [0, 1).")
        if self.batch_size is not None:
            normal["batch_size"] = _integer("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        if not isinstance(self.precision, str) or self.precision not in PRECISIONS:
            raise ParameterError(
                f"Invalid precision: {self.precision!r}; give one of {', '.join(PRECISIONS)}."
            )
        if not isinstance(self.backend, str) or self.backend not in BACKENDS:
            raise ParameterError(
                f"Invalid backend: {self.backend!r}; give one of {', '.join(BACKENDS)}."
            )
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """The options as a plain dict (for provenance and reports); a module model appears as
        its class name."""
        options = self.options()
        if not isinstance(self.model, (str, os.PathLike)):
            options["model"] = type(self.model).__name__
        return {k: str(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}

    def options(self) -> dict[str, Any]:
        """The fields as keyword arguments (the model object itself, not a copy)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes) -> SeparationConfig:
        """A copy with ``changes`` applied, validated like a new one.

        Examples
        --------
        >>> SeparationConfig().replace(model="classical", shifts=2).shifts
        2
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(
                f"Unknown separation option(s) {sorted(unknown)}; the options are "
                f"{[f.name for f in dataclasses.fields(self)]}."
            )
        return dataclasses.replace(self, **changes)


#: The options' names, in order: what the command line, comparison runs and reports accept.
OPTION_NAMES = tuple(f.name for f in dataclasses.fields(SeparationConfig))
#: The defaults of every entry point.
DEFAULTS = SeparationConfig()
#: Reports' and the demo's: ``model="auto"`` (htdemucs when its weights are here, else the bundled
#: bandscope-tiny, else the classical separator, announced), so they run offline.
REPORT_DEFAULTS = DEFAULTS.replace(model="auto")
