"""demucs' pretrained models: names, the Hugging Face hub, demucs' legacy download URLs, and
whether this machine is offline. Downloads land in torch's hub cache, checked by sha256."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

from ..errors import ModelIntegrityError, ModelUnavailableError
from ..files import atomic_path
from .loaded import LoadedModel
from .modelfiles import _checksum, load_safetensors, load_th, th_checksum
from .repos import load_bag, read_yaml

__all__ = ["from_pretrained", "is_offline", "offline_reason", "pretrained_names"]


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
    >>> from bandscope_nb.digests import sha256_file
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


HF_NAMESPACE = "adefossez"


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


def from_pretrained(name: str) -> LoadedModel:
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

    spec = read_yaml(fetch(f"{bare}.yaml"))
    return load_bag(
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

    spec = read_yaml(Path(REMOTE_ROOT) / f"{name}.yaml")
    return load_bag(name, "demucs legacy repo", spec, load_sig)
