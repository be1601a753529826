"""Reading and writing Demucs weight files, with integrity checks before anything is executed.

Two formats, as demucs itself uses them:

- ``.th``: a pickled ``{"klass", "args", "kwargs", "state"}`` package. Unpickling can run code, so a
  ``.th`` is opened only after its sha256 matches the checksum in its name (``<sig>-<8 hex>.th``,
  demucs' convention) or a full ``sha256=`` given by the caller.
- ``.safetensors``: tensors plus the model class and its init arguments as JSON metadata (demucs'
  Hugging Face layout). Only demucs model classes may be named there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import ModelIntegrityError, ModelUnavailableError
from .files import atomic_path, atomic_write

__all__ = [
    "download_file",
    "load_safetensors",
    "load_th",
    "save_safetensors",
    "save_th",
    "sha256_file",
]

#: Model classes a weights file may name; anything else is refused before import.
ALLOWED_CLASSES = frozenset(
    {"demucs.htdemucs.HTDemucs", "demucs.hdemucs.HDemucs", "demucs.demucs.Demucs"}
)
_ALLOWED_STRUCTURE_MODULES = ("diffq.",)
_TH_NAME = re.compile(r"^(?P<sig>[^-]+)-(?P<checksum>[0-9a-f]{8,64})$")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f"; _ = p.write_bytes(b"")
    >>> sha256_file(p)[:8]
    'e3b0c442'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(1 << 22):
            h.update(data)
    return h.hexdigest()


def download_file(url: str, path: str | os.PathLike, *, sha256: str, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``path``; the file appears only once complete and its sha256 matches.

    Parameters
    ----------
    url : str
    path : path
        Where the file goes; it is written to a temporary name beside it and renamed.
    sha256 : str
        The expected sha256, or a prefix of it of at least 8 hex digits (as in demucs' file
        names).
    timeout : float
        Seconds to wait for the connection and for each read; a server that stops sending
        fails the download instead of hanging it.

    Returns
    -------
    Path

    Raises
    ------
    ModelUnavailableError
        The server cannot be reached, answers with an error, or stalls.
    ModelIntegrityError
        The downloaded bytes do not match ``sha256`` (nothing is kept).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> source = folder / "w.bin"; _ = source.write_bytes(b"weights")
    >>> digest = sha256_file(source)
    >>> download_file(source.as_uri(), folder / "copy.bin", sha256=digest[:8]).read_bytes()
    b'weights'
    """
    import http.client
    import urllib.request

    expected = _checksum(url, sha256)
    digest = hashlib.sha256()
    try:
        with (
            atomic_path(path) as tmp,
            urllib.request.urlopen(url, timeout=timeout) as response,
            open(tmp, "wb") as out,
        ):
            received = 0
            while data := response.read(1 << 20):
                out.write(data)
                digest.update(data)
                received += len(data)
            size = response.headers.get("Content-Length")
            if size is not None and received < int(size):
                raise ModelUnavailableError(
                    f"{url}: the connection closed after {received} of {size} bytes; nothing "
                    "was kept. Retry."
                )
            if not digest.hexdigest().startswith(expected):
                raise ModelIntegrityError(
                    f"{url}: sha256 {digest.hexdigest()[: len(expected)]} does not match the "
                    f"expected {expected}; nothing was kept. Try again, or fetch the file by "
                    "another route and check it."
                )
    except TimeoutError as exc:
        raise ModelUnavailableError(
            f"{url}: no data for {timeout:g} s; nothing was kept. Check the network and retry."
        ) from exc
    except (OSError, http.client.HTTPException) as exc:  # HTTP errors, refused, cut short
        raise ModelUnavailableError(
            f"{url}: {type(exc).__name__}: {exc}; nothing was kept."
        ) from exc
    return Path(path)


def th_checksum(path: Path) -> tuple[str, str | None]:
    """Split a ``.th`` file name into (signature, checksum prefix or None)."""
    match = _TH_NAME.match(Path(path).stem)
    if match is None:
        return Path(path).stem, None
    return match.group("sig"), match.group("checksum")


