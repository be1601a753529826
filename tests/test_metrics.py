"""Metrics against their closed forms."""

from __future__ import annotations

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.metrics import sdr


def test_sdr_closed_form():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 1000))
    err = 0.1 * rng.standard_normal((2, 1000))
    expected = 10 * np.log10(np.sum(ref**2) / np.sum(err**2))
    assert sdr(ref, ref + err) == pytest.approx(expected, abs=1e-9)


def test_sdr_perfect_and_shape_mismatch():
    ref = np.ones((1, 10))
    assert sdr(ref, ref) > 100
    with pytest.raises(bn.ParameterError, match="Shapes differ"):
        sdr(ref, np.ones((2, 10)))
