"""A comparison in a notebook: the table, quality against speed, and the runs in one player."""

from __future__ import annotations

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.evaluation.comparison import Comparison, Run
from bandscope_nb.notebook.compare_view import CompareView, quality_speed_png, table_html

RATE = 8000
NAMES = ["bass", "vocals"]


@pytest.fixture(scope="module")
def comparison():
    rng = np.random.default_rng(1)
    truth = bn.Stems(rng.standard_normal((2, 2, 2 * RATE)).astype(np.float32), NAMES, RATE)
    close = bn.Stems(truth.data + 0.1 * rng.standard_normal(truth.data.shape), NAMES, RATE)
    far = bn.Stems(truth.data + 1.0 * rng.standard_normal(truth.data.shape), NAMES, RATE)

    def metrics(stems):  # SDR for every measure: enough for the table and the plot
        return {
            n: dict.fromkeys(("SDR", "SIR", "SAR", "SI-SDR"), bn.metrics.sdr(truth[n], stems[n]))
            for n in NAMES
        }

    runs = [
        Run("far <b>", far, "separated", seconds=0.5, peak_mb=10.0, metrics=metrics(far)),
        Run("close", close, "separated", seconds=2.0, peak_mb=20.0, metrics=metrics(close)),
        Run("cached", close, "cache hit", metrics=metrics(close)),  # stored before timings
    ]
    return Comparison(runs, references=truth, mix=truth.mix())


def test_the_table_sorts_best_first_and_escapes_labels(comparison):
    html = table_html(comparison, sort_by="mean SDR")
    assert "far &lt;b&gt;" in html and "far <b>" not in html
    order = [label for label in ("close", "cached", "far &lt;b&gt;") if label in html]
    assert sorted(order, key=html.index) == ["close", "cached", "far &lt;b&gt;"]
    by_time = table_html(comparison, sort_by="seconds")
    assert by_time.index("far &lt;b&gt;") < by_time.index("close") < by_time.index("cached")
    by_speed = table_html(comparison, sort_by="realtime")  # no time known: last
    assert by_speed.index("far &lt;b&gt;") < by_speed.index("close") < by_speed.index("cached")
    with pytest.raises(bn.ParameterError, match="sort_by"):
        table_html(comparison, sort_by="colour")
    assert "against the true stems" in html
    assert ">× real time</th>" in html and ">realtime<" not in html  # the column's unit


def test_quality_against_speed_needs_references(comparison):
    assert quality_speed_png(comparison).startswith('<img alt="quality against speed"')
    unjudged = Comparison(list(comparison.runs.values()))
    assert quality_speed_png(unjudged) == ""
    assert "quality cannot be measured" in unjudged._repr_html_()


def test_the_speed_axis_and_legend_stay_readable():
    """A one-point frontier draws no line, so the legend does not name one; minor speed ticks
    are labelled at 2x and 5x only (all of them ran together as "8x9x10x")."""
    from matplotlib.figure import Figure

    from bandscope_nb.notebook.display import quality_speed

    ax = Figure().subplots()
    quality_speed(["model", "oracle"], [8.5, None], [4.0, 9.0], ax=ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oracle (no speed)"]
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = ax.xaxis.get_minorticklocs()
    labels = [t.get_text() for t in ax.xaxis.get_ticklabels(minor=True)]
    visible = {v: t for v, t in zip(ticks, labels, strict=True) if lo <= v <= hi}
    assert {6.0, 7.0, 8.0, 9.0} <= set(np.round(list(visible), 6))  # ticks there, unlabelled
    assert all(visible[v] == "" for v in visible if round(v) in (6, 7, 8, 9))
    both = Figure().subplots()
    quality_speed(["fast", "good"], [9.0, 2.0], [3.0, 5.0], ax=both)
    assert "frontier" in [t.get_text() for t in both.get_legend().get_texts()]


def test_every_run_of_a_stem_is_a_lane_and_a_new_stem_swaps_them_all(comparison):
    view = CompareView(comparison)
    player = view.player
    assert view.stem.value == "vocals" and player.lane_order == [
        "mix",
        "run 1",
        "run 2",
        "run 3",
        "true",
    ]
    assert player.lane_labels == {
        "run 1": "far <b>",
        "run 2": "close",
        "run 3": "cached",
        "true": "true stem",
    }
    assert not player.mixer and player.listen == "run 1"
    player.listen = "run 2"
    np.testing.assert_allclose(player.remix(), comparison["close"].stems["vocals"], atol=1e-6)
    sent = []
    player.send = lambda content, buffers=None: sent.append(content)
    view.stem.value = "bass"
    batches = {tuple(m["batch"]) for m in sent if m["type"] == "replace"}
    assert batches == {(1, 2, 3, 4)}  # every run and the true stem, swapped in at one moment
    np.testing.assert_allclose(player.remix(), comparison["close"].stems["bass"], atol=1e-6)
    player.listen = "true"
    np.testing.assert_allclose(player.remix(), comparison.references["bass"], atol=1e-6)
    view.sort_by.value = "seconds"
    assert view.table.value == table_html(comparison, sort_by="seconds")
    with pytest.raises(bn.ParameterError, match="Unknown stem"):
        CompareView(comparison, stem="drums")


def test_a_mix_of_runs_swaps_in_the_run_picked_for_one_stem(comparison):
    view = CompareView(comparison)
    assert view.mix_player is None and view.listening.children == (view.stem, view.player)
    view.player.playing = True
    view.mode.value = "mixed"
    mixer = view.mix_player
    assert not view.player.playing  # the hidden player is paused
    assert view.listening.children[1] is mixer and mixer.mixer
    assert mixer.lane_order == ["mix", "bass", "vocals"]
    assert [view.picks[n].value for n in NAMES] == ["run 1", "run 1"]
    assert [label for label, _ in view.picks["bass"].options] == [
        "far <b>",
        "close",
        "cached",
        "true stem",
    ]
    far, close = comparison["far <b>"].stems, comparison["close"].stems
    np.testing.assert_allclose(mixer.remix(), far.mix(), atol=1e-5)
    sent = []
    mixer.send = lambda content, buffers=None: sent.append(content)
    view.picks["vocals"].value = "run 2"
    assert {tuple(m["batch"]) for m in sent if m["type"] == "replace"} == {(2,)}  # vocals only
    assert mixer.lane_labels == {"bass": "bass · far <b>", "vocals": "vocals · close"}
    np.testing.assert_allclose(mixer.remix(), far["bass"] + close["vocals"], atol=1e-5)
    view.picks["bass"].value = "true"
    np.testing.assert_allclose(
        mixer.remix(), comparison.references["bass"] + close["vocals"], atol=1e-5
    )
    mixer.playing = True
    view.mode.value = "runs"
    assert not mixer.playing and view.listening.children == (view.stem, view.player)
    view.mode.value = "mixed"
    assert view.mix_player is mixer  # made once: the picks and the mixer's settings are kept
