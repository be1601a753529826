"""Data to learn and to teach from: synthetic multitracks with their true stems, made at run
time (nothing large is shipped).

>>> import bandscope_nb as bn
>>> songs = bn.datasets.synth_multitracks(2, seconds=3.0)  # doctest: +SKIP
"""

from .synth import Multitracks, synth_multitracks

__all__ = ["Multitracks", "synth_multitracks"]
