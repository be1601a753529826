"""SeparationConfig: validation, and one set of defaults for every entry point."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.cli import _config, _parser
from bandscope_nb.notebook.report import REPORT_DEFAULTS
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
    expected = DEFAULTS.options()
    api = defaults_of(bn.Separator.__init__)
    assert {k: api[k] for k in expected} == expected
    assert bn.Separator(cache=False).config == DEFAULTS
    separate = _parser().parse_args(["separate", "in.wav", "-o", "out"])
    assert _config(separate) == DEFAULTS
    # reports and the demo default to model="auto" (they must run offline); the rest is shared
    assert REPORT_DEFAULTS == DEFAULTS.replace(model="auto")
    assert _config(_parser().parse_args(["report"])) == REPORT_DEFAULTS
    assert _config(_parser().parse_args(["demo"])) == REPORT_DEFAULTS


def test_the_cli_builds_one_config_from_every_option():
    args = _parser().parse_args(
        "separate in.wav -o out --model classical --device CPU --segment 5 --overlap 0.5 "
        "--shifts 2 --seed 7 --batch-size 4 --precision bf16".split()
    )
    assert _config(args) == SeparationConfig(
        model="classical",
        device="cpu",
        segment=5.0,
        overlap=0.5,
        shifts=2,
        seed=7,
        batch_size=4,
        precision="bf16",
    )


def test_config_replace_checks_names_and_values():
    assert DEFAULTS.replace(overlap=0.5).overlap == 0.5
    with pytest.raises(bn.ParameterError, match="Unknown separation option"):
        DEFAULTS.replace(overlapp=0.5)
    with pytest.raises(bn.ParameterError, match="overlap"):
        DEFAULTS.replace(overlap=2)
    with pytest.raises(bn.DeviceError, match="Unknown device"):
        DEFAULTS.replace(device="gpu")
    with pytest.raises(bn.ParameterError, match="Invalid model"):
        SeparationConfig(model=3)


def test_the_separator_keeps_its_config():
    sep = bn.Separator("classical", device="cpu", overlap=0.5, shifts=1, cache=False)
    assert sep.config == SeparationConfig(model="classical", device="cpu", overlap=0.5, shifts=1)
