"""The one small family of errors (and warnings) raised by bandscope-nb.

Every error is a :class:`BandscopeError` and also subclasses the builtin it is closest to, so
``except ValueError`` keeps working for code that does not know this package. Messages name the
file, model or device involved and say what to do next. Announcements that are not errors (a
fallback taken on the user's behalf) are :class:`BandscopeWarning` s, which
``warnings.filterwarnings`` can silence or turn into errors by class.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "AudioError",
    "BandscopeError",
    "BandscopeWarning",
    "CacheError",
    "DeviceError",
    "MissingDependencyError",
    "ModelFallbackWarning",
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
    """The result cache's folder cannot be used: a file, a foreign folder, symlinked folders.
    Only cache I/O raises it (a bad size limit is a :class:`ParameterError`)."""


class SeparationError(BandscopeError, RuntimeError):
    """The model produced unusable output (NaN or Inf) for an input; nothing was kept."""


class ReportError(BandscopeError, RuntimeError):
    """A report notebook could not be executed or written."""


class MissingDependencyError(BandscopeError, RuntimeError):
    """A program or data file that a feature needs is not installed (fluidsynth, a SoundFont)."""


class BandscopeWarning(UserWarning):
    """Base class of the warnings bandscope-nb gives on purpose."""


class ModelFallbackWarning(BandscopeWarning):
    """``model="auto"`` took another model (the bundled bandscope-tiny, else the classical
    separator) because htdemucs' weights are not here.

    Examples
    --------
    >>> import warnings, bandscope_nb as bn
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", bn.ModelFallbackWarning)  # fail instead of falling back
    ...     pass
    """


def warn(message: str, category: type[Warning] = BandscopeWarning) -> None:
    """``warnings.warn`` pointing at the caller's own line: the first frame outside this
    package, however deep inside it the warning arose."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
