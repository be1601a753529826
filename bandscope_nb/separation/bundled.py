"""Models that ship inside the package: no download, loaded by name, checked against a digest.

``bandscope-tiny`` is a :class:`~bandscope_nb.separation.masknet.MaskNet` trained for ten minutes
on a laptop CPU on synthetic General MIDI songs (the recipe and its scores: docs/baselines.md).
On music rendered like its training songs (the demo song) it beats the classical recipe on
every stem (on bass by less than the 3 dB the Teaching lab asks); it is what ``model="auto"``
uses when htdemucs' weights are not here. It was not trained on recordings: on a real mix,
expect little from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelUnavailableError
from .loaded import LoadedModel, from_module

__all__ = ["BUNDLED", "BundledModel", "bundled_names", "bundled_path", "from_bundled"]

WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class BundledModel:
    """A model file in ``bandscope_nb/separation/weights`` and the sha256 it was released with."""

    file: str
    sha256: str
    about: str


BUNDLED = {
    "bandscope-tiny": BundledModel(
        file="bandscope-tiny.safetensors",
        sha256="e6b0cfc11c3d3c80ff35d81a7197240e2f423423bf569f0cf93c33eee5b3258e",
        about=(
            "a small network trained for 10 minutes on a laptop CPU on synthetic General MIDI "
            "songs. On such songs (the demo song is one) it separates better than the classical "
            "separator. It is not made for real recordings"
        ),
    ),
}


def bundled_names() -> list[str]:
    """Names of the models that ship with bandscope-nb.

    Examples
    --------
    >>> bundled_names()
    ['bandscope-tiny']
    """
    return sorted(BUNDLED)


def bundled_path(name: str) -> Path:
    """The file of a bundled model (it may be missing from a stripped install)."""
    return WEIGHTS / BUNDLED[name].file


def from_bundled(name: str) -> LoadedModel:
    """Load a bundled model, its file checked against the digest held here.

    Raises
    ------
    ModelUnavailableError
        The file is not in this install.
    ModelIntegrityError
        The file does not match its digest (or is not a model we build).

    Examples
    --------
    >>> from_bundled("bandscope-tiny").sources
    ('drums', 'bass', 'other', 'vocals')
    """
    from .modelfiles import load_safetensors

    entry = BUNDLED[name]
    path = bundled_path(name)
    if not path.is_file():
        raise ModelUnavailableError(
            f"The bundled model {name!r} is missing from this install ({path}); reinstall "
            "bandscope-nb, or pass another model."
        )
    module = load_safetensors(path, sha256=entry.sha256)
    return from_module(module, name, f"bundled file {path}")
