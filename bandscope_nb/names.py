"""Names that become file names: stem names and output folder names.

Stem names come from model files (``sources``) and folder names from input file names; both are
untrusted and end up as path components, so they are checked (stems) or cleaned (folders) here,
in one place, before anything is written.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from .errors import ParameterError

__all__ = ["as_path", "check_stem_names", "safe_stem"]

#: A stem name: a letter or digit first, then letters, digits, ``_ . + -`` or spaces, at most 64
#: characters, not ending in a dot or a space (no separators, no ``..`` component, no NUL).
_STEM = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.+ -]{0,62}[A-Za-z0-9_+-])?")


def check_stem_names(names: Iterable, *, where: str, error: type[Exception] = ParameterError):
    """Return ``names`` as a tuple of str after checking each is a safe, unique file name.

    Parameters
    ----------
    names : iterable of str
    where : str
        What the names belong to (a model, a file), for the error message.
    error : type
        The exception raised (a :class:`~bandscope_nb.errors.BandscopeError` subclass).

    Examples
    --------
    >>> check_stem_names(["drums", "bass"], where="model")
    ('drums', 'bass')
    >>> check_stem_names(["../x"], where="model")
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.ParameterError: model: stem name '../x' is not allowed: ...
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise error(f"{where}: stem names must be a list of str, got {type(names).__name__}.")
    names = tuple(names)
    if not names or len(names) > 64:
        raise error(f"{where}: needs between 1 and 64 stem names, got {len(names)}.")
    for name in names:
        if not isinstance(name, str) or not _STEM.fullmatch(name):
            raise error(
                f"{where}: stem name {name!r} is not allowed: a stem name becomes a file "
                "name, so it must be 1-64 letters, digits, '_', '.', '+', '-' or spaces, "
                "starting with a letter or digit."
            )
    folded = [n.casefold() for n in names]
    if len(set(folded)) != len(folded):
        raise error(f"{where}: stem names must be unique (ignoring case), got {names}.")
    return names


def safe_stem(text: str) -> str:
    """A file-name-safe version of ``text``: separators, control and format characters (C0,
    C1, bidirectional overrides such as U+202E) become ``_``; leading dots, dashes and spaces
    go; empty becomes ``"track"``.

    Examples
    --------
    >>> safe_stem("../.hidden song"), safe_stem("a/b:c"), safe_stem("..."), safe_stem("\u202egnp")
    ('_.hidden song', 'a_b_c', 'track', '_gnp')
    """
    cleaned = "".join(
        "_" if ch in '/\\:*?"<>|' or unicodedata.category(ch).startswith("C") else ch for ch in text
    )
    cleaned = cleaned.strip().lstrip(".- ")
    return cleaned[:100].rstrip(". ") or "track"


def as_path(value, *, what: str) -> Path:
    """``value`` as a :class:`~pathlib.Path`, or a :class:`ParameterError` naming ``what``
    when it is not a str / path or holds a NUL character.

    Examples
    --------
    >>> as_path("out/stems", what="out_dir")
    PosixPath('out/stems')
    """
    if not isinstance(value, (str, os.PathLike)) or "\0" in os.fspath(value):
        raise ParameterError(f"Invalid {what}: {value!r}; give a folder or file path.")
    return Path(value).expanduser()
