"""Plotting: spectrograms and waveforms at screen resolution, drawn on a given matplotlib ``ax``.

A full-resolution STFT of a 5-minute track has ~26,000 frames; a screen shows ~1,000 columns.
:func:`spectrogram_image` therefore picks its hop so that the visible window yields about
``width_px`` frames, which keeps a first paint of a long track well under a second. Every
drawing function takes ``ax`` and returns the artist it made, so widgets can update it in place
(``artist.set_data``, ``fig.canvas.draw_idle()``).
"""

from __future__ import annotations

import math

import numpy as np

from ..audio import frame_range
from ..errors import ParameterError

__all__ = [
    "KINDS",
    "frontier",
    "quality_speed",
    "signal_rows",
    "specshow",
    "spectrogram_image",
    "stems_figure",
    "style_axis",
    "waveform",
]

KINDS = ("stft", "mel", "cqt")


def mono_window(samples: np.ndarray, sample_rate: int, start: float, duration: float | None):
    """The channel average of a window of ``samples`` (only the window is read) and its start
    and end in seconds."""
    lo, hi = frame_range(sample_rate, np.shape(samples)[-1], start, duration)
    if hi <= lo:
        raise ParameterError(f"Empty window: start={start} s, duration={duration} s.")
    window = np.asarray(samples[..., lo:hi], dtype=np.float32)
    mono = window.mean(axis=0) if window.ndim == 2 else window
    return mono, lo / sample_rate, hi / sample_rate


