"""Finding and loading separation models, once per process and device.

``model=`` may be a model bundled with bandscope-nb (``"bandscope-tiny"``, see bundled.py), a
demucs pretrained name (Hugging Face hub first, demucs' legacy repo second), a
name inside a local ``repo=`` folder (demucs layout: ``<name>.yaml`` bags, ``<sig>-<sha>.th`` or
``<sig>.safetensors`` weights), a path to a ``.safetensors`` / ``.th`` file, a folder holding a bag
yaml and its weights (or a single weights file), or a ``torch.nn.Module`` exposing demucs' model
attributes (``sources``, ``samplerate``, ``audio_channels``, optional ``segment``).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

from ..errors import ModelUnavailableError, ParameterError
from ..files import file_stamp
from .bundled import BUNDLED, from_bundled
from .loaded import LoadedModel, from_module, load_file
from .model_rules import PLAIN_NAME
from .modelfiles import check_weights_file
from .pretrained import from_pretrained
from .repos import from_folder, from_repo

__all__ = ["LoadedModel", "load_model"]

_LOCK = threading.Lock()
_LOADED: dict[tuple, LoadedModel] = {}


def load_model(
    model: Any, *, repo: str | os.PathLike | None = None, sha256: str | None = None, device=None
) -> LoadedModel:
    """Load ``model`` (see the module docstring for what it may be), cached per process/device.

    Parameters
    ----------
    model : str, os.PathLike or torch.nn.Module
    repo : str or os.PathLike or None
        A local demucs model folder to look ``model`` up in.
    sha256 : str or None
        Expected sha256 of a single ``.th`` / ``.safetensors`` file.
    device : torch.device or None
        Where the returned copy lives; ``None`` is the CPU.

    Raises
    ------
    ModelUnavailableError, ModelIntegrityError, ParameterError

    Examples
    --------
    >>> from demucs.hdemucs import HDemucs
    >>> net = HDemucs(["a", "b"], channels=4, depth=2, nfft=64)
    >>> load_model(net).sources
    ('a', 'b')
    """
    import torch

    device = torch.device(device or "cpu")
    if not isinstance(model, (str, os.PathLike, torch.nn.Module)):
        raise ParameterError(f"Invalid model: {model!r}; pass a name, a path or a torch.nn.Module.")
    if isinstance(model, (str, os.PathLike)) and ("\0" in str(model) or len(str(model)) > 4096):
        raise ParameterError(f"Invalid model: {str(model)[:80]!r}...; not a name or a path.")
    if isinstance(model, torch.nn.Module):  # the caller holds it; copied, never moved in place
        loaded = _load(model, repo, sha256)
        return loaded if device.type == "cpu" else _moved(loaded, device)
    key = _cache_key(model, repo, sha256)
    with _LOCK:
        if (key, str(device)) in _LOADED:
            return _LOADED[(key, str(device))]
        cpu = _LOADED.get((key, "cpu"))
        if cpu is None:
            cpu = _LOADED[(key, "cpu")] = _load(model, repo, sha256)
        if device.type == "cpu":
            return cpu
        moved = _LOADED[(key, str(device))] = _moved(cpu, device)
        return moved


def _moved(loaded: LoadedModel, device) -> LoadedModel:
    parts = [(copy.deepcopy(m).to(device), w) for m, w in loaded.parts]
    return dataclasses.replace(loaded, parts=parts)


def _cache_key(model: Any, repo: Any, sha256: str | None) -> tuple:
    """The memo key: a file by its stamp; a folder (``repo=`` or a model folder) by the stamps
    of its yaml and weights files, so rewritten weights are never served from memory."""
    if repo is not None:
        folder = Path(repo).expanduser()
        return ("repo", str(model), str(folder.resolve()), _folder_stamp(folder), sha256)
    path = Path(model).expanduser()
    stamp = file_stamp(path)
    if stamp is None:  # not on disk: a pretrained name
        return ("name", str(model), sha256)
    if path.is_dir():
        return ("folder", str(path.resolve()), _folder_stamp(path), sha256)
    return ("file", str(path.resolve()), stamp, sha256)


def _folder_stamp(folder: Path) -> tuple:
    try:
        files = sorted(folder.iterdir())
    except OSError:
        return ()
    return tuple(
        (p.name, file_stamp(p)) for p in files if p.suffix in {".yaml", ".th", ".safetensors"}
    )


def _load(model: Any, repo: Any, sha256: str | None) -> LoadedModel:
    import torch

    if isinstance(model, torch.nn.Module):
        return from_module(model, f"{type(model).__name__} instance", "module")
    if not isinstance(model, (str, os.PathLike)):
        raise ParameterError(f"Invalid model: {model!r}; pass a name, a path or a torch.nn.Module.")
    path = Path(model).expanduser()
    if repo is not None:
        if not PLAIN_NAME.fullmatch(str(model)):
            raise ParameterError(
                f"Invalid model name {str(model)!r} for repo={repo}; give the plain name of a "
                "bag yaml or weights file in that folder."
            )
        return from_repo(str(model), Path(repo).expanduser())
    stamp = file_stamp(path)  # None for a name that is no path (even one too long to be one)
    if stamp is not None and path.is_dir():
        return from_folder(path)
    if stamp is not None or os.path.lexists(path):
        check_weights_file(path)  # not a FIFO, device or dangling link
        return from_module(load_file(path, sha256), path.name, f"file {path}")
    if str(model).startswith((".", "/", "~")) or path.suffix in {".th", ".safetensors", ".yaml"}:
        raise ModelUnavailableError(f"Model file {path} does not exist; check the path.")
    if str(model) in BUNDLED:
        return from_bundled(str(model))
    return from_pretrained(str(model))
