"""Content-addressed on-disk cache of separation results.

Layout under the root (``BANDSCOPE_CACHE_DIR``, else the platform's user cache dir)::

    .bandscope-cache            marker written when the cache creates (or adopts an empty) root
    v1/ab/abcdef.../stems.f32   raw float32 (sources, channels, frames)
    v1/ab/abcdef.../meta.json   names, rate, shape, digests, parameters
    locks/abcdef....lock        one file lock per key, so kernels and processes can share
    tmp/stage-*/                entries being written; renamed into v1/ only when complete

The cache deletes only what it can prove it made: nothing at all in a folder without the marker
(a non-empty folder without it is refused with :class:`CacheError`, so pointing
``BANDSCOPE_CACHE_DIR`` at a user folder loses nothing; the one exception is a folder holding
exactly the layout an earlier version wrote and nothing else, which is adopted), and inside a
marked root only entry folders named by a key, ``tmp/stage-*`` folders and
``locks/<key>.lock`` files.

An entry is visible only after an atomic directory rename, so a crash or interrupt leaves at most
a stray folder in ``tmp/`` that is never read. The first read of an entry in a process checks
its full digest, later reads its size and a sampled digest (a corrupt entry warns and is
recomputed); :meth:`ResultCache.verify` checks every byte of every entry. Least recently used
entries are evicted beyond ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..digests import content_digest, file_digest, sampled_digest
from ..errors import CacheError, ParameterError
from ..files import file_stamp
from ..names import as_path
from .cache_root import KEY, MARKER, claim, default_root
from .streams import open_stems

__all__ = ["FORMAT_VERSION", "MARKER", "CacheEntry", "ResultCache", "cache_key"]

#: Bumped whenever the stored layout changes (the package version is part of every key too).
FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 20 * 1024**3
#: The file that marks a folder as a bandscope cache.
_STAGE_PREFIX = "stage-"
#: The folder of exported graphs, and the names of the files in it the cache made: a graph
#: named by its key and the record of its check, or one being written
#: (:func:`~bandscope_nb.files.atomic_path`'s name).
GRAPHS = "graphs"
_GRAPH = re.compile(r"[0-9a-f]{40}\.(onnx|json)")
_GRAPH_PART = re.compile(r"\.[0-9a-f]{40}\.(onnx|json)\.\w+\.part")
_STALE_SECONDS = 24 * 3600
#: Entries whose every byte this process has checked (or written), by :func:`_entry_stamp`: the
#: first read of an entry in a process checks its full digest, later reads its size and sampled
#: pages.
_VERIFIED: set[tuple] = set()


def _entry_stamp(folder: Path) -> tuple:
    """An entry's folder and what changes when its data file is rewritten or replaced."""
    return (str(folder), file_stamp(folder / "stems.f32"))


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def cache_key(**parts) -> str:
    """Hex key over every part that changes the result, the cache format and package version.

    Examples
    --------
    >>> cache_key(audio="a", model="m", params={"overlap": 0.25}) == cache_key(
    ...     params={"overlap": 0.25}, model="m", audio="a")
    True
    """
    from .._version import __version__

    payload = json.dumps(
        {"format": FORMAT_VERSION, "package": __version__, **parts}, sort_keys=True, default=str
    )
    return content_digest(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A complete cache entry: its folder and metadata, and its data as a read-only memmap."""

    path: Path
    meta: dict

    @property
    def data(self) -> np.ndarray:
        return open_stems(self.path / "stems.f32", tuple(self.meta["shape"]))


class ResultCache:
    """The separation result cache.

    Parameters
    ----------
    root : str or os.PathLike or None
        Cache folder; default ``BANDSCOPE_CACHE_DIR`` or the platform's user cache dir.
    max_bytes : int or None
        Size cap; default ``BANDSCOPE_CACHE_MAX_BYTES`` or 20 GiB.

    Examples
    --------
    >>> import tempfile
    >>> cache = ResultCache(tempfile.mkdtemp())
    >>> cache.info()["entries"]
    0
    """

    def __init__(self, root: str | os.PathLike | None = None, *, max_bytes: int | None = None):
        self.root = as_path(root, what="cache folder") if root is not None else default_root()
        if max_bytes is None:
            env = os.environ.get("BANDSCOPE_CACHE_MAX_BYTES", "").strip()
            try:
                max_bytes = int(env) if env else DEFAULT_MAX_BYTES
            except ValueError:
                raise ParameterError(
                    f"BANDSCOPE_CACHE_MAX_BYTES={env!r} is not a whole number of bytes."
                ) from None
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ParameterError(f"Cache size cap must be a positive int, got {max_bytes!r}.")
        self.max_bytes = max_bytes
        self.entries = self.root / f"v{FORMAT_VERSION}"

    def _dir(self, key: str) -> Path:
        if not KEY.fullmatch(key):
            raise ParameterError(f"Invalid cache key {key!r}.")
        return self.entries / key[:2] / key

    def _ours(self, *, create: bool) -> bool:
        """Whether the root is a bandscope cache (see :func:`.cache_root.claim`)."""
        return claim(self.root, self.entries, create=create)

    def lock(self, key: str):
        """An inter-process :class:`filelock.FileLock` for ``key``."""
        from filelock import FileLock

        self._ours(create=True)
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / "locks" / f"{self._dir(key).name}.lock"))

    def graphs(self) -> Path:
        """The folder of exported network graphs (:mod:`.onnx_backend`), made if missing;
        graphs a killed process left half-written (a day old) are removed here.

        Raises
        ------
        CacheError
            ``graphs`` is there but is not a folder (or is a symlink).
        """
        self._ours(create=True)
        folder = self.root / GRAPHS
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise CacheError(f"{folder} is not a folder the cache made; remove it.")
        folder.mkdir(exist_ok=True)
        for path in self._graph_files(stale_parts_only=True):
            path.unlink(missing_ok=True)
        return folder

    def _graph_files(self, *, stale_parts_only: bool = False) -> list[Path]:
        """Files in ``graphs/`` this cache made: the graphs and their unfinished writes
        (only those a day old, as nothing is still writing them, with ``stale_parts_only``)."""
        folder = self.root / GRAPHS
        if not folder.is_dir() or folder.is_symlink():
            return []
        found = []
        for path in folder.iterdir():
            try:
                if _GRAPH_PART.fullmatch(path.name) and path.is_file():
                    if time.time() - path.stat().st_mtime > _STALE_SECONDS:
                        found.append(path)
                elif _GRAPH.fullmatch(path.name) and not stale_parts_only:
                    found.append(path)
            except OSError:
                continue
        return found

    def get(self, key: str) -> CacheEntry | None:
        """The complete, verified entry for ``key``, or None (a corrupt or unusable entry is
        removed)."""
        if not self._ours(create=False):
            return None
        folder = self._dir(key)
        meta_file = folder / "meta.json"
        if not meta_file.is_file():
            return None
        stamp = _entry_stamp(folder)
        problem = self._check(folder, full=stamp not in _VERIFIED)
        if problem:
            warnings.warn(
                f"Cache entry {folder} is corrupt ({problem}); recomputing.", stacklevel=2
            )
            shutil.rmtree(folder, ignore_errors=True)
            return None
        _VERIFIED.add(stamp)
        try:
            os.utime(meta_file)  # least-recently-used order
        except OSError:
            pass
        return CacheEntry(folder, json.loads(meta_file.read_text()))

    def remove(self, key: str) -> None:
        """Delete the entry for ``key`` (one found unusable by its reader)."""
        if self._ours(create=False):
            shutil.rmtree(self._dir(key), ignore_errors=True)

    def _check(self, folder: Path, *, full: bool) -> str | None:
        try:
            meta = json.loads((folder / "meta.json").read_text())
            shape, names = meta["shape"], meta["names"]
            if meta.get("key") != folder.name:
                return "meta.json belongs to another key"
            if not (
                isinstance(shape, list)
                and len(shape) == 3
                and all(isinstance(n, int) and n > 0 for n in shape)
                and isinstance(names, list)
                and len(names) == shape[0]
            ):
                return f"malformed shape {shape!r} or names in meta.json"
            data = folder / "stems.f32"
            expected = int(np.prod(shape)) * 4
            if data.stat().st_size != expected:
                return f"size {data.stat().st_size} != {expected}"
            if sampled_digest(data) != meta["sampled_digest"]:
                return "sampled digest mismatch"
            if full and file_digest(data) != meta["digest"]:
                return "digest mismatch"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    @contextlib.contextmanager
    def staging(self):
        """A fresh folder to write an entry into; removed unless :meth:`commit` took it.

        Folders left in ``tmp/`` by a killed process are never read; those older than a day are
        removed here.
        """
        self._ours(create=True)
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        for stale in self._staged():
            try:
                if time.time() - stale.stat().st_mtime > _STALE_SECONDS:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                continue
        folder = Path(tempfile.mkdtemp(dir=tmp, prefix=_STAGE_PREFIX))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, key: str, staged: Path, meta: dict) -> CacheEntry:
        """Seal ``staged`` (holding ``stems.f32``) as the entry for ``key``, atomically."""
        data = staged / "stems.f32"
        meta = {
            **meta,
            "key": key,
            "format": FORMAT_VERSION,
            "created": time.time(),
            "digest": file_digest(data),
            "sampled_digest": sampled_digest(data),
        }
        tmp_meta = staged / "meta.json.part"
        tmp_meta.write_text(json.dumps(meta, indent=1, default=str))
        os.replace(tmp_meta, staged / "meta.json")
        target = self._dir(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staged, target)
        except OSError:
            if self.get(key) is None:  # not a twin written meanwhile: a real failure
                raise
        _VERIFIED.add(_entry_stamp(target))  # its digest was just computed from these bytes
        self.evict(keep=key)
        return CacheEntry(target, json.loads((target / "meta.json").read_text()))

    def _staged(self) -> list[Path]:
        """Staging folders this cache made (``tmp/stage-*``), finished or abandoned."""
        tmp = self.root / "tmp"
        if not tmp.is_dir():
            return []
        return [
            p
            for p in tmp.iterdir()
            if p.name.startswith(_STAGE_PREFIX) and p.is_dir() and not p.is_symlink()
        ]

    def _all(self) -> list[tuple[float, int, Path]]:
        """``(last use, bytes, folder)`` of every entry, oldest first: only folders named by a
        key, two levels under ``v<format>/``."""
        if not self._ours(create=False):
            return []
        found = []
        for meta in self.entries.glob("*/*/meta.json"):
            folder = meta.parent
            named = KEY.fullmatch(folder.name) and folder.parent.name == folder.name[:2]
            if not named or folder.is_symlink():
                continue
            try:
                size = sum(f.stat().st_size for f in meta.parent.iterdir())
                found.append((meta.stat().st_mtime, size, meta.parent))
            except OSError:
                continue
        return sorted(found)

    def evict(self, *, keep: str | None = None) -> int:
        """Delete least recently used entries and exported graphs until the cache fits
        ``max_bytes`` (the entry ``keep`` stays); return how many went."""
        items = [(used, size, [folder]) for used, size, folder in self._all()]
        items += self._graph_items()
        total = sum(size for _, size, _ in items)
        removed = 0
        for _, size, paths in sorted(items, key=lambda item: item[0]):
            if total <= self.max_bytes:
                break
            if paths[0].name == keep:
                continue
            for path in paths:
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    def _graph_items(self) -> list[tuple[float, int, list[Path]]]:
        """``(last use, bytes, [graph, record])`` of each exported graph (its last use is its
        file's time, which :mod:`.onnx_backend` touches when it loads it)."""
        items = []
        for graph in self._graph_files():
            if graph.suffix != ".onnx":
                continue
            files = [graph, graph.with_suffix(".json")]
            try:
                items.append((graph.stat().st_mtime, sum(_size(f) for f in files), files))
            except OSError:
                continue
        return items

    def info(self) -> dict:
        """Root, entry count, bytes used by entries and by staging folders, and the size cap."""
        entries = self._all()
        staging = 0
        for folder in self._staged():
            staging += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        return {
            "root": str(self.root),
            "entries": len(entries),
            "bytes": sum(size for _, size, _ in entries),
            "staging_bytes": staging,
            "graphs_bytes": sum(_size(p) for p in self._graph_files()),
            "max_bytes": self.max_bytes,
        }

    def verify(self) -> dict[str, str]:
        """Check every byte of every entry; return ``{folder: problem}`` for the bad ones."""
        return {
            str(folder): problem
            for _, _, folder in self._all()
            if (problem := self._check(folder, full=True))
        }

    def clear(self) -> int:
        """Delete every entry, staging folder, exported graph and lock file the cache made;
        return how many entries went. Nothing else under the root is touched.

        Raises
        ------
        CacheError
            The root is not a bandscope cache (see the module docstring).
        """
        entries = self._all()
        for _, _, folder in entries:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # its two-hex parent, when nothing else is there
                folder.parent.rmdir()
        for folder in self._staged():
            shutil.rmtree(folder, ignore_errors=True)
        for graph in self._graph_files():  # a graph still being written is left alone
            graph.unlink(missing_ok=True)
        locks = self.root / "locks"
        if locks.is_dir():
            for lock in locks.iterdir():
                if lock.suffix == ".lock" and KEY.fullmatch(lock.stem) and lock.is_file():
                    lock.unlink(missing_ok=True)
        return len(entries)
