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
        return f"segment={self.segment}, options={self.options}"

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, frames)`` -> ``(batch, 4, channels, frames)``."""
        out = [
            separate_four(item.cpu().numpy(), self.samplerate, **self.options).data for item in mix
        ]
        return torch.from_numpy(np.stack(out)).to(mix.device)
