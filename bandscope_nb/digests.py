"""Digests, in one place: content identity (sha256, 160 bits kept) for inputs and cache keys,
sha256 for
weights files and provenance, and a sampled digest for a quick integrity check of large files."""

from __future__ import annotations

import hashlib
import re
from contextlib import nullcontext
from pathlib import Path

import numpy as np

__all__ = [
    "SHA256_FORMAT",
    "content_digest",
    "file_digest",
    "file_digest_v1",
    "sampled_digest",
    "sha256_file",
]


class ContentDigest:
    """sha256 of what is fed to :meth:`update`, its hex digest cut to 160 bits (40 digits).

    sha256 rather than BLAKE2b: with the CPU's SHA instructions (x86 SHA-NI, ARMv8 SHA2) it
    hashes about twice as fast, and an input's samples are hashed on every call, cache hit or
    not.
    """

    def __init__(self, data: bytes = b""):
        self._hash = hashlib.sha256(data)

    def update(self, data) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()[:40]


def content_digest(data: bytes = b"") -> ContentDigest:
    """The hash that identifies content (inputs, cached results, model weights) over ``data``;
    feed more with ``update``.

    Examples
    --------
    >>> content_digest(b"abc").hexdigest()
    'ba7816bf8f01cfea414140de5dae2223b00361a3'
    """
    return ContentDigest(data)


def file_digest(
    path: Path, *, sha256: bool = False, copy_to: Path | None = None, chunk: int = 1 << 22
) -> str:
    """:func:`content_digest` (or with ``sha256``, the sha256) of a file's bytes, read once in
    chunks; with ``copy_to`` the same bytes are also written there, so the copy is exactly what
    was hashed."""
    h = hashlib.sha256() if sha256 else content_digest()
    with open(path, "rb") as f, open(copy_to, "wb") if copy_to else nullcontext() as out:
        while data := f.read(chunk):
            h.update(data)
            if out is not None:
                out.write(data)
    return h.hexdigest()


#: A sha256 or a prefix of it that still checks something: 8 to 64 lower-case hex digits.
SHA256_FORMAT = re.compile(r"[0-9a-f]{8,64}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f"; _ = p.write_bytes(b"")
    >>> sha256_file(p)[:8]
    'e3b0c442'
    """
    return file_digest(path, sha256=True)


_PAGE = 4096


_SAMPLED_PAGES = 64


def file_digest_v1(path: Path) -> str:
    """The input digest 0.1 recorded beside its outputs (``"file:"`` + BLAKE2b-160 of the
    file's bytes), so a batch can still recognise the outputs it made."""
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while data := f.read(1 << 22):
            h.update(data)
    return "file:" + h.hexdigest()


def sampled_digest(path: Path) -> str:
    """Digest of 64 evenly spaced pages and the last page of ``path``: a quick integrity check."""
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        positions = np.linspace(0, max(size - _PAGE, 0), _SAMPLED_PAGES).astype(np.int64)
        for pos in sorted({*positions.tolist(), max(size - _PAGE, 0)}):
            f.seek(pos)
            h.update(f.read(_PAGE))
    return h.hexdigest()
