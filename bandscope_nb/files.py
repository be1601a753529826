"""File helpers: atomic writes, and releasing the pages of memory-mapped files once read.

Atomic writes go to a temporary name beside the target, then are renamed into place: a reader
never sees a half-written file, and a failed write leaves nothing behind. Files get the usual
permissions (``0o666`` less the process umask), not ``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ["atomic_path", "atomic_write", "file_stamp", "release_pages"]

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on any
    error (or interrupt) it is removed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> sorted(p.name for p in folder.iterdir())
    ['a.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`); return the path.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "b.bin"
    >>> atomic_write(target, b"xyz").read_bytes()
    b'xyz'
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def file_stamp(path: str | os.PathLike) -> tuple | None:
    """What changes whenever ``path`` is rewritten or replaced, even with the same size and
    mtime (its inode and ctime are in it); None when it cannot be read (missing, name too
    long...).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"1")
    >>> before = file_stamp(p)
    >>> _ = p.with_name("y").write_bytes(b"2"); os.replace(p.with_name("y"), p)  # same size
    >>> file_stamp(p) != before, file_stamp(p.parent / "missing")
    (True, None)
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def release_pages(row: np.ndarray) -> None:
    """Drop the resident pages behind a contiguous view of a memory map from this process.

    They stay in the kernel's page cache and are read back on the next access, so nothing
    changes but the process' resident memory: reading a long cached result from start to end
    (to save it) would otherwise keep every page of it resident. Arrays that are not memory
    maps are left alone.
    """
    import mmap

    mm = getattr(row, "_mmap", None)
    if mm is None or row.size == 0 or not row.flags.c_contiguous:
        return
    base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    start = row.ctypes.data - base
    first = start - start % mmap.PAGESIZE
    # whole pages only: a partly covered last page stays (its other part is not read yet)
    end = (start + row.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > first:
        mm.madvise(mmap.MADV_DONTNEED, first, end - first)
