"""Reading and writing Demucs weight files, with integrity checks before anything is executed.

Two formats, as demucs itself uses them:

- ``.th``: a pickled ``{"klass", "args", "kwargs", "state"}`` package. Unpickling can run code, so a
  ``.th`` is read once into memory and unpickled by torch's restricted unpickler
  (``weights_only=True``) allowing only demucs' model classes and ``Fraction``. A full unpickle
  happens only when the file's whole sha256 is one we hold (:mod:`.published_weights`) or one the
  caller passed on purpose; the checksum prefix in a file's own name (``<sig>-<8 hex>.th``) is
  checked against corruption but grants nothing.
- ``.safetensors``: tensors plus the model class and its init arguments as JSON metadata (demucs'
  Hugging Face layout). Only demucs model classes may be named there.

Either way the model's init arguments must be plain data within sane bounds, and the model they
describe is first built on torch's ``meta`` device and must not be far larger than the file, so
a few hostile bytes cannot allocate gigabytes. Weights must be regular files (not FIFOs or
devices) of at most :data:`MAX_WEIGHTS_BYTES`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..digests import SHA256_FORMAT, sha256_file
from ..errors import ModelIntegrityError, ModelUnavailableError
from ..files import atomic_write
from .model_rules import ALLOWED_CLASSES, check_init, check_size
from .published_weights import PUBLISHED_SHA256
from .unpickle import ClassRef, unpickle

__all__ = [
    "MAX_WEIGHTS_BYTES",
    "check_weights_file",
    "load_safetensors",
    "load_th",
    "save_safetensors",
    "save_th",
]

_ALLOWED_STRUCTURE_MODULES = ("diffq.",)
_TH_NAME = re.compile(rf"^(?P<sig>[^-]+)-(?P<checksum>{SHA256_FORMAT.pattern})$")
#: Largest weights file read (the biggest published demucs file is ~180 MB).
MAX_WEIGHTS_BYTES = 2 * 1024**3
_CONVERT_HINT = (
    "If you trust this file (e.g. you downloaded it yourself from demucs' published URL), pass "
    "its full sha256 (sha256='<64 hex digits>', --sha256) once and save the model as "
    "safetensors with bandscope_nb.separation.modelfiles.save_safetensors(model, "
    "'model.safetensors'); "
    "safetensors files run no code when loaded."
)


def check_weights_file(path: Path) -> int:
    """Return the size of ``path`` after checking it is a regular file of a sane size.

    FIFOs, devices (``/dev/zero``) and sockets are refused before anything opens them, so a
    weights path can never hang a load or stream without end.

    Raises
    ------
    ModelUnavailableError
        No such file.
    ModelIntegrityError
        Not a regular file, empty, or larger than :data:`MAX_WEIGHTS_BYTES`.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ModelUnavailableError(f"Model file {path} does not exist; check the path.") from None
    except OSError as exc:
        raise ModelIntegrityError(f"{path}: cannot be read ({exc}).") from exc
    if not stat.S_ISREG(info.st_mode):
        raise ModelIntegrityError(f"{path}: is not a regular file (a FIFO, device or socket?).")
    if not 0 < info.st_size <= MAX_WEIGHTS_BYTES:
        raise ModelIntegrityError(
            f"{path}: {info.st_size} bytes is not a plausible weights file (1 byte to "
            f"{MAX_WEIGHTS_BYTES // 1024**3} GiB)."
        )
    return info.st_size


def th_checksum(path: Path) -> tuple[str, str | None]:
    """Split a ``.th`` file name into (signature, checksum prefix or None)."""
    match = _TH_NAME.match(Path(path).stem)
    if match is None:
        return Path(path).stem, None
    return match.group("sig"), match.group("checksum")


def _checksum(where, expected: str) -> str:
    """``expected`` in lower case; a :class:`ModelIntegrityError` naming ``where`` unless it is
    at least 8 hex digits (a sha256 or a prefix of one)."""
    checksum = expected.lower() if isinstance(expected, str) else ""
    if not SHA256_FORMAT.fullmatch(checksum):
        raise ModelIntegrityError(
            f"{where}: checksum {expected!r} must be 8 to 64 hex digits (a sha256 or a prefix)."
        )
    return checksum


def _check_digest(path: Path, digest: str, expected: str | None) -> None:
    """Compare a file's sha256 ``digest`` with ``expected`` (full or >= 8 hex prefix; an empty
    string is refused)."""
    if expected is None:
        return
    expected = _checksum(path, expected)
    if not digest.startswith(expected):
        raise ModelIntegrityError(
            f"{path}: sha256 {digest[: len(expected)]} does not match the expected {expected}; "
            "the file is corrupt or was tampered with. Delete it and fetch it again."
        )


