"""Metrics benchmark: BSS Eval v4 on the demo song, ours against museval, in one run.

The estimates are the oracle ratio mask's (``bn.oracle_masks``) of the bundled demo song, as
is and tiled to 60 s (44.1 kHz stereo, 4 stems, 1 s windows, 512-tap filters). Both
implementations get the same arrays; the table gives each one's wall time and the largest
difference between their per-stem medians of SDR, SIR, SAR and ISR. Writes (or replaces) its
"## BSS Eval" section in the Markdown file given with --write.

Usage: python benchmarks/bench_metrics.py [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from bench_sections import publish

HEADING = "## BSS Eval: ours against museval"
NAMES = ("SDR", "ISR", "SIR", "SAR")


def tiled(samples: np.ndarray, seconds: float, rate: int) -> np.ndarray:
    """``samples (..., frames)`` repeated along time to ``seconds``."""
    frames = int(seconds * rate)
    reps = -(-frames // samples.shape[-1])
    return np.concatenate([samples] * reps, axis=-1)[..., :frames]


def medians(values: dict[str, np.ndarray]) -> np.ndarray:
    return np.array([[np.nanmedian(row) for row in values[name]] for name in NAMES])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="Markdown file to write the section into")
    args = parser.parse_args()

    import museval

    import bandscope_nb as bn
    from bandscope_nb.dsp.metrics import bss_eval

    mix, truth = bn.demo.load()
    rate = mix.sample_rate
    rows = []
    for seconds in (truth.frames / rate, 60.0):
        refs = tiled(np.asarray(truth.data, np.float64), seconds, rate)
        estimates = bn.oracle_masks(
            tiled(mix.samples, seconds, rate),
            bn.Stems(refs, truth.names, rate),
            kind="irm",
            sample_rate=rate,
        ).estimates
        ests = np.asarray(estimates.data, np.float64)

        start = time.perf_counter()
        ours = bss_eval(refs, ests, window=rate, hop=rate)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = museval.evaluate(
            np.moveaxis(refs, 1, 2), np.moveaxis(ests, 1, 2), win=rate, hop=rate
        )
        theirs_s = time.perf_counter() - start
        diff = np.max(np.abs(medians(ours) - medians(dict(zip(NAMES, theirs, strict=True)))))
        rows.append((seconds, ours_s, theirs_s, diff))
        print(f"{seconds:.0f} s: ours {ours_s:.1f} s, museval {theirs_s:.1f} s, diff {diff:.1e}")

    lines = [
        HEADING,
        "",
        "`benchmarks/bench_metrics.py`: `bandscope_nb.dsp.metrics.bss_eval` and "
        f"`museval.evaluate` {museval_version()} on the same arrays, in the same run: the oracle "
        "ratio mask's 4 stems of the demo song, as is and tiled to 60 s (44.1 kHz stereo, 1 s "
        "windows, 512-tap filters). One call each.",
        "",
        "| track (s) | ours (s) | museval (s) | speed-up | largest median difference (dB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {seconds:.0f} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.1f}x | {diff:.1e} |"
        for seconds, ours, theirs, diff in rows
    ]
    publish(lines, args.write)


def museval_version() -> str:
    from importlib.metadata import version

    return version("museval")


if __name__ == "__main__":
    main()
