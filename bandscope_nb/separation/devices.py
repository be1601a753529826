"""Choosing and checking the compute device (cuda, mps, cpu). Nothing is probed at import."""

from __future__ import annotations

import importlib.util
import re

from ..errors import DeviceError, MissingDependencyError, ParameterError

__all__ = [
    "check_backend",
    "check_device_name",
    "check_precision",
    "check_run",
    "default_batch_size",
    "resolve_device",
]

_DEVICE_RE = re.compile(r"^(cpu|mps|cuda)(?::(\d+))?$")


def resolve_device(device: str = "auto"):
    """Return the ``torch.device`` for ``device``, checking that it exists.

    Parameters
    ----------
    device : str
        ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        When the name is unknown or the device is not present on this machine.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    name = check_device_name(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    kind, index = _DEVICE_RE.match(name).groups()
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        wanted = int(index or 0)
        if wanted >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device (or a CPU-only torch)"
            raise DeviceError(
                f"Device {device!r} is not available: this machine has {have}. "
                "Use device='cpu' or 'auto'."
            )
        return torch.device("cuda", wanted)
    if kind == "mps":
        if index not in (None, "0") or not _mps_available(torch):
            raise DeviceError(
                f"Device {device!r} is not available: Apple MPS needs macOS on Apple silicon "
                "with an MPS-enabled torch. Use device='cpu' or 'auto'."
            )
        return torch.device("mps")
    if index not in (None, "0"):
        raise DeviceError(f"Device {device!r}: there is only one CPU device; use 'cpu'.")
    return torch.device("cpu")


def check_device_name(device) -> str:
    """``device`` as a lower-case name, checked for its form only (nothing is probed).

    Examples
    --------
    >>> check_device_name(" CUDA:1 ")
    'cuda:1'
    >>> check_device_name("gpu")
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.DeviceError: Unknown device 'gpu'; use 'auto', 'cpu', ...
    """
    name = str(device).strip().lower()
    if name != "auto" and _DEVICE_RE.match(name) is None:
        raise DeviceError(
            f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        )
    return name


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def default_batch_size(device) -> int:
    """Chunks per forward pass: 1 on CPU (no gain, more memory); on a CUDA GPU by its memory
    (a full-size HTDemucs chunk needs about 0.35 GiB: 16 from 20 GiB, 8 from 10 GiB, else 4;
    16 ran fastest on an H100, docs/benchmarks.md); 4 on Apple GPUs. Out of memory, the
    engine halves the batch and warns.

    Examples
    --------
    >>> import torch
    >>> default_batch_size(torch.device("cpu"))
    1
    """
    if device.type == "cuda":
        import torch

        gib = torch.cuda.get_device_properties(device).total_memory / 2**30
        return 16 if gib >= 20 else 8 if gib >= 10 else 4
    return {"mps": 4}.get(device.type, 1)


#: Mixed precisions each device type runs (``torch.autocast``); fp32 runs everywhere.
_PRECISIONS = {
    "cpu": ("fp32", "bf16"),
    "mps": ("fp32", "fp16"),
    "cuda": ("fp32", "tf32", "bf16", "fp16"),
}


def check_precision(device, precision: str) -> str:
    """Check that ``device`` (a ``torch.device``) can run the network in ``precision``.

    CPUs run bf16 (fp16 matrix work on a CPU is slower than fp32); Apple GPUs run fp16; CUDA
    GPUs run tf32 (plain fp32 before Ampere), fp16, and bf16 where the GPU supports it.

    Raises
    ------
    DeviceError
        Naming the device, the precision and what to use instead.

    Examples
    --------
    >>> import torch
    >>> check_precision(torch.device("cpu"), "bf16")
    'bf16'
    >>> check_precision(torch.device("cpu"), "fp16")
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.DeviceError: precision='fp16' does not run on cpu; use one of fp32, bf16.
    """
    allowed = _PRECISIONS.get(device.type, ("fp32",))
    if precision not in allowed:
        raise DeviceError(
            f"precision={precision!r} does not run on {device}; use one of {', '.join(allowed)}."
        )
    if precision == "bf16" and device.type == "cuda":
        import torch

        if not torch.cuda.is_bf16_supported():
            raise DeviceError(
                f"precision='bf16' needs a GPU with bfloat16 support; {device} has none. "
                "Use precision='fp16' or 'fp32'."
            )
    return precision


#: What each backend other than torch imports, and the extra that installs it.
_BACKEND_NEEDS = {
    "onnxruntime": (("onnxruntime", "onnx", "onnxscript"), "onnx"),
    "openvino": (("openvino", "onnx", "onnxscript"), "openvino"),
}


def check_backend(device, precision: str, backend: str) -> str:
    """Check that ``backend`` runs on ``device`` (a ``torch.device``) in ``precision``, and
    that what it needs is installed; return it.

    Raises
    ------
    DeviceError
        ONNX Runtime or OpenVINO on a GPU (these backends are the CPU's).
    ParameterError
        ONNX Runtime or OpenVINO with a precision other than fp32.
    MissingDependencyError
        What the backend imports is not installed (onnxruntime or openvino, onnx,
        onnxscript), naming the extra to install.

    Examples
    --------
    >>> import torch
    >>> check_backend(torch.device("cpu"), "fp32", "torch")
    'torch'
    >>> check_backend(torch.device("cpu"), "bf16", "onnxruntime")
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.ParameterError: backend='onnxruntime' runs fp32 only; use precision='fp32' or backend='torch'.
    """  # noqa: E501
    if backend == "torch":
        return backend
    if device.type != "cpu":
        raise DeviceError(
            f"backend={backend!r} runs on the CPU, not {device}; use device='cpu' or "
            "backend='torch'."
        )
    if precision != "fp32":
        raise ParameterError(
            f"backend={backend!r} runs fp32 only; use precision='fp32' or backend='torch'."
        )
    needs, extra = _BACKEND_NEEDS[backend]
    missing = [name for name in needs if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"backend={backend!r} needs {', '.join(missing)}: pip install "
            f"'bandscope-nb[{extra}]' (or use backend='torch')."
        )
    return backend


def check_run(config):
    """The ``torch.device`` a :class:`~.config.SeparationConfig` names, checked with its
    precision and backend (:func:`resolve_device`, :func:`check_precision`,
    :func:`check_backend`): what every entry point checks before loading anything.
    ``device="auto"`` with ``backend="onnxruntime"`` or ``"openvino"`` is the CPU (the one
    they run on).

    Examples
    --------
    >>> from bandscope_nb.separation.config import SeparationConfig
    >>> check_run(SeparationConfig(device="cpu"))
    device(type='cpu')
    """
    cpu_only = config.backend != "torch" and config.device == "auto"
    device = resolve_device("cpu" if cpu_only else config.device)  # ONNX Runtime, OpenVINO
    check_precision(device, config.precision)
    check_backend(device, config.precision, config.backend)
    return device
