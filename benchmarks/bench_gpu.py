"""GPU benchmark: bandscope-nb's engine vs demucs' ``apply_model`` on one CUDA GPU, side by side.

Measured in one run, on the same full-size HTDemucs (the pretrained htdemucs architecture with
random weights: the same compute) and the same input (the demo song repeated to ``--seconds``):

1. a correctness check: a tiny HTDemucs separated on the GPU and on the CPU must agree;
2. throughput (audio seconds per second, median of ``--repeats`` runs after a warm-up) of
   ``apply_model`` and of :class:`bandscope_nb.Separator` in each precision and batch size,
   with the peak GPU memory of each: the Separator loads the model from a weights file, as
   ``bn.Separator("htdemucs")`` does, and two rows pass the ``nn.Module`` itself;
3. fidelity of each mode: SNR of its stems against IEEE fp32 stems (ours, batch 1);
4. ``--long`` seconds (600) once each: ``apply_model`` and the engine at batch 16.

``--explore`` also prints where the time goes (variants of the engine side by side, the
synchronising calls left in a forward pass, a CUDA graph of it, a profile).

``apply_model`` runs with torch's defaults, which on CUDA make cuDNN convolutions TF32: the
same arithmetic as ``precision="tf32"``.

Random weights are not trained ones: the fidelity of reduced precision on real weights can
differ and should be re-measured with them (``Separator.benchmark`` is where that will live).

Usage: python benchmarks/bench_gpu.py [--device cuda] [--seconds 120] [--long 600]
       [--write docs/benchmarks.md] [--json results.json] [--explore [--trace t.json.gz]]
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


@contextlib.contextmanager
def variant(name: str):
    """The engine as it is (``"base"``) or with one change under measurement:
    ``"waits"`` (demucs' own pad1d and torch.istft, which make the host wait for the GPU),
    ``"native_norm"`` (torch's group norm), ``"cudnn_benchmark"`` (cuDNN's algorithm search)
    or ``"old"`` (the engine of 2026-11-27: waits and torch's group norm)."""
    import torch
    from demucs import hdemucs

    from bandscope_nb.separation import demucs_patches, engine

    saved = (
        demucs_patches._pad1d,
        demucs_patches.istft_without_wait,
        engine.group_norms_by_reduction,
        torch.backends.cudnn.benchmark,
    )
    if name in ("waits", "old"):
        demucs_patches._pad1d = hdemucs.pad1d  # demucs' own: no separation is running
        demucs_patches.istft_without_wait = torch.istft
    if name in ("native_norm", "old"):
        engine.group_norms_by_reduction = lambda models: contextlib.nullcontext(0)
    torch.backends.cudnn.benchmark = name == "cudnn_benchmark"
    try:
        yield
    finally:
        (
            demucs_patches._pad1d,
            demucs_patches.istft_without_wait,
            engine.group_norms_by_reduction,
            torch.backends.cudnn.benchmark,
        ) = saved


VARIANTS = ["base", "waits", "native_norm", "old", "cudnn_benchmark"]


def ab(device, model, x, repeats: int) -> dict:
    """Each variant of the engine (:func:`variant`) in tf32 and bf16 at batch 16, two rounds
    (variants in order, then reversed), each a warm-up then ``repeats`` timed runs; fidelity
    of each against the base engine's stems in the same precision."""
    import torch

    import bandscope_nb as bn

    found: dict = {}
    refs: dict = {}
    for rnd, names in enumerate((VARIANTS, VARIANTS[::-1])):
        for name in names:
            for precision in ("tf32", "bf16"):
                key = f"{name}/{precision}"
                with variant(name):
                    sep = bn.Separator(
                        model,
                        device=device,
                        cache=False,
                        progress=False,
                        batch_size=16,
                        precision=precision,
                    )
                    t0 = time.perf_counter()
                    sep.separate(x, RATE)
                    torch.cuda.synchronize(device)
                    first = time.perf_counter() - t0
                    times = []
                    for _ in range(repeats):
                        t0 = time.perf_counter()
                        out = sep.separate(x, RATE)
                        torch.cuda.synchronize(device)
                        times.append(time.perf_counter() - t0)
                row = found.setdefault(key, {"times": [], "first": []})
                row["times"] += times
                row["first"].append(first)
                if name == "base" and precision not in refs:
                    refs[precision] = np.array(out.data)
                row["snr_vs_base_db"] = (
                    snr(refs[precision], out.data) if precision in refs else None
                )
                print(json.dumps({key: {"round": rnd, "first": first, "times": times}}), flush=True)
    for row in found.values():
        row["median_s"] = statistics.median(row["times"])
    return found


def explore(device, seconds: float, repeats: int, trace: Path | None) -> dict:
    """Where the time goes (printed, not tabled): the engine's variants side by side
    (:func:`ab`), the synchronising calls left in a forward pass, a CUDA graph of the forward
    pass against the eager one, and a profile of one separation (``trace``: a Chrome trace,
    gzip)."""
    import gzip
    import warnings

    import torch

    import bandscope_nb as bn
    from bandscope_nb.separation import engine, separator, streams
    from bandscope_nb.separation.demucs_patches import group_norms_by_reduction, without_host_waits
    from bandscope_nb.separation.engine import _precision

    model = htdemucs().to(device)
    x = song(seconds)
    found: dict = {"ab": ab(device, model, x, repeats)}
    seg = int(7.8 * RATE)

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

    # the synchronising calls left in a forward pass
    xb = torch.randn(16, 2, seg, device=device)
    sites: list[str] = []

    def seen(*_args, **_kwargs):
        stack = traceback.extract_stack()[:-1]
        sites.append(" < ".join(f"{f.name}:{f.lineno}" for f in reversed(stack[-4:])))

    with torch.inference_mode(), _precision(device, "tf32"), without_host_waits():
        with group_norms_by_reduction([model]), warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = seen
            torch.cuda.set_sync_debug_mode("warn")
            model(xb)
            torch.cuda.set_sync_debug_mode(0)
    found["syncs"] = sites
    print(json.dumps({"syncs": sites}), flush=True)

    # the forward pass: eager with torch's group norm and by reduction (device time, host
    # time to launch), and as a CUDA graph
    for precision in ("tf32", "bf16"):
        row: dict = {}
        with torch.inference_mode(), without_host_waits():
            with _precision(device, precision):
                model(xb)
                torch.cuda.synchronize()
                row["native_norm_ms"] = events(lambda xb=xb: model(xb))
                native = model(xb)
            with _precision(device, precision), group_norms_by_reduction([model]):
                model(xb)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                eager = model(xb)
                row["launch_ms"] = (time.perf_counter() - t0) * 1e3
                torch.cuda.synchronize()
                row["eager_ms"] = events(lambda xb=xb: model(xb))
                row["norm_snr_db"] = snr(native.float().cpu().numpy(), eager.float().cpu().numpy())
            try:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side), _precision(device, precision):
                    with group_norms_by_reduction([model]):
                        for _ in range(2):
                            model(xb)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph), _precision(device, precision):
                    with group_norms_by_reduction([model]):
                        captured = model(xb)
                graph.replay()
                torch.cuda.synchronize()
                row["graph_ms"] = events(graph.replay)
                row["graph_snr_db"] = snr(
                    eager.float().cpu().numpy(), captured.float().cpu().numpy()
                )
                del graph, captured
            except Exception as exc:
                row["graph_error"] = f"{type(exc).__name__}: {exc}"[:400]
        found[f"forward_{precision}_b16"] = row
        print(json.dumps({f"forward_{precision}_b16": row}), flush=True)
    del xb, eager, native
    torch.cuda.empty_cache()

    # a profile of one separation, with the engine's steps marked
    marks = [
        (separator, "open_source"),
        (separator.Separator, "_info"),
        (engine, "_sweep"),
        (engine._Forward, "_run"),
        (engine._OverlapAdd, "add"),
        (engine._OverlapAdd, "_copy"),
        (engine._Drain, "_write"),
        (engine._Drain, "close"),
        (streams.StemWriter, "add"),
        (streams.ArraySource, "read"),
    ]
    originals = [(obj, name, getattr(obj, name)) for obj, name in marks]

    def marked(fn, label):
        def run(*a, **k):
            with torch.profiler.record_function(label):
                return fn(*a, **k)

        return run

    for obj, name, fn in originals:
        setattr(obj, name, marked(fn, f"bs.{name}"))
    try:
        sep = bn.Separator(
            model, device=device, cache=False, progress=False, batch_size=16, precision="bf16"
        )
        sep.separate(x, RATE)
        torch.cuda.synchronize()
        acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        with torch.profiler.profile(activities=acts) as prof:
            t0 = time.perf_counter()
            with torch.profiler.record_function("bs.separate"):
                sep.separate(x, RATE)
                torch.cuda.synchronize()
            found["profiled_s"] = time.perf_counter() - t0
    finally:
        for obj, name, fn in originals:
            setattr(obj, name, fn)
    if trace is not None:
        raw = trace.with_suffix("")
        prof.export_chrome_trace(str(raw))
        with open(raw, "rb") as f, gzip.open(trace, "wb") as g:
            g.write(f.read())
        raw.unlink()
    kernels = sorted(
        (e.time_range.start, e.time_range.end)
        for e in prof.events()
        if e.device_type == torch.autograd.DeviceType.CUDA
    )
    busy, last = 0.0, None
    for a, b in kernels:
        if last is None or a > last:
            busy += b - a
            last = b
        elif b > last:
            busy += b - last
            last = b
    found["profile"] = {"kernels": len(kernels), "gpu_busy_ms": busy / 1e3}
    print(json.dumps({"profile": found["profile"], "profiled_s": found["profiled_s"]}), flush=True)

    return found


