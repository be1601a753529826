"""GPU benchmark: bandscope-nb's engine vs demucs' ``apply_model`` on one CUDA GPU, side by side.

Measured in one run, on the same full-size HTDemucs (the pretrained htdemucs architecture with
random weights: the same compute) and the same input (the demo song repeated to ``--seconds``):

1. a correctness check: a tiny HTDemucs separated on the GPU and on the CPU must agree;
2. throughput (audio seconds per second, median of ``--repeats`` runs after a warm-up) of
   ``apply_model`` and of :class:`bandscope_nb.Separator` in each precision and batch size,
   with the peak GPU memory of each;
3. fidelity of each mode: SNR of its stems against IEEE fp32 stems (ours, batch 1).

``apply_model`` runs with torch's defaults, which on CUDA make cuDNN convolutions TF32: the
same arithmetic as ``precision="tf32"``.

Random weights are not trained ones: the fidelity of reduced precision on real weights can
differ and should be re-measured with them (``Separator.benchmark`` is where that will live).

Usage: python benchmarks/bench_gpu.py [--device cuda] [--seconds 120] [--write docs/benchmarks.md]
       [--json results.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

RATE = 44100
SOURCES = ["drums", "bass", "other", "vocals"]
MODES = [  # (precision, batch_size); the first one is the fidelity reference
    ("fp32", 1),
    ("fp32", 8),
    ("fp32", 16),
    ("tf32", 1),
    ("tf32", 8),
    ("tf32", 16),
    ("tf32", 32),
    ("bf16", 8),
    ("bf16", 16),
    ("fp16", 8),
    ("fp16", 16),
    ("fp16", 32),
]


def htdemucs(tiny: bool = False):
    """The models of ``bench_engine.py``: the pretrained htdemucs' architecture, or a tiny one."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_engine import full_htdemucs, tiny_htdemucs

    return tiny_htdemucs() if tiny else full_htdemucs()


def snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    err = float(np.sum((reference.astype(np.float64) - estimate) ** 2))
    power = float(np.sum(reference.astype(np.float64) ** 2))
    return float("inf") if err == 0 else 10 * np.log10(power / err)


def song(seconds: float) -> np.ndarray:
    import bandscope_nb as bn

    mix = bn.demo.load()[0].samples
    reps = int(np.ceil(seconds * RATE / mix.shape[1]))
    return np.ascontiguousarray(np.tile(mix, reps)[:, : int(seconds * RATE)])


def timed(run, device, repeats: int) -> tuple[float, object, float]:
    """Median seconds of ``repeats`` calls of ``run()`` after one warm-up, its last result and
    the peak GPU memory (GiB) over the timed calls."""
    import torch

    run()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run()
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out, torch.cuda.max_memory_allocated(device) / 2**30


def check(device) -> dict:
    """The GPU path against the CPU path and against ``apply_model`` on the GPU, tiny model;
    a network that outputs NaN on the GPU must be a SeparationError."""
    import torch
    from demucs.apply import apply_model

    import bandscope_nb as bn

    model = htdemucs(tiny=True)
    x = song(70)  # three 30 s regions through the worker thread
    cpu = bn.Separator(model, device="cpu", cache=False, progress=False).separate(x, RATE)
    gpu = bn.Separator(model, device=device, cache=False, progress=False).separate(x, RATE)
    tf32 = bn.Separator(model, device=device, cache=False, progress=False, precision="tf32")
    batched = bn.Separator(
        model, device=device, cache=False, progress=False, precision="tf32", batch_size=8
    )
    with torch.inference_mode():
        mix = torch.from_numpy(x)[None].to(device)
        ref = apply_model(model.to(device), mix, shifts=0, overlap=0.25)
    ref = ref[0].cpu().numpy()
    auto = bn.Separator(model, device="auto", cache=False, progress=False).device
    nan = torch.nn.Parameter(torch.tensor(float("nan")))
    model.register_parameter("nan_scale", nan)
    handle = model.register_forward_hook(lambda mod, inp, out: out * mod.nan_scale)
    try:
        bn.Separator(model, device=device, cache=False, progress=False).separate(x, RATE)
        nan_result = "no error (WRONG)"
    except bn.SeparationError as exc:
        nan_result = f"SeparationError: {exc}"
    handle.remove()
    return {
        "snr_gpu_vs_cpu_db": snr(cpu.data, gpu.data),
        "snr_tf32_vs_cpu_db": snr(cpu.data, tf32.separate(x, RATE).data),
        "snr_tf32_vs_apply_model_on_gpu_db": snr(ref, tf32.separate(x, RATE).data),
        "snr_tf32_batch8_vs_apply_model_on_gpu_db": snr(ref, batched.separate(x, RATE).data),
        "nan_on_gpu": nan_result,
        "auto_device": str(auto),
    }


