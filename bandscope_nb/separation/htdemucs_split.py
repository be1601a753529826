"""HTDemucs' forward pass cut at its STFTs: the network in between as a module of its own.

An exporter (ONNX) handles the convolutions, attention and normalisations of HTDemucs but not
its complex-valued spectrogram, so the pass is split as demucs-onnx does: the STFT, the
complex-as-channels magnitude, the mask and the inverse STFT stay in torch, around
:class:`HTDemucsCore` (the two branches, from the spectrogram and the waveform to the
frequency branch's output and the time branch's waveforms). :func:`split_forward` puts them
together again: with the core run by torch it returns exactly what ``HTDemucs.forward`` returns
in evaluation mode (tested bit for bit), so any other runner of the core is checked against it.

The core follows demucs 4.1's ``HTDemucs.forward`` line by line (``demucs/htdemucs.py``).

:func:`inverse_stft` is a faster equivalent of demucs' mask and inverse STFT for
complex-as-channels models (an ``irfft`` per frame and a four-way overlap-add, without
``torch.istft``'s padded copies: half the time of a full-size chunk's, 133 dB from it), which
the exported-graph backends use; torch's path keeps demucs' own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["HTDemucsCore", "inverse_stft", "split_forward"]


class HTDemucsCore(torch.nn.Module):
    """The network of an :class:`~demucs.htdemucs.HTDemucs` between its STFTs.

    ``forward(mix, mag)`` takes the ``(batch, channels, frames)`` waveform (at the
    model's training length) and its ``(batch, 2 * channels, bins, steps)`` magnitude
    (real and imaginary parts as channels) and returns ``(x, xt)``: the frequency
    branch's output ``(batch, sources, 2 * channels, bins, steps)`` before masking and the
    time branch's ``(batch, sources, channels, frames)``, both de-normalised.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, mix, mag):
        m = self.model
        batch, _, bins, steps = mag.shape
        mean = mag.mean(dim=(1, 2, 3), keepdim=True)
        std = mag.std(dim=(1, 2, 3), keepdim=True)
        x = (mag - mean) / (1e-5 + std)
        meant = mix.mean(dim=(1, 2), keepdim=True)
        stdt = mix.std(dim=(1, 2), keepdim=True)
        xt = (mix - meant) / (1e-5 + stdt)

        saved, saved_t, lengths, lengths_t = [], [], [], []
        for idx, encode in enumerate(m.encoder):
            lengths.append(x.shape[-1])
            inject = None
            if idx < len(m.tencoder):
                lengths_t.append(xt.shape[-1])
                tenc = m.tencoder[idx]
                xt = tenc(xt)
                if not tenc.empty:
                    saved_t.append(xt)
                else:  # the first conv only: the branches now have one shape and merge
                    inject = xt
            x = encode(x, inject)
            if idx == 0 and m.freq_emb is not None:
                frs = torch.arange(x.shape[-2], device=x.device)
                emb = m.freq_emb(frs).t()[None, :, :, None].expand_as(x)
                x = x + m.freq_emb_scale * emb
            saved.append(x)
        if m.crosstransformer:
            x, xt = self._cross(x, xt)
        for idx, decode in enumerate(m.decoder):
            x, pre = decode(x, saved.pop(-1), lengths.pop(-1))
            offset = m.depth - len(m.tdecoder)
            if idx >= offset:
                tdec = m.tdecoder[idx - offset]
                length_t = lengths_t.pop(-1)
                if tdec.empty:
                    xt, _ = tdec(pre[:, :, 0], None, length_t)
                else:
                    xt, _ = tdec(xt, saved_t.pop(-1), length_t)
        sources = len(m.sources)
        x = x.view(batch, sources, -1, bins, steps) * std[:, None] + mean[:, None]
        xt = xt.view(batch, sources, -1, mix.shape[-1]) * stdt[:, None] + meant[:, None]
        return x, xt

    def _cross(self, x, xt):
        """The cross-domain transformer, with the channel resampling around it."""
        m = self.model
        if not m.bottom_channels:
            return m.crosstransformer(x, xt)
        b, c, f, t = x.shape
        x = m.channel_upsampler(x.reshape(b, c, f * t)).reshape(b, -1, f, t)
        x, xt = m.crosstransformer(x, m.channel_upsampler_t(xt))
        x = m.channel_downsampler(x.reshape(b, x.shape[1], f * t)).reshape(b, -1, f, t)
        return x, m.channel_downsampler_t(xt)


def split_forward(model, core: Callable, mix, *, fast_istft: bool = False):
    """``model(mix)`` in evaluation mode, with ``core(mix, mag) -> (x, xt)`` as its network.

    Parameters
    ----------
    model : demucs.htdemucs.HTDemucs
        Provides the STFT, mask and inverse STFT.
    core : callable
        An :class:`HTDemucsCore` of ``model`` or anything computing the same (ONNX Runtime,
        OpenVINO).
    mix : torch.Tensor
        ``(batch, channels, frames)``, at most the training length (shorter is zero-padded to
        it and the output trimmed back, as HTDemucs does).
    fast_istft : bool
        The frequency branch's waveforms by :func:`inverse_stft` instead of demucs' mask and
        ``torch.istft`` (not bit for bit, about 133 dB), where that computes the same:
        complex-as-channels output, and HTDemucs' own ``_mask`` and ``_ispec`` (a subclass
        that overrides either keeps its own).

    Examples
    --------
    >>> import torch
    >>> from demucs.htdemucs import HTDemucs
    >>> net = HTDemucs(["a", "b"], channels=4, depth=2, nfft=512, t_layers=1, t_heads=1,
    ...                dconv_mode=0, bottom_channels=0, segment=1).eval()
    >>> mix = torch.randn(1, 2, 30_000)
    >>> with torch.inference_mode():
    ...     torch.equal(split_forward(net, HTDemucsCore(net), mix), net(mix))
    True
    """
    length = mix.shape[-1]
    training = int(model.segment * model.samplerate)
    if length < training:
        mix = F.pad(mix, (0, training - length))
    z = model._spec(mix)
    x, xt = core(mix, model._magnitude(z).to(mix.device))
    if fast_istft and _plain_istft(model):
        waves = torch.from_numpy(inverse_stft(x.numpy(), model.hop_length, training))
    else:
        waves = model._ispec(model._mask(z, x), training)
    out = xt + waves
    return out[..., :length] if length < training else out


def _plain_istft(model) -> bool:
    """Whether :func:`inverse_stft` is ``model``'s own mask and inverse STFT."""
    from demucs.htdemucs import HTDemucs

    cls = type(model)
    return bool(model.cac) and cls._mask is HTDemucs._mask and cls._ispec is HTDemucs._ispec


def inverse_stft(x: np.ndarray, hop: int, length: int) -> np.ndarray:
    """Waveforms from the frequency branch's complex-as-channels output, as HTDemucs' mask and
    inverse STFT make them (its ``_ispec(_mask(z, x), length)`` for ``cac=True``).

    Parameters
    ----------
    x : ndarray
        float32 ``(batch, sources, 2 * channels, bins, frames)``: real and imaginary parts of
        each channel as neighbouring channels, ``bins = 2 * hop`` (the STFT's last bin
        dropped, as HTDemucs does; ``n_fft = 4 * hop``).
    hop : int
        The STFT's hop length.
    length : int
        Samples to return.

    Returns
    -------
    ndarray
        float32 ``(batch, sources, channels, length)``.

    Examples
    --------
    >>> from demucs.htdemucs import HTDemucs
    >>> net = HTDemucs(["a", "b"], channels=4, depth=2, nfft=512, t_layers=1, t_heads=1,
    ...                dconv_mode=0, bottom_channels=0, segment=1).eval()
    >>> z = net._spec(torch.randn(1, 2, 44100))
    >>> x = torch.randn(1, 2, 4, *z.shape[-2:])
    >>> ours = inverse_stft(x.numpy(), net.hop_length, 44100)
    >>> theirs = net._ispec(net._mask(z, x), 44100).numpy()
    >>> float(np.abs(ours - theirs).max()) < 1e-5 * float(np.abs(theirs).max())
    True
    """
    import scipy.fft

    batch, sources, channels2, bins, frames = x.shape
    n_fft, rows = 4 * hop, batch * sources * (channels2 // 2)
    if bins != 2 * hop:
        raise ValueError(f"inverse_stft: {bins} bins for hop {hop}; expected {2 * hop}.")
    parts = x.reshape(rows, 2, bins, frames)
    z = np.empty((rows, bins + 1, frames), np.complex64)  # with the last bin, zero
    z[:, -1] = 0
    z.real[:, :-1], z.imag[:, :-1] = parts[:, 0], parts[:, 1]
    # torch.istft(normalized=True) is the orthonormal inverse
    waves = scipy.fft.irfft(
        z, n=n_fft, axis=1, norm="ortho", workers=max(1, torch.get_num_threads())
    )  # (rows, n_fft, frames)
    window, scale, start = _synthesis(n_fft, hop, frames)
    waves *= window[:, None]
    # demucs pads two silent frames on each side: frame t starts at (t + 2) * hop
    out = np.zeros((rows, frames + 7, hop), np.float32)
    quarters = waves.reshape(rows, 4, hop, frames)
    for k in range(4):
        out[:, 2 + k : 2 + k + frames] += quarters[:, k].transpose(0, 2, 1)
    out = out.reshape(rows, -1)[:, start : start + length]
    out *= scale[: out.shape[-1]]
    return out.reshape(batch, sources, channels2 // 2, length)


@functools.lru_cache(maxsize=8)
def _synthesis(n_fft: int, hop: int, frames: int):
    """The periodic Hann window, the inverse of the summed squared windows of ``frames`` + 4
    frames (read from demucs' first output sample on) and that sample's index."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    envelope = np.zeros((frames + 7) * hop, np.float64)
    for t in range(frames + 4):
        envelope[t * hop : t * hop + n_fft] += window.astype(np.float64) ** 2
    start = n_fft // 2 + hop // 2 * 3  # torch.istft's centre, then demucs' own padding
    scale = (1.0 / np.maximum(envelope[start:], 1e-11)).astype(np.float32)
    for shared in (window, scale):  # kept for later calls
        shared.setflags(write=False)
    return window, scale, start
