"""Notebook widgets: look at and listen to signals and stems (ipywidgets 8, anywidget).

Every view here is the stem studio's player (:class:`StemPlayer`, in :mod:`.player`):
:class:`StemExplorer` is the player with the mix, :class:`SpectrogramView` the player as a
teaching view of any signals, and :class:`~.mask_explorer.MaskExplorer` puts a mask lane and
its controls around one. :func:`explore` picks the player for an object; ``Stems`` and
``Audio`` show it in a live kernel (:func:`show`).
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from ..errors import ParameterError
from ..stems import Stems
from .player import StemPlayer

__all__ = ["SpectrogramView", "StemExplorer", "StemPlayer", "explore", "show"]  # and MaskExplorer


def __getattr__(name: str):
    """``MaskExplorer`` lives in :mod:`.mask_explorer` (it builds on this module),
    ``TrainingPlot`` in :mod:`.training_plot`."""
    if name == "MaskExplorer":
        from .mask_explorer import MaskExplorer

        return MaskExplorer
    if name == "TrainingPlot":
        from .training_plot import TrainingPlot

        return TrainingPlot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def in_live_kernel() -> bool:
    """True inside a running IPython kernel (a notebook), False in scripts and plain IPython.

    Examples
    --------
    >>> in_live_kernel()  # a doctest runs outside any kernel
    False
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def slider(description: str, value: float, low: float, high: float, step: float = 0.5):
    """A labelled ``FloatSlider`` that reports only when released (each change recomputes)."""
    return W.FloatSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        style={"description_width": "initial"},
        continuous_update=False,
    )


def _signals(data, sample_rate) -> tuple[list[tuple[str, np.ndarray]], int]:
    """``[(name, (channels, frames))]`` and the rate, from Audio, Stems, dict or an array."""
    from ..audio import Audio

    if isinstance(data, Stems):
        return [(n, data[n]) for n in data.names], data.sample_rate
    if isinstance(data, Audio):
        return [("audio", data.samples)], data.sample_rate
    if sample_rate is None:
        raise ParameterError("Arrays need their sample_rate; pass SpectrogramView(x, rate).")
    if isinstance(data, dict):
        return [(str(k), np.atleast_2d(v)) for k, v in data.items()], int(sample_rate)
    return [("signal", np.atleast_2d(np.asarray(data, dtype=np.float32)))], int(sample_rate)


class SpectrogramView(StemPlayer):
    """Spectrograms of one or several signals on one time axis, played in the browser.

    The stem studio's player (:class:`StemPlayer`) as a teaching view: a lane per signal
    showing its log-frequency STFT, mel or CQT spectrogram (``kind``; axes in Hz or note
    names, a dB colour bar and range) or waveform, zoomed and scrolled in the browser, with a
    playhead. Several signals play one at a time (A/B between them) unless they are
    :class:`Stems`, which get the mixer.

    Parameters
    ----------
    data : Audio, Stems, dict of name to array, or np.ndarray [shape=(channels, frames)]
        Shorter signals are padded with silence to the longest.
    sample_rate : int or None
        Needed for arrays and dicts.
    kind : {"stft", "mel", "cqt", "waveform"}
        The lanes' first picture.
    height : int
        Height of one lane in CSS pixels.
    **player
        Passed to :class:`StemPlayer` (``max_mb``, ``offline_seconds``).

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> view = SpectrogramView(mix, kind="mel")
    >>> view.tracks, view.kind, view.mixer
    (['audio'], 'mel', False)
    >>> SpectrogramView({"a": np.zeros(8000), "b": np.ones((2, 4000))}, 8000).tracks
    ['a', 'b']
    """

    def __init__(
        self,
        data,
        sample_rate: int | None = None,
        *,
        kind: str = "stft",
        height: int = 96,
        **player,
    ):
        signals, rate = _signals(data, sample_rate)
        frames = max(s.shape[-1] for _, s in signals)
        channels = max(s.shape[0] for _, s in signals)
        if any(s.shape[0] not in (1, channels) for _, s in signals):
            raise ParameterError(
                f"Signals of {sorted({s.shape[0] for _, s in signals})} channels cannot share "
                "a view: give each one channel or the same number."
            )
        stacked = np.zeros((len(signals), channels, frames), np.float32)
        for index, (_, samples) in enumerate(signals):
            stacked[index, :, : samples.shape[-1]] = samples  # (mono fills every channel)
        stems = Stems(stacked, [name for name, _ in signals], rate)
        super().__init__(stems, height=height, mixer=isinstance(data, Stems), **player)
        self.kind = kind


class StemExplorer(StemPlayer):
    """The mix and its stems in the stem studio's player (:class:`StemPlayer`): spectrogram
    lanes, one synced transport, a mixer with gain, mute, solo and A/B, all in the browser.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> explorer = StemExplorer(truth, mix=mix.samples)
    >>> explorer.muted = ["vocals"]
    >>> explorer.track_gains()["vocals"], explorer.track_gains()["drums"]
    (0.0, 1.0)
    """


def explore(obj, *, mix: np.ndarray | None = None) -> StemPlayer:
    """The player for looking at and listening to ``obj``: a :class:`StemExplorer` for
    ``Stems``, a one-lane :class:`StemPlayer` for an ``Audio`` (or ``(array, rate)``).

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> type(explore(truth)).__name__, explore(mix).tracks
    ('StemExplorer', ['audio'])
    """
    from ..audio import as_audio

    if isinstance(obj, Stems):
        return StemExplorer(obj, mix=mix)
    audio = as_audio(obj)
    return StemPlayer(Stems(audio.samples[None], ["audio"], audio.sample_rate))


def show(obj) -> None:
    """Display ``obj`` (``Stems`` or ``Audio``): in a live kernel its player and the player's
    offline copy; elsewhere (a terminal) its text.

    This is what ``Stems`` and ``Audio`` do for IPython's ``_ipython_display_``.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> show(bn.demo.load()[1])  # outside a kernel: the repr  # doctest: +ELLIPSIS
    Stems(names=('drums', 'bass', 'other', 'vocals'), channels=2, ...)
    """
    if in_live_kernel():
        explore(obj)._ipython_display_()
    else:
        print(repr(obj))
