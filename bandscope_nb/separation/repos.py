"""Local model folders in demucs' layout: ``<name>.yaml`` bags of ``<sig>`` weights
(``<sig>-<sha>.th`` or ``<sig>.safetensors``), a folder holding one bag, or one weights file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelIntegrityError, ModelUnavailableError
from .loaded import LoadedModel, from_module, load_file
from .model_rules import check_bag
from .modelfiles import check_weights_file, th_checksum

__all__ = ["from_folder", "from_repo", "load_bag", "read_yaml"]


_MAX_YAML_BYTES = 64 * 1024


def load_bag(name: str, origin: str, spec: dict, load_sig) -> LoadedModel:
    from demucs.apply import BagOfModels

    signatures, weights, segment = check_bag(name, origin, spec)
    models = [load_sig(sig) for sig in signatures]
    try:
        bag = BagOfModels(models, weights, segment)
    except AssertionError as exc:
        raise ModelIntegrityError(
            f"{origin}: the models of bag {name!r} disagree on sources, rate or channels, or "
            "its weights do not match them."
        ) from exc
    return from_module(bag, name, origin)


def read_yaml(path: Path) -> Any:
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


def weights_in(folder: Path) -> dict[str, Path]:
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


def from_repo(name: str, repo: Path) -> LoadedModel:
    if not repo.is_dir():
        raise ModelUnavailableError(f"Model repo {repo} is not a folder; check repo=.")
    weights = weights_in(repo)

    def load_sig(sig: str):
        if sig not in weights:
            raise ModelUnavailableError(
                f"{repo}: bag {name!r} names model {sig!r}, but no {sig}.safetensors or "
                f"{sig}-<checksum>.th is in that folder."
            )
        return load_file(weights[sig])

    yaml_file = repo / f"{name}.yaml"
    if yaml_file.is_file():
        return load_bag(name, f"repo {repo}", read_yaml(yaml_file), load_sig)
    if name in weights:
        return from_module(load_sig(name), name, f"repo {repo}")
    raise ModelUnavailableError(
        f"Model {name!r} is not in repo {repo}: expected {name}.yaml or a {name} weights file."
    )


def from_folder(folder: Path) -> LoadedModel:
    bags = sorted(folder.glob("*.yaml"))
    if len(bags) == 1:
        return from_repo(bags[0].stem, folder)
    weights = weights_in(folder)
    if not bags and len(weights) == 1:
        (sig,) = weights
        return from_repo(sig, folder)
    raise ModelUnavailableError(
        f"Folder {folder} holds {len(bags)} bag yaml file(s) and {len(weights)} weights file(s); "
        "pass model=NAME with repo=FOLDER to choose one."
    )
