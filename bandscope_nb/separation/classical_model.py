"""The classical 4-stem recipe shaped like a demucs model, so the separation engine (chunking,
progress, cache) runs it exactly as it runs Demucs. Imported only when used (it needs torch)."""

from __future__ import annotations

import numpy as np
import torch

from ..dsp.classical import FOUR_STEMS, separate_four
from .model_rules import check_recipe_options

__all__ = ["ClassicalModel"]


class ClassicalModel(torch.nn.Module):
    """:func:`~bandscope_nb.dsp.classical.separate_four` as a ``torch.nn.Module``.

    Parameters
    ----------
    samplerate : int
    segment : float
        Seconds per chunk; REPET-SIM needs several seconds to find repetitions.
    **options
        The recipe's options (:data:`RECIPE_OPTIONS`), passed to
        :func:`~bandscope_nb.dsp.classical.separate_four`; checked here.

    Examples
    --------
    >>> model = ClassicalModel()
    >>> model.sources, model.samplerate, model.segment
    (['drums', 'bass', 'other', 'vocals'], 44100, 30.0)
    """

    def __init__(self, *, samplerate: int = 44100, segment: float = 30.0, **options):
        super().__init__()
        self.sources = list(FOUR_STEMS)
        self.samplerate = samplerate
        self.audio_channels = 2
        self.segment = segment
        self.options = check_recipe_options(options)

    def valid_length(self, length: int) -> int:
        """Whole segments with real context (as HTDemucs does), also for the last chunk."""
        return max(length, int(self.segment * self.samplerate))

    def extra_repr(self) -> str:
        # "silence trimmed": the recipe's results changed (the engine's zero padding is no
        # longer analysed), so its identity, and with it every cache key, did too
        return f"segment={self.segment}, options={self.options}, silence trimmed"

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, frames)`` -> ``(batch, 4, channels, frames)``.

        Digital silence at either end of a chunk (the engine pads a song shorter than
        :attr:`segment` with zeros up to it) is cut before the recipe runs and is silence in
        every stem: a 5 s clip is analysed as 5 s, not 30.
        """
        batch = mix.cpu().numpy()
        out = np.zeros((batch.shape[0], len(self.sources), *batch.shape[1:]), np.float32)
        for item, stems in zip(batch, out, strict=True):
            sounding = np.flatnonzero(np.any(item != 0, axis=0))
            if sounding.size:  # at least a second (the recipe's frames need some length)
                start, end = sounding[0], max(sounding[-1] + 1, sounding[0] + self.samplerate)
                start = max(0, min(start, item.shape[-1] - self.samplerate))
                part = separate_four(item[:, start:end], self.samplerate, **self.options)
                stems[..., start:end] = part.data
        return torch.from_numpy(out).to(mix.device)
