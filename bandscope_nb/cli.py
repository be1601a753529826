"""The ``bandscope`` command line.

Exit codes: 0 everything succeeded, 1 some input failed (the others were still processed),
2 usage error (bad arguments, unknown device, invalid parameter).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from pathlib import Path

from .errors import BandscopeError, BandscopeWarning, DeviceError, ParameterError
from .separation.config import BACKENDS, DEFAULTS, PRECISIONS, REPORT_DEFAULTS

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SCHEDULER_TIMEOUT = 10  # seconds to reach a --scheduler
MAX_WORKERS = 64


def _client(args):
    """A Dask client for ``--scheduler`` / ``--workers`` (its local cluster closes with it), or
    None to run here."""
    if not (args.scheduler or args.workers):
        return None
    from dask.distributed import Client

    if args.scheduler:
        try:
            return Client(args.scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ParameterError(
                f"Cannot reach the Dask scheduler at {args.scheduler} within "
                f"{SCHEDULER_TIMEOUT} s ({type(exc).__name__}); check --scheduler and that the "
                "scheduler is running."
            ) from exc
    return Client(
        n_workers=args.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )


def _workers(text: str) -> int:
    """``--workers``: an int from 1 to 64 (a local cluster of that many processes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} is not in 1..{MAX_WORKERS}")
    return value


def _config(args):
    """The run options given on the command line, as one checked :class:`SeparationConfig`."""
    from .separation.config import OPTION_NAMES, SeparationConfig

    return SeparationConfig(**{f: getattr(args, f) for f in OPTION_NAMES if hasattr(args, f)})


def _cmd_separate(args) -> int:
    from .separation.batch import separate_many
    from .separation.separator import Separator

    config = _config(args)
    options = {"repo": args.repo, "sha256": args.sha256, "cache": not args.no_cache}
    client = _client(args)
    try:
        if client is None:  # load the model once, before any file: a missing model fails fast
            _ = Separator.from_config(config, **options).model
        result = separate_many(
            args.inputs,
            out_dir=args.out,
            client=client,
            config=config,
            format=args.format,
            force=args.force,
            progress=True,
            **options,
        )
    finally:
        if client is not None:
            client.close()
    for r in result.failed:
        print(f"  FAILED: {r['input']}: {r['error']}", file=sys.stderr, flush=True)
    for r in result.records:
        if r["status"] == "skipped":
            print(f"  skipped {r['input']}: outputs exist (pass --force to redo)")
    print(f"{result.summary()}, into {Path(args.out).resolve()}.")
    return EXIT_FAILED if result.failed else EXIT_OK


def _cmd_demo(args) -> int:
    from . import demo
    from .dsp.metrics import sdr
    from .separation.separator import Separator

    out_dir = Path(args.out)
    stems = Separator.from_config(_config(args)).separate(demo.path())
    stems.save(out_dir / "stems", format="flac", overwrite=True)
    _, truth = demo.load()
    lines = [
        "bandscope-nb demo: the bundled 20 s demo song, separated",
        f"model: {stems.info['model']} ({stems.info['origin']})",
        f"device: {stems.info['device']}; cached result: {stems.info['cached']}",
        f"stems: {out_dir / 'stems'}",
        "SDR against the true stems (dB, higher is better):",
    ]
    lines += [f"  {name:<7} {sdr(truth[name], stems[name]):6.2f}" for name in stems.names]
    summary = "\n".join(lines) + "\n"
    (out_dir / "summary.txt").write_text(summary)
    print(summary, end="")
    return EXIT_OK


def _cmd_report(args) -> int:
    from .notebook.report import run_report

    path = run_report(
        args.input,
        output=args.out,
        config=_config(args),
        references=args.references,
        notebook=args.notebook,
    )
    print(f"Report written to {path.resolve()} (executed notebook: {path.with_suffix('.ipynb')}).")
    return EXIT_OK


def _cmd_compare(args) -> int:
    from .evaluation.runs import parse_run, parse_value, sweep
    from .notebook.report import run_compare

    runs = dict(parse_run(text) for text in args.run or [])
    if len(runs) < len(args.run or []):
        raise ParameterError("Two --run options share a label; give each run its own.")
    if args.sweep:
        grid = {}
        for text in args.sweep:
            option, eq, values = text.partition("=")
            if not eq or not option.strip() or not values.strip():
                raise ParameterError(f"Invalid --sweep {text!r}: write OPTION=V1,V2,...")
            grid[option.strip()] = [parse_value(v.strip()) for v in values.split(",")]
        runs |= sweep(**grid)
    excerpt = None
    if args.excerpt:
        start, colon, end = args.excerpt.partition(":")
        try:
            excerpt = (float(start), float(end)) if colon else None
        except ValueError:
            excerpt = None
        if excerpt is None:
            raise ParameterError(f"Invalid --excerpt {args.excerpt!r}: write START:END seconds.")
    path = run_compare(
        args.input,
        runs or None,
        output=args.out,
        references=None if args.references == "none" else args.references,
        excerpt=excerpt,
        device=args.device,
        notebook=args.notebook,
    )
    print(
        f"Comparison written to {path.resolve()} (executed notebook: {path.with_suffix('.ipynb')})."
    )
    return EXIT_OK


