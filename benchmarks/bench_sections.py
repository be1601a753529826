"""Write one benchmark's section into docs/benchmarks.md, leaving the other sections alone.

The scripts run as ``python benchmarks/bench_*.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace the section that starts with ``heading`` (up to the next ``## ``) by ``text``,
    or append ``text`` when the file has no such section."""
    old = path.read_text() if path.exists() else ""
    head, found, rest = old.partition(heading)
    tail = rest[rest.find("\n## ") :] if found and "\n## " in rest else ""
    path.write_text(head.rstrip() + "\n\n" + text + tail)


def publish(lines: list[str], write: Path | None) -> None:
    """Print a benchmark's section (``lines``, its ``## `` heading first) and, when ``write`` is
    given, put it into that Markdown file (:func:`write_section`)."""
    text = "\n".join(lines) + "\n"
    if write:
        write_section(write, lines[0], text)
    print(text)
