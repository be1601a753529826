"""Ensembles of separations: each rule against a numpy reference, and mismatched members."""

from __future__ import annotations

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.dsp.ensemble import ensemble
from bandscope_nb.dsp.spectral import istft, stft

RATE = 8000
NAMES = ["drums", "bass"]


def run(seed: int, frames: int = 2 * RATE) -> bn.Stems:
    rng = np.random.default_rng(seed)
    return bn.Stems(rng.standard_normal((2, 2, frames)).astype(np.float32), NAMES, RATE)


@pytest.mark.parametrize("method", ["mean", "median", "max_spec", "min_spec"])
def test_an_ensemble_of_identical_runs_is_the_run(method):
    one = run(0)
    together = ensemble([one, one, one], method=method)
    assert together.names == one.names and together.info["ensemble"] == method
    np.testing.assert_allclose(together.data, one.data, atol=1e-4)


def test_mean_and_median_are_numpys_per_sample():
    runs = [run(seed) for seed in range(3)]
    stacked = np.stack([r.data for r in runs])
    np.testing.assert_allclose(ensemble(runs).data, stacked.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(
        ensemble(runs, method="median").data, np.median(stacked, axis=0), atol=1e-6
    )
    weighted = ensemble({"a": runs[0], "b": runs[1]}, weights=[1, 3])
    np.testing.assert_allclose(weighted.data, 0.25 * runs[0].data + 0.75 * runs[1].data, atol=1e-6)
    assert weighted.info["members"] == ["a", "b"] and weighted.info["weights"] == [0.25, 0.75]


@pytest.mark.parametrize(("method", "pick"), [("max_spec", np.argmax), ("min_spec", np.argmin)])
def test_spectral_rules_take_each_bin_from_the_run_it_names(method, pick):
    runs = [run(seed) for seed in range(3)]
    together = ensemble(runs, method=method, n_fft=512, hop_length=128)
    for s, name in enumerate(NAMES):
        for channel in range(2):
            specs = np.stack([stft(r[name][channel], n_fft=512, hop_length=128) for r in runs])
            index = pick(np.abs(specs), axis=0)
            best = np.choose(index, specs)  # bin by bin, the chosen run's complex value
            expected = istft(best, n_fft=512, hop_length=128, length=2 * RATE)
            np.testing.assert_allclose(together.data[s, channel], expected, atol=1e-5)
    # one sound at two levels: max keeps the louder, min the quieter, exactly
    loud = run(5)
    quiet = bn.Stems(0.5 * loud.data, NAMES, RATE)
    expected = loud.data if method == "max_spec" else quiet.data
    np.testing.assert_allclose(ensemble([quiet, loud], method=method).data, expected, atol=1e-4)


def test_members_must_be_separations_of_the_same_audio():
    one = run(0)
    with pytest.raises(bn.ParameterError, match="the same stems"):
        ensemble([one, bn.Stems(one.data, ["drums", "vocals"], RATE)])
    with pytest.raises(bn.ParameterError, match="frames"):
        ensemble({"a": one, "short": run(1, frames=RATE)})
    with pytest.raises(bn.ParameterError, match="16000 Hz"):
        ensemble([one, bn.Stems(one.data, NAMES, 16000)])
    with pytest.raises(bn.ParameterError, match="not Stems"):
        ensemble([one, one.data])
    with pytest.raises(bn.ParameterError, match="method"):
        ensemble([one], method="max")
    with pytest.raises(bn.ParameterError, match="mean' only"):
        ensemble([one, one], method="median", weights=[1, 2])
    with pytest.raises(bn.ParameterError, match="weights"):
        ensemble([one, one], weights=[1, -1])
    with pytest.raises(bn.ParameterError, match="at least one"):
        ensemble([])
