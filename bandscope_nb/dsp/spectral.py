"""Short-time Fourier transforms of ``(..., frames)`` audio, shared by the separators and masks."""

from __future__ import annotations

import numpy as np

__all__ = ["istft", "stft"]


def stft(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Complex STFT over the last axis (librosa): ``(..., n_fft // 2 + 1, windows)``.

    Examples
    --------
    >>> stft(np.zeros((2, 4096), np.float32)).shape
    (2, 1025, 9)
    """
    import librosa

    return librosa.stft(y, n_fft=n_fft, hop_length=hop_length)


def istft(spec: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512, length: int) -> np.ndarray:
    """Inverse of :func:`stft`, trimmed or padded to ``length`` frames, as float32.

    Examples
    --------
    >>> y = np.random.default_rng(0).standard_normal((1, 4096)).astype(np.float32)
    >>> bool(np.allclose(istft(stft(y), length=4096), y, atol=1e-5))
    True
    """
    import librosa

    return librosa.istft(spec, n_fft=n_fft, hop_length=hop_length, length=length).astype(np.float32)
