"""Batch benchmark: files per minute with 1 vs 2 Dask workers (and in-process) on this machine.

Twelve 30-second noise files, the tiny 77k-parameter HTDemucs of bench_engine.py (htdemucs'
depth), cache off, each configuration in the same run. Appends its table to the Markdown file
given with --write (replacing an earlier "## Batch" section, leaving the others).

Usage: python benchmarks/bench_batch.py [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from bench_sections import publish

FILES, SECONDS, RATE = 12, 30, 44100
HEADING = "## Batch: files per minute"


def run(folder: Path, model: str, workers: int | None) -> float:
    import bandscope_nb as bn

    client = cluster = None
    if workers:
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
        client = Client(cluster)
        client.run(lambda: __import__("bandscope_nb"))  # warm imports, as a long run would
    try:
        start = time.perf_counter()
        result = bn.separate_many(
            folder, client=client, model=model, device="cpu", cache=False, progress=False
        )
        elapsed = time.perf_counter() - start
        assert result.counts() == {"done": FILES}, result.counts()
        return elapsed
    finally:
        if client is not None:
            client.close()
            cluster.close()


def main() -> None:
    from bench_engine import tiny_htdemucs

    from bandscope_nb.separation.modelfiles import save_safetensors

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "songs"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(FILES):
            sf.write(folder / f"s{i:02d}.wav", 0.1 * rng.standard_normal((SECONDS * RATE, 2)), RATE)
        model = str(save_safetensors(tiny_htdemucs(), Path(tmp) / "tiny.safetensors"))
        for label, workers in (
            ("in-process (client=None)", None),
            ("1 Dask worker", 1),
            ("2 Dask workers", 2),
        ):
            seconds = run(folder, model, workers)
            rows.append((label, seconds, FILES / seconds * 60))
            print(rows[-1], flush=True)
    lines = [
        HEADING,
        "",
        f"`benchmarks/bench_batch.py`: {FILES} files of {SECONDS} s, tiny HTDemucs, cache "
        "off, `threads_per_worker=1`, same run.",
        "",
        "| configuration | seconds | files per minute |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {s:.1f} | {fpm:.1f} |" for label, s, fpm in rows]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
