"""Training, watched: the loss and the validation SDR redrawn after every validation of
:func:`bandscope_nb.training.fit` (pass the plot as its ``callback``)."""

from __future__ import annotations

import ipywidgets as W

from .embed import figure_png

__all__ = ["TrainingPlot"]


class TrainingPlot(W.HTML):
    """A live picture of a training run: loss (left) and validation SDR (right) by step.

    Examples
    --------
    >>> plot = TrainingPlot()
    >>> plot([{"step": 25, "loss": 0.05, "val_sdr": 1.0},
    ...       {"step": 50, "loss": 0.04, "val_sdr": 2.5}])
    >>> plot.value.startswith("<img")
    True
    """

    def __init__(self):
        super().__init__("<p>Training has not validated yet.</p>")

    def __call__(self, history: list[dict]) -> None:
        from matplotlib.figure import Figure

        steps = [h["step"] for h in history]
        fig = Figure(figsize=(7.5, 2.6), dpi=90, layout="constrained")
        loss, sdr = fig.subplots(1, 2)
        loss.plot(steps, [h["loss"] for h in history], "o-", color="C0")
        loss.set(xlabel="step", ylabel="training loss (L1)")
        sdr.plot(steps, [h["val_sdr"] for h in history], "o-", color="C1")
        best = max(history, key=lambda h: h["val_sdr"])
        sdr.plot([best["step"]], [best["val_sdr"]], "*", color="C3", markersize=12)
        kept = f"kept: step {best['step']}, {best['val_sdr']:.2f} dB"
        sdr.set(xlabel="step", ylabel="validation SDR (dB)", title=kept)
        self.value = figure_png(fig)
