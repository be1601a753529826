"""Compile librosa's numba kernels once, at install time, into the environment's cache.

librosa compiles its numba functions (``cache=True``) the first time they are used and keeps
them beside its modules; in a fresh environment that takes 20-40 s on two cores, which would
otherwise land on whichever test, notebook or first spectrogram happens to touch librosa first.

Usage: python tools/warm_numba.py   (run by ``make setup``)
"""

from __future__ import annotations

import time

import librosa
import numpy as np


def main() -> None:
    start = time.perf_counter()
    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    spec = librosa.stft(y)
    mag = np.abs(spec)
    librosa.istft(spec, length=y.size)
    librosa.decompose.hpss(mag, mask=True)
    librosa.util.softmask(mag, mag, power=2)
    librosa.feature.melspectrogram(S=mag**2, sr=22050)
    librosa.cqt(y, sr=22050)
    librosa.time_to_frames(1.0, sr=22050)
    print(f"librosa's numba kernels ready ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
