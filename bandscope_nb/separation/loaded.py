"""A loaded model as the engine sees it: its parts (models with per-source weights), name,
origin and content identity; and building one from a module or a weights file."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..digests import content_digest
from ..errors import ModelIntegrityError, ParameterError
from .model_rules import check_contract
from .modelfiles import load_safetensors, load_th

__all__ = ["LoadedModel", "from_module", "load_file"]


@dataclass
class LoadedModel:
    """A model ready for the engine.

    Attributes
    ----------
    name : str
        How the user named it.
    origin : str
        Where the weights came from (file, folder, hub, legacy repo, module).
    parts : list of (torch.nn.Module, list of float)
        The models of the bag with their per-source weights (one part for a single model).
    identity : str
        Digest of every weight tensor, the bag weights, the classes and their public plain
        settings (:func:`_settings`): the model's identity in cache keys, whatever format it
        was loaded from.
    module : torch.nn.Module or None
        What the parts came from.
    held : bool
        Whether the caller holds ``module`` (passed it in) and so may change it.
    """

    name: str
    origin: str
    parts: list[tuple[Any, list[float]]]
    identity: str
    module: Any = field(repr=False, default=None)
    held: bool = False

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.parts[0][0].sources)

    @property
    def samplerate(self) -> int:
        return int(self.parts[0][0].samplerate)

    @property
    def audio_channels(self) -> int:
        return int(self.parts[0][0].audio_channels)

    def stale(self) -> bool:
        """Whether the module the caller passed (:attr:`held`) now holds other weights or
        settings than :attr:`identity` names: changed in place since it was loaded (a training
        step, ``load_state_dict``, an option set on it). Hashed again on each call (about
        0.1 s for a full-size HTDemucs on 2 cores); models loaded from files or names are
        never stale.

        Examples
        --------
        >>> import torch
        >>> from bandscope_nb.separation.loaded import from_module
        >>> net = torch.nn.Conv1d(2, 4, 1)
        >>> net.sources, net.samplerate, net.audio_channels = ["a", "b"], 44100, 2
        >>> loaded = from_module(net, "net", "module")
        >>> loaded.stale()
        False
        >>> with torch.no_grad():
        ...     _ = net.weight.mul_(2)
        >>> loaded.stale()
        True
        """
        if not self.held or self.module is None:
            return False
        return _identity(_parts(self.module)) != self.identity

    @property
    def max_segment(self) -> float:
        """Longest segment (s) every part accepts: HTDemucs cannot exceed its training length."""
        from demucs.htdemucs import HTDemucs

        limits = [float(m.segment) for m, _ in self.parts if isinstance(m, HTDemucs)]
        return min(limits, default=float("inf"))


def load_file(path: Path, sha256: str | None = None):
    if path.suffix == ".safetensors":
        return load_safetensors(path, sha256=sha256)
    if path.suffix == ".th":
        return load_th(path, sha256=sha256)
    raise ParameterError(f"{path}: unsupported weights file; use .safetensors or .th.")


def from_module(module, name: str, origin: str) -> LoadedModel:
    from demucs.apply import BagOfModels

    if not isinstance(module, BagOfModels):
        missing = [a for a in ("sources", "samplerate", "audio_channels") if not hasattr(module, a)]
        if missing:
            raise ParameterError(
                f"Model {name} lacks the attribute(s) {missing}; a custom model must expose "
                "sources, samplerate and audio_channels like a demucs model."
            )
    parts = _parts(module)
    error = ParameterError if origin == "module" else ModelIntegrityError
    for m, _ in parts:
        check_contract(m, f"Model {name}", error)
        m.eval()
    return LoadedModel(name, origin, parts, _identity(parts), module, held=origin == "module")


def _parts(module) -> list:
    """A bag's models with their per-source weights; a single model with weight 1 each."""
    from demucs.apply import BagOfModels

    if isinstance(module, BagOfModels):
        return [
            (m, list(map(float, w))) for m, w in zip(module.models, module.weights, strict=True)
        ]
    return [(module, [1.0] * len(module.sources))]


def _identity(parts) -> str:
    h = content_digest()
    for module, weights in parts:
        h.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
        segment = str(getattr(module, "segment", None))
        h.update(repr((list(module.sources), weights, segment, module.extra_repr())).encode())
        h.update(repr(_settings(module)).encode())
        for key, tensor in module.state_dict().items():
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _settings(module) -> list:
    """Every plain setting of ``module`` and its submodules, by name: numbers, strings and
    tuples, lists and dicts of them (options that change the output without being weights,
    such as HTDemucs' ``freq_emb_scale`` or a recipe's options), not the training flag."""
    found = []
    for prefix, sub in module.named_modules():
        for name, value in vars(sub).items():
            if not name.startswith("_") and name != "training" and _plain(value):
                found.append((prefix, name, value))
    return found


def _plain(value, depth: int = 0) -> bool:
    if value is None or isinstance(value, (numbers.Number, str)):
        return True
    if depth < 3 and isinstance(value, (tuple, list)):
        return all(_plain(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False
