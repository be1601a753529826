"""Classical separators: they need no weights, run anywhere and teach how masks work.

- HPSS: median filtering across time keeps harmonics, across frequency keeps percussion
  (Fitzgerald, "Harmonic/percussive separation using median filtering", DAFx 2010; Driedger et
  al., "Extending HPSS with a residual component", ISMIR 2014, for ``margin``).
- REPET-SIM: a repeating background is estimated by a median over each frame's most similar
  frames; what does not repeat is the foreground, usually the voice (Rafii & Pardo, "Music/voice
  separation using the similarity matrix", ISMIR 2012). Masks as in librosa's vocal separation
  example.
- NMF: the magnitude spectrogram factorised into spectral templates times activations (Lee &
  Seung, NIPS 2001); each component is heard through a Wiener-style soft mask.
- :func:`separate_four`, the "classical 4-stem" recipe: drums = percussive part; bass = harmonic
  part below ``bass_cutoff``; vocals = REPET-SIM foreground of the remaining harmonic part;
  other = the residual, so the four stems always sum to the mix.

All functions take ``(channels, frames)`` audio and return :class:`~bandscope_nb.stems.Stems`
whose stems sum to the input.
"""

from __future__ import annotations

import numpy as np

from ..audio import as_audio
from ..stems import Stems
from .spectral import istft, stft

__all__ = ["FOUR_STEMS", "hpss", "nmf", "repet_sim", "separate_four"]

FOUR_STEMS = ("drums", "bass", "other", "vocals")


def _hpss_masks(spec: np.ndarray, kernel_size: int, margin: float):
    """Soft harmonic / percussive masks of the channel-averaged magnitude (shared by channels)."""
    import librosa

    mag = np.abs(spec).mean(axis=0) if spec.ndim == 3 else np.abs(spec)
    return librosa.decompose.hpss(mag, kernel_size=kernel_size, margin=margin, mask=True)


def _repeating_background(mag: np.ndarray, exclude: int, neighbours: int) -> np.ndarray:
    """REPET-SIM's repeating-background estimate of a ``(F, T)`` magnitude.

    Each frame is replaced by the bin-wise median of its ``neighbours`` most cosine-similar
    frames, frames closer than ``exclude`` excluded (Rafii & Pardo 2012). Similarities are
    computed in blocks of rows, so memory stays ``O(block * T)``.
    """
    frames = mag.shape[1]
    unit = mag / (np.linalg.norm(mag, axis=0, keepdims=True) + 1e-10)
    k = min(neighbours, frames - 2 * exclude - 1)
    out = np.empty_like(mag)
    block = 512
    for lo in range(0, frames, block):
        hi = min(lo + block, frames)
        sim = unit[:, lo:hi].T @ unit
        rows = np.arange(lo, hi)[:, None]
        sim[np.abs(rows - np.arange(frames)[None, :]) <= exclude] = -np.inf
        nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        out[:, lo:hi] = np.median(mag[:, nearest], axis=-1)
    return out


