"""Separation quality metrics: BSS Eval v4 (SDR, ISR, SIR, SAR), SI-SDR and the global SDR.

BSS Eval v4 is the SiSEC 2018 / MUSDB18 convention (Liutkus, Stöter & Ito, "The 2018 Signal
Separation Evaluation Campaign", LVA/ICA 2018): the "images" decomposition of Vincent, Gribonval
& Févotte (IEEE TASLP 14(4), 2006) with time-invariant 512-tap distortion filters estimated once
on the whole signal, then energy ratios per window. Windows in which any reference or estimate is
silent are NaN and left out of the medians, as museval does. The test suite checks agreement with
museval to 0.01 dB.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..stems import Stems

__all__ = ["EvaluationTable", "bss_eval", "evaluate", "sdr", "si_sdr"]

METRICS = ("SDR", "SIR", "SAR", "ISR", "SI-SDR")


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
    reference, estimate = _pair(reference, estimate)
    num = np.sum(reference**2) + eps
    den = np.sum((reference - estimate) ** 2) + eps
    return float(10 * np.log10(num / den))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019).

    The reference is scaled by ``a = <ref, est> / <ref, ref>`` before comparing:
    ``10 log10(|a ref|^2 / |a ref - est|^2)``, all channels together. NaN for a silent reference.

    Examples
    --------
    >>> ref = np.array([[1.0, -1.0, 1.0, -1.0]])
    >>> si_sdr(ref, 3 * ref) == float("inf")
    True
    """
    reference, estimate = _pair(reference, estimate)
    ref, est = reference.ravel(), estimate.ravel()
    energy = ref @ ref
    if energy == 0:
        return float("nan")
    target = (ref @ est) / energy * ref
    return _db(target @ target, np.sum((target - est) ** 2))


def _pair(reference, estimate):
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape:
        raise ParameterError(
            f"Shapes differ: reference {reference.shape}, estimate {estimate.shape}."
        )
    return reference, estimate


def _db(num: float, den: float) -> float:
    return float("inf") if den == 0 else float(10 * np.log10(num / den))


def _windows(length: int, window: int, hop: int) -> list[slice]:
    """museval's framing: full windows every ``hop``; one window when the signal is shorter."""
    if window >= length:
        return [slice(0, length)]
    count = (length - window + hop) // hop
    return [slice(t * hop, min(t * hop + window, length)) for t in range(count)]


def _silent(signals: np.ndarray) -> bool:
    """True if any source in ``(sources, frames, channels)`` sums to zero at every frame."""
    return bool(np.any(np.all(np.sum(signals, axis=2) == 0, axis=1)))


