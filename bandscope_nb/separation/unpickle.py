"""torch's restricted unpickler, narrowed further for demucs ``.th`` packages.

Allowed: tensors and plain containers (torch's ``weights_only``), ``Fraction`` built only from
small ints or a plain ``"p/q"`` string, and demucs' three model classes as *names*: a stand-in
(:class:`ClassRef`) takes each class's place, so a pickle can name its model class but cannot
call it with arguments of its choosing. A full unpickle happens only when ``trusted``.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ModelIntegrityError
from .model_rules import ALLOWED_CLASSES

__all__ = ["ClassRef", "unpickle"]


def _fraction(*args) -> Fraction:
    """``Fraction`` for the restricted unpickler, from small ints or a plain ``"p/q"`` string
    only: ``Fraction("1e999999999")`` would spend minutes building a huge int."""
    if (
        len(args) == 1
        and isinstance(args[0], str)
        and re.fullmatch(r"-?\d{1,30}(/\d{1,30})?", args[0])
    ):
        return Fraction(args[0])
    if 1 <= len(args) <= 2 and all(
        isinstance(a, int) and not isinstance(a, bool) and abs(a) < 2**64 for a in args
    ):
        return Fraction(*args)
    raise pickle.UnpicklingError(f"Fraction{args!r} is not a plain small fraction")


class ClassRef:
    """Stands in for an allowed model class while unpickling: the restricted unpickler may
    name the class (a package's ``klass``) but not call it, so a pickle cannot build a model
    with arguments of its choosing before they are checked."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError(f"{self.name} may not be called while unpickling")

    def __repr__(self) -> str:
        return self.name


def unpickle(path: Path, data: bytes, *, trusted: bool, hint: str = "") -> Any:
    """Unpickle ``data`` restricted to tensors and demucs classes; fully only when trusted.
    ``hint`` ends the refusal's message (what the user can do instead)."""
    import torch

    allowed = [
        (_fraction, "fractions.Fraction"),
        *((ClassRef(name), name) for name in sorted(ALLOWED_CLASSES)),
    ]
    with torch.serialization.safe_globals(allowed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on pickle protocols
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            pass
        except Exception as exc:
            raise ModelIntegrityError(f"{path}: not a readable torch file ({exc}).") from exc
    if trusted:  # the caller or our published table vouches for exactly these bytes
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
        except Exception as exc:
            raise ModelIntegrityError(f"{path}: not a readable torch file ({exc}).") from exc
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
        needed = sorted(set(found) - ALLOWED_CLASSES - {"fractions.Fraction"})
    except Exception:  # not a zip checkpoint: the globals cannot be listed without unpickling
        needed = []
    what = f" (it needs {', '.join(needed[:6])})" if needed else ""
    raise ModelIntegrityError(
        f"{path}: refused: this .th file can only be loaded by a full unpickle, which can run "
        f"code{what}, and its sha256 is not a checksum we trust. {hint}".rstrip()
    ) from None