def _checksum(where, expected: str) -> str:
    """``expected`` in lower case; a :class:`ModelIntegrityError` naming ``where`` unless it is
    at least 8 hex digits (a sha256 or a prefix of one)."""
    checksum = expected.lower()
    if len(checksum) < 8 or not re.fullmatch(r"[0-9a-f]+", checksum):
        raise ModelIntegrityError(f"{where}: checksum {checksum!r} must be >= 8 hex digits.")
    return checksum


def _verify(path: Path, expected: str | None) -> None:
    if not expected:
        raise ModelIntegrityError(
            f"{path}: a .th file is a pickle and is loaded only with a known checksum. Name it "
            "'<sig>-<sha256 prefix>.th' (demucs' convention), pass sha256='<hex digest>', or "
            "convert it to .safetensors with bandscope_nb.modelfiles.save_safetensors."
        )
    expected = _checksum(path, expected)
    actual = sha256_file(path)
    if not actual.startswith(expected):
        raise ModelIntegrityError(
            f"{path}: sha256 {actual[: len(expected)]} does not match the expected {expected}; "
            "the file is corrupt or was tampered with. Delete it and fetch it again."
        )


def load_th(path: str | os.PathLike, *, sha256: str | None = None):
    """Load a demucs ``.th`` model after verifying its sha256.

    Parameters
    ----------
    path : str or os.PathLike
    sha256 : str or None
        Full hex digest or a prefix of >= 8 digits; default: the prefix in the file name.

    Returns
    -------
    torch.nn.Module
        The demucs model, in eval mode, on the CPU.

    Raises
    ------
    ModelIntegrityError
        Checksum missing or mismatching (nothing is unpickled), or a malformed package.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from demucs.hdemucs import HDemucs
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> path = save_th(HDemucs(["a", "b"], channels=4, depth=2, nfft=64), tmp / "tiny.th")
    >>> load_th(path).sources
    ['a', 'b']
    """
    path = Path(path)
    _verify(path, sha256 or th_checksum(path)[1])
    package = _unpickle(path)
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise ModelIntegrityError(f"{path}: not a demucs model package.")
    klass = package["klass"]
    if (
        f"{getattr(klass, '__module__', '')}.{getattr(klass, '__name__', '')}"
        not in ALLOWED_CLASSES
    ):
        raise ModelIntegrityError(f"{path}: names model class {klass!r}, not a demucs model.")
    return _build(path, package)


