"""The STFT pair shared by the separators, masks and widgets."""

from __future__ import annotations

import numpy as np
import pytest

from bandscope_nb.dsp.spectral import istft, stft


def test_round_trip_with_keyword_options():
    y = np.random.default_rng(0).standard_normal((2, 6000)).astype(np.float32)
    spec = stft(y, n_fft=1024, hop_length=256)
    assert spec.shape == (2, 513, 6000 // 256 + 1)
    back = istft(spec, n_fft=1024, hop_length=256, length=6000)
    assert back.dtype == np.float32 and np.allclose(back, y, atol=1e-5)


def test_options_are_keyword_only():
    y = np.zeros((1, 4096), np.float32)
    with pytest.raises(TypeError):
        stft(y, 1024)
    with pytest.raises(TypeError):
        istft(stft(y), 2048, 512, 4096)
