"""The mask explorer: one stem's mask over the mixture (the oracle's, or the one a trained mask
network learnt), its teaching parameter, the masked result and its SDR, in the stem studio's
player (:class:`~.player.StemPlayer`): the mix, the mask, the masked result and the true stem
as lanes on one clock. Masks and resynthesis come from :mod:`bandscope_nb.dsp.masks`."""

from __future__ import annotations

import threading
from html import escape
from pathlib import Path

import ipywidgets as W
import numpy as np

from ..audio import frame_range
from ..errors import ParameterError
from ..stems import Stems
from .player import StemPlayer
from .widgets import slider

__all__ = ["MaskExplorer"]

MAX_SECONDS = 30.0  # the masked stem is recomputed in the kernel for each change
MASKED, TRUE = "masked", "true stem"
TWIN_DELAY_S = 1.5  # the offline copy is rewritten once the controls rest this long


class MaskExplorer(W.VBox):
    """A stem's oracle mask over the mixture, its parameter, and the masked result, heard and
    seen in one player.

    The player's lanes are the mix, the mask (0 to 1, on the lanes' frequency rows), the masked
    mixture and the true stem, for a window of at most 30 s, looped; one of the three sounds
    plays at a time, on one clock (A/B switches to the one heard before without a break). The
    mask comes from :func:`bandscope_nb.dsp.masks.stem_mask`: ``"irm"`` with an exponent
    slider (2 is the Wiener-style soft mask), ``"ibm"`` with a threshold slider in dB; or,
    given a trained ``model``, ``"learnt"``: the network's own mask for the stem, the exponent
    sharpening (above 1) or softening it across the stems (1 is what the network does). Moving
    either recomputes the mask, the masked estimate (per channel, inverse STFT) and
    its SDR against the true stem; the player swaps the new audio in where it is playing. In
    a notebook the offline copy kept beside the widget (for exports and reopened notebooks)
    is rewritten once the controls rest, so it shows the last state.

    Parameters
    ----------
    mix : Audio, (np.ndarray, int) or path
    references : Stems
        The true stems, matching the mix's shape and rate.
    stem : str or None
        First stem shown (default: the last, usually vocals).
    kind : {"irm", "ibm", "learnt"}
        ``"learnt"`` needs ``model``.
    start, duration : float
        The window in seconds; ``duration`` at most 30.
    n_fft, hop_length : int
        STFT used for the masks (as in :func:`bandscope_nb.oracle_masks`); with a ``model``,
        the model's own (its ``nfft`` and ``hop``), so its masks and the oracle's share a grid.
    model : MaskNet, str, os.PathLike or None
        A mask network whose masks the ``"learnt"`` choice shows: a
        :class:`~bandscope_nb.training.MaskNet`, a checkpoint ``bn.training.fit`` wrote, or
        ``"bandscope-tiny"``.
    height : int
        Height of one lane in CSS pixels.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> explorer = MaskExplorer(mix, truth, stem="bass", duration=5.0)
    >>> explorer.exponent.value = 2.0
    >>> explorer.estimate.shape, bool(explorer.score > 5)
    ((2, 220500), True)
    >>> explorer.player.lane_order
    ['mix', 'mask', 'masked', 'true stem']
    >>> bool(np.allclose(explorer.player.remix(), explorer.estimate))  # what is heard
    True
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
        height: int = 64,
        model=None,
    ):
        from ..dsp.masks import check_references
        from ..dsp.spectral import stft

        mix = check_references(mix, references)
        stem = references.names[-1] if stem is None else stem
        if stem not in references.names:
            raise ParameterError(f"Unknown stem {stem!r}; stems are {references.names}.")
        kinds = ("irm", "ibm", "learnt") if model is not None else ("irm", "ibm")
        if kind not in kinds:
            raise ParameterError(
                f"Invalid kind: {kind!r}; choose one of {kinds}"
                + ("" if model is not None else " ('learnt' needs a model=)")
                + "."
            )
        if not 0 < duration <= MAX_SECONDS or not 0 <= start < mix.duration:
            raise ParameterError(
                f"Invalid window start={start} s, duration={duration} s: the start must lie in "
                f"the {mix.duration:.2f} s signal and 0 < duration <= {MAX_SECONDS:g} s."
            )
        rate = mix.sample_rate
        net = None
        if model is not None:
            from ..separation.masknet import as_masknet

            net = as_masknet(model)
            missing = [name for name in references.names if name not in net.sources]
            if net.samplerate != rate or missing or net.audio_channels != mix.channels:
                raise ParameterError(
                    f"The model separates {net.sources} at {net.samplerate} Hz from "
                    f"{net.audio_channels} channels; the references are {references.names} at "
                    f"{rate} Hz, {mix.channels} channels."
                )
            n_fft, hop_length = net.nfft, net.hop
        lo, hi = frame_range(rate, mix.frames, start, duration)
        self.sample_rate, self.n_fft, self.hop_length = rate, n_fft, hop_length
        self.names = references.names
        self.mix = mix.samples[:, lo:hi]
        self.truth = np.asarray(references.data[:, :, lo:hi])
        self.spec = stft(self.mix, n_fft=n_fft, hop_length=hop_length)  # (C, F, T)
        # (S, C, F, T)
        self.magnitudes = np.abs(stft(self.truth, n_fft=n_fft, hop_length=hop_length))
        self.learnt = None  # (S, F, T): the network's masks, in the references' stem order
        if net is not None:
            masks = net.masks_for(self.mix)
            self.learnt = masks[[net.sources.index(name) for name in self.names]]
            self.model_name = "the network" if model is net else Path(str(model)).name
        self._controls(stem, kind)
        self._compute()
        self._shown = stem
        sounds = Stems(np.stack([self.estimate, self.truth[self._index]]), [MASKED, TRUE], rate)
        self.player = StemPlayer(
            sounds,
            mix=self.mix,
            height=height,
            offline_seconds=None,
            mixer=False,
            masks={"mask": (self.mask, hop_length)},
            order=["mix", "mask", MASKED, TRUE],
        )
        self.player.loop = [0.0, self.player.duration]  # adjust while it plays on
        self._twin = None  # the offline copy's display, once shown in a notebook
        self._twin_timer: threading.Timer | None = None
        for control in (self.stem, self.kind, self.exponent, self.threshold):
            control.observe(self._update, names="value")
        super().__init__(
            [
                W.HBox([self.stem, self.kind]),
                W.HBox([self.exponent, self.threshold]),
                self.status,
                self.player,
            ]
        )

    def _ipython_display_(self) -> None:
        """The live view, then a static twin (the SDR line and the player's offline copy)
        for pages without it."""
        from .embed import display_with_twin

        self._twin = display_with_twin(self, self._twin_html())

    def _twin_html(self) -> str:
        from .player_page import offline_html

        return f"{self.status.value}{offline_html(self.player, seconds=None)}"

    def _refresh_twin(self) -> None:
        """Rewrite the offline copy with the current state (from a timer thread)."""
        from .embed import update_twin

        if self._twin is not None:
            update_twin(self._twin, self._twin_html())

    def _controls(self, stem: str, kind: str) -> None:
        """The stem and mask choosers, the parameter sliders and the status line."""
        fit = {"style": {"description_width": "initial"}, "layout": W.Layout(width="auto")}
        self.stem = W.Dropdown(options=list(self.names), value=stem, description="stem", **fit)
        choices = [("IRM: ratio mask", "irm"), ("IBM: binary mask", "ibm")]
        if self.learnt is not None:
            choices.append(("learnt: the model's mask", "learnt"))
        self.kind = W.Dropdown(options=choices, value=kind, description="mask", **fit)
        self.exponent = slider("exponent", 1.0, 0.25, 4.0, step=0.25)
        self.threshold = slider("threshold (dB)", 0.0, -20.0, 20.0, step=1.0)
        self.status = W.HTML()  # (wraps in a narrow column)

    @property
    def _index(self) -> int:
        return self.names.index(self.stem.value)

    def _compute(self) -> None:
        """The mask, the masked estimate and its SDR for the controls' values; the status."""
        from ..dsp.masks import stem_mask
        from ..dsp.metrics import sdr
        from ..dsp.spectral import istft

        ibm = self.kind.value == "ibm"
        self.exponent.disabled, self.threshold.disabled = ibm, not ibm
        if self.kind.value == "learnt":
            sharper = self.learnt**self.exponent.value
            sharper /= np.maximum(sharper.sum(axis=0), np.finfo(np.float32).tiny)
            self.mask = np.repeat(sharper[None, self._index], self.spec.shape[0], axis=0)
        else:
            self.mask = stem_mask(
                self.magnitudes,
                self._index,
                kind=self.kind.value,
                power=self.exponent.value,
                threshold_db=self.threshold.value,
            )
        self.estimate = istft(
            self.mask * self.spec,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            length=self.mix.shape[-1],
        )
        self.score = sdr(self.truth[self._index], self.estimate)
        parameter = (
            f"threshold {self.threshold.value:g} dB" if ibm else f"exponent {self.exponent.value:g}"
        )
        what = (
            f"Learnt mask ({escape(self.model_name)})"
            if self.kind.value == "learnt"
            else f"{self.kind.value.upper()} mask"
        )
        self.status.value = (
            f"<p><b>{what} of {escape(self.stem.value)} ({parameter}):"
            f"</b> SDR {self.score:.1f} dB against the true stem, over the whole window (a "
            "comparison table's BSS Eval median of 1 s frames differs a little). On average "
            f"the mask lets through {100 * float(self.mask.mean()):.0f}% of each STFT bin "
            "(averaged on a linear frequency axis; the lanes' axis is logarithmic).</p>"
        )

    def _update(self, change=None) -> None:
        self._compute()
        tracks = {MASKED: self.estimate}
        if self.stem.value != self._shown:
            tracks[TRUE] = self.truth[self._index]
            self._shown = self.stem.value
        self.player.change(tracks=tracks, masks={"mask": self.mask})
        if self._twin is not None:  # shown in a notebook: its offline copy follows, later
            if self._twin_timer is not None:
                self._twin_timer.cancel()
            self._twin_timer = threading.Timer(TWIN_DELAY_S, self._refresh_twin)
            self._twin_timer.daemon = True
            self._twin_timer.start()
