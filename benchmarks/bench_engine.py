"""Engine benchmark: bandscope-nb's Separator vs demucs' apply_model, side by side in one run.

Measures, on this machine's CPU:

1. throughput (seconds of audio per second) of a full-size HTDemucs (the pretrained htdemucs
   architecture, random weights: the compute is the same) on the 20 s demo song;
2. peak resident memory (RSS) of a fresh process separating 3, 10 and 30-minute files with a tiny
   HTDemucs (so the 30-minute case takes minutes, not an hour), for both engines;
3. the time a cached 5-minute track takes to come back.

Usage: python benchmarks/bench_engine.py [--write docs/benchmarks.md] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from bandscope_nb.separation.onnx_backend import LABELS

RATE = 44100
SOURCES = ["drums", "bass", "other", "vocals"]


def full_htdemucs():
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    # The pretrained htdemucs' architecture: demucs' defaults with its 7.8 s training segment.
    return HTDemucs(SOURCES, segment=Fraction(39, 5)).eval()


def tiny_htdemucs():
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(0)
    # htdemucs' depth (4 layers, 256x shorter time branch) with 4 channels: ~77k parameters.
    return HTDemucs(
        SOURCES,
        segment=Fraction(39, 5),
        channels=4,
        depth=4,
        t_layers=1,
        t_heads=1,
        bottom_channels=0,
        dconv_mode=0,
        t_hidden_scale=1.0,
    ).eval()


def write_noise(path: Path, minutes: float) -> None:
    rng = np.random.default_rng(0)
    frames = int(minutes * 60 * RATE)
    with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as f:
        for start in range(0, frames, RATE * 30):
            n = min(RATE * 30, frames - start)
            f.write((0.1 * rng.standard_normal((n, 2))).astype(np.float32))


#: The Separator's backends that run an exported graph: key in the results, backend, and how
#: the report names it (onnx_backend.LABELS).
GRAPHS = tuple(
    (key, backend, LABELS[backend])
    for key, backend in (("onnx", "onnxruntime"), ("openvino", "openvino"))
)


def throughput_repeated(repeats: int, gap: float = 0.0) -> dict:
    """The engines alternately (``apply_model``, the Separator with torch, with ONNX Runtime
    and with OpenVINO), ``repeats`` times each after one warm-up each: medians (this machine's
    timings drift by 10-20 % between minutes, so a single run each can mislead). The graph
    backends' warm-ups include their one-time export and check, timed apart. The input is the
    demo song; with ``gap`` seconds, the demo song twice with that much digital silence
    between."""
    import statistics

    import torch
    from demucs.apply import apply_model

    import bandscope_nb as bn

    samples = bn.demo.load()[0].samples
    if gap:
        silence = np.zeros((samples.shape[0], int(gap * RATE)), np.float32)
        samples = np.concatenate([samples, silence, samples], axis=1)
    model = full_htdemucs()
    torch.set_num_threads(os.cpu_count() or 1)

    def reference():
        with torch.inference_mode():
            mix = torch.from_numpy(samples)[None]
            return apply_model(model, mix, shifts=0, split=True, overlap=0.25)[0].numpy()

    def separator(backend):
        sep = bn.Separator(model, device="cpu", backend=backend, cache=False, progress=False)
        return lambda: np.asarray(sep.separate(samples, RATE).data)

    engines = {"apply_model": reference, "ours": separator("torch")}
    engines.update({key: separator(backend) for key, backend, _ in GRAPHS})
    times: dict = {name: [] for name in engines}
    out = {name: engines[name]() for name in ("apply_model", "ours")}  # warm-ups
    first = {}
    for key, _, _ in GRAPHS:  # the first run in a process exports and checks the graph
        t0 = time.perf_counter()
        out[key] = engines[key]()
        first[f"{key}_first_s"] = time.perf_counter() - t0
    for _ in range(repeats):
        for name, run in engines.items():
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)

    def snr(name):
        err = np.sum((out["apply_model"] - out[name]) ** 2)
        return 10 * np.log10(np.sum(out["apply_model"] ** 2) / err) if err else float("inf")

    return {
        "gap_s": gap,
        "audio_s": samples.shape[1] / RATE,
        **{f"{name}_s": statistics.median(t) for name, t in times.items()},
        "snr_db": snr("ours"),
        **{f"{key}_snr_db": snr(key) for key, _, _ in GRAPHS},
        **first,
        "repeats": repeats,
        "times": times,
    }


def throughput_lines(tp: dict) -> list[str]:
    ratio = tp["apply_model_s"] / tp["ours_s"]
    graph_rows, ratios, snrs, firsts = [], "", "", ""
    for key, backend, label in GRAPHS:
        if f"{key}_s" not in tp:
            continue
        graph_rows.append(
            f'| bandscope-nb `Separator(backend="{backend}")` | {tp[f"{key}_s"]:.1f} | '
            f"{tp['audio_s'] / tp[f'{key}_s']:.2f} |"
        )
        ratios += f", {tp['apply_model_s'] / tp[f'{key}_s']:.2f}x with {label}"
        snrs += f", {tp[f'{key}_snr_db']:.1f} dB with {label}"
        firsts += f"{', ' if firsts else ''}{label} {tp[f'{key}_first_s']:.1f} s"
    if firsts:
        firsts = (
            f" The first run of each graph backend in a process exports the network and checks "
            f"it against torch ({firsts}; with a result cache the graph is kept on disk and "
            "later processes skip the export)."
        )
    how = (
        f"median of {tp['repeats']} runs each, alternating, after a warm-up of each"
        if "repeats" in tp
        else "one run each"
    )
    return [
        "## Throughput: full-size HTDemucs (random weights), CPU",
        "",
        f"The {tp['audio_s']:.1f} s demo song, `shifts=0`, `overlap=0.25`, default segment "
        f"(7.8 s); {how}, {time.strftime('%Y-%m-%d')}.",
        "",
        "| engine | seconds | audio seconds per second |",
        "|---|---:|---:|",
        f"| demucs `apply_model` | {tp['apply_model_s']:.1f} | "
        f"{tp['audio_s'] / tp['apply_model_s']:.2f} |",
        f"| bandscope-nb `Separator` | {tp['ours_s']:.1f} | {tp['audio_s'] / tp['ours_s']:.2f} |",
        *graph_rows,
        "",
        f"bandscope-nb is {ratio:.2f}x `apply_model` with torch{ratios} (goal: 1.35x). "
        f"Agreement with `apply_model`'s output: {tp['snr_db']:.1f} dB SNR with torch"
        f"{snrs} (target >= 60 dB).{firsts}",
    ]


def silence_lines(tp: dict) -> list[str]:
    def row(name, key):
        return f"| {name} | {tp[key]:.1f} | {tp['apply_model_s'] / tp[key]:.2f}x |"

    return [
        "## Digital silence: chunks of zeros are not run",
        "",
        f"The demo song, {tp['gap_s']:.0f} s of digital silence, the demo song again "
        f"({tp['audio_s']:.0f} s); full-size HTDemucs (random weights), CPU, `shifts=0`, "
        f"`overlap=0.25`; median of {tp['repeats']} runs each, alternating, "
        f"{time.strftime('%Y-%m-%d')}. The chunks that lie wholly in the silence go through "
        "no network: HTDemucs returns exact zeros for them (`keeps_silence`); `apply_model` "
        "runs them.",
        "",
        "| engine | seconds | vs `apply_model` |",
        "|---|---:|---:|",
        row("demucs `apply_model`", "apply_model_s"),
        row("bandscope-nb `Separator`", "ours_s"),
        *(
            row(f'bandscope-nb `Separator(backend="{b}")`', f"{k}_s")
            for k, b, _ in GRAPHS
            if f"{k}_s" in tp
        ),
        "",
        f"Agreement with `apply_model`'s output: {tp['snr_db']:.1f} dB SNR with torch"
        + "".join(
            f", {tp[f'{k}_snr_db']:.1f} dB with {label}" for k, _, label in GRAPHS if f"{k}_s" in tp
        )
        + ".",
    ]


CHILD = r"""
import json, resource, sys, time
import numpy as np, soundfile as sf, torch
sys.path.insert(0, sys.argv[4])
from bench_engine import tiny_htdemucs
engine, path, cache = sys.argv[1], sys.argv[2], sys.argv[3]
model = tiny_htdemucs()
t0 = time.perf_counter()
if engine == "apply_model":
    from demucs.apply import apply_model
    x, _ = sf.read(path, dtype="float32", always_2d=True)
    out = apply_model(model, torch.from_numpy(x.T.copy())[None], shifts=0, split=True,
                      overlap=0.25)
