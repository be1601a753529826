"""A comparison in a notebook: its table, quality against speed, and its runs to listen to,
switched at the same playhead.

Two ways to listen:

- **Every run of one stem** (:attr:`CompareView.player`, a :class:`~.player.StemPlayer` without
  a mixer): for the chosen stem, one lane per run, the true stem when there are references,
  and the mix; its "hear" buttons and A/B switch between them by gain alone, so the music never
  stops or restarts. Choosing another stem swaps every lane's audio in at one moment of the
  same clock (:meth:`StemPlayer.change`).
- **A mix of runs** (:attr:`CompareView.mix_player`, made when first chosen): the stems with
  their mixer, each from the run picked for it (:attr:`CompareView.picks`); a new pick swaps
  that stem's audio in where it is playing, the others play on untouched.
"""

from __future__ import annotations

import base64
import io
import math
from html import escape

import ipywidgets as W
import numpy as np

from ..errors import ParameterError
from ..stems import Stems
from .player import StemPlayer

__all__ = ["CompareView", "quality_speed_png", "table_html"]

TRUE, MIX = "true", "mix"
RUNS, MIXED = "runs", "mixed"  # the two ways to listen


#: Column headings that need their unit (the table's keys stay as they are: ``sort_by`` uses them).
_HEADINGS = {"realtime": "× real time"}


