"""Where the result cache lives, and proof that a folder is one: the cache deletes only what it
made, so it uses a folder only when it carries the :data:`MARKER` file (or is empty, or holds
exactly the layout an earlier version wrote), and never one whose own folders are symlinks."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import CacheError

__all__ = ["KEY", "MARKER", "claim", "default_root"]

#: The file that marks a folder as a bandscope result cache.
MARKER = ".bandscope-cache"
#: A cache key (and the name of its entry folder).
KEY = re.compile(r"[0-9a-f]{40}")


def default_root() -> Path:
    env = os.environ.get("BANDSCOPE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bandscope-nb"))


_ENTRY_FILES = {"stems.f32", "meta.json", "meta.json.part", "input.f32"}


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _only(folder: Path, files: set[str]) -> bool:
    """A real folder holding nothing but real files named in ``files``."""
    return _real_dir(folder) and all(
        p.is_file() and not p.is_symlink() and p.name in files for p in folder.iterdir()
    )


def _earlier_entries(v1: Path) -> bool:
    """``v1/<2 hex>/<key>/`` folders holding only entry files."""
    return _real_dir(v1) and all(
        re.fullmatch(r"[0-9a-f]{2}", shard.name)
        and _real_dir(shard)
        and all(
            KEY.fullmatch(entry.name)
            and entry.name[:2] == shard.name
            and _only(entry, _ENTRY_FILES)
            for entry in shard.iterdir()
        )
        for shard in v1.iterdir()
    )


def _earlier_staging(tmp: Path) -> bool:
    """``tmp/tmp*/`` folders (``mkdtemp``'s names) holding only entry files."""
    return _real_dir(tmp) and all(
        stage.name.startswith("tmp") and _only(stage, _ENTRY_FILES) for stage in tmp.iterdir()
    )


def _earlier_locks(locks: Path) -> bool:
    """``locks/<key>.lock`` files only."""
    return _only(locks, {p.name for p in locks.iterdir() if KEY.fullmatch(p.stem)}) and all(
        p.suffix == ".lock" for p in locks.iterdir()
    )


_EARLIER = {"v1": _earlier_entries, "tmp": _earlier_staging, "locks": _earlier_locks}


def _earlier_cache(root: Path) -> bool:
    """Whether ``root`` holds exactly the layout that bandscope-nb 0.1.0 wrote before it had a
    marker, and nothing else (checked by the ``_earlier_*`` helpers). Such a folder is adopted
    (marked); one with any other file or folder, a symlink, or no ``v1/`` is not."""
    children = list(root.iterdir())
    return (root / "v1").is_dir() and all(
        child.name in _EARLIER and _EARLIER[child.name](child) for child in children
    )


def claim(root: Path, entries: Path, *, create: bool) -> bool:
    """Whether ``root`` is a bandscope cache (creating it, or marking an empty folder, when
    ``create``; adopting a folder an earlier version wrote); False when there is none yet.

    Raises
    ------
    CacheError
        The root is a file, a non-empty folder without the marker, or holds symlinks where the
        cache's own folders go.
    """
    marker = root / MARKER
    if marker.is_file():
        _no_links(root, entries)
        return True
    if root.exists() and not root.is_dir():
        raise CacheError(f"Cache folder {root} is a file; set BANDSCOPE_CACHE_DIR.")
    earlier = root.is_dir() and any(root.iterdir())
    if earlier and marker.is_file():  # another process made the cache since the first look
        _no_links(root, entries)
        return True
    if earlier and not _earlier_cache(root):
        raise CacheError(
            f"{root} is not empty and has no {MARKER} file, so it is not a bandscope cache; the "
            "cache only deletes what it made and will not use it. Point BANDSCOPE_CACHE_DIR at a "
            "new or empty folder."
        )
    if not (create or earlier):
        return False
    _no_links(root, entries)
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text("bandscope-nb result cache; everything in this folder may be deleted\n")
    return True


def _no_links(root: Path, entries: Path) -> None:
    """Refuse a cache whose own folders (``v1``, ``tmp``, ``locks``, ``graphs``, a shard) are
    symlinks: deleting through one would delete whatever it points at."""
    dirs = [entries, root / "tmp", root / "locks", root / "graphs"]
    if entries.is_dir():
        dirs += list(entries.iterdir())
    links = [str(d) for d in dirs if d.is_symlink()]
    if links:
        raise CacheError(
            f"Cache folder {root} holds symlinks where its own folders go "
            f"({', '.join(links[:3])}); the cache will not use or clear it. Remove them."
        )