def _cmd_train(args) -> int:
    """Make the synthetic songs, train a MaskNet on them, keep the best checkpoint in -o."""
    from .datasets import synth_multitracks
    from .training import MaskNet, fit

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"Output folder {out} is a file; give a folder.")
    if not args.minutes > 0 or (args.steps is not None and args.steps < 1):
        raise ParameterError("Invalid --minutes or --steps: give minutes > 0 and steps >= 1.")
    net = MaskNet(hidden=args.hidden, seed=args.seed)  # checked before any song is made
    songs = synth_multitracks(
        args.songs, seconds=args.song_seconds, seed=args.data_seed, progress=True
    )
    result = fit(
        net,
        songs,
        minutes=args.minutes,
        steps=args.steps,
        device=args.device,
        seed=args.seed,
        out=out,
    )
    best = result.best
    print(
        f"{result.steps} steps in {result.seconds:.0f} s; best: step {best['step']}, "
        f"validation SDR {best['val_sdr']:.2f} dB; weights: {result.checkpoint}",
        flush=True,
    )
    return 130 if result.interrupted else EXIT_OK


def _cmd_bench(args) -> int:
    from . import demo
    from .separation.separator import Separator

    sep = Separator.from_config(_config(args), cache=False, progress=False)
    print(sep.benchmark(args.input or demo.path(), seconds=args.seconds), flush=True)
    return EXIT_OK


def _cmd_models(args) -> int:
    from .separation.bundled import bundled_names
    from .separation.models import load_model
    from .separation.pretrained import pretrained_names

    if args.action == "list":
        for name in bundled_names() + pretrained_names():
            print(name)
        return EXIT_OK
    loaded = load_model(args.name)
    print(f"{args.name}: available ({loaded.origin}); identity {loaded.identity}")
    return EXIT_OK


def _cmd_cache(args) -> int:
    from .separation.cache import ResultCache

    cache = ResultCache()
    if args.action == "clear":
        print(f"Removed {cache.clear()} entries from {cache.root}.")
        return EXIT_OK
    info = cache.info()
    if args.verify:
        info["corrupt"] = cache.verify()
    print(json.dumps(info, indent=1))
    return EXIT_FAILED if info.get("corrupt") else EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bandscope", description="Music source separation.")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p, default):
        p.add_argument("--model", default=default, help=f"model name or path (default {default})")
        p.add_argument("--device", default=DEFAULTS.device, help="auto, cpu, cuda, cuda:N or mps")

    def run_options(p):
        """The rest of SeparationConfig; every default is DEFAULTS'."""
        p.add_argument("--segment", type=float, default=DEFAULTS.segment, help="seconds per chunk")
        p.add_argument("--overlap", type=float, default=DEFAULTS.overlap)
        p.add_argument("--shifts", type=int, default=DEFAULTS.shifts)
        p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the shifts")
        p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
        p.add_argument(
            "--precision",
            choices=PRECISIONS,
            default=DEFAULTS.precision,
            help="fp32 (IEEE, default), tf32 (CUDA), bf16 (CPU, CUDA), fp16 (CUDA, MPS)",
        )
        p.add_argument(
            "--backend",
            choices=BACKENDS,
            default=DEFAULTS.backend,
            help="what runs the network: torch (default), onnxruntime or openvino (CPU, "
            "HTDemucs; pip install 'bandscope-nb[onnx]' or 'bandscope-nb[openvino]')",
        )

    sep = sub.add_parser("separate", help="separate audio files into stems")
    sep.add_argument("inputs", nargs="+", metavar="IN")
    sep.add_argument("-o", "--out", required=True, metavar="OUTDIR")
    model_options(sep, DEFAULTS.model)
    run_options(sep)
    sep.add_argument("--repo", help="local folder of demucs models")
    sep.add_argument(
        "--sha256", help="full sha256 of a single weights file (vouches for a .th file)"
    )
    sep.add_argument("--format", choices=["wav", "flac"], default="flac")
    sep.add_argument("--force", action="store_true", help="overwrite existing outputs")
    sep.add_argument("--no-cache", action="store_true", help="do not use the result cache")
    dask = sep.add_mutually_exclusive_group()
    dask.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler, e.g. tcp://host:8786")
    dask.add_argument(
        "--workers", type=_workers, metavar="N", help="start a local Dask cluster of N workers"
    )
    sep.set_defaults(func=_cmd_separate)

    demo = sub.add_parser("demo", help="separate the bundled demo song; write stems and summary")
    demo.add_argument("-o", "--out", default="build/demo")
    model_options(demo, REPORT_DEFAULTS.model)
    demo.set_defaults(func=_cmd_demo)

    report = sub.add_parser("report", help="run the report notebook for a file, to HTML")
    report.add_argument("input", nargs="?", metavar="IN", help="audio file (default: demo song)")
    report.add_argument("-o", "--out", default="build/report/report.html", metavar="HTML")
    model_options(report, REPORT_DEFAULTS.model)
    run_options(report)
    report.add_argument(
        "--references", metavar="DIR", help='folder of true stems (drums.wav, ...) or "demo"'
    )
    report.add_argument("--notebook", help="report notebook (default: notebooks/03_report.ipynb)")
    report.set_defaults(func=_cmd_report)

    compare = sub.add_parser(
        "compare", help="compare models and settings on a song (runs the comparison notebook)"
    )
    compare.add_argument("input", nargs="?", metavar="IN", help="audio file (default: demo song)")
    compare.add_argument("-o", "--out", default="build/compare/compare.html", metavar="HTML")
    compare.add_argument(
        "--run",
        action="append",
        metavar="LABEL:OPT=V,...",
        help='a run, e.g. "x2:model=htdemucs,shifts=2" (repeat; default: the notebook\'s runs)',
    )
    compare.add_argument(
        "--sweep",
        action="append",
        metavar="OPT=V1,V2",
        help="a grid of runs, one option per --sweep, e.g. --sweep overlap=0.25,0.5",
    )
    compare.add_argument(
        "--references",
        default="auto",
        metavar="DIR",
        help='folder of true stems (drums.wav, ...), "demo" or "none" (default: "demo" for '
        "the demo song, none for a file)",
    )
    compare.add_argument("--excerpt", metavar="START:END", help="seconds to compare")
    compare.add_argument("--device", default=DEFAULTS.device, help="auto, cpu, cuda, cuda:N or mps")
    compare.add_argument("--notebook", help="notebook (default: notebooks/04_compare.ipynb)")
    compare.set_defaults(func=_cmd_compare)

    _housekeeping(sub)
    return parser


