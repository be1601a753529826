"""Reference points on the demo song: what simple, classical and oracle methods score.

Every method gives a 4-stem estimate of the demo mix; each is scored with BSS Eval v4 against
the true stems (median SDR over 1 s frames, as SiSEC):

- ``mix``: the mixture itself as every stem's estimate (the floor any method should beat);
- ``hpss``: HPSS alone: drums = percussive part, the harmonic part shared equally by the rest;
- ``classical``: the classical 4-stem recipe (:func:`~bandscope_nb.dsp.classical.separate_four`);
- ``oracle_ibm``, ``oracle_irm``, ``oracle_wiener``: oracle masks from the true stems
  (:func:`~bandscope_nb.dsp.masks.oracle_masks`), the ceiling for mask-based methods.
"""

from __future__ import annotations

import numpy as np

from .. import demo
from ..dsp import classical
from ..dsp.masks import oracle_masks
from ..dsp.metrics import evaluate
from ..stems import Stems

__all__ = ["METHODS", "demo_baselines", "to_markdown"]

METHODS = ("mix", "hpss", "classical", "oracle_ibm", "oracle_irm", "oracle_wiener")


def _estimate(method: str, mix, truth: Stems) -> Stems:
    if method == "mix":
        return Stems(np.repeat(mix.samples[None], len(truth), axis=0), truth.names, mix.sample_rate)
    if method == "hpss":
        parts = classical.hpss(mix)
        rest = parts["harmonic"] / 3
        return Stems.from_dict(
            {"drums": parts["percussive"], "bass": rest, "other": rest, "vocals": rest},
            mix.sample_rate,
        )
    if method == "classical":
        return classical.separate_four(mix)
    return oracle_masks(mix, truth, kind=method.removeprefix("oracle_")).estimates


def demo_baselines(methods=METHODS) -> dict[str, dict[str, float]]:
    """Median SDR (dB) per stem of each method on the demo song.

    Returns
    -------
    dict
        ``result[method][stem]``.

    Examples
    --------
    >>> table = demo_baselines(["mix"])
    >>> sorted(table["mix"]), table["mix"]["drums"] < 0
    (['bass', 'drums', 'other', 'vocals'], True)
    """
    mix, truth = demo.load()
    return {
        m: {
            stem: vals["SDR"]
            for stem, vals in evaluate(truth, _estimate(m, mix, truth)).medians.items()
        }
        for m in methods
    }


def to_markdown(table: dict[str, dict[str, float]]) -> str:
    """The baselines as a Markdown table, one row per method.

    Examples
    --------
    >>> print(to_markdown({"mix": {"drums": -3.0, "bass": -8.5}}))
    | method | drums | bass |
    |---|---:|---:|
    | mix | -3.00 | -8.50 |
    """
    stems = list(next(iter(table.values())))
    lines = ["| method | " + " | ".join(stems) + " |", "|---|" + "---:|" * len(stems)]
    lines += [
        f"| {m} | " + " | ".join(f"{row[s]:.2f}" for s in stems) + " |" for m, row in table.items()
    ]
    return "\n".join(lines)
