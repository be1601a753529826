"""The ``bandscope`` command line.

Exit codes: 0 everything succeeded, 1 some input failed (the others were still processed),
2 usage error (bad arguments, unknown device, invalid parameter).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .errors import BandscopeError, DeviceError, ParameterError

__all__ = ["main", "output_names"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _safe_name(name: str) -> str:
    """A file-name-safe version of ``name``: no separators, no leading dots or dashes."""
    name = re.sub(r"[\x00-\x1f/\\:*?\"<>|]", "_", name).strip().lstrip(".-")
    return name or "track"


def output_names(inputs: list[str]) -> list[str]:
    """One folder name per input, derived from its file name, safe and unique.

    Inputs with equal file names in different folders get ``-2``, ``-3``... suffixes.

    Examples
    --------
    >>> output_names(["a/song.wav", "b/song.wav", "../x/.hidden.flac"])
    ['song', 'song-2', 'hidden']
    """
    seen: dict[str, int] = {}
    names = []
    for item in inputs:
        base = _safe_name(Path(item).stem)
        count = seen.get(base.lower(), 0) + 1
        seen[base.lower()] = count
        names.append(base if count == 1 else f"{base}-{count}")
    return names


def _separator(args):
    from .separator import Separator

    return Separator(
        args.model,
        device=args.device,
        repo=args.repo,
        segment=args.segment,
        overlap=args.overlap,
        shifts=args.shifts,
        cache=not args.no_cache,
    )


def _cmd_separate(args) -> int:
    out_dir = Path(args.out).resolve()
    sep = _separator(args)
    sources = sep.model.sources  # load once, before any file: a missing model fails fast
    failed = 0
    names = output_names(args.inputs)
    for index, (item, name) in enumerate(zip(args.inputs, names, strict=True), 1):
        target = (out_dir / name).resolve()
        print(f"[{index}/{len(args.inputs)}] {item} -> {target}", flush=True)
        try:
            if target.parent != out_dir:  # never write outside OUTDIR
                raise ParameterError(f"{item}: output {target} would leave {out_dir}.")
            existing = [target / f"{s}.{args.format}" for s in sources]
            if not args.force and any(p.exists() for p in existing):
                raise ParameterError(f"{item}: outputs exist in {target}; pass --force.")
            sep.separate(item).save(target, format=args.format, overwrite=args.force)
        except BandscopeError as exc:
            failed += 1
            print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
    ok = len(args.inputs) - failed
    print(f"{ok} of {len(args.inputs)} file(s) separated into {out_dir}.")
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_demo(args) -> int:
    from . import demo
    from .metrics import sdr
    from .separator import Separator

    out_dir = Path(args.out)
    stems = Separator(args.model, device=args.device).separate(demo.path())
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


def _cmd_models(args) -> int:
    from .models import load_model, pretrained_names

    if args.action == "list":
        for name in pretrained_names():
            print(name)
        return EXIT_OK
    loaded = load_model(args.name)
    print(f"{args.name}: available ({loaded.origin}); identity {loaded.identity}")
    return EXIT_OK


def _cmd_cache(args) -> int:
    from .cache import ResultCache

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
        p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")

    sep = sub.add_parser("separate", help="separate audio files into stems")
    sep.add_argument("inputs", nargs="+", metavar="IN")
    sep.add_argument("-o", "--out", required=True, metavar="OUTDIR")
    model_options(sep, "htdemucs")
    sep.add_argument("--repo", help="local folder of demucs models")
    sep.add_argument("--segment", type=float)
    sep.add_argument("--overlap", type=float, default=0.25)
    sep.add_argument("--shifts", type=int, default=0)
    sep.add_argument("--format", choices=["wav", "flac"], default="flac")
    sep.add_argument("--force", action="store_true", help="overwrite existing outputs")
    sep.add_argument("--no-cache", action="store_true", help="do not use the result cache")
    sep.set_defaults(func=_cmd_separate)

    demo = sub.add_parser("demo", help="separate the bundled demo song; write stems and summary")
    demo.add_argument("-o", "--out", default="build/demo")
    model_options(demo, "auto")
    demo.set_defaults(func=_cmd_demo)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``bandscope`` command; return its exit code.

    Examples
    --------
    >>> main(["models", "list"])  # doctest: +ELLIPSIS
    hdemucs_mmi
    ...
    0
    """
    args = _parser().parse_args(argv)
    try:
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
