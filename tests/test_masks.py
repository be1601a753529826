"""Oracle masks: sums, exponents, the Wiener filter, and input checks."""

from __future__ import annotations

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.dsp.masks import oracle_masks

SR = 8000


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, SR)).astype(np.float32)
    t = np.arange(SR) / SR
    b = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)]).astype(
        np.float32
    )
    return a + b, bn.Stems.from_dict({"noise": a, "tone": b}, SR)


@pytest.mark.parametrize(("kind", "power"), [("ibm", 1.0), ("irm", 1.0), ("irm", 2.0)])
def test_scalar_masks_sum_to_one_and_estimates_to_the_mix(kind, power, pair):
    mix, truth = pair
    result = oracle_masks(
        mix, truth, kind=kind, power=power, sample_rate=SR, n_fft=512, hop_length=128
    )
    total = sum(result.masks.values())
    np.testing.assert_allclose(total, 1.0, atol=1e-5)
    np.testing.assert_allclose(result.estimates.mix(), mix, atol=1e-4)
    if kind == "ibm":
        assert set(np.unique(result.masks["tone"])) <= {0.0, 0.5, 1.0}


def test_irm_power_sharpens_the_mask(pair):
    mix, truth = pair
    soft = oracle_masks(mix, truth, kind="irm", power=1.0, sample_rate=SR)
    sharp = oracle_masks(mix, truth, kind="irm", power=4.0, sample_rate=SR)

    def spread(m):
        return float(np.mean(np.abs(m - 0.5)))

    assert spread(sharp.masks["tone"]) > spread(soft.masks["tone"])


def test_wiener_gains_and_estimates(pair):
    mix, truth = pair
    result = oracle_masks(mix, truth, kind="wiener", sample_rate=SR, n_fft=512, hop_length=128)
    gains = result.masks["tone"]
    assert gains.shape[-2:] == (2, 2)
    total = sum(result.masks.values())
    # Sums to the identity up to the diagonal loading (1e-6 of a bin's energy) in singular bins.
    np.testing.assert_allclose(total, np.broadcast_to(np.eye(2), total.shape), atol=1e-3)
    np.testing.assert_allclose(result.estimates.mix(), mix, atol=1e-3)
    tone = result.estimates["tone"]
    err = np.sum((tone - truth["tone"]) ** 2) / np.sum(truth["tone"] ** 2)
    assert err < 0.05


def test_invalid_arguments(pair):
    mix, truth = pair
    with pytest.raises(bn.ParameterError, match="kind"):
        oracle_masks(mix, truth, kind="magic", sample_rate=SR)
    with pytest.raises(bn.ParameterError, match="power"):
        oracle_masks(mix, truth, power=0, sample_rate=SR)
    with pytest.raises(bn.ParameterError, match="do not match"):
        oracle_masks(mix[:, :-1], truth, sample_rate=SR)


def test_masks_sum_to_one_even_where_every_stem_is_silent():
    rng = np.random.default_rng(1)
    a = np.zeros((1, 4 * SR), np.float32)
    a[:, :SR] = rng.standard_normal((1, SR))
    b = np.zeros_like(a)
    b[:, SR : 2 * SR] = rng.standard_normal((1, SR))  # the last two seconds are silent
    truth = bn.Stems.from_dict({"a": a, "b": b}, SR)
    for kind in ("ibm", "irm"):
        masks = oracle_masks(a + b, truth, kind=kind, sample_rate=SR).masks
        np.testing.assert_allclose(masks["a"] + masks["b"], 1.0, atol=1e-6)
