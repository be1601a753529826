"""Stems: mapping access, mixing, residuals, atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import bandscope_nb as bn


@pytest.fixture
def stems():
    data = np.stack([np.full((2, 100), v, np.float32) for v in (0.1, 0.2, 0.3)])
    return bn.Stems(data, ["a", "b", "c"], 8000, info={"model": "m"})


def test_mapping(stems):
    assert stems.names == ("a", "b", "c") and list(stems) == ["a", "b", "c"] and len(stems) == 3
    assert stems["b"].shape == (2, 100) and stems.duration == 100 / 8000
    with pytest.raises(KeyError, match="No stem 'x'"):
        stems["x"]
    assert "model='m'" in repr(stems)


def test_mix_remix_residual(stems):
    np.testing.assert_allclose(stems.mix(), 0.6)
    np.testing.assert_allclose(stems.remix({"a": 0.0, "c": 2.0}), 0.8)
    with pytest.raises(bn.ParameterError, match="Unknown stem"):
        stems.remix({"vocals": 0.0})
    np.testing.assert_allclose(stems.residual(np.ones((2, 100)), sample_rate=8000), 0.4)
    with pytest.raises(bn.ParameterError, match="does not match"):
        stems.residual(np.ones((2, 99)), sample_rate=8000)


def test_constructor_checks():
    with pytest.raises(bn.ParameterError, match="3 sources"):
        bn.Stems(np.zeros((2, 1, 4)), ["a", "b", "c"], 8000)
    with pytest.raises(bn.ParameterError, match="unique"):
        bn.Stems(np.zeros((2, 1, 4)), ["a", "a"], 8000)
    with pytest.raises(bn.ParameterError, match="one shape"):
        bn.Stems.from_dict({"a": np.zeros((1, 4)), "b": np.zeros((1, 5))}, 8000)


def test_save_and_overwrite(stems, tmp_path):
    paths = stems.save(tmp_path, format="wav")
    assert sorted(p.name for p in paths.values()) == ["a.wav", "b.wav", "c.wav"]
    np.testing.assert_allclose(sf.read(paths["c"], dtype="float32")[0].T, 0.3)
    with pytest.raises(bn.ParameterError, match="overwrite=True"):
        stems.save(tmp_path, format="wav")
    stems.save(tmp_path, format="wav", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "c.wav"]


def test_flac_round_trip(stems, tmp_path):
    paths = stems.save(tmp_path, format="flac", prefix="song_")
    assert paths["a"].name == "song_a.flac"
    np.testing.assert_allclose(sf.read(paths["a"])[0].T, 0.1, atol=1e-6)
