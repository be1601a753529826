"""The bundled demo song with its ground-truth stems.

An original 20-second piece written for bandscope-nb (CC0-1.0): drums, bass, keys ("other") and a
vocal-like lead ("vocals"), rendered from the note data in ``song.json`` with fluidsynth and the
FluidR3 General MIDI SoundFont by ``tools/render_demo.py``. 44.1 kHz stereo, 16-bit FLAC; the mix
is the exact sum of the four stems.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..audio import Audio, load_audio
from ..stems import Stems

__all__ = ["STEMS", "load", "path"]

#: The demo's stems, in demucs' order.
STEMS = ("drums", "bass", "other", "vocals")
_HERE = Path(__file__).resolve().parent


def path(stem: str = "mix") -> Path:
    """Path of the demo mix (or of one stem, by name).

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> bn.demo.path().name
    'mix.flac'
    """
    if stem != "mix" and stem not in STEMS:
        raise KeyError(f"No demo stem {stem!r}; choose 'mix' or one of {STEMS}.")
    return _HERE / f"{stem}.flac"


def load() -> tuple[Audio, Stems]:
    """The demo mix and its true stems.

    Returns
    -------
    mix : Audio
        float32 ``(2, frames)`` at 44.1 kHz.
    stems : Stems
        ``("drums", "bass", "other", "vocals")``, summing to the mix.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> truth.names, mix.sample_rate, round(mix.duration, 1)
    (('drums', 'bass', 'other', 'vocals'), 44100, 20.0)
    """
    mix = load_audio(path())
    data = np.stack([load_audio(path(name)).samples for name in STEMS])
    return mix, Stems(data, STEMS, mix.sample_rate, info={"model": "ground truth"})