def _housekeeping(sub) -> None:
    """``bandscope bench``, ``train``, ``models ...`` and ``cache ...``."""
    bench = sub.add_parser(
        "bench",
        help="time the model in each mode (precision, backend) this device runs (is this speed "
        "normal?)",
    )
    bench.add_argument("input", nargs="?", metavar="IN", help="audio file (default: demo song)")
    bench.add_argument("--model", default=DEFAULTS.model, help="model name or path")
    bench.add_argument("--device", default=DEFAULTS.device, help="auto, cpu, cuda, cuda:N or mps")
    bench.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    bench.add_argument("--seconds", type=float, default=30.0, help="audio timed (default 30)")
    bench.set_defaults(func=_cmd_bench)

    train = sub.add_parser(
        "train", help="train a small separator on synthetic multitracks (Ctrl-C keeps the best)"
    )
    train.add_argument("-o", "--output", required=True, help="folder for the weights")
    train.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    train.add_argument("--steps", type=int, default=None, help="exact steps (repeats a run)")
    train.add_argument("--songs", type=int, default=240, help="synthetic songs (default 240)")
    train.add_argument("--song-seconds", type=float, default=10.0, help="their length")
    train.add_argument("--data-seed", type=int, default=0, help="which songs")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights and crops")
    train.add_argument("--hidden", type=int, default=192, help="network width (default 192)")
    train.add_argument("--device", default=DEFAULTS.device, help="auto, cpu, cuda, cuda:N or mps")
    train.set_defaults(func=_cmd_train)

    models = sub.add_parser("models", help="list or fetch pretrained models")
    msub = models.add_subparsers(dest="action", required=True)
    msub.add_parser("list")
    fetch = msub.add_parser("fetch")
    fetch.add_argument("name")
    models.set_defaults(func=_cmd_models)

    cache = sub.add_parser("cache", help="inspect or clear the result cache")
    csub = cache.add_subparsers(dest="action", required=True)
    info = csub.add_parser("info")
    info.add_argument("--verify", action="store_true", help="check every byte of every entry")
    csub.add_parser("clear")
    cache.set_defaults(func=_cmd_cache)


@contextlib.contextmanager
def _notes():
    """Show bandscope's own warnings (a fallback taken, say) as ``bandscope: note: ...`` lines on
    stderr, not as Python tracebacks-with-line-numbers; other warnings as usual."""
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, BandscopeWarning):
            print(f"bandscope: note: {message}", file=sys.stderr, flush=True)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv: list[str] | None = None) -> int:
    """Run the ``bandscope`` command; return its exit code.

    Examples
    --------
    >>> main(["models", "list"])  # doctest: +ELLIPSIS
    bandscope-tiny
    hdemucs_mmi
    ...
    0
    """
    args = _parser().parse_args(argv)
    try:
        with _notes():
            return args.func(args)
    except (ParameterError, DeviceError) as exc:
        print(f"bandscope: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BandscopeError as exc:
        print(f"bandscope: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("bandscope: interrupted; nothing partial was kept.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
