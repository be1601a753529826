"""Display benchmark: first paint of a 5-minute stereo track, ours against librosa.display.

The bundled demo song tiled to 5 minutes (44.1 kHz stereo). In the same run: constructing a
``SpectrogramView`` (a one-lane player: the kernel is blocked only while it is built, and its
whole-track lane picture follows from a thread, timed to the end), a ``StemPlayer`` of four
5-minute stems and the mix, and the reference: the full-resolution STFT (n_fft 2048, hop 512)
drawn with ``librosa.display.specshow`` and rendered to PNG. Writes (or replaces) its
"## First paint" section in the Markdown file given with --write.

Usage: python benchmarks/bench_display.py [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from bench_sections import publish

HEADING = "## First paint: 5-minute stereo track"
MINUTES = 5


def timed(fn, repeat: int = 1) -> tuple[float, float]:
    """(first, best) wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], min(times)


def specshow_full(samples: np.ndarray, rate: int) -> None:
    import librosa
    import librosa.display
    from matplotlib.figure import Figure

    db = librosa.amplitude_to_db(np.abs(librosa.stft(samples.mean(axis=0))), ref=np.max)
    fig = Figure(figsize=(9, 2.5), dpi=100)
    librosa.display.specshow(db, sr=rate, x_axis="time", y_axis="log", ax=fig.subplots())
    fig.savefig(io.BytesIO(), format="png")


def main() -> None:
    import bandscope_nb as bn
    from bandscope_nb.notebook.widgets import SpectrogramView, StemPlayer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    mix, truth = bn.demo.load()
    reps = int(np.ceil(MINUTES * 60 / mix.duration))
    frames = MINUTES * 60 * mix.sample_rate
    long_mix = np.tile(mix.samples, reps)[:, :frames]
    long_stems = bn.Stems(np.tile(truth.data, reps)[:, :, :frames], truth.names, mix.sample_rate)
    audio = bn.Audio(long_mix, mix.sample_rate)

    def warm_up() -> None:  # what any earlier librosa call or plot in the kernel has done
        import librosa
        from matplotlib.figure import Figure

        librosa.stft(np.zeros(4096, np.float32))  # librosa imports its submodules on first use
        Figure(figsize=(1, 1)).savefig(io.BytesIO(), format="png")  # fonts, renderer

    rows = [
        ("once per kernel: imports, first STFT and first figure rendered", *timed(warm_up)),
        (
            "`SpectrogramView(audio)`, kernel blocked (audio and lane follow from threads)",
            *timed(lambda: SpectrogramView(audio), 3),
        ),
        (
            "`SpectrogramView(audio)` until its whole-track lane picture is computed",
            *timed(lambda: SpectrogramView(audio).wait(audio=False), 2),
        ),
        (
            "`StemPlayer(stems, mix)`, kernel blocked (audio and lanes follow from threads)",
            *timed(lambda: StemPlayer(long_stems, mix=long_mix), 2),
        ),
        (
            "reference: `librosa.display.specshow`, full-resolution STFT",
            *timed(lambda: specshow_full(long_mix, mix.sample_rate)),
        ),
    ]
    lines = [
        HEADING,
        "",
        f"`benchmarks/bench_display.py`: the demo song tiled to {MINUTES} minutes, 44.1 kHz "
        "stereo, same run; first call and best of the calls made. The "
        "one-time costs of a kernel (librosa's and matplotlib's imports, first STFT, first "
        "rendered figure) are timed first and apart; every later row runs after them.",
        "",
        "| what | first (s) | best (s) |",
        "|---|---:|---:|",
    ]
    lines += [f"| {what} | {first:.2f} | {best:.2f} |" for what, first, best in rows]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
