"""A small spectrogram-mask network a class can train on a laptop CPU (see training/).

The mixture's log STFT magnitude (both channels, up to ``max_freq``), standardised per bin,
goes through a linear layer (the bins below ``direct_hz`` also go past it as they are), a
bidirectional LSTM over time and two more layers to one mask per source and bin; below
``direct_hz`` a second, narrower BLSTM over those bins alone adds to the masks (``low_hidden``:
there bass and chords share partials, and that is where the bass was lost); a softmax across
sources makes the masks sum to one, so the stems sum to the mixture exactly as the
classical recipe's do. Each mask multiplies the mixture's complex STFT in every channel and an
inverse STFT gives the stem. It exposes demucs' model contract (``sources``, ``samplerate``,
``audio_channels``, ``segment``), so :class:`~bandscope_nb.Separator` runs it through the same
engine, cache and players as Demucs, and it is saved and loaded as safetensors like a Demucs
model (its class is on the allow-list).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

__all__ = ["MaskNet", "as_masknet"]

_ARGS = ("sources", "samplerate", "audio_channels", "segment", "nfft", "hop", "max_freq")
_ARGS += ("hidden", "lstm_layers", "direct_hz", "low_nfft", "low_hidden")


class MaskNet(nn.Module):
    """Spectrogram masks from a BLSTM (2.12 M parameters by default).

    Parameters
    ----------
    sources : list of str
    samplerate, audio_channels : int
    segment : float
        Seconds per chunk the engine sends.
    nfft, hop : int
        STFT size and hop.
    max_freq : float
        Bins above this frequency (Hz) are not inputs (their masks are still predicted).
    hidden : int
        Width of the network (even); the LSTM has ``hidden // 2`` units per direction.
    lstm_layers : int
    direct_hz : float
        Bins below this frequency (Hz) also go past the first layer as they are (standardised)
        into the LSTM and the mask layers, so that the network can follow each low bin's
        envelope, where bass and chords share partials; 0 for none (as in checkpoints written
        before this argument existed: see :attr:`LEGACY_DEFAULTS`).
    low_nfft : int or None
        Those bins come from an STFT of this size (same hop), finer than the main one: at
        8192 points, 131 bins 5.4 Hz apart below 700 Hz (the main 2048-point STFT has 33,
        21.5 Hz apart: A1 and B-flat 1 share one). It is taken of the mixture low-passed and
        kept one sample in :func:`low_step` (:meth:`low_features`), which costs a training
        step about a tenth more time. None (checkpoints written before it existed): the main
        STFT's bins.
    low_hidden : int
        Width (even) of a second, narrow BLSTM that reads the direct bins alone
        (``low_hidden // 2`` units per direction); from its output and the main layers' a
        linear layer adds to the masks' logits below ``direct_hz``, where bass and chords are
        told apart. Its starting weights come from ``seed + 1`` and that layer starts at zero,
        so a new network starts as one without it. 0 for none (checkpoints written before it
        existed); it needs ``direct_hz``.
    seed : int
        Seeds the starting weights (and only them: torch's global random state is left as it
        was), so that ``MaskNet()`` is the same network in every process and on every run of a
        notebook cell, and a training run repeats exactly. Not part of the saved architecture.

    Examples
    --------
    >>> net = MaskNet(hidden=32)
    >>> x = torch.randn(1, 2, 44100)
    >>> y = net(x)
    >>> y.shape, bool(torch.allclose(y.sum(1), x, atol=1e-4))
    (torch.Size([1, 4, 2, 44100]), True)
    """

    #: The value of each argument added since checkpoints were first written, for a checkpoint
    #: that does not name it (it was made before): the loader fills these in.
    LEGACY_DEFAULTS: ClassVar[dict] = {"direct_hz": 0.0, "low_nfft": None, "low_hidden": 0}

    def __init__(
        self,
        sources=("drums", "bass", "other", "vocals"),
        samplerate: int = 44100,
        audio_channels: int = 2,
        segment: float = 10.0,
        nfft: int = 2048,
        hop: int = 1024,
        max_freq: float = 16000.0,
        hidden: int = 192,
        lstm_layers: int = 2,
        direct_hz: float = 700.0,
        low_nfft: int | None = 8192,
        low_hidden: int = 128,
        seed: int = 0,
    ):
        super().__init__()
        _check(
            sources,
            samplerate,
            audio_channels,
            segment,
            nfft,
            hop,
            max_freq,
            hidden,
            lstm_layers,
            direct_hz,
            low_nfft,
            low_hidden,
            seed,
        )
        # every argument by name, as demucs' capture_init keeps them: saved with the weights
        # (modelfiles.save_safetensors), checked by model_rules.check_init on load
        self._init_args_kwargs = ((), {k: v for k, v in locals().items() if k in _ARGS})
        self._init_args_kwargs[1]["sources"] = list(sources)
        self.sources = list(sources)
        self.samplerate, self.audio_channels, self.segment = samplerate, audio_channels, segment
        self.nfft, self.hop = nfft, hop
        self.bins = nfft // 2 + 1
        self.used = min(self.bins, int(max_freq / samplerate * nfft) + 1)
        self.direct = min(self.used, int(direct_hz / samplerate * nfft) + 1) if direct_hz else 0
        self.low_nfft = nfft if low_nfft is None or not direct_hz else low_nfft
        self.low_bins = self.direct
        if self.low_nfft != nfft:  # the direct bins come from their own, finer STFT
            self.low_bins = int(direct_hz / samplerate * self.low_nfft) + 1
            self.low_step = low_step(samplerate, hop, self.low_nfft, direct_hz)
            step = self.low_step
            self.register_buffer("lowpass", _lowpass(step), persistent=False)
            self.register_buffer(
                "low_window", torch.hann_window(self.low_nfft // step), persistent=False
            )
            self.low_mean = nn.Parameter(torch.zeros(audio_channels * self.low_bins))
            self.low_scale = nn.Parameter(torch.ones(audio_channels * self.low_bins))
        features = audio_channels * self.used
        width = hidden + audio_channels * self.low_bins  # the LSTM's input
        self.input_mean = nn.Parameter(torch.zeros(features))
        self.input_scale = nn.Parameter(torch.ones(features))
        with torch.random.fork_rng(devices=[]):  # the starting weights from the seed alone
            torch.manual_seed(seed)
            self.encode = nn.Sequential(nn.Linear(features, hidden), nn.Tanh())
            self.lstm = nn.LSTM(
                width, hidden // 2, num_layers=lstm_layers, bidirectional=True, batch_first=True
            )
            self.decode = nn.Sequential(nn.Linear(width + hidden, hidden), nn.ReLU())
            self.masks = nn.Linear(hidden, len(self.sources) * self.bins)
        self.low_lstm = self.low_masks = None
        if low_hidden:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                self.low_lstm = nn.LSTM(
                    audio_channels * self.low_bins,
                    low_hidden // 2,
                    bidirectional=True,
                    batch_first=True,
                )
                self.low_masks = nn.Linear(width + hidden + low_hidden, len(sources) * self.direct)
            nn.init.zeros_(self.low_masks.weight)
            nn.init.zeros_(self.low_masks.bias)
        self.register_buffer("window", torch.hann_window(nfft), persistent=False)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, frames)`` -> complex ``(batch, channels, bins, steps)``."""
        batch, channels, frames = audio.shape
        spec = torch.stft(
            audio.reshape(batch * channels, frames),
            self.nfft,
            self.hop,
            window=self.window,
            return_complex=True,
        )
        return spec.reshape(batch, channels, *spec.shape[-2:])

    @staticmethod
    def magnitude(spec: torch.Tensor) -> torch.Tensor:
        """``|spec|`` of a complex tensor, as ``hypot`` of its parts: about twice as fast on a
        CPU as ``spec.abs()``, and the same to float32 rounding (for data: unlike ``abs``, its
        gradient at zero is not defined).

        Examples
        --------
        >>> MaskNet.magnitude(torch.tensor([3 + 4j, -1j]))
        tensor([5., 1.])
        """
        parts = torch.view_as_real(spec)
        return torch.hypot(parts[..., 0], parts[..., 1])

    def features(self, magnitude: torch.Tensor) -> torch.Tensor:
        """The network's input for a mixture's magnitude ``(batch, channels, bins, steps)``: the
        log magnitudes ``log(1 + |X|)`` up to ``max_freq``, ``(batch, steps, channels * used)``,
        before :attr:`input_mean` and :attr:`input_scale` apply."""
        batch, channels, _, steps = magnitude.shape
        x = torch.log1p(magnitude[:, :, : self.used])
        return x.permute(0, 3, 1, 2).reshape(batch, steps, channels * self.used)

    def low_features(self, audio: torch.Tensor) -> torch.Tensor:
        """The direct bins' input for a mixture ``(batch, channels, frames)``, when they have
        their own STFT (``low_nfft``): ``log(1 + |X|)`` of its first :attr:`low_bins` bins,
        ``(batch, steps, channels * low_bins)`` on the main STFT's frames, before
        :attr:`low_mean` and :attr:`low_scale` apply.

        The mixture is low-passed (a Blackman-windowed sinc) and one sample in ``low_step`` kept,
        then a ``low_nfft / low_step``-point STFT with hop ``hop / low_step`` is taken: the same
        bins as a full-rate ``low_nfft``-point STFT (its magnitudes scaled by ``low_step``), for
        a fraction of its cost.

        Examples
        --------
        >>> net = MaskNet(hidden=8)
        >>> net.low_step, net.low_bins, net.low_features(torch.zeros(1, 2, 44100)).shape
        (16, 131, torch.Size([1, 44, 262]))
        """
        batch, channels, frames = audio.shape
        step = self.low_step
        low = _decimate(audio.reshape(batch * channels, frames), self.lowpass, step)
        spec = torch.stft(
            low,
            self.low_nfft // step,
            self.hop // step,
            window=self.low_window,
            pad_mode="constant",
            return_complex=True,
        )
        steps = 1 + frames // self.hop  # the main STFT's frames
        x = torch.log1p(self.magnitude(spec[:, : self.low_bins, :steps]) * step)
        x = x.reshape(batch, channels, self.low_bins, -1)
        return x.permute(0, 3, 1, 2).reshape(batch, -1, channels * self.low_bins)

    def standardise_inputs(self, mixtures: torch.Tensor) -> None:
        """Set :attr:`input_mean` and :attr:`input_scale` so that the features of these
        mixtures ``(batch, channels, frames)`` have mean 0 and variance 1 in every bin and
        channel, as open-unmix does before it trains (they go on learning from there): without
        it, the loud low bins dominate the first layer and the quiet high ones barely count.

        Examples
        --------
        >>> net = MaskNet(hidden=8)
        >>> mixes = torch.randn(2, 2, 44100) * torch.tensor([[[0.1], [0.3]]])
        >>> net.standardise_inputs(mixes)
        >>> x = net.features(net.magnitude(net.spectrogram(mixes)))
        >>> z = ((x - net.input_mean) * net.input_scale).flatten(0, 1)  # (frames, features)
        >>> bool(z.mean(dim=0).abs().max() < 1e-4), bool((z.std(dim=0) - 1).abs().max() < 1e-4)
        (True, True)
        """
        with torch.no_grad():
            x = self.features(self.magnitude(self.spectrogram(mixtures))).flatten(0, 1)
            self.input_mean.copy_(x.mean(dim=0))
            self.input_scale.copy_(1.0 / x.std(dim=0).clamp_min(1e-2))
            if self.low_nfft != self.nfft:
                x = self.low_features(mixtures).flatten(0, 1)
                self.low_mean.copy_(x.mean(dim=0))
                self.low_scale.copy_(1.0 / x.std(dim=0).clamp_min(1e-2))

    def mask(
        self,
        spec: torch.Tensor,
        magnitude: torch.Tensor | None = None,
        audio: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Masks ``(batch, sources, bins, steps)`` summing to one over sources, for a complex
        ``spec`` ``(batch, channels, bins, steps)`` (or its :meth:`magnitude`, if already
        made, in its place) of the mixture ``audio`` ``(batch, channels, frames)``, which
        only a network whose direct bins have their own STFT (``low_nfft``) needs."""
        batch, _, _, steps = spec.shape
        x = self.features(magnitude if magnitude is not None else self.magnitude(spec))
        x = (x - self.input_mean) * self.input_scale
        if self.low_nfft != self.nfft:
            if audio is None:
                from ..errors import ParameterError

                raise ParameterError(
                    f"This MaskNet's low bins come from a {self.low_nfft}-point STFT of the "
                    "mixture: pass its audio (mask(spec, audio=mix))."
                )
            low = (self.low_features(audio) - self.low_mean) * self.low_scale
            x = torch.cat([self.encode(x), low], dim=-1)
        elif self.direct:
            low = x.reshape(batch, steps, -1, self.used)[..., : self.direct]
            low = low.reshape(batch, steps, -1)
            x = torch.cat([self.encode(x), low], dim=-1)
        else:
            x = self.encode(x)
        y, _ = self.lstm(x)
        y = torch.cat([x, y], dim=-1)  # the LSTM's input skips past it
        logits = self.masks(self.decode(y)).reshape(batch, steps, len(self.sources), self.bins)
        if self.low_lstm is not None:  # the direct bins' own BLSTM, on the low logits
            z, _ = self.low_lstm(low)
            z = self.low_masks(torch.cat([y, z], dim=-1))
            low_logits = logits[..., : self.direct] + z.reshape(batch, steps, -1, self.direct)
            logits = torch.cat([low_logits, logits[..., self.direct :]], dim=-1)
        return torch.softmax(logits, dim=2).permute(0, 2, 3, 1)

    def masks_for(self, samples) -> np.ndarray:
        """The masks for a mixture ``(channels, frames)`` (a NumPy array) as NumPy
        ``(sources, bins, steps)`` float32, on this STFT's grid (``nfft``, ``hop``, centred
        frames): what a mask explorer shows.

        Examples
        --------
        >>> MaskNet(hidden=8).masks_for(np.zeros((2, 4096), np.float32)).shape
        (4, 1025, 5)
        """
        param = next(self.parameters())
        audio = torch.as_tensor(np.asarray(samples, np.float32), device=param.device)
        with torch.no_grad():
            return self.mask(self.spectrogram(audio[None]), audio=audio[None])[0].cpu().numpy()

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, frames)`` -> ``(batch, sources, channels, frames)``."""
        spec = self.spectrogram(mix)
        masked = self.mask(spec, audio=mix)[:, :, None] * spec[:, None]  # (B, S, C, F, N)
        batch, sources, channels, bins, steps = masked.shape
        audio = torch.istft(
            masked.reshape(-1, bins, steps),
            self.nfft,
            self.hop,
            window=self.window,
            length=mix.shape[-1],
        )
        return audio.reshape(batch, sources, channels, -1)


def as_masknet(model) -> MaskNet:
    """A :class:`MaskNet` itself, or the one a name or path loads (``"bandscope-tiny"``, a
    checkpoint written by ``fit``); :class:`ParameterError` for any other model (its stems do
    not come from masks one could show).

    Examples
    --------
    >>> as_masknet("bandscope-tiny").hop
    1024
    """
    from ..errors import ParameterError
    from .models import load_model

    if isinstance(model, MaskNet):
        return model
    loaded = load_model(model)
    nets = [part for part, _ in loaded.parts]
    if len(nets) != 1 or not isinstance(nets[0], MaskNet):
        raise ParameterError(
            f"Model {loaded.name} is not a mask network (MaskNet): its stems are not made by "
            "masks to show. Pass a MaskNet, a checkpoint written by bn.training.fit, or "
            "'bandscope-tiny'."
        )
    return nets[0]


def low_step(samplerate: int, hop: int, low_nfft: int, direct_hz: float) -> int:
    """How many samples :meth:`MaskNet.low_features` keeps one of: the largest power of two
    that divides ``hop`` and ``low_nfft``, leaves a window of at least 64 points and a
    Nyquist frequency of at least 1.5 x ``direct_hz`` (so that a low-pass keeps those bins
    whole and nothing folds onto them).

    Examples
    --------
    >>> low_step(44100, 1024, 8192, 700.0), low_step(44100, 1024, 8192, 1500.0)
    (16, 8)
    """
    step = 1
    while (
        hop % (2 * step) == 0
        and low_nfft % (2 * step) == 0
        and low_nfft // (2 * step) >= 64
        and samplerate / (2 * step) / 2 >= 1.5 * direct_hz
    ):
        step *= 2
    return step


def _lowpass(step: int) -> torch.Tensor:
    """A low-pass filter for keeping one sample in ``step``: a Blackman-windowed sinc of
    ``16 * step + 1`` taps cut at the new Nyquist frequency, unit gain at 0 Hz, in polyphase
    form for :func:`_decimate`: ``(17, step)``, tap ``k`` at ``[k // step, k % step]`` (the
    last row padded with zeros)."""
    half = 8 * step
    n = torch.arange(-half, half + 1, dtype=torch.float64)
    taps = torch.sinc(n / step) * torch.blackman_window(
        2 * half + 1, periodic=False, dtype=torch.float64
    )
    taps = nn.functional.pad(taps / taps.sum(), (0, step - 1))
    return taps.float().reshape(-1, step)


def _decimate(signals: torch.Tensor, phases: torch.Tensor, step: int) -> torch.Tensor:
    """Filter ``signals`` ``(n, frames)`` with the centred filter whose polyphase form is
    ``phases`` (:func:`_lowpass`) and keep every ``step``-th sample, from the first:
    ``(n, 1 + (frames - 1) // step)``, the samples past either end taken as zeros (as conv1d
    with stride ``step`` and half the taps of padding, at about a quarter of its cost on a
    CPU: one small matrix product of the blocks of ``step`` samples and the phases, then a
    sum of shifted columns)."""
    blocks, half = phases.shape[0], 8 * step
    out = 1 + (signals.shape[-1] - 1) // step
    padded = nn.functional.pad(
        signals, (half, (out + blocks - 1) * step - signals.shape[-1] - half)
    )
    parts = padded.reshape(signals.shape[0], -1, step) @ phases.T  # (n, out + blocks - 1, blocks)
    low = parts[:, :out, 0]
    for j in range(1, blocks):
        low = low + parts[:, j : j + out, j]
    return low


def _check(
    sources,
    samplerate,
    audio_channels,
    segment,
    nfft,
    hop,
    max_freq,
    hidden,
    layers,
    direct,
    low_nfft,
    low_hidden,
    seed,
):
    """MaskNet's arguments, or a :class:`ParameterError` naming the one out of range."""
    from ..errors import ParameterError
    from .model_rules import check_attributes, is_number

    check_attributes(
        "MaskNet",
        ParameterError,
        klass=MaskNet,
        sources=list(sources),
        samplerate=samplerate,
        audio_channels=audio_channels,
        segment=segment,
    )
    for name, value, low, high in (
        ("nfft", nfft, 16, 65536),
        ("hop", hop, 1, nfft if is_number(nfft) else 1),
        ("hidden", hidden, 2, 4096),
        ("lstm_layers", layers, 1, 8),
        ("low_hidden", low_hidden, 0, 4096),
        (
            "low_nfft",
            65536 if low_nfft is None else low_nfft,
            nfft if is_number(nfft) else 16,
            65536,
        ),
    ):
        if not is_number(value, integral=True) or not low <= value <= high:
            raise ParameterError(f"Invalid {name}: {value!r}; give an int in {low}..{high}.")
    if not is_number(seed, integral=True) or not 0 <= seed < 2**63:
        raise ParameterError(f"Invalid seed: {seed!r}; give an int >= 0.")
    if not is_number(max_freq) or not 0 < max_freq:
        raise ParameterError(f"Invalid max_freq: {max_freq!r}; give Hz > 0.")
    if not is_number(direct) or not 0 <= direct <= max_freq:
        raise ParameterError(f"Invalid direct_hz: {direct!r}; give Hz from 0 to max_freq.")
    for name, value in (("hidden", hidden), ("low_hidden", low_hidden)):
        if value % 2:  # the BLSTM's two directions of value // 2 units make value
            raise ParameterError(f"Invalid {name}: {value!r}; give an even number.")
    if low_hidden and not direct:
        raise ParameterError(
            f"Invalid low_hidden: {low_hidden!r}; it reads the bins below direct_hz: give "
            "direct_hz > 0, or low_hidden=0."
        )