def load_th(path: str | os.PathLike, *, sha256: str | None = None):
    """Load a demucs ``.th`` model without running code from it.

    The file is read once; its sha256 must match ``sha256`` or the checksum prefix in its name
    when either is there. It is unpickled by torch's restricted unpickler, which accepts only
    tensors, plain containers, demucs' model classes and ``Fraction``. A package that needs more
    (old training arguments, say) is fully unpickled only when its whole sha256 equals a full
    ``sha256`` passed here or a published digest in :mod:`.published_weights`.

    Parameters
    ----------
    path : str or os.PathLike
    sha256 : str or None
        Full hex digest (vouches for the file) or a prefix of >= 8 digits (checks it only);
        default: the prefix in the file name, if any.

    Returns
    -------
    torch.nn.Module
        The demucs model, in eval mode, on the CPU.

    Raises
    ------
    ModelIntegrityError
        Checksum mismatch, a package that needs a full unpickle without a trusted checksum
        (nothing is executed), a malformed package or implausible init arguments.

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
    check_weights_file(path)
    data = path.read_bytes()  # hashed and unpickled from the same bytes
    digest = hashlib.sha256(data).hexdigest()
    _check_digest(path, digest, sha256 if sha256 is not None else th_checksum(path)[1])
    # only the caller's full digest or one we hold vouches; a name's checksum never does
    trusted = (sha256 is not None and sha256.lower() == digest) or (
        digest in PUBLISHED_SHA256.values()
    )
    package = unpickle(path, data, trusted=trusted, hint=_CONVERT_HINT)
    if not isinstance(package, dict) or not {"klass", "args", "kwargs", "state"} <= set(package):
        raise ModelIntegrityError(f"{path}: not a demucs model package.")
    package = {**package, "klass": _model_class(path, package["klass"])}
    return _build(path, package, len(data))


def _model_class(path: Path, klass: Any) -> type:
    """The demucs class a package or metadata names (a class, a :class:`ClassRef` or a
    dotted name), imported only when it is allowed."""
    import importlib

    if isinstance(klass, ClassRef) or isinstance(klass, str):
        name = str(klass)
    else:
        name = f"{getattr(klass, '__module__', '')}.{getattr(klass, '__name__', '')}"
    if name not in ALLOWED_CLASSES:
        raise ModelIntegrityError(
            f"{path}: names model class {name!r}; expected one of {sorted(ALLOWED_CLASSES)}."
        )
    module_name, class_name = name.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def _build(path: Path, package: dict, file_bytes: int):
    from demucs.states import load_model

    check_init(path, package["klass"], package["args"], package["kwargs"])
    for name, value in getattr(package["klass"], "LEGACY_DEFAULTS", {}).items():
        package["kwargs"].setdefault(name, value)  # a file from before that argument existed
    state = package["state"]
    if not isinstance(state, dict):
        raise ModelIntegrityError(f"{path}: 'state' is not a dict of tensors.")
    if state.get("__quantized"):
        try:
            import diffq  # noqa: F401
        except ImportError:
            raise ModelIntegrityError(
                f"{path}: holds a diffq-quantized model; install diffq (pip install diffq) to "
                "load it, or use an unquantized model."
            ) from None
    check_size(path, package, file_bytes)
    try:
        model = load_model(package)
    except (Exception, SystemExit) as exc:  # demucs calls sys.exit on some bad packages
        raise ModelIntegrityError(f"{path}: weights do not fit their model ({exc}).") from exc
    return model.eval()


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except BaseException as exc:  # safetensors raises a non-Exception panic on some bad files
        raise ModelIntegrityError(f"{path}: not a readable safetensors file ({exc}).") from exc
    if not isinstance(metadata.get("klass"), str) or metadata["klass"] not in ALLOWED_CLASSES:
        raise ModelIntegrityError(
            f"{path}: metadata 'klass' is {metadata.get('klass')!r}; expected one of "
            f"{sorted(ALLOWED_CLASSES)}."
        )
    try:
        for key in ("args", "kwargs"):
            json.loads(metadata[key])
        structure = json.loads(metadata.get("structure", "null"))
    except (KeyError, ValueError, RecursionError) as exc:  # ValueError: bad JSON, huge ints
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
    size = check_weights_file(path)
    if sha256:
        _check_digest(path, sha256_file(path), sha256)
    metadata = _metadata(path)
    try:
        args = _decode_json(json.loads(metadata["args"]))
        kwargs = _decode_json(json.loads(metadata["kwargs"]))
        with safe_open(str(path), framework="pt") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}
        state = tensors
        if "structure" in metadata:
            state = _unflatten_state(tensors, json.loads(metadata["structure"]))
    except Exception as exc:  # RecursionError included
        raise ModelIntegrityError(f"{path}: malformed metadata or tensors ({exc}).") from exc
    package = {
        "klass": _model_class(path, metadata["klass"]),
        "args": args,
        "kwargs": kwargs,
        "state": state,
    }
    return _build(path, package, size)


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
