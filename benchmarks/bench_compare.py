"""Compare benchmark: six runs of a 3-minute track, the first call against the second.

The bundled demo song tiled to 3 minutes (44.1 kHz stereo FLAC), compared by ``bn.compare``
with six runs through the cached Separator (a fresh cache folder): a full-size HTDemucs with
random weights (the pretrained htdemucs' architecture: its speed, not its quality) at three
settings, and the classical separator at three overlaps. The same call is then made again:
every run is read from the cache. Both calls are timed whole, in the same run, and the second
call's rows must all be cache hits. Writes (or replaces) its "## Compare" section in the
Markdown file given with --write.

Usage: python benchmarks/bench_compare.py [--minutes 3] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from bench_engine import full_htdemucs
from bench_sections import publish

HEADING = "## Compare: six runs of a 3-minute track, first call and second"


def main() -> None:
    import bandscope_nb as bn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    mix, _ = bn.demo.load()
    frames = int(args.minutes * 60 * mix.sample_rate)
    reps = int(np.ceil(frames / mix.frames))
    model = full_htdemucs()
    runs = {
        "htdemucs-size": {"model": model},
        "htdemucs-size, overlap 0.5": {"model": model, "overlap": 0.5},
        "htdemucs-size, 1 shift": {"model": model, "shifts": 1},
        "classical": {"model": "classical"},
        "classical, overlap 0.1": {"model": "classical", "overlap": 0.1},
        "classical, overlap 0.5": {"model": "classical", "overlap": 0.5},
    }
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "song.flac"
        sf.write(song, np.tile(mix.samples, reps)[:, :frames].T, mix.sample_rate)
        cache = Path(tmp) / "cache"
        calls = []
        for _ in range(2):
            start = time.perf_counter()
            result = bn.compare(song, runs, device="cpu", cache=cache)
            calls.append((time.perf_counter() - start, result))
    (first, one), (second, two) = calls
    if any(two[label].how != "cache hit" for label in two):
        raise SystemExit("The second call recomputed a run: the cache did not serve it.")
    lines = [
        HEADING,
        "",
        f"`benchmarks/bench_compare.py`: the demo song tiled to {args.minutes:g} minutes "
        "(44.1 kHz stereo FLAC), six runs through the cached Separator on the CPU (a full-size "
        "HTDemucs with random weights at three settings, the classical separator at three "
        "overlaps), a fresh cache; then the same call again. Each call timed whole (audio "
        "read, models loaded, runs, stems kept as memory maps), same run.",
        "",
        "| run | first call: how | seconds | x real time | peak MB | second call: how | seconds |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for label in one:
        a, b = one[label], two[label]
        lines.append(
            f"| {label} | {a.how} | {a.seconds:.1f} | {a.realtime:.2f} | {a.peak_mb:.0f} | "
            f"{b.how} | {b.call_seconds:.2f} |"
        )
    lines += [
        "",
        f"Whole call: first {first:.1f} s, second {second:.1f} s "
        f"({first / second:.0f}x faster: nothing recomputed).",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
