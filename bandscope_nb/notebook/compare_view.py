"""A comparison in a notebook: its table, quality against speed, and every run of a stem in one
player, switched at the same playhead.

The player (:class:`~.player.StemPlayer` without a mixer) holds, for the chosen stem, one lane
per run, the true stem when there are references, and the mix; its "hear" buttons and A/B
switch between them by gain alone, so the music never stops or restarts. Choosing another stem
swaps every lane's audio in at one moment of the same clock (:meth:`StemPlayer.change`).
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

    head = "".join(cell("th", c, escape(c)) for c in columns)
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
    """

    def __init__(self, comparison, *, stem: str | None = None, height: int = 48):
        runs = list(comparison.runs.values())
        names = runs[0].stems.names
        stem = stem if stem is not None else ("vocals" if "vocals" in names else names[0])
        if stem not in names:
            raise ParameterError(f"Unknown stem {stem!r}; stems are {names}.")
        self.comparison = comparison
        self._ids = [f"run {i + 1}" for i in range(len(runs))]
        truth = comparison.references is not None
        ids = [*self._ids, *([TRUE] if truth else [])]
        labels = {i: r.label for i, r in zip(self._ids, runs, strict=True)}
        if truth:
            labels[TRUE] = "true stem"
        stems = Stems(self._sounds(stem), ids, runs[0].stems.sample_rate)
        self.player = StemPlayer(
            stems, mix=comparison.mix, mixer=False, labels=labels, height=height
        )
        self.stem = W.Dropdown(options=list(names), value=stem, description="stem")
        columns = list(dict.fromkeys(k for row in comparison.table() for k in row))
        self.sort_by = W.Dropdown(options=columns, value=columns[-1], description="sort by")
        self.table = W.HTML(table_html(comparison, sort_by=self.sort_by.value))
        self.plot = W.HTML(quality_speed_png(comparison))
        self.stem.observe(self._stem_changed, names="value")
        self.sort_by.observe(self._sort, names="value")
        super().__init__([self.sort_by, self.table, self.plot, self.stem, self.player])

    def _sounds(self, stem: str) -> np.ndarray:
        runs = list(self.comparison.runs.values())
        sounds = [r.stems[stem] for r in runs]
        if self.comparison.references is not None:
            sounds.append(self.comparison.references[stem])
        return np.stack(sounds)

    def _stem_changed(self, change=None) -> None:
        ids = [*self._ids, *([TRUE] if self.comparison.references is not None else [])]
        self.player.change(tracks=dict(zip(ids, self._sounds(self.stem.value), strict=True)))

    def _sort(self, change=None) -> None:
        self.table.value = table_html(self.comparison, sort_by=self.sort_by.value)

    def _ipython_display_(self) -> None:
        """The live view, then a static twin (table, plot, the player's offline copy)."""
        from .embed import display_with_twin
        from .player_page import offline_html

        caption = f"<p>Listen: the runs' {escape(self.stem.value)}</p>"
        html = self.table.value + self.plot.value + caption + offline_html(self.player)
        display_with_twin(self, html)
