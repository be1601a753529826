"""Metrics: closed forms, and agreement with museval (BSS Eval v4 reference) to 0.01 dB."""

from __future__ import annotations

import museval  # the reference implementation; make test installs it and the ffmpeg it needs
import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.dsp.metrics import bss_eval, evaluate, sdr, si_sdr


def museval_medians(refs, ests, rate, window=1.0):
    out = museval.evaluate(
        np.moveaxis(refs, 1, 2),
        np.moveaxis(ests, 1, 2),
        win=int(window * rate),
        hop=int(window * rate),
    )
    return {
        name: np.array([np.nanmedian(row) for row in values])
        for name, values in zip(("SDR", "ISR", "SIR", "SAR"), out, strict=True)
    }


def test_framewise_agreement_with_museval_including_silent_frames():
    rng = np.random.default_rng(1)
    refs = rng.standard_normal((3, 2, 5 * 4000))
    refs[1, :, 4000:8000] = 0  # a silent reference second: NaN frames in both
    ests = np.einsum("ij,jcn->icn", 0.7 * np.eye(3) + 0.1, refs)
    ests += 0.05 * rng.standard_normal(ests.shape)
    ests[2, :, 12000:16000] = 0  # and a silent estimate
    ours = bss_eval(refs, ests, window=4000, hop=4000)
    theirs = museval.evaluate(np.moveaxis(refs, 1, 2), np.moveaxis(ests, 1, 2), win=4000, hop=4000)
    for name, values in zip(("SDR", "ISR", "SIR", "SAR"), theirs, strict=True):
        np.testing.assert_array_equal(np.isnan(ours[name]), np.isnan(values))
        np.testing.assert_allclose(ours[name], values, atol=0.01, equal_nan=True)
    assert np.isnan(ours["SDR"][:, 1]).all() and np.isnan(ours["SDR"][:, 3]).all()


def test_demo_medians_agree_with_museval():
    mix, truth = bn.demo.load()
    estimate = bn.classical.hpss(mix)
    rest = estimate["harmonic"] / 3
    est = bn.Stems.from_dict(
        {"drums": estimate["percussive"], "bass": rest, "other": rest, "vocals": rest},
        mix.sample_rate,
    )
    table = evaluate(truth, est)
    ref = museval_medians(truth.data, est.data, mix.sample_rate)
    for k, stem in enumerate(truth.names):
        for metric in ("SDR", "SIR", "SAR", "ISR"):
            assert table.medians[stem][metric] == pytest.approx(ref[metric][k], abs=0.01)


def test_si_sdr_closed_form():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((2, 1000))
    noise = rng.standard_normal((2, 1000))
    noise -= (noise.ravel() @ ref.ravel()) / (ref.ravel() @ ref.ravel()) * ref  # orthogonal
    est = 0.5 * ref + 0.1 * noise
    expected = 10 * np.log10(np.sum((0.5 * ref) ** 2) / np.sum((0.1 * noise) ** 2))
    assert si_sdr(ref, est) == pytest.approx(expected, abs=1e-9)
    assert si_sdr(ref, 7 * est) == pytest.approx(expected, abs=1e-9)  # scale-invariant
    assert np.isnan(si_sdr(np.zeros((1, 10)), np.ones((1, 10))))


def test_sdr_closed_form():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 1000))
    err = 0.1 * rng.standard_normal((2, 1000))
    expected = 10 * np.log10(np.sum(ref**2) / np.sum(err**2))
    assert sdr(ref, ref + err) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(bn.ParameterError, match="Shapes differ"):
        sdr(ref, np.ones((1, 10)))


def test_evaluate_table():
    rng = np.random.default_rng(3)
    truth = bn.Stems(rng.standard_normal((2, 1, 3 * 8000)), ["a", "b"], 8000)
    est = bn.Stems(truth.data[::-1] * 0.1 + truth.data, ["a", "b"], 8000)
    table = evaluate(truth, est)
    assert {r["metric"] for r in table.records} == {"SDR", "SIR", "SAR", "ISR", "SI-SDR"}
    assert len(table.records) == 2 * 5 * 3
    assert "SI-SDR" in repr(table) and "<table>" in table._repr_html_()
    assert table.medians["a"]["SIR"] == pytest.approx(20.0, abs=0.5)
    with pytest.raises(bn.ParameterError, match="names differ"):
        evaluate(truth, bn.Stems(truth.data, ["a", "c"], 8000))


def test_evaluate_takes_references_first_and_refuses_a_detectable_swap():
    rng = np.random.default_rng(4)
    truth = bn.Stems(rng.standard_normal((2, 1, 2 * 8000)), ["a", "b"], 8000)
    noisy = truth.data + 0.3 * rng.standard_normal(truth.data.shape)
    separated = bn.Stems(noisy, ["a", "b"], 8000, info={"model": "htdemucs", "identity": "ab12"})
    table = evaluate(truth, separated)
    whole = si_sdr(truth["a"], separated["a"])
    assert table.medians["a"]["SI-SDR"] == pytest.approx(whole, abs=1.0)
    with pytest.raises(bn.ParameterError, match="look swapped"):
        evaluate(separated, truth)
