"""Comparisons: runs through the cached Separator, metrics, differences, ensembles, errors."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import RATE, noise

import bandscope_nb as bn
from bandscope_nb.dsp.metrics import evaluate, sdr
from bandscope_nb.evaluation import parse_run, sweep


@pytest.fixture
def counted(ht_model):
    """The tiny HTDemucs, with a count of its forward passes."""
    calls = []
    ht_model.register_forward_hook(lambda *args: calls.append(1))
    return ht_model, calls


@pytest.fixture
def clip():
    return noise(1.0, seed=3), RATE


def test_a_rerun_reads_the_cache_and_an_added_run_alone_is_computed(counted, clip, tmp_path):
    model, calls = counted
    runs = {"plain": {"model": model}, "overlap 0.5": {"model": model, "overlap": 0.5}}
    first = bn.compare(clip, runs, device="cpu", cache=tmp_path)
    assert [first[r].how for r in first] == ["separated", "separated"] and calls
    assert all(first[r].realtime > 0 and first[r].peak_mb is not None for r in first)
    calls.clear()
    more = {**runs, "shifted": {"model": model, "shifts": 1, "seed": 7}}
    second = bn.compare(clip, more, device="cpu", cache=tmp_path)
    assert [second[r].how for r in second] == ["cache hit", "cache hit", "separated"]
    # a cache hit's speed is the one stored when it was separated, never its read time
    assert second["plain"].seconds == first["plain"].seconds
    assert second["plain"].realtime == first["plain"].realtime
    assert second["plain"].call_seconds > 0
    assert second["plain"].peak_mb is None
    assert "Cache hits ('plain'; 'overlap 0.5') were read, not computed" in second.note
    assert "Cache hits" not in first.note
    added = len(calls)
    calls.clear()
    alone = bn.compare(clip, {"shifted": more["shifted"]}, device="cpu", cache=False)
    assert added == len(calls) > 0  # the second call ran the new run's passes and no others
    np.testing.assert_array_equal(second["plain"].stems.data, first["plain"].stems.data)
    np.testing.assert_allclose(second["shifted"].stems.data, alone["shifted"].stems.data)
    assert second["overlap 0.5"].options == {"model": model, "overlap": 0.5}


def test_classical_variants_are_runs_with_the_recipes_options(clip, tmp_path):
    runs = bn.sweep(model="classical", kernel_size=[5, 63])
    first = bn.compare(clip, runs, device="cpu", cache=tmp_path)
    short, long = (first[label].stems for label in ("kernel_size=5", "kernel_size=63"))
    assert short.info["model"] == "classical" and short.info["identity"] != long.info["identity"]
    assert not np.allclose(short.data, long.data)  # the option reached the recipe
    assert first.runs["kernel_size=5"].options == {"model": "classical", "kernel_size": 5}
    again = bn.compare(clip, runs, device="cpu", cache=tmp_path)
    assert [again[label].how for label in again] == ["cache hit", "cache hit"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "htdemucs", "width": 1.0}, "options of the classical separator; add model="),
        ({"model": "classical", "kernel_size": 2}, "Invalid kernel_size: 2; give an int in 3..255"),
        ({"model": "classical", "bass_cutoff": "low"}, "Invalid bass_cutoff: 'low'"),
    ],
)
def test_recipe_options_are_checked_before_anything_runs(clip, options, message):
    with pytest.raises(bn.ParameterError, match=f"Run 'variant': .*{message}"):
        bn.compare(clip, {"variant": options}, device="cpu", cache=False)


def test_with_references_every_run_gets_evaluates_medians(counted, clip):
    model, _ = counted
    truth = bn.Stems(np.stack([noise(1.0, seed=s) for s in range(4)]) / 4, model.sources, RATE)
    mix = (truth.mix(), RATE)
    given = bn.Stems(truth.data * 0.8, truth.names, RATE)
    result = bn.compare(
        mix, {"tiny": {"model": model}, "scaled truth": given}, references=truth, device="cpu"
    )
    for label in result:
        expected = evaluate(truth, result[label].stems).medians
        for name in truth.names:
            for measure in ("SDR", "SIR", "SAR", "SI-SDR"):
                got = result[label].metrics[name][measure]
                assert got == pytest.approx(expected[name][measure], nan_ok=True)
    rows = {row["run"]: row for row in result.table()}
    assert rows["scaled truth"]["mean SDR"] > rows["tiny"]["mean SDR"]
    assert rows["scaled truth"]["how"] == "given" and rows["scaled truth"]["seconds"] is None
    assert "against the true stems" in result.note and "mean SDR" in repr(result)
    silent = bn.Stems(np.zeros_like(truth.data), truth.names, RATE)
    with_silence = result.add("silent", silent)
    assert np.isnan(with_silence["silent"].metrics["drums"]["SDR"])
    assert "No SDR for 'silent' (drums), 'silent' (bass)" in with_silence.note


def test_progress_names_each_separation_and_scoring_and_ends_complete(counted, clip, capsys):
    model, _ = counted
    truth = bn.Stems(np.stack([noise(1.0, seed=s) for s in range(4)]) / 4, model.sources, RATE)
    given = bn.Stems(truth.data * 0.8, truth.names, RATE)
    runs = {"tiny": {"model": model}, "scaled truth": given}
    bn.compare((truth.mix(), RATE), runs, references=truth, device="cpu", progress=True)
    err = capsys.readouterr().err
    order = ["separating tiny", "scoring tiny", "scoring scaled truth", "compared"]
    assert [err.index(step) for step in order] == sorted(err.index(step) for step in order)
    assert "3/3" in err.split("compared")[-1]  # one separation, two scorings
    assert "separating scaled truth" not in err  # given stems are not separated
    bn.compare((truth.mix(), RATE), {"given": given}, device="cpu", progress=True)
    assert "compar" not in capsys.readouterr().err  # nothing to separate or score: no bar


def test_without_references_it_says_how_much_runs_differ_and_why_no_quality(counted, clip):
    model, _ = counted
    result = bn.compare(clip, {"a": {"model": model}, "b": {"model": model, "overlap": 0.5}})
    diff = result.differences()
    for name in model.sources:
        expected = sdr(result["a"].stems[name], result["b"].stems[name])
        assert diff[name][0, 1] == pytest.approx(expected) and np.isnan(diff[name][0, 0])
    rows = result.table()
    assert "mean SDR" not in rows[0] and rows[0]["vs a"] is None
    assert rows[1]["vs a"] == pytest.approx(np.mean([diff[n][0, 1] for n in model.sources]))
    assert "quality cannot be measured" in result.note


def test_ensembles_join_a_comparison_like_any_run(counted, clip):
    model, _ = counted
    result = bn.compare(clip, {"a": {"model": model}, "b": {"model": model, "overlap": 0.5}})
    with_mean = result.ensemble(["a", "b"], method="median")
    row = with_mean["median(a, b)"]
    assert row.how == "ensemble" and len(with_mean) == 3 and len(result) == 2
    expected = bn.ensemble([result["a"].stems, result["b"].stems], method="median")
    np.testing.assert_allclose(row.stems.data, expected.data)
    with pytest.raises(bn.ParameterError, match="already labelled"):
        with_mean.ensemble(["a", "b"], method="median")
    with pytest.raises(bn.ParameterError, match="No run 'c'"):
        result.ensemble(["a", "c"])


def test_everything_is_checked_before_any_separation(counted, clip, tmp_path):
    model, calls = counted
    good = {"model": model}
    with pytest.raises(bn.ParameterError, match="Run 'b': unknown option"):
        bn.compare(clip, {"a": good, "b": {"model": model, "overlaps": 0.5}})
    with pytest.raises(bn.ParameterError, match=r"Run 'b'.*overlap"):
        bn.compare(clip, {"a": good, "b": {"model": model, "overlap": 2.0}})
    with pytest.raises(bn.ParameterError, match="does not exist"):
        bn.compare(clip, {"a": good}, references=tmp_path / "nowhere")
    with pytest.raises(bn.ModelUnavailableError, match="Run 'b'"):
        bn.compare(clip, {"a": good, "b": {"model": tmp_path / "missing.th"}})
    with pytest.raises(bn.ParameterError, match="runs"):
        bn.compare(clip, {})
    assert calls == []  # not one forward pass
    other = bn.Stems(np.zeros((4, 2, 100), np.float32), model.sources, RATE)
    with pytest.raises(bn.ParameterError, match="not a separation of the same audio"):
        bn.compare(clip, {"a": good, "short": other}, device="cpu")


def test_sweeps_and_command_line_runs():
    runs = sweep(model="classical", overlap=[0.1, 0.5], shifts=2)
    assert list(runs) == ["overlap=0.1", "overlap=0.5"]
    assert runs["overlap=0.5"] == {"model": "classical", "overlap": 0.5, "shifts": 2}
    assert list(sweep(model="classical")) == ["model=classical"]
    with pytest.raises(bn.ParameterError, match="unknown option"):
        sweep(modle=["a"])
    with pytest.raises(bn.ParameterError, match="non-empty"):
        sweep(model=[])
    assert parse_run("x:model=htdemucs,shifts=2,segment=none") == (
        "x",
        {"model": "htdemucs", "shifts": 2, "segment": None},
    )
    for bad in ("nolabel", ":model=a", "x:model", "x:"):
        with pytest.raises(bn.ParameterError, match="Invalid run"):
            parse_run(bad)
