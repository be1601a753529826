"""Notebook widgets: look at and listen to signals and stems (ipywidgets 8).

Stems are played and mixed by the stem studio's player (:class:`StemPlayer`, in
:mod:`.player`; :class:`StemExplorer` is that player with the mix). The figure widgets here do
no DSP of their own: images come from :mod:`bandscope_nb.notebook.display` (at screen
resolution, cached per view) and masks from :mod:`bandscope_nb.dsp.masks`. Each is a ``VBox``
that builds its controls, wires them with ``observe(..., names="value")`` and updates its
artists in place. In a live kernel with ipympl installed the figure is ipympl's interactive
canvas; otherwise (or with ``canvas="image"``) a PNG ``Image`` widget.

:func:`explore` picks the player for an object; ``Stems`` and ``Audio`` show it in a live kernel
(:func:`show`).
"""

from __future__ import annotations

import importlib.util
import io

import ipywidgets as W
import numpy as np

from ..errors import ParameterError
from ..stems import Stems
from .display import KINDS, figure_grid, specshow, spectrogram_image, style_axis
from .player import StemPlayer

__all__ = ["SpectrogramView", "StemExplorer", "StemPlayer", "explore", "show"]  # and MaskExplorer


def __getattr__(name: str):
    """``MaskExplorer`` lives in :mod:`.mask_explorer` (it builds on this module)."""
    if name == "MaskExplorer":
        from .mask_explorer import MaskExplorer

        return MaskExplorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


CANVASES = ("auto", "ipympl", "image")


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


class FigureWidget:
    """A matplotlib ``Figure`` as a widget: ipympl's canvas, or a PNG ``Image`` widget.

    ``canvas="auto"`` takes ipympl in a live kernel when it is installed, else the image.
    Call :meth:`refresh` after changing artists.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> shown = FigureWidget(Figure(figsize=(2, 1)), canvas="image")
    >>> shown.refresh()
    >>> shown.kind, bytes(shown.widget.value[1:4])
    ('image', b'PNG')
    """

    def __init__(self, figure, canvas: str = "auto"):
        if canvas not in CANVASES:
            raise ParameterError(f"Invalid canvas: {canvas!r}; choose one of {CANVASES}.")
        if canvas == "auto":
            usable = in_live_kernel() and importlib.util.find_spec("ipympl") is not None
            canvas = "ipympl" if usable else "image"
        self.figure, self.kind = figure, canvas
        if canvas == "ipympl":
            try:
                from ipympl.backend_nbagg import Canvas, FigureManager
            except ImportError as exc:
                raise ParameterError(
                    "canvas='ipympl' needs ipympl: pip install 'bandscope-nb[notebook]' "
                    "(or pip install ipympl), or pass canvas='image'."
                ) from exc
            self.widget = Canvas(figure)
            self.widget.manager = FigureManager(self.widget, 0)
            self.widget.header_visible = False
            self.widget.resizable = False
            self.widget.toolbar_position = "right"
        else:
            self.widget = W.Image(format="png")

    def refresh(self) -> None:
        """Show the figure's current state."""
        if self.kind == "ipympl":
            self.figure.canvas.draw_idle()
            return
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png")
        self.widget.value = buf.getvalue()


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


class SpectrogramView(W.VBox):
    """One or several aligned spectrograms with kind, dB range, axis, zoom and colour controls.

    Parameters
    ----------
    data : Audio, Stems, dict of name to array, or np.ndarray [shape=(channels, frames)]
    sample_rate : int or None
        Needed for arrays and dicts.
    width_px : int
        Figure width; transforms are computed at this resolution for the visible window.
    canvas : {"auto", "ipympl", "image"}
        How the figure shows (see :class:`FigureWidget`); ``view.figure_widget.kind`` says which.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> view = SpectrogramView(truth)
    >>> view.figure_widget.kind  # outside a notebook kernel
    'image'
    >>> view.kind.value = "mel"
    >>> view.images[0].get_array().shape[0]
    128
    """

    def __init__(
        self,
        data,
        sample_rate: int | None = None,
        *,
        width_px: int = 900,
        canvas: str = "auto",
    ):

        self.signals, self.sample_rate = _signals(data, sample_rate)
        self.duration = max(s.shape[-1] for _, s in self.signals) / self.sample_rate
        self.width_px = width_px
        self._cache: dict[tuple, tuple[np.ndarray, tuple]] = {}
        self.kind = W.ToggleButtons(options=list(KINDS), value="stft", description="transform")
        self.db_range = W.FloatSlider(
            value=80.0, min=20.0, max=120.0, step=5.0, description="dB range"
        )
        self.log_freq = W.Checkbox(value=True, description="log frequency")
        self.window = W.FloatSlider(
            value=min(self.duration, 30.0),
            min=0.5,
            max=max(self.duration, 0.5),
            step=0.5,
            description="zoom (s)",
        )
        self.start = W.FloatSlider(
            value=0.0,
            min=0.0,
            max=max(0.0, self.duration - 0.5),
            step=0.25,
            description="start (s)",
        )
        self.cmap = W.Dropdown(
            options=["magma", "viridis", "gray_r", "inferno"], value="magma", description="colours"
        )
        titles = [name for name, _ in self.signals]
        self.figure, self.axes = figure_grid(titles, width_px=width_px, row_inches=1.5, extra=0.4)
        self.images = [
            specshow(s, self.sample_rate, ax=ax, duration=self.window.value, width_px=width_px)
            for ax, (_, s) in zip(self.axes, self.signals, strict=True)
        ]
        for ax in self.axes:
            ax.label_outer()
        self.figure_widget = FigureWidget(self.figure, canvas)
        controls = (self.kind, self.db_range, self.log_freq, self.window, self.start, self.cmap)
        for control in controls:
            control.observe(self._redraw, names="value")
        controls = W.HBox(
            [
                W.VBox([self.kind, self.log_freq, self.cmap]),
                W.VBox([self.start, self.window, self.db_range]),
            ]
        )
        super().__init__([controls, self.figure_widget.widget])
        self._redraw()

    def _ipython_display_(self) -> None:
        """The live view, then a static twin (the figure as it stands) for pages without it."""
        from .embed import display_with_twin, figure_png

        display_with_twin(self, figure_png(self.figure))

    def _transform(self, index: int) -> tuple[np.ndarray, tuple]:
        start = min(self.start.value, max(0.0, self.duration - 0.5))
        key = (index, self.kind.value, round(start, 3), round(self.window.value, 3))
        if key not in self._cache:
            self._cache[key] = spectrogram_image(
                self.signals[index][1],
                self.sample_rate,
                kind=self.kind.value,
                start=start,
                duration=self.window.value,
                width_px=self.width_px,
            )
        return self._cache[key]

    def _redraw(self, change=None) -> None:
        for index, (ax, artist) in enumerate(zip(self.axes, self.images, strict=True)):
            image, extent = self._transform(index)
            top = float(image.max())
            artist.set_data(image)
            artist.set_extent(extent)
            artist.set_clim(top - self.db_range.value, top)
            artist.set_cmap(self.cmap.value)
            style_axis(ax, self.kind.value, extent, log_freq=self.log_freq.value)
        self.figure_widget.refresh()


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
