"""Compare separations of one song (runs of the Separator, ensembles, given stems), with or
without true stems."""

from .comparison import Comparison, Run, compare
from .references import load_references
from .runs import parse_run, sweep

__all__ = ["Comparison", "Run", "compare", "load_references", "parse_run", "sweep"]
