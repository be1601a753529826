"""Ensembles: several separations of one song combined into one, from stems already computed.

No model runs here. The rules are the ones quality-first separators offer:

- ``"mean"``: the (weighted) average of the waveforms; it keeps what the runs agree on and
  averages out their independent errors.
- ``"median"``: the sample-wise median of the waveforms; one run's outlier does not move it.
- ``"max_spec"`` / ``"min_spec"``: per time-frequency bin of each stem, the run whose STFT has
  the largest (smallest) magnitude, with its phase, then the inverse STFT. ``max_spec`` keeps
  every component any run found (fuller, more bleed); ``min_spec`` keeps only what all runs
  found (cleaner, thinner). This is Ultimate Vocal Remover's "Max Spec" / "Min Spec" ensemble.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ParameterError
from ..stems import Stems
from .spectral import istft, stft

__all__ = ["METHODS", "ensemble"]

METHODS = ("mean", "median", "max_spec", "min_spec")


def _members(stems_list) -> tuple[list[str], list[Stems]]:
    """Labels and stems from a sequence or a ``{label: Stems}`` mapping, checked alike."""
    if isinstance(stems_list, Mapping):
        labels, members = [str(k) for k in stems_list], list(stems_list.values())
    elif isinstance(stems_list, Sequence) and not isinstance(stems_list, str | bytes):
        members = list(stems_list)
        labels = [
            str(s.info.get("model", f"run {i}")) if isinstance(s, Stems) else f"run {i}"
            for i, s in enumerate(members)
        ]
    else:
        raise ParameterError(
            f"Give a list of Stems or a {{label: Stems}} dict, not {stems_list!r}."
        )
    if not members:
        raise ParameterError("An ensemble needs at least one separation.")
    first = members[0]
    for label, stems in zip(labels, members, strict=True):
        if not isinstance(stems, Stems):
            raise ParameterError(f"Member {label!r} is a {type(stems).__name__}, not Stems.")
        if set(stems.names) != set(first.names):
            raise ParameterError(
                f"Member {label!r} has stems {stems.names}, the first {first.names}: an "
                "ensemble combines separations into the same stems."
            )
        if (stems.sample_rate, stems.channels, stems.frames) != (
            first.sample_rate,
            first.channels,
            first.frames,
        ):
            raise ParameterError(
                f"Member {label!r} is {stems.channels} channels x {stems.frames} frames at "
                f"{stems.sample_rate} Hz; the first is {first.channels} x {first.frames} at "
                f"{first.sample_rate} Hz: separate the same audio with each."
            )
    return labels, members


def _weights(weights, count: int) -> np.ndarray:
    if weights is None:
        return np.full(count, 1.0 / count)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (count,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ParameterError(
            f"Invalid weights: {weights!r}; give {count} non-negative numbers, not all zero."
        )
    return w / w.sum()


def _by_spectrum(signals: np.ndarray, pick, n_fft: int, hop_length: int) -> np.ndarray:
    """``(runs, channels, frames)`` -> ``(channels, frames)``: each bin from the run ``pick``
    (``np.argmax`` or ``np.argmin``) chooses by magnitude, one channel at a time."""
    out = np.empty(signals.shape[1:], np.float32)
    for channel in range(signals.shape[1]):
        spec = stft(signals[:, channel], n_fft=n_fft, hop_length=hop_length)  # (runs, F, T)
        chosen = pick(np.abs(spec), axis=0)[None]
        best = np.take_along_axis(spec, chosen, axis=0)[0]
        out[channel] = istft(best, n_fft=n_fft, hop_length=hop_length, length=signals.shape[-1])
    return out


def ensemble(
    stems_list,
    *,
    method: str = "mean",
    weights=None,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> Stems:
    """Combine separations of the same audio into one (no inference).

    Parameters
    ----------
    stems_list : list of Stems or dict of str to Stems
        Separations of one song: the same stem names, rate, channels and length.
    method : {"mean", "median", "max_spec", "min_spec"}
        See the module notes.
    weights : sequence of float or None
        Per member, for ``"mean"`` only (normalised to sum to one).
    n_fft, hop_length : int
        The STFT of the spectral methods.

    Returns
    -------
    Stems
        In the first member's stem order; ``info`` names the method, members and weights.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> rng = np.random.default_rng(0)
    >>> a = bn.Stems(rng.standard_normal((2, 1, 8000)), ["x", "y"], 8000)
    >>> b = bn.Stems(a.data + 1.0, ["x", "y"], 8000)
    >>> both = ensemble({"a": a, "b": b}, weights=[3, 1])
    >>> bool(np.allclose(both.data, a.data + 0.25, atol=1e-6)), both.info["ensemble"]
    (True, 'mean')
    """
    if method not in METHODS:
        raise ParameterError(f"Invalid method: {method!r}; choose one of {METHODS}.")
    labels, members = _members(stems_list)
    if weights is not None and method != "mean":
        raise ParameterError(f"weights apply to method='mean' only, not {method!r}.")
    w = _weights(weights, len(members))
    names = members[0].names
    out = []
    for name in names:
        signals = np.stack([np.asarray(s[name], dtype=np.float32) for s in members])
        if method == "mean":
            out.append(np.tensordot(w, signals, axes=1).astype(np.float32))
        elif method == "median":
            out.append(np.median(signals, axis=0).astype(np.float32))
        else:
            pick = np.argmax if method == "max_spec" else np.argmin
            out.append(_by_spectrum(signals, pick, n_fft, hop_length))
    info = {"ensemble": method, "members": labels}
    if method == "mean":
        info["weights"] = [round(float(x), 6) for x in w]
    return Stems(np.stack(out), names, members[0].sample_rate, info=info)