def throughput(device, seconds: float, repeats: int, long_seconds: float) -> dict:
    """The table's rows. Our engine runs the model as a user's ``bn.Separator("htdemucs")``
    does, loaded from a weights file (here the random weights saved as ``.safetensors``);
    rows marked "module" pass the ``nn.Module`` itself, which is hashed again at every call
    to catch changes made to it in place. Then ``long_seconds`` of audio, once each."""
    import tempfile

    import torch
    from demucs.apply import apply_model

    import bandscope_nb as bn
    from bandscope_nb.separation.modelfiles import save_safetensors

    x = song(seconds)
    model = htdemucs()
    tmp = tempfile.TemporaryDirectory()
    path = save_safetensors(model, Path(tmp.name) / "htdemucs-random.safetensors")
    model = model.to(device)
    mix = torch.from_numpy(x)[None].to(device)

    def separator(weights, precision, batch):
        return bn.Separator(
            weights,
            device=device,
            cache=False,
            progress=False,
            batch_size=batch,
            precision=precision,
        )

    def reference(mix=mix):
        with torch.inference_mode():
            return apply_model(model, mix, shifts=0, split=True, overlap=0.25, device=device)[0]

    modes = [("bandscope", p, b) for p, b in MODES]
    modes += [("bandscope, module", "tf32", 16), ("bandscope, module", "bf16", 16)]
    rows, ref = [], None
    for engine, precision, batch in modes:
        row = {"engine": engine, "precision": precision, "batch": batch}
        try:
            sep = separator(model if "module" in engine else path, precision, batch)
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
    del mix, out
    long = song(long_seconds)
    mix = torch.from_numpy(long)[None].to(device)
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    reference(mix)
    torch.cuda.synchronize(device)
    longer = {"apply_model": time.perf_counter() - t0}
    del mix
    for precision in ("fp32", "tf32", "bf16", "fp16"):
        sep = separator(path, precision, 16)
        t0 = time.perf_counter()
        sep.separate(long, RATE)
        longer[precision] = time.perf_counter() - t0
    print(json.dumps({f"{long_seconds:.0f}s_once_each": longer}), flush=True)
    tmp.cleanup()
    return {"audio_s": seconds, "rows": [row, *rows], "long_s": long_seconds, "long": longer}


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
        "trained ones). `apply_model` runs with torch's defaults (TF32 convolutions on CUDA). "
        'Our engine loads the model from a weights file, as `bn.Separator("htdemucs")` '
        "does; rows marked *module* pass the `nn.Module` itself, which is hashed again at "
        "every call to catch changes made to it in place.",
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
    long, secs = tp["long"], tp["long_s"]
    lines += [
        "",
        f"{secs:.0f} s of the same song, one run each after the table (batch 16, from the "
        "weights file):",
        "",
        "| engine | seconds | × real time | vs apply_model |",
        "|---|---:|---:|---:|",
    ]
    for name, t in long.items():
        label = "apply_model" if name == "apply_model" else f"bandscope {name}"
        lines.append(f"| {label} | {t:.2f} | {secs / t:.0f} | {long['apply_model'] / t:.2f}× |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--long", type=float, default=600.0, help="seconds of the long run")
    parser.add_argument("--write", type=Path, help="write the Markdown section here")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument(
        "--explore", action="store_true", help="also print where the time goes (diagnostics)"
    )
    parser.add_argument("--trace", type=Path, help="with --explore: a Chrome trace (.json.gz)")
    parser.add_argument("--skip-table", action="store_true", help="only --explore")
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
    found = explore(device, args.seconds, args.repeats, args.trace) if args.explore else None
    if args.json:
        args.json.write_text(json.dumps({"env": env, "check": chk, "explore": found}, indent=1))
    if args.skip_table:
        return
    tp = throughput(device, args.seconds, args.repeats, args.long)
    if args.json:
        raw = {"env": env, "check": chk, "throughput": tp, "explore": found}
        args.json.write_text(json.dumps(raw, indent=1))
    publish(section(env, chk, tp), args.write)


if __name__ == "__main__":
    main()
