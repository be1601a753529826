"""Notebook widgets: look at and listen to signals and stems (ipywidgets 8).

The widgets do no DSP of their own: images come from :mod:`bandscope_nb.notebook.display` (at screen
resolution, cached per view), masks from :mod:`bandscope_nb.dsp.masks`, sound from
:mod:`bandscope_nb.notebook.embed`. Each is a ``VBox`` that builds its controls, wires them with
``observe(..., names="value")`` and updates its artists in place. In a live kernel with ipympl
installed the figure is ipympl's interactive canvas; otherwise (or with ``canvas="image"``) a PNG
``Image`` widget, which works in every front end and in exported notebooks.

:func:`explore` picks the widget for an object; ``Stems`` and ``Audio`` use it for their rich
display in a live kernel (:func:`live_bundle`).
"""

from __future__ import annotations

import importlib.util
import io

import ipywidgets as W
import numpy as np

from ..audio import frame_range
from ..errors import ParameterError
from ..stems import Stems
from .display import KINDS, figure_grid, signal_rows, specshow, spectrogram_image, style_axis
from .embed import audio_element

__all__ = ["SpectrogramView", "StemExplorer", "explore", "live_bundle"]  # and MaskExplorer


def __getattr__(name: str):
    """``MaskExplorer`` lives in :mod:`.mask_explorer` (it builds on this module)."""
    if name == "MaskExplorer":
        from .mask_explorer import MaskExplorer

        return MaskExplorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

MAX_PLAYER_SECONDS = 30.0
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
        self.figure, self.axes = figure_grid(
            titles, width_px=width_px, row_inches=1.5, extra=0.4
        )
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


class StemExplorer(W.VBox):
    """Spectrograms of the mix and stems, a player per stem, and a mixer feeding one remix player.

    Each stem has a gain (dB), mute and solo; the remix is rendered into a single ``<audio>``
    element (separate players drift out of sync), for the selected window of at most 30 s.

    Parameters
    ----------
    stems : Stems
    mix : np.ndarray [shape=(channels, frames)] or None
        Shown and played first when given.
    width_px, canvas
        As for :class:`SpectrogramView`.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> explorer = StemExplorer(truth, mix=mix.samples)
    >>> explorer.mute["vocals"].value = True
    >>> explorer.gains()["vocals"], explorer.gains()["drums"]
    (0.0, 1.0)
    """

    def __init__(
        self,
        stems: Stems,
        mix: np.ndarray | None = None,
        *,
        width_px: int = 900,
        canvas: str = "auto",
    ):
        self.stems = stems
        rate = stems.sample_rate
        self.view = SpectrogramView(
            dict(signal_rows(stems, mix)), rate, width_px=width_px, canvas=canvas
        )
        span = min(MAX_PLAYER_SECONDS, stems.duration)
        self.play_start = slider("play from (s)", 0.0, 0.0, max(0.0, stems.duration - span))
        self.play_length = slider("length (s)", span, min(1.0, span), span)
        self.gain = {
            n: W.FloatSlider(
                value=0.0, min=-60.0, max=12.0, step=1.0, description=n, continuous_update=False
            )
            for n in stems.names
        }
        self.mute = {n: W.ToggleButton(value=False, description="mute") for n in stems.names}
        self.solo = {n: W.ToggleButton(value=False, description="solo") for n in stems.names}
        self.players = {
            n: W.HTML() for n in (["mix"] if mix is not None else []) + list(stems.names)
        }
        self.remix_player = W.HTML()
        self._mix = mix
        rows = [
            W.HBox([self.gain[n], self.mute[n], self.solo[n], self.players[n]]) for n in stems.names
        ]
        if mix is not None:
            rows.insert(0, W.HBox([W.Label("mix"), self.players["mix"]]))
        for widget in (*self.gain.values(), *self.mute.values(), *self.solo.values()):
            widget.observe(self._update_remix, names="value")
        for widget in (self.play_start, self.play_length):
            widget.observe(self._update_players, names="value")
        super().__init__(
            [
                self.view,
                W.HBox([self.play_start, self.play_length]),
                *rows,
                W.HBox([W.Label("remix"), self.remix_player]),
            ]
        )
        self._update_players()

    def gains(self) -> dict[str, float]:
        """Linear gain per stem from the mixer: solo wins over mute, mute over gain."""
        soloed = {n for n, w in self.solo.items() if w.value}
        return {
            n: 0.0
            if (soloed and n not in soloed) or (not soloed and self.mute[n].value)
            else float(10 ** (self.gain[n].value / 20))
            for n in self.stems.names
        }

    def _window(self) -> tuple[int, int]:
        stems = self.stems
        return frame_range(
            stems.sample_rate, stems.frames, self.play_start.value, self.play_length.value
        )

    def _element(self, samples: np.ndarray) -> str:
        lo, hi = self._window()
        return audio_element(samples[:, lo:hi], self.stems.sample_rate, duration=None)

    def _update_players(self, change=None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        signals = [self._mix if name == "mix" else self.stems[name] for name in self.players]
        with ThreadPoolExecutor() as pool:  # libsndfile's encoder releases the GIL
            elements = list(pool.map(self._element, signals))
        for player, element in zip(self.players.values(), elements, strict=True):
            player.value = element
        self._update_remix()

    def _update_remix(self, change=None) -> None:
        window = (self.play_start.value, self.play_length.value)
        remix = self.stems.remix(self.gains(), window=window)
        self.remix_player.value = audio_element(remix, self.stems.sample_rate, duration=None)


def explore(obj, *, mix: np.ndarray | None = None, canvas: str = "auto") -> W.Widget:
    """The widget for looking at and listening to ``obj``.

    A :class:`StemExplorer` for ``Stems``; for an ``Audio`` (or ``(array, rate)``), a
    :class:`SpectrogramView` with a player of its first 30 s.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> type(explore(truth)).__name__, type(explore(mix)).__name__
    ('StemExplorer', 'VBox')
    """
    from ..audio import as_audio

    if isinstance(obj, Stems):
        return StemExplorer(obj, mix=mix, canvas=canvas)
    audio = as_audio(obj)
    player = W.HTML(audio_element(audio.samples, audio.sample_rate))
    return W.VBox([SpectrogramView(audio, canvas=canvas), player])


def live_bundle(obj) -> dict | None:
    """The widget view of ``obj`` for IPython's ``_repr_mimebundle_``; None outside a live kernel.

    IPython adds the object's ``_repr_html_`` (static spectrograms and players) beside the
    widget view, and exports without widget state (nbconvert, GitHub) show that instead.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> live_bundle(bn.demo.load()[1]) is None  # not in a notebook kernel
    True
    """
    if not in_live_kernel():
        return None
    return explore(obj)._repr_mimebundle_()