def spectrogram_image(
    samples: np.ndarray,
    sample_rate: int,
    *,
    kind: str = "stft",
    start: float = 0.0,
    duration: float | None = None,
    width_px: int = 1000,
    n_fft: int = 2048,
    n_mels: int = 128,
    top_db: float = 80.0,
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Channel-averaged spectrogram in dB of a time window, about ``width_px`` frames wide.

    Parameters
    ----------
    samples : np.ndarray [shape=(channels, frames) or (frames,)]
    sample_rate : int
    kind : {"stft", "mel", "cqt"}
    start, duration : float
        The visible window in seconds (``duration=None``: to the end).
    width_px : int
        Frames wanted across the window (the hop follows from it).
    top_db : float
        Unused here (the caller's colour range); values are not normalised per window, so
        windows compare and scrolling keeps its colours.

    Returns
    -------
    image : np.ndarray [shape=(bins, frames)]
        Power in dB relative to 1.0 (floor -100 dB), low frequencies first.
    extent : (t0, t1, f0, f1)
        Seconds and Hz (mel / cqt: bin indices) for ``imshow``.

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal((2, 5 * 22050)).astype(np.float32)
    >>> image, extent = spectrogram_image(y, 22050, width_px=200)
    >>> image.shape[0], 190 <= image.shape[1] <= 210, extent[:2]
    (1025, True, (0.0, 5.0))
    """
    import librosa

    if kind not in KINDS:
        raise ParameterError(f"Invalid kind: {kind!r}; choose one of {KINDS}.")
    y, t0, t1 = mono_window(samples, sample_rate, start, duration)
    hop = max(1, y.shape[-1] // max(1, width_px))
    if kind == "stft":
        power = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop)) ** 2
        extent = (t0, t1, 0.0, sample_rate / 2)
    elif kind == "mel":
        power = librosa.feature.melspectrogram(
            y=y, sr=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels
        )
        extent = (t0, t1, 0.0, float(n_mels))
    else:
        hop = max(64, hop // 64 * 64)  # librosa's CQT needs a hop divisible by 2**(octaves-1)
        power = np.abs(librosa.cqt(y, sr=sample_rate, hop_length=hop, n_bins=84)) ** 2
        extent = (t0, t1, 0.0, 84.0)
    image = librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None)
    return image.astype(np.float32), extent


def specshow(
    samples: np.ndarray,
    sample_rate: int,
    *,
    ax=None,
    kind: str = "stft",
    start: float = 0.0,
    duration: float | None = None,
    width_px: int = 1000,
    top_db: float = 80.0,
    cmap: str = "magma",
    log_freq: bool = True,
    vmax: float | None = None,
):
    """Draw :func:`spectrogram_image` on ``ax`` (default: pyplot's current axes); return the
    ``AxesImage``.

    The colour range is ``[vmax - top_db, vmax]``; ``vmax=None`` takes the window's maximum.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> img = specshow(np.random.default_rng(0).standard_normal(22050), 22050, ax=ax)
    >>> img.get_array().shape[0]
    1025
    """
    image, extent = spectrogram_image(
        samples,
        sample_rate,
        kind=kind,
        start=start,
        duration=duration,
        width_px=width_px,
        top_db=top_db,
    )
    vmax = float(image.max()) if vmax is None else vmax
    ax = _axes(ax)
    artist = ax.imshow(
        image,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap=cmap,
        interpolation="nearest",
        vmin=vmax - top_db,
        vmax=vmax,
    )
    ax.set_xlabel("time (s)")
    style_axis(ax, kind, extent, log_freq=log_freq)
    return artist


def _axes(ax):
    """``ax``, or pyplot's current axes (librosa.display's convention)."""
    if ax is None:
        import matplotlib.pyplot as plt

        ax = plt.gca()
    return ax


def style_axis(ax, kind: str, extent, *, log_freq: bool = True) -> None:
    """Time limits, frequency scale (log for the STFT when asked, else linear) and label."""
    ax.set_xlim(extent[0], extent[1])
    if kind == "stft" and log_freq:
        ax.set_yscale("symlog", linthresh=100.0, linscale=0.5)
        ax.set_ylim(20.0, extent[3])
    else:
        ax.set_yscale("linear")
        ax.set_ylim(extent[2], extent[3])
    ax.set_ylabel({"stft": "Hz", "mel": "mel bin", "cqt": "CQT bin"}[kind])


def signal_rows(stems, mix: np.ndarray | None = None) -> list[tuple[str, np.ndarray]]:
    """``[(name, samples)]``: the mix first (when given), then each stem, in order.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> stems = bn.Stems(np.zeros((2, 1, 4)), ["a", "b"], 8000)
    >>> [name for name, _ in signal_rows(stems, np.zeros((1, 4)))]
    ['mix', 'a', 'b']
    """
    return ([("mix", mix)] if mix is not None else []) + [(n, stems[n]) for n in stems.names]


def waveform(samples: np.ndarray, sample_rate: int, *, ax=None, width_px: int = 1000, color="C0"):
    """Min/max envelope of the channel-averaged signal, one column per pixel, on ``ax``
    (default: pyplot's current axes); returns the ``PolyCollection``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> type(waveform(np.zeros((2, 1000)), 1000, ax=ax)).__name__
    'FillBetweenPolyCollection'
    """
    y, t0, t1 = mono_window(samples, sample_rate, 0.0, None)
    columns = max(1, min(width_px, y.shape[-1]))
    edges = np.linspace(0, y.shape[-1], columns + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    t = np.linspace(t0, t1, columns)
    ax = _axes(ax)
    ax.set_xlim(t0, t1)
    ax.set_xlabel("time (s)")
    return ax.fill_between(t, lo, hi, color=color, linewidth=0)


def figure_grid(titles: list[str], *, width_px: int, row_inches: float, extra: float = 0.0):
    """A figure (made without pyplot, so notebooks show it once) of one row per title, sharing
    the time axis, titled at the left; returns ``(figure, axes)``.

    Examples
    --------
    >>> fig, axes = figure_grid(["mix", "vocals"], width_px=400, row_inches=1.5)
    >>> [ax.get_title(loc="left") for ax in axes]
    ['mix', 'vocals']
    """
    from matplotlib.figure import Figure

    height = row_inches * len(titles) + extra
    fig = Figure(figsize=(width_px / 100, height), dpi=100, layout="constrained")
    axes = list(fig.subplots(len(titles), 1, sharex=True, squeeze=False)[:, 0])
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, loc="left", fontsize=9)
        ax.label_outer()
    return fig, axes


def stems_figure(
    stems,
    *,
    mix: np.ndarray | None = None,
    duration: float | None = 30.0,
    kind: str = "stft",
    width_px: int = 800,
):
    """A grid with one spectrogram per stem (and the mix first, if given), shared time axis.

    Returns the ``Figure`` (made without pyplot, so nothing is shown twice in notebooks).

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> fig = stems_figure(bn.Stems(np.zeros((2, 1, 22050)), ["a", "b"], 22050))
    >>> len(fig.axes)
    2
    """
    rows = signal_rows(stems, mix)
    fig, axes = figure_grid([name for name, _ in rows], width_px=width_px, row_inches=1.6)
    for ax, (_, samples) in zip(axes, rows, strict=True):
        specshow(samples, stems.sample_rate, ax=ax, kind=kind, duration=duration, width_px=width_px)
        ax.label_outer()
    return fig


def frontier(speeds, qualities) -> list[int]:
    """Indices of the points no other point beats in both speed and quality (higher is
    better in each), fastest first: the runs worth choosing between.

    Examples
    --------
    >>> frontier([1.0, 2.0, 3.0, 0.5], [9.0, 8.0, 5.0, 7.0])
    [2, 1, 0]
    """
    points = list(zip(speeds, qualities, strict=True))
    keep = [
        i
        for i, (x, y) in enumerate(points)
        if not any(a >= x and b >= y and (a, b) != (x, y) for a, b in points)
    ]
    return sorted(keep, key=lambda i: -points[i][0])


def _minor_times(value: float, _position=None) -> str:
    """Minor ticks of a log speed axis: 2x and 5x of each decade labelled, the rest blank
    (labelling every one runs "8x9x10x" together).

    Examples
    --------
    >>> [_minor_times(v) for v in (0.2, 3.0, 5.0, 9.0, 20.0)]
    ['0.2x', '', '5x', '', '20x']
    """
    mantissa = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}x" if round(mantissa) in (2, 5) else ""


def quality_speed(labels, speeds, qualities, *, ax=None):
    """Quality against speed: a point per run with a speed, its frontier as a line, and a
    dotted line per run without one (given stems, ensembles, cache hits).

    Parameters
    ----------
    labels : list of str
    speeds : list of float or None
        Real-time factors (x real time); None where no speed was measured.
    qualities : list of float
        Mean SDR in dB.
    ax : matplotlib Axes or None

    Returns
    -------
    list of matplotlib artists: the points (a PathCollection, or None) and the frontier line.

    Examples
    --------
    >>> points, line = quality_speed(["a", "b", "oracle"], [2.0, 0.5, None], [4.0, 6.0, 9.0])
    >>> len(points.get_offsets()), [float(v) for v in line.get_xdata()]
    (2, [2.0, 0.5])
    """
    ax = _axes(ax)
    timed = [i for i, v in enumerate(speeds) if v is not None]
    x = [speeds[i] for i in timed]
    y = [qualities[i] for i in timed]
    points = ax.scatter(x, y, color="C0", zorder=3) if timed else None
    span = (math.log(max(x)) - math.log(min(x))) if timed else 0.0
    for i in timed:  # labels of the right-hand points go to their left, inside the frame
        right = span > 0 and (math.log(speeds[i]) - math.log(min(x))) / span > 0.5
        ax.annotate(
            labels[i],
            (speeds[i], qualities[i]),
            xytext=(-4 if right else 4, 4),
            textcoords="offset points",
            ha="right" if right else "left",
            fontsize=8,
        )
    best = [timed[k] for k in frontier(x, y)] if timed else []
    (line,) = ax.plot(
        [speeds[i] for i in best],
        [qualities[i] for i in best],
        color="C0",
        alpha=0.5,
        label="frontier" if len(best) > 1 else "_frontier",  # one point draws no line
    )
    for i, (label, speed, quality) in enumerate(zip(labels, speeds, qualities, strict=True)):
        if speed is None:  # named in the legend: such lines are often close together
            ax.axhline(quality, color=f"C{1 + i % 9}", linestyle=":", label=f"{label} (no speed)")
    if timed:
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.set_xlim(min(x) / 1.6, max(x) * 1.6)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(FuncFormatter(_minor_times))
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("speed (x real time, log)")
    ax.set_ylabel("mean SDR (dB)")
    return points, line