def _unpickle(path: Path) -> Any:
    """Unpickle a verified file, restricted to tensors and demucs classes when possible."""
    import torch
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    with torch.serialization.safe_globals([HTDemucs, HDemucs, Demucs, Fraction]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            pass
    # Checksum verified above: the file is the one published; older packages carry globals
    # (e.g. training arguments) that the restricted unpickler does not know.
    return torch.load(path, map_location="cpu", weights_only=False)


def _build(path: Path, package: dict):
    from demucs.states import load_model

    try:
        model = load_model(package)
    except Exception as exc:
        raise ModelIntegrityError(f"{path}: weights do not fit their model ({exc}).") from exc
    return model.eval()


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:
        raise ModelIntegrityError(f"{path}: not a readable safetensors file ({exc}).") from exc
    klass = metadata.get("klass")
    if klass not in ALLOWED_CLASSES:
        raise ModelIntegrityError(
            f"{path}: metadata 'klass' is {klass!r}; expected one of {sorted(ALLOWED_CLASSES)}."
        )
    try:
        for key in ("args", "kwargs"):
            json.loads(metadata[key])
        structure = json.loads(metadata.get("structure", "null"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ModelIntegrityError(f"{path}: metadata 'args'/'kwargs' missing or not JSON.") from exc
    for name in re.findall(r'"_class":\s*"([^"]+)"', json.dumps(structure)):
        if not name.startswith(_ALLOWED_STRUCTURE_MODULES):
            raise ModelIntegrityError(f"{path}: metadata names class {name!r}; refused.")
    return metadata


def load_safetensors(path: str | os.PathLike, *, sha256: str | None = None):
    """Load a demucs model from a ``.safetensors`` file in demucs' Hugging Face layout.

    Parameters
    ----------
    path : str or os.PathLike
    sha256 : str or None
        If given, the file's sha256 (or a prefix of >= 8 digits) must match.

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    ModelIntegrityError
        Unreadable file, missing or malformed metadata, a class outside demucs, weights that do
        not fit the model, or a checksum mismatch.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from demucs.hdemucs import HDemucs
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.safetensors"
    >>> _ = save_safetensors(HDemucs(["a", "b"], channels=4, depth=2, nfft=64), path)
    >>> load_safetensors(path).sources
    ['a', 'b']
    """
    from demucs.hf import _decode_json, _unflatten_state
    from safetensors import safe_open

    path = Path(path)
    if sha256:
        _verify(path, sha256)
    metadata = _metadata(path)
    with safe_open(str(path), framework="pt") as f:
        tensors = {key: f.get_tensor(key) for key in f.keys()}
    state = tensors
    if "structure" in metadata:
        state = _unflatten_state(tensors, json.loads(metadata["structure"]))
    module_name, class_name = metadata["klass"].rsplit(".", 1)
    import importlib

    klass = getattr(importlib.import_module(module_name), class_name)
    package = {
        "klass": klass,
        "args": _decode_json(json.loads(metadata["args"])),
        "kwargs": _decode_json(json.loads(metadata["kwargs"])),
        "state": state,
    }
    return _build(path, package)


def _encode_json(value: Any) -> Any:
    if isinstance(value, Fraction):
        return {"_type": "fraction", "numerator": value.numerator, "denominator": value.denominator}
    if isinstance(value, dict):
        return {key: _encode_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_json(item) for item in value]
    return value


def _package(model) -> tuple[str, Any, Any, dict]:
    init = getattr(model, "_init_args_kwargs", None)
    klass = f"{type(model).__module__}.{type(model).__name__}"
    if init is None or klass not in ALLOWED_CLASSES:
        raise ModelIntegrityError(
            f"Only demucs models built through their constructor can be saved, got {klass}."
        )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return klass, init[0], init[1], state


def save_safetensors(model, path: str | os.PathLike) -> Path:
    """Save a demucs model as ``.safetensors`` with its class and init arguments as metadata.

    The file loads with :func:`load_safetensors` and with demucs' own Hugging Face loader.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from demucs.hdemucs import HDemucs
    >>> p = save_safetensors(HDemucs(["a", "b"], channels=4, depth=2, nfft=64),
    ...                      pathlib.Path(tempfile.mkdtemp()) / "m.safetensors")
    >>> p.suffix
    '.safetensors'
    """
    from safetensors.torch import save

    klass, args, kwargs, state = _package(model)
    metadata = {
        "klass": klass,
        "args": json.dumps(_encode_json(args)),
        "kwargs": json.dumps(_encode_json(kwargs)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save(state, metadata=metadata))
    return path


def save_th(model, path: str | os.PathLike) -> Path:
    """Save a demucs model as a checksummed ``<stem>-<sha256[:8]>.th`` package (demucs' layout).

    Returns the path written, whose name carries the checksum.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from demucs.hdemucs import HDemucs
    >>> p = save_th(HDemucs(["a", "b"], channels=4, depth=2, nfft=64),
    ...             pathlib.Path(tempfile.mkdtemp()) / "sig.th")
    >>> p.name.startswith("sig-") and p.suffix == ".th"
    True
    """
    import torch

    _, args, kwargs, state = _package(model)
    buf = io.BytesIO()
    package = {"klass": type(model), "args": args, "kwargs": kwargs, "state": state}
    torch.save(package, buf)
    data = buf.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = path.with_name(f"{path.stem}-{hashlib.sha256(data).hexdigest()[:8]}{path.suffix}")
    atomic_write(target, data)
    return target