else:
    import bandscope_nb as bn
    out = bn.Separator(model, device="cpu", cache=cache, progress=False).separate(path)
seconds = time.perf_counter() - t0
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": seconds}))
"""


def peak_rss(minutes: list[float], workdir: Path) -> list[dict]:
    rows = []
    for m in minutes:
        path = workdir / f"noise_{m:g}min.wav"
        write_noise(path, m)
        row = {"minutes": m}
        for engine in ("apply_model", "bandscope"):
            cache = workdir / f"cache_{engine}_{m:g}"
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    engine,
                    str(path),
                    str(cache),
                    str(Path(__file__).parent),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            row[f"{engine}_rss_mb"] = result["peak_rss_mb"]
            row[f"{engine}_s"] = result["seconds"]
        path.unlink()
        rows.append(row)
        print(row, flush=True)
    return rows


def cache_hit(workdir: Path) -> dict:
    import bandscope_nb as bn

    path = workdir / "five.wav"
    write_noise(path, 5)
    model = tiny_htdemucs()
    cache = bn.ResultCache(workdir / "hitcache")
    t0 = time.perf_counter()
    bn.Separator(model, device="cpu", cache=cache, progress=False).separate(path)
    first = time.perf_counter() - t0
    sep = bn.Separator(model, device="cpu", cache=cache, progress=False)
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        stems = sep.separate(path)
        timings.append(time.perf_counter() - t0)
        assert stems.info["cached"]
    return {"first_s": first, "hit_s": min(timings), "hit_s_max": max(timings)}


def hit_lines(hit: dict) -> list[str]:
    return [
        "## Cache hit: 5-minute track",
        "",
        f"First separation (tiny model): {hit['first_s']:.1f} s; re-running `separate` on the "
        f"cached result: best {1000 * hit['hit_s']:.1f} ms, worst {1000 * hit['hit_s_max']:.1f} ms "
        "of 5 (target < 200 ms). A hit still decodes the 53 MB input once, checking, hashing "
        "and staging it in the same pass (the key is the decoded audio); the stems come back "
        "memory-mapped, not copied.",
    ]


def report(tp: dict, rss: list[dict], hit: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench`: `benchmarks/bench_engine.py` (both engines measured in the same",
        "run on the same model), then `bench_batch.py`, `bench_display.py` and",
        "`bench_metrics.py`, each comparing within one run. No timing here is asserted by a test.",
        "",
        f"- date: {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {platform.python_implementation()} "
        f"{platform.python_version()}",
        f"- torch {__import__('torch').__version__}, demucs "
        f"{__import__('importlib.metadata').metadata.version('demucs')}",
        "",
        *throughput_lines(tp),
        "",
        "## Peak memory against track length: tiny HTDemucs, fresh process each",
        "",
        "`apply_model` gets the decoded track as a tensor (its usage); bandscope-nb gets the file",
        "path and streams it. Peak RSS includes Python, torch and the model.",
        "",
        "| track | apply_model peak RSS (MB) | bandscope-nb peak RSS (MB) | apply_model s | "
        "bandscope-nb s |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rss:
        lines.append(
            f"| {row['minutes']:g} min | {row['apply_model_rss_mb']:.0f} | "
            f"{row['bandscope_rss_mb']:.0f} | {row['apply_model_s']:.1f} | "
            f"{row['bandscope_s']:.1f} |"
        )
    if len(rss) >= 2:
        growth = rss[-1]["bandscope_rss_mb"] / rss[0]["bandscope_rss_mb"] - 1
        lines += [
            "",
            f"bandscope-nb's peak grows {100 * growth:+.0f} % from the shortest to the "
            "longest track (target: within 20 %).",
        ]
    lines += ["", *hit_lines(hit), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the Markdown report here")
    parser.add_argument("--quick", action="store_true", help="short inputs, for a smoke run")
    parser.add_argument(
        "--cache-hit-only", action="store_true", help="rewrite only the cache-hit section"
    )
    parser.add_argument(
        "--throughput-only", action="store_true", help="rewrite only the throughput section"
    )
    parser.add_argument(
        "--silence-only", action="store_true", help="rewrite only the digital-silence section"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per engine (throughput)")
    args = parser.parse_args()
    if args.silence_only:
        from bench_sections import publish

        publish(silence_lines(throughput_repeated(args.repeats, gap=20.0)), args.write)
        return
    if args.throughput_only:
        from bench_sections import publish

        tp = throughput_repeated(args.repeats)
        print(tp, flush=True)
        publish(throughput_lines(tp), args.write)
        return
    if args.cache_hit_only:
        from bench_sections import publish

        with tempfile.TemporaryDirectory() as tmp:
            publish(hit_lines(cache_hit(Path(tmp))), args.write)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tp = throughput_repeated(1 if args.quick else args.repeats)
        print(tp, flush=True)
        rss = peak_rss([0.5, 1.0] if args.quick else [3, 10, 30], Path(tmp))
        hit = cache_hit(Path(tmp))
        print(hit, flush=True)
    text = report(tp, rss, hit)
    if args.write:
        args.write.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