class _Projector:
    """Least-squares projections onto delayed copies of the references (``filters`` taps).

    ``G`` holds the references' auto- and cross-correlations over lags ``0..filters-1``; a
    projection solves ``G C = D`` with ``D`` the references/estimate cross-correlations
    (:meth:`correlations`). Correlations are computed with real FFTs of a fast length at least
    ``frames + filters - 1``, so no lag wraps around.
    """

    def __init__(self, refs: np.ndarray, filters: int):
        from scipy.fft import irfft, next_fast_len, rfft
        from scipy.linalg import toeplitz

        sources, frames, channels = refs.shape
        self.refs, self.filters = refs, filters
        self.n_fft = next_fast_len(frames + filters - 1, real=True)
        self.spectra = rfft(
            np.moveaxis(refs, 1, 2), n=self.n_fft, axis=2, workers=-1
        )  # (S, C, n_fft//2+1)
        pairs = list(itertools.product(range(sources), range(channels)))
        gram = np.zeros((sources, channels, filters, sources, channels, filters))
        for (i, c1), (j, c2) in itertools.combinations_with_replacement(pairs, 2):
            corr = irfft(
                self.spectra[j, c2] * np.conj(self.spectra[i, c1]), n=self.n_fft, workers=-1
            )
            block = toeplitz(np.hstack((corr[0], corr[-1:-filters:-1])), r=corr[:filters])
            gram[j, c2, :, i, c1, :] = block
            gram[i, c1, :, j, c2, :] = block.T
        self.gram = gram

    def correlations(self, estimate: np.ndarray) -> np.ndarray:
        """Cross-correlations of every reference channel, delayed by ``0..taps-1``, with each
        channel of ``estimate`` ``(frames, C)``: ``(S, C, taps, C)``."""
        from scipy.fft import irfft, rfft

        taps = self.filters
        est_spec = np.conj(rfft(estimate.T, n=self.n_fft, axis=1, workers=-1))  # (C, n_fft//2+1)
        out = []
        for spectrum in self.spectra:  # one source at a time keeps the peak memory small
            cross = irfft(spectrum[:, None, :] * est_spec[None], n=self.n_fft, axis=-1, workers=-1)
            lagged = np.concatenate([cross[..., :1], cross[..., -1:-taps:-1]], axis=-1)
            out.append(np.moveaxis(lagged, 1, 2))  # (C_ref, taps, C_est)
        return np.stack(out)

    def filters_for(self, correlations: list[np.ndarray], sources: list[int]) -> list[np.ndarray]:
        """Distortion filters ``(len(sources), C, taps, C)`` mapping ``sources`` to each estimate,
        from the estimates' :meth:`correlations`.

        One linear solve for all estimates (they share the references' correlations).
        """
        channels, taps = correlations[0].shape[-1], self.filters
        size = len(sources) * channels * taps
        rhs = [c[sources].reshape(size, channels) for c in correlations]
        index = np.ix_(sources, range(channels), range(taps), sources, range(channels), range(taps))
        g = self.gram[index].reshape(size, size)
        g[np.diag_indices(size)] += np.finfo(float).eps
        solved = np.linalg.solve(g, np.concatenate(rhs, axis=1))
        return [
            solved[:, k * channels : (k + 1) * channels].reshape(
                len(sources), channels, taps, channels
            )
            for k in range(len(correlations))
        ]

    def project(self, sources: list[int], filters: np.ndarray, window: slice) -> np.ndarray:
        """``sum_j filters_j * ref_j`` over ``window``, ``(frames + taps - 1, C)``: every
        channel-to-channel convolution at once, in the frequency domain."""
        from scipy.fft import irfft, next_fast_len, rfft

        refs = self.refs[sources, window]  # (K, frames, C_ref)
        length = refs.shape[1] + self.filters - 1
        n = next_fast_len(length, real=True)
        spectra = rfft(refs, n=n, axis=1, workers=-1)  # (K, F, C_ref)
        responses = rfft(filters, n=n, axis=2, workers=-1)  # (K, C_ref, F, C)
        return irfft(np.einsum("kfj,kjfc->fc", spectra, responses), n=n, axis=0, workers=-1)[
            :length
        ]


def bss_eval(
    references: np.ndarray, estimates: np.ndarray, *, window: int, hop: int, filters: int = 512
) -> dict[str, np.ndarray]:
    """BSS Eval v4 images metrics, framewise.

    Parameters
    ----------
    references, estimates : np.ndarray [shape=(sources, channels, frames)]
    window, hop : int
        Frame length and hop in samples.
    filters : int
        Distortion filter taps.

    Returns
    -------
    dict of str to np.ndarray [shape=(sources, windows)]
        ``"SDR"``, ``"ISR"``, ``"SIR"``, ``"SAR"`` in dB; NaN in windows with a silent source.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> refs = rng.standard_normal((2, 1, 4000))
    >>> out = bss_eval(refs, refs + 0.1 * rng.standard_normal(refs.shape), window=2000,
    ...                hop=2000, filters=32)
    >>> out["SDR"].shape, bool(np.all(out["SDR"] > 15))
    ((2, 2), True)
    """
    references, estimates = _pair(references, estimates)
    if references.ndim != 3:
        raise ParameterError(f"Expected (sources, channels, frames), got {references.shape}.")
    if window < 1 or hop < 1:
        raise ParameterError(f"window and hop must be >= 1 sample, got {window}, {hop}.")
    refs, ests = np.moveaxis(references, 1, 2), np.moveaxis(estimates, 1, 2)  # (S, N, C)
    sources = refs.shape[0]
    proj = _Projector(refs, filters)
    all_sources = list(range(sources))
    correlations = [proj.correlations(e) for e in ests]
    full = proj.filters_for(correlations, all_sources)
    own = [proj.filters_for([correlations[j]], [j])[0] for j in all_sources]
    wins = _windows(refs.shape[1], window, hop)
    out = {name: np.full((sources, len(wins)), np.nan) for name in ("SDR", "ISR", "SIR", "SAR")}
    for t, win in enumerate(wins):
        if _silent(refs[:, win]) or _silent(ests[:, win]):
            continue
        for j in all_sources:
            length = win.stop - win.start
            s_true = np.zeros((length + filters - 1, refs.shape[2]))
            s_true[:length] = refs[j, win]
            e_spat = proj.project([j], own[j], win) - s_true
            e_interf = proj.project(all_sources, full[j], win) - s_true - e_spat
            e_artif = -s_true - e_spat - e_interf
            e_artif[:length] += ests[j, win]
            energy = np.sum(s_true**2)
            out["SDR"][j, t] = _db(energy, np.sum((e_spat + e_interf + e_artif) ** 2))
            out["ISR"][j, t] = _db(energy, np.sum(e_spat**2))
            out["SIR"][j, t] = _db(np.sum((s_true + e_spat) ** 2), np.sum(e_interf**2))
            out["SAR"][j, t] = _db(np.sum((s_true + e_spat + e_interf) ** 2), np.sum(e_artif**2))
    return out


