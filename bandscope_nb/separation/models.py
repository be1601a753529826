"""Finding and loading separation models, once per process and device.

``model=`` may be a demucs pretrained name (Hugging Face hub first, demucs' legacy repo second), a
name inside a local ``repo=`` folder (demucs layout: ``<name>.yaml`` bags, ``<sig>-<sha>.th`` or
``<sig>.safetensors`` weights), a path to a ``.safetensors`` / ``.th`` file, a folder holding a bag
yaml and its weights (or a single weights file), or a ``torch.nn.Module`` exposing demucs' model
attributes (``sources``, ``samplerate``, ``audio_channels``, optional ``segment``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import math
import numbers
import os
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ModelIntegrityError, ModelUnavailableError, ParameterError
from ..files import file_stamp
from ..names import check_stem_names
from .modelfiles import (
    MAX_SEGMENT,
    check_weights_file,
    download_file,
    load_safetensors,
    load_th,
    max_segment,
    th_checksum,
)

__all__ = ["LoadedModel", "is_offline", "load_model", "offline_reason", "pretrained_names"]

HF_NAMESPACE = "adefossez"
#: A model name or bag signature that may become part of a file name.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_MAX_YAML_BYTES = 64 * 1024
_LOCK = threading.Lock()
_LOADED: dict[tuple, LoadedModel] = {}


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
        Digest of every weight tensor, the bag weights and the classes: the model's identity in
        cache keys, whatever format it was loaded from.
    """

    name: str
    origin: str
    parts: list[tuple[Any, list[float]]]
    identity: str
    module: Any = field(repr=False, default=None)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.parts[0][0].sources)

    @property
    def samplerate(self) -> int:
        return int(self.parts[0][0].samplerate)

    @property
    def audio_channels(self) -> int:
        return int(self.parts[0][0].audio_channels)

    @property
    def max_segment(self) -> float:
        """Longest segment (s) every part accepts: HTDemucs cannot exceed its training length."""
        from demucs.htdemucs import HTDemucs

        limits = [float(m.segment) for m, _ in self.parts if isinstance(m, HTDemucs)]
        return min(limits, default=float("inf"))