def explore(device, seconds: float) -> dict:
    """Where the time goes (printed, not tabled): the network alone per batch (CUDA events),
    the host's time to launch it, the synchronising calls inside it (a CUDA graph cannot be
    captured across them), and a profile of one whole separation."""
    import cProfile
    import io
    import pstats
    import warnings

    import torch

    import bandscope_nb as bn
    from bandscope_nb.separation.demucs_constants import cached_constants
    from bandscope_nb.separation.engine import _precision

    model = htdemucs().to(device)
    seg = int(7.8 * RATE)
    chunks = len(range(0, int(seconds * RATE), int(0.75 * seg)))
    found: dict = {"chunks": chunks}

    def events(fn, reps=5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(reps):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)

    runs = [("tf32", 16, False)]
    runs += [(p, b, True) for p, b in (("tf32", 1), ("tf32", 16), ("fp16", 16), ("bf16", 16))]
    for precision, batch, cached in runs:
        xb = torch.randn(batch, 2, seg, device=device)
        scope = cached_constants() if cached else contextlib.nullcontext()
        with torch.inference_mode(), _precision(device, precision), scope:
            model(xb)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(xb)
            launch = time.perf_counter() - t0
            torch.cuda.synchronize()
            ms = events(lambda xb=xb: model(xb))
        key = f"{precision}_b{batch}" + ("_cached" if cached else "")
        found[key] = {
            "forward_ms": ms,
            "launch_ms": launch * 1e3,
            "per_chunk_ms": ms / batch,
            "network_s_for_input": ms / batch * chunks / 1e3,
        }
        print(json.dumps({key: found[key]}), flush=True)
    xb = torch.randn(16, 2, seg, device=device)
    for cached in (False, True):
        sites: list[str] = []

        def seen(*_args, sites=sites, **_kwargs):
            stack = traceback.extract_stack()[:-1]
            sites.append(" < ".join(f"{f.name}:{f.lineno}" for f in reversed(stack[-4:])))

        scope = cached_constants() if cached else contextlib.nullcontext()
        with torch.inference_mode(), _precision(device, "tf32"), scope, warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = seen
            torch.cuda.set_sync_debug_mode("warn")
            model(xb)
            torch.cuda.set_sync_debug_mode(0)
        found[f"syncs_cached_{cached}"] = sites
        print(json.dumps({f"syncs_cached_{cached}": sites}), flush=True)
    from demucs.apply import apply_model

    long = song(600)
    mix = torch.from_numpy(long)[None].to(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        apply_model(model, mix, shifts=0, split=True, overlap=0.25, device=device)
    torch.cuda.synchronize()
    found["long_600s"] = {"apply_model": time.perf_counter() - t0}
    for precision in ("fp32", "tf32", "bf16"):
        sep = bn.Separator(
            model, device=device, cache=False, progress=False, batch_size=16, precision=precision
        )
        t0 = time.perf_counter()
        sep.separate(long, RATE)
        found["long_600s"][precision] = time.perf_counter() - t0
    print(json.dumps({"long_600s_once_each": found["long_600s"]}), flush=True)
    del mix
    x = song(seconds)
    sep = bn.Separator(
        model, device=device, cache=False, progress=False, batch_size=16, precision="tf32"
    )
    sep.separate(x, RATE)
    torch.cuda.synchronize()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    sep.separate(x, RATE)
    torch.cuda.synchronize()
    prof.disable()
    found["profiled_separate_s"] = time.perf_counter() - t0
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    found["profile"] = text.getvalue()
    print(found["profile"][-6000:], flush=True)
    return found


def throughput(device, seconds: float, repeats: int) -> dict:
    import torch
    from demucs.apply import apply_model

    import bandscope_nb as bn

    x = song(seconds)
    model = htdemucs().to(device)
    mix = torch.from_numpy(x)[None].to(device)

    def reference():
        with torch.inference_mode():
            return apply_model(model, mix, shifts=0, split=True, overlap=0.25, device=device)[0]

    rows, ref = [], None
    for precision, batch in MODES:
        row = {"engine": "bandscope", "precision": precision, "batch": batch}
        try:
            sep = bn.Separator(
                model,
                device=device,
                cache=False,
                progress=False,
                batch_size=batch,
                precision=precision,
            )
            t, out, mem = timed(lambda s=sep: s.separate(x, RATE), device, repeats)
            ref = out.data if ref is None else ref
            row.update(s=t, gib=mem, snr_db=snr(ref, out.data))
        except Exception as exc:  # one mode failing must not hide the others' numbers
            row["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        rows.append(row)
        print(json.dumps(row), flush=True)
    t, out, mem = timed(reference, device, repeats)
    row = {"engine": "apply_model", "precision": "torch default", "batch": 1, "s": t, "gib": mem}
    row["snr_db"] = snr(ref, out.float().cpu().numpy())
    print(json.dumps(row), flush=True)
    return {"audio_s": seconds, "rows": [row, *rows]}


def section(env: dict, chk: dict, tp: dict) -> list[str]:
    base = tp["rows"][0]["s"]  # apply_model
    lines = [
        f"## GPU: full-size HTDemucs (random weights), {env['gpu']}",
        "",
        f"Written by `benchmarks/bench_gpu.py` on {env['date']}: {env['gpu']}, torch "
        f"{env['torch']}, CUDA {env['cuda']}, Python {env['python']}. The demo song repeated to "
        f"{tp['audio_s']:.0f} s, `shifts=0`, `overlap=0.25`, the 7.8 s segment; median of "
        f"{env['repeats']} runs after a warm-up, both engines in this one run. SNR is against "
        "our IEEE fp32 stems at batch 1 (random weights: re-measure reduced precision on "
        "trained ones). `apply_model` runs with torch's defaults (TF32 convolutions on CUDA).",
        "",
        f"Check: a tiny HTDemucs on {env['device']} vs on the CPU, fp32: "
        f"{chk['snr_gpu_vs_cpu_db']:.1f} dB SNR (tf32: {chk['snr_tf32_vs_cpu_db']:.1f} dB); "
        f'`device="auto"` picked `{chk["auto_device"]}`.',
        "",
        "| engine | precision | batch | seconds | × real time | vs apply_model | peak GPU GiB "
        "| SNR vs fp32 (dB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in tp["rows"]:
        if "error" in r:
            lines.append(
                f"| {r['engine']} | {r['precision']} | {r['batch']} | failed: {r['error']} "
                "| | | | |"
            )
            continue
        fid = f"{r['snr_db']:.1f}" if np.isfinite(r["snr_db"]) else "reference"
        lines.append(
            f"| {r['engine']} | {r['precision']} | {r['batch']} | {r['s']:.2f} | "
            f"{tp['audio_s'] / r['s']:.1f} | {base / r['s']:.2f}× | {r['gib']:.2f} | {fid} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", type=Path, help="write the Markdown section here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument(
        "--explore", action="store_true", help="also print where the time goes (diagnostics)"
    )
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_sections import publish

    device = torch.device(args.device)
    env = {
        "date": time.strftime("%Y-%m-%d"),
        "gpu": torch.cuda.get_device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "device": str(device),
        "repeats": args.repeats,
    }
    print(json.dumps(env), flush=True)
    chk = check(args.device)
    print(json.dumps(chk), flush=True)
    tp = throughput(device, args.seconds, args.repeats)
    found = explore(device, args.seconds) if args.explore else None
    if args.json:
        raw = {"env": env, "check": chk, "throughput": tp, "explore": found}
        args.json.write_text(json.dumps(raw, indent=1))
    publish(section(env, chk, tp), args.write)


if __name__ == "__main__":
    main()