def _number(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else escape(str(value))


def table_html(comparison, *, sort_by: str | None = None) -> str:
    """The comparison's table as HTML (best first when ``sort_by`` names a column), then its
    note on what the numbers mean.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> from bandscope_nb.evaluation.comparison import Comparison, Run
    >>> truth = bn.demo.load()[1]
    >>> html = table_html(Comparison([Run("truth", truth, "given")]))
    >>> html.count("<tr>"), "quality cannot be measured" in html
    (2, True)
    """
    rows = comparison.table()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if sort_by is not None:
        if sort_by not in columns:
            raise ParameterError(f"Invalid sort_by: {sort_by!r}; columns are {columns}.")
        smaller_first = sort_by in ("seconds", "peak MB")  # smaller is better there

        def key(row):  # best first; missing values last
            value = row.get(sort_by)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return (2, 0.0, "")
            if isinstance(value, str):
                return (1, 0.0, value)
            return (0, value if smaller_first else -value, "")

        rows = sorted(rows, key=key)

    def cell(tag: str, column: str, text: str) -> str:  # labels left, numbers right
        align = "left" if column == "run" else "right"
        return f'<{tag} style="padding:2px 10px;text-align:{align}">{text}</{tag}>'

    head = "".join(cell("th", c, escape(_HEADINGS.get(c, c))) for c in columns)
    body = "".join(
        "<tr>" + "".join(cell("td", c, _number(row.get(c))) for c in columns) + "</tr>"
        for row in rows
    )
    style = "border-collapse:collapse;font-variant-numeric:tabular-nums"
    return (
        f'<table class="bandscope-comparison" style="{style}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table><p><small>{escape(comparison.note)}</small></p>"
    )


def quality_speed_png(comparison) -> str:
    """Quality against speed as an ``<img>`` (empty without references: no quality axis)."""
    from matplotlib.figure import Figure

    from .display import quality_speed

    runs = list(comparison.runs.values())
    if comparison.references is None:
        return ""
    fig = Figure(figsize=(6.5, 3.2), dpi=100, layout="constrained")
    quality_speed(
        [r.label for r in runs],
        [r.realtime for r in runs],
        [r.mean() for r in runs],
        ax=fig.subplots(),
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="quality against speed" src="data:image/png;base64,{data}"/>'


class CompareView(W.VBox):
    """A :class:`~bandscope_nb.evaluation.Comparison` to read and to listen to.

    Parameters
    ----------
    comparison : Comparison
    stem : str or None
        The stem heard first (default: vocals if there are vocals, else the first).
    height : int
        Height of one lane in CSS pixels.

    Attributes
    ----------
    mode : ipywidgets.ToggleButtons
        ``"runs"`` (every run of one stem) or ``"mixed"`` (a mix of runs, one per stem).
    player : StemPlayer
        Every run of the stem chosen in :attr:`stem`.
    picks : dict of str to ipywidgets.Dropdown
        Per stem, the run heard in :attr:`mix_player` (or the true stem).
    mix_player : StemPlayer or None
        The stems, each from its pick, with a mixer (None until ``"mixed"`` is first chosen).

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> from bandscope_nb.evaluation.comparison import Comparison, Run
    >>> mix, truth = bn.demo.load()
    >>> quiet = bn.Stems(truth.data / 2, truth.names, truth.sample_rate)
    >>> view = CompareView(Comparison([Run("truth", truth, "given"), Run("half", quiet, "given")],
    ...                               mix=mix.samples))
    >>> view.player.lane_order, view.player.lane_labels["run 2"]
    (['mix', 'run 1', 'run 2'], 'half')
    >>> view.stem.value = "bass"
    >>> view.player.listen = "run 2"
    >>> bool(np.allclose(view.player.remix(), truth["bass"] / 2))
    True
    >>> view.mode.value = "mixed"
    >>> view.picks["drums"].value = "run 2"
    >>> expected = truth.data.sum(axis=0) - truth["drums"] / 2
    >>> bool(np.allclose(view.mix_player.remix(), expected, atol=1e-5))
    True
    """

    def __init__(self, comparison, *, stem: str | None = None, height: int = 48):
        runs = list(comparison.runs.values())
        names = runs[0].stems.names
        stem = stem if stem is not None else ("vocals" if "vocals" in names else names[0])
        if stem not in names:
            raise ParameterError(f"Unknown stem {stem!r}; stems are {names}.")
        self.comparison, self.height = comparison, height
        self._ids = [f"run {i + 1}" for i in range(len(runs))]
        if comparison.references is not None:
            self._ids.append(TRUE)
        labels = {i: r.label for i, r in zip(self._ids, runs, strict=False)}
        if comparison.references is not None:
            labels[TRUE] = "true stem"
        self._labels = labels
        stems = Stems(self._sounds(stem), self._ids, runs[0].stems.sample_rate)
        self.player = StemPlayer(
            stems, mix=comparison.mix, mixer=False, labels=labels, height=height
        )
        self.stem = W.Dropdown(options=list(names), value=stem, description="stem")
        self.mode = W.ToggleButtons(
            options=[("Every run of one stem", RUNS), ("A mix of runs, one per stem", MIXED)],
            value=RUNS,
            style={"button_width": "auto"},
        )
        choices = [(labels[i], i) for i in self._ids]
        self.picks = {
            name: W.Dropdown(options=choices, value=self._ids[0], description=name)
            for name in names
        }
        self._picks_row = W.HBox(list(self.picks.values()), layout=W.Layout(flex_flow="row wrap"))
        self.mix_player: StemPlayer | None = None
        columns = list(dict.fromkeys(k for row in comparison.table() for k in row))
        self.sort_by = W.Dropdown(
            options=[(_HEADINGS.get(c, c), c) for c in columns],
            value=columns[-1],
            description="sort by",
        )
        self.table = W.HTML(table_html(comparison, sort_by=self.sort_by.value))
        self.plot = W.HTML(quality_speed_png(comparison))
        self.listening = W.VBox([self.stem, self.player])
        self.stem.observe(self._stem_changed, names="value")
        self.sort_by.observe(self._sort, names="value")
        self.mode.observe(self._mode_changed, names="value")
        for name, pick in self.picks.items():
            pick.observe(lambda change, name=name: self._picked(name), names="value")
        super().__init__([self.sort_by, self.table, self.plot, self.mode, self.listening])

    def _sound(self, which: str, stem: str) -> np.ndarray:
        """Stem ``stem`` of the run with id ``which`` (or the true stem)."""
        if which == TRUE:
            return self.comparison.references[stem]
        return list(self.comparison.runs.values())[self._ids.index(which)].stems[stem]

    def _sounds(self, stem: str) -> np.ndarray:
        return np.stack([self._sound(which, stem) for which in self._ids])

    def _stem_changed(self, change=None) -> None:
        self.player.change(tracks=dict(zip(self._ids, self._sounds(self.stem.value), strict=True)))

    def _picked(self, stem: str) -> None:
        if self.mix_player is not None:
            self.mix_player.replace_track(stem, self._sound(self.picks[stem].value, stem))
            self.mix_player.relabel(self._pick_labels())

    def _pick_labels(self) -> dict:
        """Each stem lane named with the run it plays: "vocals · true stem"."""
        return {n: f"{n} · {self._labels[pick.value]}"[:80] for n, pick in self.picks.items()}

    def _mode_changed(self, change=None) -> None:
        """Show the other way to listen, pausing the one hidden (its place is kept)."""
        mixed = self.mode.value == MIXED
        if mixed and self.mix_player is None:
            names = list(self.picks)
            picked = np.stack([self._sound(self.picks[n].value, n) for n in names])
            stems = Stems(picked, names, self.player.stems.sample_rate)
            self.mix_player = StemPlayer(
                stems, mix=self.comparison.mix, height=self.height, labels=self._pick_labels()
            )
        hidden = self.player if mixed else self.mix_player
        if hidden is not None:
            hidden.playing = False
        shown = [self._picks_row, self.mix_player] if mixed else [self.stem, self.player]
        self.listening.children = shown

    def _sort(self, change=None) -> None:
        self.table.value = table_html(self.comparison, sort_by=self.sort_by.value)

    def _ipython_display_(self) -> None:
        """The live view, then a static twin (table, plot, the player's offline copy)."""
        from .embed import display_with_twin
        from .player_page import offline_html

        caption = f"<p>Listen: the runs' {escape(self.stem.value)}</p>"
        html = self.table.value + self.plot.value + caption + offline_html(self.player)
        display_with_twin(self, html)
