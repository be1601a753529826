"""HTML for notebooks and static exports: compressed ``<audio>`` players and PNG figures.

Audio is embedded compressed (Ogg Vorbis through soundfile, or MP3) and only for a window
(default the first 30 s), so a notebook showing a 5-minute track's stems stays small. These are
what :class:`~bandscope_nb.stems.Stems` and :class:`~bandscope_nb.audio.Audio` show in nbconvert
HTML or on GitHub, where no kernel runs.
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

from ..audio import frame_range
from ..errors import ParameterError

__all__ = [
    "audio_element",
    "audio_html",
    "display_widget_view",
    "display_with_twin",
    "encode_audio",
    "figure_png",
    "stems_html",
    "update_twin",
]

_FORMATS = {"ogg": ("OGG", "VORBIS", "audio/ogg"), "mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg")}


def encode_audio(
    samples: np.ndarray,
    sample_rate: int,
    *,
    start: float = 0.0,
    duration: float | None = 30.0,
    format: str = "ogg",
) -> bytes:
    """Compress a window of ``(channels, frames)`` audio; samples are clipped to [-1, 1].

    Examples
    --------
    >>> data = encode_audio(np.zeros((2, 44100), np.float32), 44100)
    >>> data[:4]
    b'OggS'
    """
    import soundfile as sf

    if format not in _FORMATS:
        raise ParameterError(f"Invalid format: {format!r}; choose one of {sorted(_FORMATS)}.")
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    lo, hi = frame_range(sample_rate, samples.shape[-1], start, duration)
    window = np.clip(samples[:, lo:hi], -1.0, 1.0)
    container, subtype, _ = _FORMATS[format]
    buf = io.BytesIO()
    sf.write(buf, window.T, sample_rate, format=container, subtype=subtype)
    return buf.getvalue()


def audio_element(
    samples: np.ndarray,
    sample_rate: int,
    *,
    label: str = "",
    start: float = 0.0,
    duration: float | None = 30.0,
    format: str = "ogg",
) -> str:
    """An HTML5 ``<audio controls>`` element with the window embedded as a data URI.

    Examples
    --------
    >>> audio_element(np.zeros((1, 8000)), 8000, label="x")[:31]
    '<figure class="bandscope-audio"'
    """
    data = base64.b64encode(
        encode_audio(samples, sample_rate, start=start, duration=duration, format=format)
    ).decode()
    mime = _FORMATS[format][2]
    caption = f"<figcaption>{escape(label)}</figcaption>" if label else ""
    return (
        f'<figure class="bandscope-audio" style="margin:2px 0">{caption}'
        f'<audio controls preload="none" src="data:{mime};base64,{data}"></audio></figure>'
    )


def figure_png(fig) -> str:
    """A matplotlib figure as an ``<img>`` with an embedded PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _window_label(name: str, duration_s: float, shown: float | None) -> str:
    """``name``, plus "first N s" when only part of the signal is embedded."""
    if shown is None or duration_s <= shown:
        return name
    return f"{name} (first {shown:g} s)" if name else f"first {shown:g} s"


def stems_html(stems, *, mix: np.ndarray | None = None, duration: float | None = 30.0) -> str:
    """Spectrogram grid (PNG) and one player per stem (and the mix) for the first ``duration`` s.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> html = stems_html(bn.Stems(np.zeros((2, 1, 8000)), ["a", "b"], 8000))
    >>> html.count("<audio"), "<img" in html
    (2, True)
    """
    from .display import signal_rows, stems_figure

    players = "".join(
        audio_element(
            s,
            stems.sample_rate,
            label=_window_label(name, stems.duration, duration),
            duration=duration,
        )
        for name, s in signal_rows(stems, mix)
    )
    return (
        f"<div class='bandscope-stems'><p><code>{escape(repr(stems))}</code></p>"
        f"{figure_png(stems_figure(stems, mix=mix, duration=duration))}{players}</div>"
    )


def audio_html(audio, *, duration: float | None = 30.0) -> str:
    """Spectrogram (PNG) and a player for the first ``duration`` s of an :class:`Audio`.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> audio_html(bn.Audio(np.zeros((1, 8000), np.float32), 8000)).count("<audio")
    1
    """
    from ..stems import Stems
    from .display import stems_figure

    figure = stems_figure(Stems(audio.samples[None], ["audio"], audio.sample_rate))
    label = _window_label("", audio.duration, duration)
    player = audio_element(audio.samples, audio.sample_rate, label=label, duration=duration)
    return f"<p><code>{escape(repr(audio))}</code></p>{figure_png(figure)}{player}"


def display_widget_view(widget) -> None:
    """Display only the widget view of ``widget``: no ``text/plain`` repr for exports to fall
    back on (its static twin or offline copy follows as an output of its own)."""
    from IPython.display import display

    data = widget._repr_mimebundle_()
    data = data[0] if isinstance(data, tuple) else data
    display({k: v for k, v in data.items() if k != "text/plain"}, raw=True)


def _twin_html(mark: str, html: str) -> str:
    """The twin's output: ``html`` and the script that hides it where the live widget shows."""
    hide = (
        f"(function(){{var t=document.getElementById('{mark}-twin');"
        f"function h(){{if(document.querySelector('.{mark}'))t.style.display='none';}}"
        "h();setTimeout(h,300);setTimeout(h,1500);setTimeout(h,4000);})();"
    )
    return f'<div class="bandscope-twin" id="{mark}-twin">{html}<script>{hide}</script></div>'


def display_with_twin(widget, html: str):
    """Display an ipywidgets ``widget`` and, as a second output, a static twin (``html``).

    The twin is what a notebook reopened without its kernel and an nbconvert export show in
    place of the widget (never a bare "model not found" or the widget's repr); where the
    widget renders live, a small inline script hides the twin, so a person sees one of them.
    Returns a handle for :func:`update_twin`.
    """
    import uuid

    from IPython.display import display

    mark = f"bn-live-{uuid.uuid4().hex}"
    widget.add_class(mark)
    display_widget_view(widget)
    handle = display({"text/html": _twin_html(mark, html)}, raw=True, display_id=True)
    return mark, handle


def update_twin(twin, html: str) -> None:
    """Replace the twin shown by :func:`display_with_twin` (e.g. after the widget changed)."""
    mark, handle = twin
    handle.update({"text/html": _twin_html(mark, html)}, raw=True)
