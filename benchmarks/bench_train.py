"""Teaching-lab benchmark: the bandscope-tiny recipe trained on this machine's CPU, its wall time,
and its scores on the held-out demo song next to the classical recipe's (BSS Eval medians per
stem, as in docs/baselines.md).

The recipe is ``bandscope train -o DIR --steps STEPS`` with every other option at its default:
240 synthetic songs of 10 s (data seed 0), a MaskNet with its default shape, seed 0. A fixed
number of steps (not a time budget) makes the run repeatable; the wall time it took is
printed beside it and must stay within the 10 minutes the Teaching lab allows. With ``--ship``
the best checkpoint is stored in half precision as the bundled ``bandscope-tiny``
(bandscope_nb/separation/weights/), scored again, and its sha256 printed for bundled.py.

Usage: python benchmarks/bench_train.py [--steps 4000] [--out build/bench-train]
                                        [--write docs/baselines.md] [--ship]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from bench_sections import publish

HEADING = "## bandscope-tiny: a MaskNet trained on this machine"
STEPS = 4000


def _medians(model, truth) -> dict[str, float]:
    import bandscope_nb as bn

    sep = bn.Separator(model=model, device="cpu", cache=False, progress=False)
    medians = bn.metrics.evaluate(truth, sep.separate(bn.demo.path())).medians
    return {name: medians[name]["SDR"] for name in truth.names}


def _validation_means(model, songs) -> dict[str, float]:
    """Mean SDR per stem over the validation songs, whole: what ``fit`` judges by (it averages
    over the stems too), and a steadier measure than one demo song's medians."""
    import numpy as np
    import torch

    from bandscope_nb.dsp.metrics import sdr

    scores = {name: [] for name in model.sources}
    with torch.no_grad():
        for i in range(len(songs)):
            stems = songs[i].data
            estimate = model.eval()(torch.from_numpy(stems.sum(axis=0)[None]))[0].numpy()
            for name, truth, guess in zip(model.sources, stems, estimate, strict=True):
                if np.any(truth):
                    scores[name].append(sdr(truth, guess))
    return {name: float(np.mean(values)) for name, values in scores.items()}


def main() -> None:
    import torch

    import bandscope_nb as bn
    from bandscope_nb.digests import sha256_file
    from bandscope_nb.separation import bundled
    from bandscope_nb.separation.modelfiles import load_safetensors, save_safetensors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--out", type=Path, default=Path("build/bench-train"))
    parser.add_argument("--write", type=Path)
    parser.add_argument("--ship", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    songs = bn.datasets.synth_multitracks(240, seconds=10.0, seed=0)
    made = time.perf_counter() - start
    net = bn.training.MaskNet()
    result = bn.training.fit(net, songs, steps=args.steps, device="cpu", out=args.out)
    _, truth = bn.demo.load()
    scores = {"classical": _medians("classical", truth), "MaskNet": _medians(net, truth)}
    held = _validation_means(net, songs[len(songs) - len(songs) // 10 :])
    shipped = ""
    if args.ship:
        path = bundled.bundled_path("bandscope-tiny")
        save_safetensors(load_safetensors(result.checkpoint).half(), path)
        digest = sha256_file(path)
        scores["bandscope-tiny (fp16)"] = _medians(load_safetensors(path), truth)
        shipped = (
            f'Shipped as `model="bandscope-tiny"`: its best checkpoint in half precision, '
            f"{path.stat().st_size / 1e6:.1f} MB, sha256 `{digest}`."
        )
        print(f"bandscope-tiny sha256: {digest}")
    gain = {n: scores["MaskNet"][n] - scores["classical"][n] for n in truth.names}
    names = list(truth.names)
    minutes = result.seconds / 60
    lines = [
        HEADING,
        "",
        f"`python benchmarks/bench_train.py --steps {args.steps}{' --ship' if args.ship else ''}`"
        f" on {platform.machine()}, {torch.get_num_threads()} CPU threads, torch "
        f"{torch.__version__}; the training is `bandscope train -o DIR --steps {args.steps}`. "
        f"240 synthetic songs of 10 s (ready in {made:.0f} s: made once, then read from disk), "
        f"then {result.steps} steps "
        f"in **{minutes:.1f} min** of training (best: step {result.best['step']}, validation "
        f"SDR {result.best['val_sdr']:.2f} dB). Median SDR (dB) on the held-out demo song, "
        "scored as the table above:",
        "",
        "| method | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, row in scores.items():
        lines.append(f"| {label} | " + " | ".join(f"{row[n]:.2f}" for n in names) + " |")
    lines.append("| MaskNet − classical | " + " | ".join(f"{gain[n]:+.2f}" for n in names) + " |")
    lines += [
        "",
        f"Mean SDR (dB) of the kept state on the {len(songs) // 10} validation songs, whole "
        "(steadier than one song's medians): "
        + ", ".join(f"{n} {held[n]:.2f}" for n in names)
        + ".",
    ]
    met = min(gain.values()) >= 3 and minutes <= 10
    lines += [
        "",
        "The goal (Teaching lab issue): at least +3 dB on every stem after at most 10 minutes "
        "of training. " + ("Met." if met else "Not met."),
        "",
        "The demo song is rendered like the training songs (General MIDI, the same SoundFont), "
        "so these scores say what the model learnt about such renders. Synthetic General MIDI "
        "songs do not make a model for real recordings: do not expect these gains on a studio "
        "mix.",
    ]
    if shipped:
        lines += ["", shipped]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