def offline_reason() -> str | None:
    """Why no download will be tried, or None when downloads are allowed and possible.

    ``BANDSCOPE_OFFLINE`` / ``HF_HUB_OFFLINE`` switch downloads off; otherwise the hub's
    reachability is probed once per process (TCP, 3 s timeout), so a machine without network
    fails over in seconds instead of waiting through the hub client's retries.

    Examples
    --------
    >>> import os
    >>> os.environ["BANDSCOPE_OFFLINE"] = "1"
    >>> offline_reason()
    'offline mode is on (BANDSCOPE_OFFLINE)'
    >>> del os.environ["BANDSCOPE_OFFLINE"]
    """
    for var in ("BANDSCOPE_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"offline mode is on ({var})"
    if not _hub_reachable():
        return "huggingface.co cannot be reached (no network?)"
    return None


def is_offline() -> bool:
    """True when no download will be tried (see :func:`offline_reason`)."""
    return offline_reason() is not None


@functools.lru_cache(maxsize=1)
def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def pretrained_names() -> list[str]:
    """Names of demucs' pretrained models (bags listed by the installed demucs).

    Examples
    --------
    >>> "htdemucs" in pretrained_names()
    True
    """
    from demucs.pretrained import REMOTE_ROOT

    return sorted(p.stem for p in Path(REMOTE_ROOT).glob("*.yaml"))


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
        return _from_module(model, f"{type(model).__name__} instance", "module")
    if not isinstance(model, (str, os.PathLike)):
        raise ParameterError(f"Invalid model: {model!r}; pass a name, a path or a torch.nn.Module.")
    path = Path(model).expanduser()
    if repo is not None:
        if not _NAME.fullmatch(str(model)):
            raise ParameterError(
                f"Invalid model name {str(model)!r} for repo={repo}; give the plain name of a "
                "bag yaml or weights file in that folder."
            )
        return _from_repo(str(model), Path(repo).expanduser())
    stamp = file_stamp(path)  # None for a name that is no path (even one too long to be one)
    if stamp is not None and path.is_dir():
        return _from_folder(path)
    if stamp is not None or os.path.lexists(path):
        check_weights_file(path)  # not a FIFO, device or dangling link
        return _from_module(_load_file(path, sha256), path.name, f"file {path}")
    if str(model).startswith((".", "/", "~")) or path.suffix in {".th", ".safetensors", ".yaml"}:
        raise ModelUnavailableError(f"Model file {path} does not exist; check the path.")
    return _from_pretrained(str(model))


def _load_file(path: Path, sha256: str | None = None):
    if path.suffix == ".safetensors":
        return load_safetensors(path, sha256=sha256)
    if path.suffix == ".th":
        return load_th(path, sha256=sha256)
    raise ParameterError(f"{path}: unsupported weights file; use .safetensors or .th.")


def _from_module(module, name: str, origin: str) -> LoadedModel:
    from demucs.apply import BagOfModels

    if isinstance(module, BagOfModels):
        parts = [
            (m, list(map(float, w))) for m, w in zip(module.models, module.weights, strict=True)
        ]
    else:
        missing = [a for a in ("sources", "samplerate", "audio_channels") if not hasattr(module, a)]
        if missing:
            raise ParameterError(
                f"Model {name} lacks the attribute(s) {missing}; a custom model must expose "
                "sources, samplerate and audio_channels like a demucs model."
            )
        parts = [(module, [1.0] * len(module.sources))]
    error = ParameterError if origin == "module" else ModelIntegrityError
    for m, _ in parts:
        _check_contract(m, f"Model {name}", error)
        m.eval()
    return LoadedModel(name, origin, parts, _identity(parts), module)


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_contract(module, where: str, error: type[Exception]) -> None:
    """Check the attributes the engine and the output paths rely on, whatever the model's
    origin: safe unique stem names, a plausible sample rate, channel count and segment."""
    from ..audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    check_stem_names(module.sources, where=f"{where}: sources", error=error)
    rate, channels = module.samplerate, module.audio_channels
    if not _integer(rate) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise error(
            f"{where}: samplerate={rate!r} must be an int in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}."
        )
    if not _integer(channels) or not 1 <= channels <= 8:
        raise error(f"{where}: audio_channels={channels!r} must be an int in 1..8.")
    segment = getattr(module, "segment", None)
    limit = max_segment(type(module))
    if segment is not None and not (
        isinstance(segment, (int, float, Fraction))
        and math.isfinite(segment)
        and 0 < segment <= limit
    ):
        raise error(f"{where}: segment={segment!r} must be None or seconds in (0, {limit:g}].")


def _identity(parts) -> str:
    h = hashlib.blake2b(digest_size=16)
    for module, weights in parts:
        h.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
        segment = str(getattr(module, "segment", None))
        h.update(repr((list(module.sources), weights, segment, module.extra_repr())).encode())
        for key, tensor in module.state_dict().items():
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _bag(name: str, origin: str, spec: dict, load_sig) -> LoadedModel:
    from demucs.apply import BagOfModels

    signatures, weights, segment = _check_bag(name, origin, spec)
    models = [load_sig(sig) for sig in signatures]
    try:
        bag = BagOfModels(models, weights, segment)
    except AssertionError as exc:
        raise ModelIntegrityError(
            f"{origin}: the models of bag {name!r} disagree on sources, rate or channels, or "
            "its weights do not match them."
        ) from exc
    return _from_module(bag, name, origin)


def _check_bag(name: str, origin: str, spec: Any) -> tuple[list[str], Any, Any]:
    """Validate a bag yaml's ``models``, ``weights`` and ``segment`` before anything loads."""

    def bad(what: str) -> ModelIntegrityError:
        return ModelIntegrityError(f"{origin}: bag yaml for {name!r}: {what}.")

    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    if not isinstance(spec, dict) or not isinstance(spec.get("models"), list):
        raise bad("has no 'models' list")
    models = spec["models"]
    if not 1 <= len(models) <= 32:
        raise bad(f"lists {len(models)} models (1 to 32 allowed)")
    for sig in models:
        if not isinstance(sig, str) or not _NAME.fullmatch(sig):
            raise bad(f"model signature {sig!r} is not a plain name")
    weights = spec.get("weights")
    if weights is not None and not (
        isinstance(weights, list)
        and len(weights) == len(models)
        and all(isinstance(w, list) and w and all(number(x) and x >= 0 for x in w) for w in weights)
    ):
        raise bad("'weights' must be one list of finite numbers >= 0 per model")
    segment = spec.get("segment")
    if segment is not None and not (number(segment) and 0 < segment <= MAX_SEGMENT):
        raise bad(f"segment={segment!r} must be seconds in (0, {MAX_SEGMENT:g}]")
    return models, weights, segment


def _read_yaml(path: Path) -> Any:
    """Parse a small yaml file with the safe loader, refusing aliases (a few hundred bytes of
    nested aliases can expand to gigabytes: the "billion laughs")."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(
                    None, None, "aliases are not allowed", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)

    size = check_weights_file(path)
    if size > _MAX_YAML_BYTES:
        raise ModelIntegrityError(f"{path}: {size} bytes is too large for a bag yaml.")
    try:
        return yaml.load(path.read_text(), Loader=_NoAliases)  # a SafeLoader subclass
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        detail = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise ModelIntegrityError(f"{path}: not a valid bag YAML ({detail}).") from exc


def _weights_in(folder: Path) -> dict[str, Path]:
    """Map signature -> weights file for ``.safetensors`` and ``.th`` files in ``folder``."""
    found: dict[str, Path] = {}
    for file in sorted(folder.iterdir()):
        if file.suffix not in {".safetensors", ".th"}:
            continue
        check_weights_file(file)  # a FIFO or device named *.th is refused, never opened
        sig = th_checksum(file)[0] if file.suffix == ".th" else file.stem
        if sig in found:
            raise ModelIntegrityError(
                f"{folder}: two weight files for signature {sig!r} ({found[sig].name}, "
                f"{file.name}); delete all but one."
            )
        found[sig] = file
    return found


def _from_repo(name: str, repo: Path) -> LoadedModel:
    if not repo.is_dir():
        raise ModelUnavailableError(f"Model repo {repo} is not a folder; check repo=.")
    weights = _weights_in(repo)

    def load_sig(sig: str):
        if sig not in weights:
            raise ModelUnavailableError(
                f"{repo}: bag {name!r} names model {sig!r}, but no {sig}.safetensors or "
                f"{sig}-<checksum>.th is in that folder."
            )
        return _load_file(weights[sig])

    yaml_file = repo / f"{name}.yaml"
    if yaml_file.is_file():
        return _bag(name, f"repo {repo}", _read_yaml(yaml_file), load_sig)
    if name in weights:
        return _from_module(load_sig(name), name, f"repo {repo}")
    raise ModelUnavailableError(
        f"Model {name!r} is not in repo {repo}: expected {name}.yaml or a {name} weights file."
    )


def _from_folder(folder: Path) -> LoadedModel:
    bags = sorted(folder.glob("*.yaml"))
    if len(bags) == 1:
        return _from_repo(bags[0].stem, folder)
    weights = _weights_in(folder)
    if not bags and len(weights) == 1:
        (sig,) = weights
        return _from_repo(sig, folder)
    raise ModelUnavailableError(
        f"Folder {folder} holds {len(bags)} bag yaml file(s) and {len(weights)} weights file(s); "
        "pass model=NAME with repo=FOLDER to choose one."
    )


def _from_pretrained(name: str) -> LoadedModel:
    if name not in pretrained_names():
        raise ModelUnavailableError(
            f"Unknown model {name!r}; known pretrained models: {', '.join(pretrained_names())}. "
            "Or pass a path to weights, a repo= folder, or a torch.nn.Module."
        )
    reasons = []
    for loader in (_from_hub, _from_legacy):
        try:
            return loader(name)
        except ModelUnavailableError as exc:
            reasons.append(str(exc))
    mode = offline_reason() or "they could not be downloaded"
    raise ModelUnavailableError(
        f"Weights for {name!r} are not on this machine and {mode}. "
        f"On a machine with network run `bandscope models fetch {name}` and copy the Hugging Face "
        "cache (~/.cache/huggingface/hub), or put the bag yaml and its .safetensors files in a "
        f"folder and pass model='/path/to/folder'. Details: {' | '.join(reasons)}"
    )


def _hf_repo(name: str) -> tuple[str, str]:
    from demucs.hf import hf_repo_name

    return f"{HF_NAMESPACE}/{hf_repo_name(name)}", name


def _from_hub(name: str) -> LoadedModel:
    from huggingface_hub import hf_hub_download

    repo_id, bare = _hf_repo(name)

    def fetch(filename: str) -> Path:
        try:
            return Path(hf_hub_download(repo_id, filename, local_files_only=is_offline()))
        except Exception as exc:  # the hub raises many kinds; each means "not available"
            raise ModelUnavailableError(f"hub {repo_id}/{filename}: {type(exc).__name__}") from exc

    spec = _read_yaml(fetch(f"{bare}.yaml"))
    return _bag(
        name, f"hub {repo_id}", spec, lambda sig: load_safetensors(fetch(f"{sig}.safetensors"))
    )


def _from_legacy(name: str, timeout: float = 30.0) -> LoadedModel:
    import torch
    from demucs.pretrained import REMOTE_ROOT, _parse_remote_files

    urls = _parse_remote_files(Path(REMOTE_ROOT) / "files.txt")
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"

    def load_sig(sig: str):
        if sig not in urls:
            raise ModelUnavailableError(f"legacy repo: no model with signature {sig!r}")
        url = urls[sig]
        target = checkpoints / url.rsplit("/", 1)[1]
        if not target.is_file():
            if is_offline():
                raise ModelUnavailableError(f"legacy repo: {target} not on disk")
            download_file(url, target, sha256=th_checksum(target)[1] or "", timeout=timeout)
        return load_th(target)

    spec = _read_yaml(Path(REMOTE_ROOT) / f"{name}.yaml")
    return _bag(name, "demucs legacy repo", spec, load_sig)