def _foreground_mask(
    mag: np.ndarray, sample_rate: int, hop_length: int, width: float, neighbours: int = 20
) -> np.ndarray:
    """REPET-SIM soft foreground mask for a ``(F, T)`` magnitude (zero for silence).

    Soft masks as in librosa's vocal separation example (power 2, foreground margin 10). On
    input shorter than four ``width``s the exclusion shrinks to a quarter of its length, so
    every frame keeps neighbours to compare with (a short excerpt is not silenced).
    """
    import librosa

    exclude = int(librosa.time_to_frames(width, sr=sample_rate, hop_length=hop_length))
    exclude = min(exclude, max(0, (mag.shape[1] - 2) // 4))
    if mag.shape[1] < 2 * exclude + 2 or not np.any(mag):
        return np.zeros_like(mag)
    background = np.minimum(mag, _repeating_background(mag, exclude, neighbours))
    return librosa.util.softmask(mag - background, 10.0 * background, power=2)


def hpss(
    audio,
    sample_rate: int | None = None,
    *,
    kernel_size: int = 31,
    margin: float = 1.0,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> Stems:
    """Harmonic / percussive separation by median filtering (librosa).

    Parameters
    ----------
    audio : Audio, (np.ndarray, int), np.ndarray [shape=(channels, frames)] or path
    sample_rate : int or None
        Needed when ``audio`` is a bare array.
    kernel_size : int
        Median filter length, in frames and in bins.
    margin : float
        ``>= 1``; larger values leave more in neither part (that residual goes to "harmonic").

    Returns
    -------
    Stems
        ``("harmonic", "percussive")``, summing to the input.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).standard_normal((1, 22050)).astype(np.float32)
    >>> stems = hpss(y, 22050)
    >>> stems.names, bool(np.allclose(stems.mix(), y, atol=1e-5))
    (('harmonic', 'percussive'), True)
    """
    audio = as_audio(audio, sample_rate)
    spec = stft(audio.samples, n_fft=n_fft, hop_length=hop_length)
    _, mask_p = _hpss_masks(spec, kernel_size, margin)
    percussive = istft(spec * mask_p, n_fft=n_fft, hop_length=hop_length, length=audio.frames)
    return Stems.from_dict(
        {"harmonic": audio.samples - percussive, "percussive": percussive}, audio.sample_rate
    )


def repet_sim(
    audio,
    sample_rate: int | None = None,
    *,
    width: float = 2.0,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> Stems:
    """REPET-SIM: foreground (non-repeating, e.g. voice) / background (repeating).

    The similarity is computed on the channel-averaged magnitude so that both channels get the
    same mask.

    Parameters
    ----------
    width : float
        Seconds around each frame excluded from its neighbours (avoids self-similarity); on
        input shorter than ``4 * width``, a quarter of its length.

    Returns
    -------
    Stems
        ``("foreground", "background")``; background is the residual, so they sum to the input.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).standard_normal((2, 5 * 8000)).astype(np.float32)
    >>> repet_sim(y, 8000, width=0.5).names
    ('foreground', 'background')
    """
    audio = as_audio(audio, sample_rate)
    spec = stft(audio.samples, n_fft=n_fft, hop_length=hop_length)
    mask = _foreground_mask(np.abs(spec).mean(axis=0), audio.sample_rate, hop_length, width)
    foreground = istft(spec * mask, n_fft=n_fft, hop_length=hop_length, length=audio.frames)
    return Stems.from_dict(
        {"foreground": foreground, "background": audio.samples - foreground}, audio.sample_rate
    )


def nmf(
    audio,
    sample_rate: int | None = None,
    *,
    n_components: int = 8,
    n_fft: int = 2048,
    hop_length: int = 512,
    seed: int = 0,
) -> tuple[Stems, np.ndarray, np.ndarray]:
    """NMF of the channel-averaged magnitude; each component made audible by a soft mask.

    Returns
    -------
    components : Stems
        ``("component_0", ...)`` ordered by the templates' spectral centroid (low to high); the
        masks sum to one, so the components sum to the input.
    templates : np.ndarray [shape=(n_fft // 2 + 1, n_components)]
    activations : np.ndarray [shape=(n_components, frames)]

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32)
    >>> parts, W, H = nmf(y, 8000, n_components=3)
    >>> parts.names, W.shape[1], H.shape[0]
    (('component_0', 'component_1', 'component_2'), 3, 3)
    """
    import librosa
    from sklearn.decomposition import NMF

    audio = as_audio(audio, sample_rate)
    spec = stft(audio.samples, n_fft=n_fft, hop_length=hop_length)
    mag = np.abs(spec).mean(axis=0)
    model = NMF(n_components=n_components, init="nndsvda", random_state=seed, max_iter=400)
    templates = model.fit_transform(mag)
    activations = model.components_
    freqs = librosa.fft_frequencies(sr=audio.sample_rate, n_fft=n_fft)
    order = np.argsort((freqs[:, None] * templates).sum(0) / (templates.sum(0) + 1e-12))
    templates, activations = templates[:, order], activations[order]
    parts = [np.outer(templates[:, k], activations[k]) for k in range(n_components)]
    total = np.sum(parts, axis=0) + 1e-10
    out = {}
    for k, part in enumerate(parts[:-1]):
        masked = spec * (part / total)
        out[f"component_{k}"] = istft(
            masked, n_fft=n_fft, hop_length=hop_length, length=audio.frames
        )
    out[f"component_{n_components - 1}"] = audio.samples - np.sum(list(out.values()), axis=0)
    return Stems.from_dict(out, audio.sample_rate), templates, activations


def separate_four(
    audio,
    sample_rate: int | None = None,
    *,
    bass_cutoff: float = 150.0,
    kernel_size: int = 31,
    width: float = 2.0,
    n_fft: int = 2048,
    hop_length: int = 512,
) -> Stems:
    """The classical 4-stem recipe (see the module docstring); the stems sum to the input.

    Returns
    -------
    Stems
        ``("drums", "bass", "other", "vocals")``, the order of demucs' models.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).standard_normal((2, 3 * 8000)).astype(np.float32)
    >>> stems = separate_four(y, 8000, width=0.5)
    >>> stems.names, bool(np.allclose(stems.mix(), y, atol=1e-5))
    (('drums', 'bass', 'other', 'vocals'), True)
    """
    import librosa

    audio = as_audio(audio, sample_rate)
    spec = stft(audio.samples, n_fft=n_fft, hop_length=hop_length)
    mask_h, mask_p = _hpss_masks(spec, kernel_size, 1.0)
    low = (librosa.fft_frequencies(sr=audio.sample_rate, n_fft=n_fft) < bass_cutoff)[:, None]
    harmonic_high = spec * mask_h * ~low
    mask_v = _foreground_mask(
        np.abs(harmonic_high).mean(axis=0), audio.sample_rate, hop_length, width
    )
    drums = istft(spec * mask_p, n_fft=n_fft, hop_length=hop_length, length=audio.frames)
    bass = istft(spec * mask_h * low, n_fft=n_fft, hop_length=hop_length, length=audio.frames)
    vocals = istft(harmonic_high * mask_v, n_fft=n_fft, hop_length=hop_length, length=audio.frames)
    other = audio.samples - drums - bass - vocals
    stems = {"drums": drums, "bass": bass, "other": other, "vocals": vocals}
    return Stems.from_dict({n: stems[n] for n in FOUR_STEMS}, audio.sample_rate)
