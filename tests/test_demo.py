"""The bundled demo song."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import bandscope_nb as bn


def test_mix_is_the_exact_sum_of_the_stems():
    mix, truth = bn.demo.load()
    assert truth.names == ("drums", "bass", "other", "vocals")
    assert mix.sample_rate == truth.sample_rate == 44100 and mix.channels == 2
    assert 20.0 <= mix.duration <= 40.0
    np.testing.assert_allclose(truth.mix(), mix.samples, atol=1e-5)
    ints = {
        n: sf.read(bn.demo.path(n), dtype="int16")[0].astype(np.int32)
        for n in ("mix", *truth.names)
    }
    np.testing.assert_array_equal(ints["mix"], sum(ints[n] for n in truth.names))


def test_every_stem_has_sound_and_files_are_small():
    _, truth = bn.demo.load()
    for name in truth.names:
        assert np.sqrt(np.mean(truth[name] ** 2)) > 0.01, name
    total = sum(bn.demo.path(n).stat().st_size for n in ("mix", *truth.names))
    assert total <= 5_000_000
    assert bn.demo.path().parent.joinpath("song.json").is_file()


def test_unknown_stem():
    with pytest.raises(KeyError, match="piano"):
        bn.demo.path("piano")
