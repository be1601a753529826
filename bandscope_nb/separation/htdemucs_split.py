"""HTDemucs' forward pass cut at its STFTs: the network in between as a module of its own.

An exporter (ONNX) handles the convolutions, attention and normalisations of HTDemucs but not
its complex-valued spectrogram, so the pass is split as demucs-onnx does: the STFT, the
complex-as-channels magnitude, the mask and the inverse STFT stay in torch, around
:class:`HTDemucsCore` (the two branches, from the spectrogram and the waveform to the
frequency branch's output and the time branch's waveforms). :func:`split_forward` puts them
together again: with the core run by torch it returns exactly what ``HTDemucs.forward`` returns
in evaluation mode (tested bit for bit), so any other runner of the core is checked against it.

The core follows demucs 4.1's ``HTDemucs.forward`` line by line (``demucs/htdemucs.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["HTDemucsCore", "split_forward"]


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


def split_forward(model, core: Callable, mix):
    """``model(mix)`` in evaluation mode, with ``core(mix, mag) -> (x, xt)`` as its network.

    Parameters
    ----------
    model : demucs.htdemucs.HTDemucs
        Provides the STFT, mask and inverse STFT.
    core : callable
        An :class:`HTDemucsCore` of ``model`` or anything computing the same (ONNX Runtime).
    mix : torch.Tensor
        ``(batch, channels, frames)``, at most the training length (shorter is zero-padded to
        it and the output trimmed back, as HTDemucs does).

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
    out = xt + model._ispec(model._mask(z, x), training)
    return out[..., :length] if length < training else out
