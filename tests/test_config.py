"""SeparationConfig: validation, and one set of defaults for every entry point."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.cli import _parser
from bandscope_nb.notebook.report import run_report
from bandscope_nb.separation.config import DEFAULTS, SeparationConfig


def test_values_are_normalised_and_frozen():
    config = SeparationConfig(segment=np.int64(7), overlap=np.float32(0.5), shifts=np.int8(2))
    assert (config.segment, config.overlap, config.shifts) == (7.0, 0.5, 2)
    assert type(config.segment) is float and type(config.shifts) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.overlap = 0.1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"segment": 0}, "segment"),
        ({"segment": 61}, "segment"),
        ({"segment": float("inf")}, "finite"),
        ({"overlap": 1}, "overlap"),
        ({"overlap": "0.5"}, "overlap"),
        ({"shifts": 101}, "shifts"),
        ({"seed": 2**64}, "seed"),
        ({"batch_size": 0}, "batch_size"),
        ({"precision": "fp8"}, "precision"),
        ({"precision": None}, "precision"),
        ({"precision": ["fp32"]}, "precision"),
    ],
)
def test_invalid_values_name_the_option(kwargs, match):
    with pytest.raises(bn.ParameterError, match=match):
        SeparationConfig(**kwargs)


def defaults_of(function) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_api_cli_and_report_share_the_defaults():
    expected = DEFAULTS.as_dict()
    api = defaults_of(bn.Separator.__init__)
    assert {k: api[k] for k in expected} == expected
    report = defaults_of(run_report)
    assert {k: report[k] for k in ("segment", "overlap")} == {
        k: expected[k] for k in ("segment", "overlap")
    }
    separate = _parser().parse_args(["separate", "in.wav", "-o", "out"])
    assert (separate.segment, separate.overlap, separate.shifts) == (
        expected["segment"],
        expected["overlap"],
        expected["shifts"],
    )
    report_args = _parser().parse_args(["report"])
    assert (report_args.segment, report_args.overlap) == (expected["segment"], expected["overlap"])


def test_the_separator_keeps_its_config():
    sep = bn.Separator("classical", device="cpu", overlap=0.5, shifts=1, cache=False)
    assert sep.config == SeparationConfig(overlap=0.5, shifts=1)