@dataclass(frozen=True)
class EvaluationTable:
    """Framewise metrics per stem, with medians (NaN frames left out).

    Attributes
    ----------
    records : list of dict
        One per stem, metric and frame: ``stem``, ``metric``, ``frame``, ``time`` (s), ``value``.
    medians : dict of str to dict of str to float
        ``medians[stem][metric]``.
    """

    records: list[dict]
    medians: dict[str, dict[str, float]]

    def to_pandas(self):
        """The records as a ``pandas.DataFrame`` (needs pandas)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records)

    def _rows(self):
        return [[stem] + [f"{vals[m]:.2f}" for m in METRICS] for stem, vals in self.medians.items()]

    def __repr__(self) -> str:
        header = ["stem", *METRICS]
        rows = self._rows()
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = [
            "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
        ]
        return "Median over frames (dB)\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ["stem", *METRICS])
        body = "".join(
            "<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in self._rows()
        )
        return (
            f"<table><caption>Median over frames (dB)</caption><thead><tr>{head}</tr>"
            f"</thead><tbody>{body}</tbody></table>"
        )


def evaluate(
    references: Stems, estimates: Stems, *, window: float = 1.0, hop: float = 1.0
) -> EvaluationTable:
    """BSS Eval v4 (SDR, SIR, SAR, ISR) and SI-SDR per stem, framewise and median.

    References first, as in museval's ``evaluate(references, estimates)`` and
    :func:`sdr`; a call with the two swapped is refused when it can be told (the estimates came
    from a separator and the references did not).

    Parameters
    ----------
    references, estimates : Stems
        The true stems and the separated ones: same names (matched by name), sample rate and
        shape.
    window, hop : float
        Frame length and hop in seconds (1 s each, as museval / SiSEC).

    Returns
    -------
    EvaluationTable

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> rng = np.random.default_rng(0)
    >>> truth = bn.Stems(rng.standard_normal((2, 1, 8000)), ["a", "b"], 8000)
    >>> noisy = bn.Stems(truth.data + 0.1 * rng.standard_normal((2, 1, 8000)), ["a", "b"], 8000)
    >>> table = evaluate(truth, noisy)
    >>> sorted(table.medians), round(table.medians["a"]["SI-SDR"])
    (['a', 'b'], 20)
    """
    if "identity" in references.info and "identity" not in estimates.info:
        raise ParameterError(
            f"evaluate(references, estimates): the references come from the separator "
            f"{references.info['model']!r} and the estimates do not; the two look swapped. "
            "Pass the true stems first."
        )
    if set(estimates.names) != set(references.names):
        raise ParameterError(f"Stem names differ: {estimates.names} vs {references.names}.")
    if estimates.sample_rate != references.sample_rate:
        raise ParameterError(
            f"Sample rates differ: {estimates.sample_rate} vs {references.sample_rate} Hz."
        )
    names = list(references.names)
    refs = np.stack([references[n] for n in names])
    ests = np.stack([estimates[n] for n in names])
    if refs.shape != ests.shape:
        raise ParameterError(f"Shapes differ: references {refs.shape}, estimates {ests.shape}.")
    rate = references.sample_rate
    win, step = int(window * rate), int(hop * rate)
    framewise = bss_eval(refs, ests, window=win, hop=step)
    wins = _windows(refs.shape[-1], win, step)
    framewise["SI-SDR"] = np.array(
        [[si_sdr(refs[j][:, w], ests[j][:, w]) for w in wins] for j in range(len(names))]
    )
    records, medians = [], {}
    for j, name in enumerate(names):
        medians[name] = {}
        for metric in METRICS:
            values = framewise[metric][j]
            finite = values[~np.isnan(values)]
            medians[name][metric] = float(np.median(finite)) if finite.size else float("nan")
            records += [
                {
                    "stem": name,
                    "metric": metric,
                    "frame": t,
                    "time": w.start / rate,
                    "value": float(v),
                }
                for t, (w, v) in enumerate(zip(wins, values, strict=True))
            ]
    return EvaluationTable(records, medians)
