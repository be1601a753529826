"""The mask explorer: one stem's oracle mask over the mixture, its teaching parameter, the
masked result and its SDR. Masks and resynthesis come from :mod:`bandscope_nb.dsp.masks`."""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from ..audio import frame_range
from ..errors import ParameterError
from ..stems import Stems
from .display import figure_grid, spectrum_db, style_axis
from .embed import audio_element
from .widgets import FigureWidget, slider

__all__ = ["MaskExplorer"]

MAX_PLAYER_SECONDS = 30.0  # the masked stem is rendered in the kernel for each change


class MaskExplorer(W.VBox):
    """A stem's oracle mask over the mixture spectrogram, its parameter, and the masked result.

    Three aligned panels (the mixture, the mask, the masked mixture) for a window of at most
    30 s, and players for the masked result, the true stem and the mix. The mask comes from
    :func:`bandscope_nb.dsp.masks.stem_mask`: ``"irm"`` with an exponent slider (2 is the
    Wiener-style soft mask), ``"ibm"`` with a threshold slider in dB. Moving either recomputes
    the mask, the masked estimate (per channel, inverse STFT) and its SDR against the true stem.

    Parameters
    ----------
    mix : Audio, (np.ndarray, int) or path
    references : Stems
        The true stems, matching the mix's shape and rate.
    stem : str or None
        First stem shown (default: the last, usually vocals).
    kind : {"irm", "ibm"}
    start, duration : float
        The window in seconds; ``duration`` at most 30.
    n_fft, hop_length : int
        STFT used for the masks (as in :func:`bandscope_nb.oracle_masks`).
    width_px, canvas
        As for :class:`SpectrogramView`.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> explorer = MaskExplorer(mix, truth, stem="bass", duration=5.0)
    >>> explorer.exponent.value = 2.0
    >>> explorer.estimate.shape, bool(explorer.score > 5)
    ((2, 220500), True)
    """

    def __init__(
        self,
        mix,
        references: Stems,
        *,
        stem: str | None = None,
        kind: str = "irm",
        start: float = 0.0,
        duration: float = 10.0,
        n_fft: int = 2048,
        hop_length: int = 512,
        width_px: int = 900,
        canvas: str = "auto",
    ):
        from ..dsp.masks import check_references
        from ..dsp.spectral import stft

        mix = check_references(mix, references)
        stem = references.names[-1] if stem is None else stem
        if stem not in references.names:
            raise ParameterError(f"Unknown stem {stem!r}; stems are {references.names}.")
        if kind not in ("irm", "ibm"):
            raise ParameterError(f"Invalid kind: {kind!r}; choose 'irm' or 'ibm'.")
        if not 0 < duration <= MAX_PLAYER_SECONDS or not 0 <= start < mix.duration:
            raise ParameterError(
                f"Invalid window start={start} s, duration={duration} s: the start must lie in "
                f"the {mix.duration:.2f} s signal and 0 < duration <= {MAX_PLAYER_SECONDS:g} s."
            )
        rate = mix.sample_rate
        lo, hi = frame_range(rate, mix.frames, start, duration)
        self.sample_rate, self.n_fft, self.hop_length = rate, n_fft, hop_length
        self.names = references.names
        self.mix = mix.samples[:, lo:hi]
        self.truth = np.asarray(references.data[:, :, lo:hi])
        self.spec = stft(self.mix, n_fft=n_fft, hop_length=hop_length)  # (C, F, T)
        # (S, C, F, T)
        self.magnitudes = np.abs(stft(self.truth, n_fft=n_fft, hop_length=hop_length))
        self._controls(stem, kind)
        self._figure(lo / rate, hi / rate, width_px)
        self.figure_widget = FigureWidget(self.figure, canvas)
        for control in (self.stem, self.kind, self.exponent, self.threshold):
            control.observe(self._update, names="value")
        player_row = W.HBox([W.VBox([W.Label(n), p]) for n, p in self.players.items()])
        super().__init__(
            [
                W.HBox([self.stem, self.kind]),
                W.HBox([self.exponent, self.threshold]),
                self.figure_widget.widget,
                self.status,
                player_row,
            ]
        )
        self.players["mix"].value = audio_element(self.mix, rate, duration=None)
        self._update()

    def _ipython_display_(self) -> None:
        """The live view, then a static twin (figure, SDR line, players) for pages without it."""
        from html import escape

        from .embed import display_with_twin, figure_png

        players = "".join(
            f"<figure><figcaption>{escape(name)}</figcaption>{player.value}</figure>"
            for name, player in self.players.items()
        )
        html = f"{figure_png(self.figure)}<p>{escape(self.status.value)}</p>{players}"
        display_with_twin(self, html)

    def _controls(self, stem: str, kind: str) -> None:
        """The stem and mask choosers, the parameter sliders, the status line and players."""
        self.stem = W.Dropdown(options=list(self.names), value=stem, description="stem")
        self.kind = W.ToggleButtons(options=["irm", "ibm"], value=kind, description="mask")
        self.exponent = slider("exponent", 1.0, 0.25, 4.0, step=0.25)
        self.threshold = slider("threshold (dB)", 0.0, -20.0, 20.0, step=1.0)
        self.status = W.Label()
        self.players = {n: W.HTML() for n in ("masked", "true stem", "mix")}

    def _figure(self, t0: float, t1: float, width_px: int) -> None:
        """Three aligned panels: the mixture, the mask, the masked mixture (display columns
        only: at most one per pixel)."""
        step = max(1, self.spec.shape[-1] // width_px)  # display columns only
        self._columns = slice(None, None, step)
        extent = (t0, t1, 0.0, self.sample_rate / 2)
        titles = ["mixture", "mask", "masked mixture"]
        self.figure, axes = figure_grid(titles, width_px=width_px, row_inches=5.0 / 3)
        mix_db = spectrum_db(self.spec, self._columns)
        top = float(mix_db.max())
        show = {"origin": "lower", "aspect": "auto", "extent": extent, "interpolation": "nearest"}
        axes[0].imshow(mix_db, cmap="magma", vmin=top - 80, vmax=top, **show)
        self.mask_image = axes[1].imshow(
            np.zeros_like(mix_db), cmap="viridis", vmin=0.0, vmax=1.0, **show
        )
        self.masked_image = axes[2].imshow(mix_db, cmap="magma", vmin=top - 80, vmax=top, **show)
        self.axes = axes
        for ax in axes:
            style_axis(ax, "stft", extent)
            ax.label_outer()
        axes[2].set_xlabel("time (s)")

    def _update(self, change=None) -> None:
        from ..dsp.masks import apply_stem_mask
        from ..dsp.metrics import sdr

        index = self.names.index(self.stem.value)
        irm = self.kind.value == "irm"
        self.exponent.disabled, self.threshold.disabled = not irm, irm
        self.mask, self.estimate = apply_stem_mask(
            self.spec,
            self.magnitudes,
            index,
            kind=self.kind.value,
            power=self.exponent.value,
            threshold_db=self.threshold.value,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            length=self.mix.shape[-1],
        )
        masked = self.mask * self.spec
        truth = self.truth[index]
        self.score = sdr(truth, self.estimate)
        self.mask_image.set_data(self.mask.mean(axis=0)[..., self._columns])
        self.masked_image.set_data(spectrum_db(masked, self._columns))
        parameter = (
            f"exponent {self.exponent.value:g}" if irm else f"threshold {self.threshold.value:g} dB"
        )
        self.axes[1].set_title(
            f"{self.kind.value.upper()} mask of {self.stem.value} ({parameter})",
            loc="left",
            fontsize=9,
        )
        self.status.value = (
            f"{self.stem.value}: SDR {self.score:.1f} dB against the true stem; "
            f"mask keeps {100 * float(self.mask.mean()):.0f}% of the bins' weight"
        )
        self.players["masked"].value = audio_element(self.estimate, self.sample_rate, duration=None)
        self.players["true stem"].value = audio_element(truth, self.sample_rate, duration=None)
        self.figure_widget.refresh()
