"""Evaluating separations: true stems to measure against (references), what to run (runs), and
separations of one song compared side by side (comparison), with or without true stems."""

from .comparison import Comparison, Run, compare
from .references import load_references, read_references
from .runs import parse_run, sweep

__all__ = [
    "Comparison",
    "Run",
    "compare",
    "load_references",
    "parse_run",
    "read_references",
    "sweep",
]
