"""Training batches: random crops of the songs' stems, with a random level and channel order
per stem, and the stems' STFT magnitudes (the loss's targets), made once per song and kept.

A crop starts on the STFT's hop, so each of its frames whose window lies inside the crop is
one frame of the whole song's STFT: the targets for a batch are slices of magnitudes made once
per song (:class:`Targets`) instead of an STFT of every stem of every crop, which was about a
quarter of a training step's time. The frames whose windows reach past the crop (the first
and the last) are left out of the loss (:func:`inner_frames`): their padding is not audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["PRELOAD_BYTES", "TARGET_BYTES", "Crops", "Pick", "Targets"]
__all__ += ["inner_frames", "shortest_crop"]

#: A Multitracks up to this size (as 16-bit samples) is read into memory once: reading crops
#: from FLAC files costs a training step about a quarter more time.
PRELOAD_BYTES = 2 * 1024**3

#: The stems' magnitudes (half precision) are made once and kept when they fit in this size
#: (240 songs of 10 s: 1.5 GB); else each batch's are made from its crops.
TARGET_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Pick:
    """One crop of a batch: song ``song`` from frame ``start``, each stem times ``gains`` and
    its channels swapped where ``swap``."""

    song: int
    start: int
    gains: np.ndarray
    swap: np.ndarray


class Crops:
    """Random crops of songs (Stems, or a Multitracks: held in memory as its files' 16-bit
    samples when they fit in :data:`PRELOAD_BYTES`, else read from disk crop by crop), each
    starting on a multiple of ``align`` frames."""

    def __init__(self, songs, frames: int, align: int = 1):
        self.songs, self.frames, self.align = songs, frames, align
        self.paths = getattr(songs, "paths", None)
        self.lengths = [self._length(i) for i in range(len(songs))]
        if any(length < frames for length in self.lengths):
            raise ParameterError(
                f"Every song must be at least {frames} frames long for crops of that length."
            )
        self.held = None
        channels = 2 * len(songs.names) if self.paths is not None else 0
        if self.paths is not None and 2 * channels * sum(self.lengths) <= PRELOAD_BYTES:
            import os
            from concurrent.futures import ThreadPoolExecutor

            import soundfile as sf

            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # decoding frees the GIL
                self.held = list(pool.map(lambda p: sf.read(p, dtype="int16")[0], self.paths))

    def _length(self, i: int) -> int:
        if self.paths is not None:
            import soundfile as sf

            return sf.info(self.paths[i]).frames
        return self.songs[i].frames

    def crop(self, i: int, start: int, frames: int | None = None) -> np.ndarray:
        """``(sources, channels, frames)`` float32 (``frames`` default: the crops' length)."""
        frames = frames or self.frames
        if self.held is not None:  # as soundfile reads 16-bit samples as floats: / 32768
            data = self.held[i][start : start + frames].astype(np.float32) / 32768.0
        elif self.paths is not None:
            import soundfile as sf

            data, _ = sf.read(self.paths[i], start=start, frames=frames, dtype="float32")
        else:
            return np.asarray(self.songs[i].data[..., start : start + frames], np.float32)
        return np.ascontiguousarray(data.T).reshape(-1, 2, frames)

    def picks(self, rng: np.random.Generator, size: int) -> list[Pick]:
        """``size`` random crops: a song, an aligned start, a level (0.5 to 1.25) and a coin
        for swapping the channels, per stem."""
        out = []
        for _ in range(size):
            i = int(rng.integers(len(self.songs)))
            start = self.align * int(
                rng.integers((self.lengths[i] - self.frames) // self.align + 1)
            )
            sources = len(self.songs.names) if self.paths is not None else len(self.songs[i].names)
            gains = rng.uniform(0.5, 1.25, size=sources).astype(np.float32)
            out.append(Pick(i, start, gains, rng.random(sources) < 0.5))
        return out

    def audio(self, picks: list[Pick]) -> np.ndarray:
        """The picked crops, levelled and swapped: ``(batch, sources, channels, frames)``."""
        out = []
        for pick in picks:
            stems = self.crop(pick.song, pick.start) * pick.gains[:, None, None]
            stems[pick.swap] = stems[pick.swap][:, ::-1]
            out.append(stems)
        return np.stack(out)

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """:meth:`audio` of ``size`` random :meth:`picks`."""
        return self.audio(self.picks(rng, size))


def inner_frames(model, frames: int) -> slice:
    """The STFT frames of a crop of ``frames`` whose windows lie inside it (centred frames:
    the first and last reach into padding).

    Examples
    --------
    >>> from bandscope_nb.separation.masknet import MaskNet
    >>> inner_frames(MaskNet(hidden=8), 88200)  # 87 frames: all but the first and last
    slice(1, 86, None)
    """
    half = model.nfft // 2
    return slice(-(-half // model.hop), (frames - half) // model.hop + 1)


def shortest_crop(model) -> int:
    """The fewest frames a crop needs for :func:`inner_frames` to hold one frame.

    Examples
    --------
    >>> from bandscope_nb.separation.masknet import MaskNet
    >>> net = MaskNet(hidden=8)
    >>> shortest_crop(net), inner_frames(net, 2048), inner_frames(net, 2047)
    (2048, slice(1, 2, None), slice(1, 1, None))
    """
    return model.nfft // 2 + inner_frames(model, 0).start * model.hop


def stem_magnitudes(model, stems):
    """``|STFT|`` of every stem: ``(batch, sources, channels, frames)`` ->
    ``(batch, sources, channels, bins, steps)``."""
    spec = model.magnitude(model.spectrogram(stems.flatten(0, 1)))
    return spec.reshape(*stems.shape[:2], *spec.shape[1:])


class Targets:
    """The stems' STFT magnitudes of every song, made once in half precision (when they fit
    in :data:`TARGET_BYTES`), and a batch's targets sliced from them; else made from each
    batch's crops. Either way the inner frames (:func:`inner_frames`) are the same."""

    def __init__(self, model, crops: Crops, device):
        import torch

        self.model, self.crops, self.device = model, crops, device
        self.steps = 1 + crops.frames // model.hop
        self.songs = None
        sources = len(model.sources)
        channels = model.audio_channels
        size = sum(
            2 * sources * channels * model.bins * (1 + n // model.hop) for n in crops.lengths
        )
        if crops.align % model.hop or size > TARGET_BYTES:
            return
        self.songs = []
        with torch.no_grad():
            for i, length in enumerate(crops.lengths):
                stems = torch.from_numpy(crops.crop(i, 0, length)[None]).to(device)
                self.songs.append(stem_magnitudes(model, stems)[0].half().cpu())

    def __call__(self, picks: list[Pick], audio):
        """The targets ``(batch, sources, channels, bins, steps)`` float32 on the device, for
        ``picks`` whose crops (as :meth:`Crops.audio` made them) are ``audio``."""
        import torch

        if self.songs is None:
            with torch.no_grad():
                return stem_magnitudes(self.model, audio)
        out = torch.empty(len(picks), *self.songs[0].shape[:3], self.steps)
        for row, pick in zip(out, picks, strict=True):  # copied straight into place
            first = pick.start // self.model.hop
            song = self.songs[pick.song][..., first : first + self.steps]
            for stem, source, swap in zip(row, song, pick.swap, strict=True):
                stem.copy_(source.flip(0) if swap else source)
        gains = torch.from_numpy(np.stack([pick.gains for pick in picks]))
        return out.mul_(gains[:, :, None, None, None]).to(self.device)
