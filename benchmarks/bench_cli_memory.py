"""End-to-end memory of `bandscope separate` against track length: decode, separate, save.

Each run is a fresh process that calls the CLI on one file (a tiny HTDemucs saved as
safetensors, so a 3-hour file takes minutes, not hours; the audio path, the result files and the
FLAC writing are the same as with a full model) and reports its own peak RSS. Lengths default
to 10, 60 and 180 minutes.

Usage: python benchmarks/bench_cli_memory.py [--minutes 10 60 180] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_engine import tiny_htdemucs, write_noise
from bench_sections import publish

CHILD = r"""
import json, resource, sys, time
from bandscope_nb.cli import main
t0 = time.perf_counter()
code = main(sys.argv[1:])
print(json.dumps({"code": code, "seconds": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(minutes: float, model: Path, workdir: Path) -> dict:
    song = workdir / f"song_{minutes:g}min.wav"
    write_noise(song, minutes)
    out = workdir / f"out_{minutes:g}"
    args = ["separate", str(song), "-o", str(out), "--model", str(model), "--device", "cpu"]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args, "--no-cache"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    flacs = sorted(out.rglob("*.flac"))
    result.update(minutes=minutes, files=len(flacs), bytes=sum(p.stat().st_size for p in flacs))
    song.unlink()
    for path in flacs:
        path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 180])
    parser.add_argument("--write", type=Path, help="write the section into this Markdown file")
    args = parser.parse_args()
    from bandscope_nb.separation.modelfiles import save_safetensors

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = save_safetensors(tiny_htdemucs(), Path(tmp) / "tiny.safetensors")
        for minutes in args.minutes:
            rows.append(run(minutes, model, Path(tmp)))
            print(rows[-1], flush=True)
    lines = [
        "## End to end: `bandscope separate` peak memory against track length",
        "",
        f"`benchmarks/bench_cli_memory.py`, {time.strftime('%Y-%m-%d')}: a fresh process runs the "
        "CLI on one 44.1 kHz stereo file (tiny HTDemucs from a safetensors file, `--no-cache`, "
        "four 24-bit FLAC stems written), and reports its own peak RSS (Python, torch and the "
        "model included).",
        "",
        "| track | peak RSS (MB) | seconds | stems written (MB) |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        assert r["code"] == 0 and r["files"] == 4, r
        lines.append(
            f"| {r['minutes']:g} min | {r['peak_rss_mb']:.0f} | {r['seconds']:.0f} | "
            f"{r['bytes'] / 1e6:.0f} |"
        )
    growth = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1
    lines += [
        "",
        f"Peak RSS grows {100 * growth:+.0f} % from {rows[0]['minutes']:g} to "
        f"{rows[-1]['minutes']:g} minutes (goal: flat, and under 2 GB for 3 hours).",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
