"""The one small family of errors raised by bandscope-nb.

Every error is a :class:`BandscopeError` and also subclasses the builtin it is closest to, so
``except ValueError`` keeps working for code that does not know this package. Messages name the
file, model or device involved and say what to do next.
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "BandscopeError",
    "CacheError",
    "DeviceError",
    "ModelIntegrityError",
    "ModelUnavailableError",
    "ParameterError",
    "ReportError",
    "SeparationError",
]


class BandscopeError(Exception):
    """Base class of every error raised on purpose by bandscope-nb."""


class ParameterError(BandscopeError, ValueError):
    """A parameter is out of range or of the wrong kind (segment, overlap, format, ...)."""


class AudioError(BandscopeError, ValueError):
    """An audio file or array cannot be used: missing, unreadable, corrupt, empty or invalid."""


class ModelUnavailableError(BandscopeError, LookupError):
    """The model's weights are not on disk and cannot be fetched (offline, unknown name)."""


class ModelIntegrityError(BandscopeError, RuntimeError):
    """Model weights failed a checksum or carry malformed metadata; nothing was executed."""


class DeviceError(BandscopeError, RuntimeError):
    """The requested compute device is unknown or not present on this machine."""


class CacheError(BandscopeError, OSError):
    """The result cache cannot be used (unwritable directory, bad size limit)."""


class SeparationError(BandscopeError, RuntimeError):
    """The model produced unusable output (NaN or Inf) for an input; nothing was kept."""


class ReportError(BandscopeError, RuntimeError):
    """A report notebook could not be executed or written."""
