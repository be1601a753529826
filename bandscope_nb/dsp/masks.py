"""Oracle masks: the best a time-frequency mask can do when the true stems are known.

They are upper bounds for mask-based separators, computed from the true stems' STFTs
(Vincent et al., "Oracle estimators for the benchmarking of source separation algorithms",
Signal Processing 87(8), 2007; the SiSEC/MUSDB oracle baselines):

- ``"ibm"``, ideal binary mask: each time-frequency bin goes wholly to the loudest stem;
- ``"irm"``, ideal ratio mask: ``|S_j|^p / sum_k |S_k|^p`` (``power`` p = 1 magnitude, 2 power);
- ``"wiener"``, the oracle multichannel Wiener filter: per-stem power spectra ``v_j(f, t)`` and
  spatial covariances ``R_j(f)`` from the true stems, then ``v_j R_j (sum_k v_k R_k)^-1 x``.

Every mask is applied to the mixture's STFT; the masked estimates are returned as
:class:`~bandscope_nb.stems.Stems`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..audio import as_audio
from ..errors import ParameterError
from ..stems import Stems
from .spectral import istft, stft

__all__ = ["OracleResult", "apply_stem_mask", "check_references", "oracle_masks", "stem_mask"]

KINDS = ("ibm", "irm", "wiener")
_EPS = 1e-10


class OracleResult(NamedTuple):
    """Masks and masked estimates.

    ``masks[name]`` is ``(channels, freqs, frames)`` for ``"ibm"`` / ``"irm"``, and the
    ``(freqs, frames, channels, channels)`` Wiener gain matrix for ``"wiener"``.
    """

    masks: dict[str, np.ndarray]
    estimates: Stems


def _wiener_gains(specs: np.ndarray) -> np.ndarray:
    """Oracle multichannel Wiener gains from true stem STFTs ``(sources, C, F, T)``.

    Computed in double precision; the mixture covariance of every bin gets a diagonal loading
    of 1e-6 of its own energy (plus a floor), so silent bins and single-source bins, whose
    covariance is singular, stay invertible.
    """
    specs = specs.astype(np.complex128)
    channels = specs.shape[1]
    power = np.mean(np.abs(specs) ** 2, axis=1)  # v_j(f, t): (S, F, T)
    # R_j(f) = sum_t S_j S_j^H / sum_t v_j   -> (S, F, C, C)
    cov = np.einsum("scft,sdft->sfcd", specs, specs.conj())
    cov /= np.sum(power, axis=-1)[..., None, None] + _EPS
    model = power[..., None, None] * cov[:, :, None]  # v_j R_j: (S, F, T, C, C)
    total = model.sum(axis=0)
    load = 1e-6 * np.trace(total, axis1=-2, axis2=-1).real / channels + _EPS
    total = total + load[..., None, None] * np.eye(channels)
    return model @ np.linalg.inv(total)[None]


def _ratio_masks(mags: np.ndarray, power: float) -> np.ndarray:
    """``|S_j|^p / sum_k |S_k|^p`` for every stem of ``(sources, ..., F, T)`` magnitudes; bins
    where every stem is silent are shared evenly, so the masks always sum to 1."""
    p = mags**power
    total = p.sum(axis=0, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1), 1 / len(p))


def stem_mask(
    magnitudes: np.ndarray,
    index: int,
    *,
    kind: str = "irm",
    power: float = 1.0,
    threshold_db: float = 0.0,
) -> np.ndarray:
    """One stem's oracle mask from the true stems' STFT magnitudes, with its teaching parameter.

    - ``"irm"``: ``|S_j|^p / sum_k |S_k|^p``; ``power=2`` is the single-channel Wiener-style
      soft mask;
    - ``"ibm"``: 1 where the stem is louder than all the others together by more than
      ``threshold_db`` (the "local criterion" of Wang, "On ideal binary mask as the
      computational goal of auditory scene analysis", 2005), else 0.

    Parameters
    ----------
    magnitudes : np.ndarray [shape=(sources, ..., freqs, frames)]
    index : int
        Which stem.

    Returns
    -------
    np.ndarray [shape=magnitudes.shape[1:]]
        Values in [0, 1].

    Examples
    --------
    >>> mags = np.array([[[3.0, 1.0]], [[1.0, 1.0]]])  # 2 stems, 1 bin, 2 frames
    >>> stem_mask(mags, 0, kind="irm").tolist()
    [[0.75, 0.5]]
    >>> stem_mask(mags, 0, kind="ibm", threshold_db=6.0).tolist()
    [[1.0, 0.0]]
    """
    if kind not in ("ibm", "irm"):
        raise ParameterError(f"Invalid kind: {kind!r}; a stem mask is 'ibm' or 'irm'.")
    if not power > 0:
        raise ParameterError(f"Invalid power: {power!r}; it must be > 0.")
    if not 0 <= index < len(magnitudes):
        raise ParameterError(f"Invalid stem index {index}; there are {len(magnitudes)} stems.")
    if kind == "irm":
        return _ratio_masks(magnitudes, power)[index]
    target = magnitudes[index].astype(np.float64) ** 2
    rest = (magnitudes.astype(np.float64) ** 2).sum(axis=0) - target
    return (target > 10 ** (threshold_db / 10) * rest).astype(np.float32)


def apply_stem_mask(
    spec: np.ndarray,
    magnitudes: np.ndarray,
    index: int,
    *,
    kind: str = "irm",
    power: float = 1.0,
    threshold_db: float = 0.0,
    n_fft: int = 2048,
    hop_length: int = 512,
    length: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask the mixture with one stem's oracle mask (:func:`stem_mask`) and resynthesise it.

    Parameters
    ----------
    spec : np.ndarray [shape=(channels, freqs, frames)], complex
        The mixture's STFT (:func:`~bandscope_nb.dsp.spectral.stft`).
    magnitudes : np.ndarray [shape=(sources, channels, freqs, frames)]
        The true stems' STFT magnitudes.
    index : int
        Which stem.
    kind, power, threshold_db
        As for :func:`stem_mask`.
    n_fft, hop_length, length : int
        The STFT's parameters and the signal's length in frames.

    Returns
    -------
    mask : np.ndarray [shape=(channels, freqs, frames)]
    estimate : np.ndarray [shape=(channels, length)], float32

    Examples
    --------
    >>> from bandscope_nb.dsp.spectral import stft
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.standard_normal((2, 1, 8000)).astype(np.float32)
    >>> mix = truth.sum(axis=0)
    >>> mask, estimate = apply_stem_mask(stft(mix), np.abs(stft(truth)), 0, length=8000)
    >>> mask.shape, estimate.shape
    ((1, 1025, 16), (1, 8000))
    """
    mask = stem_mask(magnitudes, index, kind=kind, power=power, threshold_db=threshold_db)
    estimate = istft(mask * spec, n_fft=n_fft, hop_length=hop_length, length=length)
    return mask, estimate


def check_references(mix, references: Stems, sample_rate=None):
    """The mix as :class:`~bandscope_nb.audio.Audio`, checked against the true stems' shape and
    rate (:class:`ParameterError` when they differ).

    Examples
    --------
    >>> truth = Stems(np.zeros((2, 1, 8)), ["a", "b"], 8000)
    >>> check_references(np.zeros((1, 8)), truth, 8000).frames
    8
    """
    mix = as_audio(mix, sample_rate)
    if references.data.shape[1:] != mix.samples.shape or references.sample_rate != mix.sample_rate:
        raise ParameterError(
            f"References {references.data.shape[1:]} at {references.sample_rate} Hz do not match "
            f"the mix {mix.samples.shape} at {mix.sample_rate} Hz."
        )
    return mix


def oracle_masks(
    mix,
    references: Stems,
    *,
    kind: str = "irm",
    power: float = 1.0,
    sample_rate=None,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> OracleResult:
    """Compute an oracle mask per stem from the true stems and apply it to the mixture.

    Parameters
    ----------
    mix : Audio, (np.ndarray, int), np.ndarray [shape=(channels, frames)] or path
    references : Stems
        The true stems, at the mixture's rate and shape.
    kind : {"ibm", "irm", "wiener"}
    power : float
        Exponent of the ideal ratio mask (``kind="irm"`` only).
    sample_rate : int or None
        Needed when ``mix`` is a bare array.

    Returns
    -------
    OracleResult
        ``masks`` (see :class:`OracleResult`) and ``estimates``; the IBM and IRM masks sum to 1
        in every bin.

    Examples
    --------
    >>> import numpy as np, bandscope_nb as bn
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.standard_normal((2, 1, 8000)).astype(np.float32)
    >>> truth = bn.Stems.from_dict({"a": a, "b": b}, 8000)
    >>> result = oracle_masks(a + b, truth, kind="ibm", sample_rate=8000)
    >>> sorted(result.masks), result.estimates.names
    (['a', 'b'], ('a', 'b'))
    """
    if kind not in KINDS:
        raise ParameterError(f"Invalid kind: {kind!r}; choose one of {KINDS}.")
    if not power > 0:
        raise ParameterError(f"Invalid power: {power!r}; it must be > 0.")
    mix = check_references(mix, references, sample_rate)
    x = stft(mix.samples, n_fft=n_fft, hop_length=hop_length)
    specs = stft(np.asarray(references.data), n_fft=n_fft, hop_length=hop_length)  # (S, C, F, T)
    if kind == "wiener":
        gains = _wiener_gains(specs)  # (S, F, T, C, C)
        est_specs = np.einsum("sftcd,dft->scft", gains, x)
        masks = dict(zip(references.names, gains, strict=True))
    else:
        mags = np.abs(specs)
        if kind == "ibm":
            m = (mags == mags.max(axis=0, keepdims=True)).astype(np.float32)
            m /= m.sum(axis=0, keepdims=True)  # ties split evenly, so masks still sum to 1
        else:
            m = _ratio_masks(mags, power)
        est_specs = m * x[None]
        masks = dict(zip(references.names, m, strict=True))
    estimates = np.stack(
        [istft(s, n_fft=n_fft, hop_length=hop_length, length=mix.frames) for s in est_specs]
    )
    info = {"model": f"oracle {kind}" + (f" (power {power:g})" if kind == "irm" else "")}
    return OracleResult(masks, Stems(estimates, references.names, mix.sample_rate, info=info))
