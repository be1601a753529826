"""Teaching-lab benchmark: a MaskNet trained for a time budget on synthetic songs, scored on the
held-out demo song against the classical recipe (BSS Eval medians per stem, as docs/baselines.md).

The command it times is the documented recipe (``bandscope train`` does the same): 240 songs
of 10 s (seed 0), a MaskNet of width 192, ``fit(minutes=...)`` on this machine's CPU. Writes
(or replaces) its section in the Markdown file given with --write.

Usage: python benchmarks/bench_train.py [--minutes 10] [--out build/bench-train]
                                        [--write docs/baselines.md]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from bench_sections import publish

HEADING = "## A MaskNet trained on this machine"


def main() -> None:
    import torch

    import bandscope_nb as bn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("build/bench-train"))
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    songs = bn.datasets.synth_multitracks(240, seconds=10.0, seed=0)
    made = time.perf_counter() - start
    result = bn.training.fit(
        bn.training.MaskNet(hidden=192), songs, minutes=args.minutes, device="cpu", out=args.out
    )
    _, truth = bn.demo.load()
    scores = {}
    for label, model in (("classical", "classical"), ("MaskNet", str(result.checkpoint))):
        sep = bn.Separator(model=model, device="cpu", cache=False, progress=False)
        medians = bn.metrics.evaluate(truth, sep.separate(bn.demo.path())).medians
        scores[label] = {name: medians[name]["SDR"] for name in truth.names}
    gain = {n: scores["MaskNet"][n] - scores["classical"][n] for n in truth.names}
    names = list(truth.names)
    lines = [
        HEADING,
        "",
        f"`python benchmarks/bench_train.py --minutes {args.minutes:g}` on "
        f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch "
        f"{torch.__version__}: 240 synthetic songs of 10 s (made in {made:.0f} s, once), "
        f"then {result.steps} training steps in {result.seconds / 60:.1f} min (best: step "
        f"{result.best['step']}, validation SDR {result.best['val_sdr']:.2f} dB). Median SDR on "
        "the held-out demo song, same scoring as the table above:",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, row in scores.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[n]:.2f}" for n in names) + " |")
    lines.append("| MaskNet − classical | " + " | ".join(f"{gain[n]:+.2f}" for n in names) + " |")
    lines += [
        "",
        "The goal (Teaching lab issue): at least +3 dB on every stem after 10 minutes. "
        + ("Met." if min(gain.values()) >= 3 else "Not met yet."),
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
