"""Separation quality metrics."""

from __future__ import annotations

import numpy as np

from .errors import ParameterError

__all__ = ["sdr"]


def sdr(reference: np.ndarray, estimate: np.ndarray, *, eps: float = 1e-10) -> float:
    """Signal-to-distortion ratio in dB over the whole signal (the MDX challenge's "SDR").

    ``10 log10(sum(ref**2) / sum((ref - est)**2))``, all channels together (Mitsufuji et al.,
    "Music Demixing Challenge 2021", Frontiers in Signal Processing, 2022).

    Parameters
    ----------
    reference, estimate : np.ndarray [shape=(channels, frames)]

    Examples
    --------
    >>> ref = np.ones((2, 100), np.float32)
    >>> round(sdr(ref, 0.9 * ref), 1)
    20.0
    """
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ParameterError(
            f"Shapes differ: reference {reference.shape}, estimate {estimate.shape}."
        )
    num = np.sum(reference**2) + eps
    den = np.sum((reference - estimate) ** 2) + eps
    return float(10 * np.log10(num / den))
