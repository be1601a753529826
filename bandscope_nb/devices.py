"""Choosing and checking the compute device (cuda, mps, cpu). Nothing is probed at import."""

from __future__ import annotations

import re

from .errors import DeviceError

__all__ = ["default_batch_size", "resolve_device"]

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

    if not isinstance(device, str):
        device = str(device)
    name = device.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available(torch):
            return torch.device("mps")
        return torch.device("cpu")
    match = _DEVICE_RE.match(name)
    if match is None:
        raise DeviceError(
            f"Unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        )
    kind, index = match.group(1), match.group(2)
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


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def default_batch_size(device) -> int:
    """Chunks per forward pass: 1 on CPU (no gain, more memory), more on accelerators.

    Examples
    --------
    >>> import torch
    >>> default_batch_size(torch.device("cpu"))
    1
    """
    return {"cuda": 8, "mps": 4}.get(device.type, 1)
