"""Execute the notebooks top to bottom, then keep only the outputs nbval checks.

Cells marked ``# NBVAL_CHECK_OUTPUT`` keep their (deterministic) outputs, which nbval compares;
every other output, execution count and transient metadata is removed, so committed notebooks
carry nothing stale.

Usage: python tools/strip_notebooks.py [notebooks/*.ipynb]   (offline; uses the current env)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARK = "# NBVAL_CHECK_OUTPUT"
ROOT = Path(__file__).resolve().parent.parent


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("BANDSCOPE_OFFLINE", "1")
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if MARK not in cell.source:  # checked cells keep outputs and count (nbval needs both)
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    print(f"refreshed {path}")


if __name__ == "__main__":
    for arg in sys.argv[1:] or sorted(str(p) for p in (ROOT / "notebooks").glob("*.ipynb")):
        refresh(Path(arg))
