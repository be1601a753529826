"""Training, watched: the loss and the validation SDR redrawn after every validation of
:func:`bandscope_nb.training.fit` (pass the plot as its ``callback``)."""

from __future__ import annotations

import ipywidgets as W

from .embed import display_with_twin, figure_png, update_twin

__all__ = ["TrainingPlot"]


class TrainingPlot(W.HTML):
    """A live picture of a training run: loss (left) and validation SDR (right) by step.

    Shown in a notebook, a static copy of the picture follows it (rewritten at every
    validation), so a notebook reopened without its kernel, or its HTML export, still shows
    how the training went.

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
        self._twin = None  # the static copy's display, once shown in a notebook

    def _ipython_display_(self) -> None:
        self._twin = display_with_twin(self, self.value)

    def __call__(self, history: list[dict]) -> None:
        from matplotlib.figure import Figure

        steps = [h["step"] for h in history]
        fig = Figure(figsize=(7.5, 2.6), dpi=90, layout="constrained")
        loss, sdr = fig.subplots(1, 2)
        loss.plot(steps, [h["loss"] for h in history], "o-", color="C0")
        loss.set(xlabel="step", ylabel="training loss (squared error)")
        sdr.plot(steps, [h["val_sdr"] for h in history], "o-", color="C1")
        best = max(history, key=lambda h: h["val_sdr"])
        sdr.plot([best["step"]], [best["val_sdr"]], "*", color="C3", markersize=12)
        kept = f"kept: step {best['step']}, {best['val_sdr']:.2f} dB"
        sdr.set(xlabel="step", ylabel="validation SDR (dB)", title=kept)
        self.value = figure_png(fig)
        if self._twin is not None:
            update_twin(self._twin, self.value)
