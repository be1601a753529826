"""Separating many files: locally, or one task per file on a Dask cluster; resumable.

The same function runs in the current process (``client=None``, no Dask needed) or submits one
task per file to a ``dask.distributed.Client`` (a ``LocalCluster`` on a laptop, dask-jobqueue or
Kubernetes on a cluster). Each worker process loads the model once (models are cached per
process). Files whose stems are already in ``out_dir`` are skipped, and results already in the
shared cache are not recomputed, so a rerun after a crash does only the missing work. A failing
file is recorded with its error and never stops the others.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audio import open_checked
from ..digests import file_digest_v1
from ..errors import ParameterError
from ..files import atomic_write
from ..names import as_path, safe_stem
from .config import DEFAULTS, SeparationConfig
from .streams import stage_file

__all__ = ["BatchResult", "expand_inputs", "output_names", "separate_many"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: Written beside each input's stems: which input (by content digest) and settings made them.
PROVENANCE = ".bandscope.json"
_PROVENANCE = (  # what made the stems: their input, model, run options and cache key
    "input_digest",
    "model",
    "identity",
    "device",
    "segment",
    "overlap",
    "shifts",
    "seed",
    "precision",
    "backend",
    "batch_size",
    "cache_key",
)


def output_names(inputs: Iterable[str | os.PathLike]) -> list[str]:
    """One folder name per input, derived from its file name, safe and unique in the batch.

    Separators, control characters and leading dots or dashes are removed
    (:func:`~bandscope_nb.names.safe_stem`). Each input keeps its own name when it can; a name
    already taken (case-insensitively) gets the first free ``-2``, ``-3``... suffix, so no two
    inputs ever share a folder.

    Examples
    --------
    >>> output_names(["a/song.wav", "b/song.wav", "../x/.hidden.flac"])
    ['song', 'song-2', 'hidden']
    >>> output_names(["b/song.wav", "c/song.wav", "c/song-2.wav"])
    ['song', 'song-3', 'song-2']
    """
    bases = [safe_stem(Path(item).stem) for item in inputs]
    names: list[str | None] = [None] * len(bases)
    taken: set[str] = set()
    for index, base in enumerate(bases):  # first, every input that can keep its own name
        if base.casefold() not in taken:
            names[index] = base
            taken.add(base.casefold())
    for index, base in enumerate(bases):
        if names[index] is None:
            count = 2
            while f"{base}-{count}".casefold() in taken:
                count += 1
            names[index] = f"{base}-{count}"
            taken.add(names[index].casefold())
    return names


def expand_inputs(inputs, *, exclude: str | os.PathLike | None = None) -> list[Path]:
    """Files named by ``inputs``: paths, folders (searched recursively) or glob patterns.

    Files found by searching a folder or a pattern are skipped when they lie under
    ``exclude`` (the output folder: a rerun must not separate its own stems).

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> [p.name for p in expand_inputs(bn.demo.path().parent)][:2]
    ['bass.flac', 'drums.flac']
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    skip = Path(exclude).resolve() if exclude is not None else None

    def kept(found: list[Path]) -> list[Path]:
        if skip is None:
            return found
        return [p for p in found if not p.resolve().is_relative_to(skip)]

    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            files += kept(found) or [path]  # a folder without audio is reported, not dropped
        elif not path.exists() and isinstance(item, str) and glob.has_magic(item):
            files += kept(sorted(Path(p) for p in glob.glob(item, recursive=True)))
        else:
            files.append(path)  # a missing file is reported as that file's failure
    return files


@dataclass(frozen=True)
class BatchResult:
    """What happened to each file: ``records`` of dicts with ``input``, ``status`` (``"done"``,
    ``"cached"``, ``"skipped"`` or ``"failed"``), ``seconds``, ``outputs`` and ``error``."""

    records: list[dict]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.records if r["status"] == "failed"]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records:
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def summary(self) -> str:
        """One true line: how many files were separated, came from the cache, were skipped
        (outputs existed) or failed, of how many.

        Examples
        --------
        >>> BatchResult([{"status": "done"}, {"status": "skipped"}]).summary()
        '1 separated, 0 from the cache, 1 skipped (outputs exist), 0 failed, of 2 file(s)'
        """
        c = self.counts()
        return (
            f"{c.get('done', 0)} separated, {c.get('cached', 0)} from the cache, "
            f"{c.get('skipped', 0)} skipped (outputs exist), {c.get('failed', 0)} failed, "
            f"of {len(self.records)} file(s)"
        )

    def __repr__(self) -> str:
        lines = [f"BatchResult({len(self.records)} files: {self.counts()})"]
        for r in self.records:
            detail = r["error"] if r["error"] else f"{r['seconds']:.1f} s"
            lines.append(f"  {r['status']:>7}  {r['input']}  {detail}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><td>{escape(r['input'])}</td><td>{r['status']}</td>"
            f"<td>{r['seconds']:.1f}</td><td>{escape(r['error'] or '')}</td></tr>"
            for r in self.records
        )
        return (
            f"<table><caption>{escape(str(self.counts()))}</caption><thead><tr><th>input</th>"
            f"<th>status</th><th>seconds</th><th>error</th></tr></thead><tbody>{rows}"
            "</tbody></table>"
        )


_SEPARATORS: dict[tuple, Any] = {}  # per process: one Separator (and model) per configuration


def _separator(config: SeparationConfig, options: dict):
    """This process' Separator for ``config`` and the other Separator ``options`` (a module
    model is not kept: each Dask task receives its own copy)."""
    from .separator import Separator

    if not isinstance(config.model, (str, os.PathLike)):
        return Separator.from_config(config, **options)
    key = (config, repr(sorted(options.items())))
    if key not in _SEPARATORS:
        _SEPARATORS[key] = Separator.from_config(config, **options)
    return _SEPARATORS[key]


def separate_one(
    path: str,
    name: str,
    out_dir: str | None,
    config: SeparationConfig,
    options: dict,
    *,
    format: str = "flac",
    force: bool = False,
) -> dict:
    """Separate one file into ``out_dir/name/``; return its record (never raises for bad input).

    This is the task each Dask worker runs.
    """
    record = {
        "input": str(path),
        "name": name,
        "status": "failed",
        "seconds": 0.0,
        "outputs": [],
        "error": None,
    }
    start = time.perf_counter()
    try:
        sep = _separator(config, {**options, "progress": False})
        target = _target(Path(out_dir), name) if out_dir else None
        if target is not None and not force:
            existing = [target / f"{s}.{format}" for s in sep.model.sources]
            if all(p.is_file() for p in existing) and _made_from(target, path, sep):
                record.update(status="skipped", outputs=[str(p) for p in existing])
                return record
        stems = sep.separate(path)
        if target is not None:
            written = stems.save(target, format=format, overwrite=True)
            provenance = {
                "input": str(Path(path).resolve()),
                **{k: stems.info[k] for k in _PROVENANCE},
            }
            atomic_write(target / PROVENANCE, json.dumps(provenance, indent=1).encode())
            record["outputs"] = [str(p) for p in written.values()]
        record["status"] = "cached" if stems.info["cached"] else "done"
    except Exception as exc:  # one file's failure, whatever it is, never stops the batch
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        record["seconds"] = time.perf_counter() - start
    return record


def _target(out_dir: Path, name: str) -> Path:
    """``out_dir/name``, refused when it is a symlink or lands outside ``out_dir``: the folder
    is named after an input, so only a real folder inside ``-o`` may receive its stems."""
    target = out_dir / name
    if target.is_symlink() or (target.exists() and target.resolve().parent != out_dir.resolve()):
        raise ParameterError(
            f"{target} is a symlink or leads outside {out_dir}; stems are only written into "
            "real folders inside the output folder. Remove it or choose another -o."
        )
    return target


def _made_from(target: Path, path: str, sep) -> bool:
    """Whether the stems in ``target`` are what ``sep`` would make of ``path`` now, by the
    provenance file written beside them: the same decoded audio, model and options (their
    cache key). Outputs of other audio or other settings raise, so a file is never reported
    as done on stems it would not produce; outputs without provenance (written before it
    existed) count as made from it."""
    try:
        recorded = json.loads((target / PROVENANCE).read_text())
        digest, key = recorded["input_digest"], recorded.get("cache_key")
    except FileNotFoundError:
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        digest = key = None
    open_checked(path)
    if isinstance(digest, str) and digest.startswith("file:"):  # written by 0.1: its audio only
        if digest == file_digest_v1(Path(path)):
            return True
    elif digest is not None:
        now = stage_file(Path(path), None).digest  # decoded and hashed, nothing staged
        if digest == now and key == sep.cache_key(now)[0]:
            return True
        if digest == now:
            raise ParameterError(
                f"{target} holds stems of {path} made with another model or other options "
                "(segment, overlap, shifts, seed, precision, backend, device type); pass --force "
                "(force=True) to replace them, or choose another output folder."
            )
    raise ParameterError(
        f"{target} holds stems made from other audio than {path} (another file of the same "
        "name, or this file before it changed); pass --force (force=True) to replace them, or "
        "choose another output folder."
    )


def separate_many(
    inputs,
    *,
    out_dir: str | os.PathLike | None = None,
    client=None,
    config: SeparationConfig | None = None,
    format: str = "flac",
    force: bool = False,
    progress: bool = True,
    repo: str | os.PathLike | None = None,
    sha256: str | None = None,
    cache: bool | str | os.PathLike = True,
    **options,
) -> BatchResult:
    """Separate every file in ``inputs``, locally or on a Dask cluster.

    Parameters
    ----------
    inputs : path, folder, glob pattern, or a list of them
    out_dir : str or os.PathLike or None
        Stems go to ``out_dir/<name>/<stem>.<format>`` with unique, safe names; ``None`` keeps
        results only in the cache.
    client : dask.distributed.Client or None
        ``None`` runs here, in this process; a client submits one task per file.
    config : SeparationConfig or None
        The run options (model, device, segment, ...); ``**options`` override its fields.
    format : {"flac", "wav"}
    force : bool
        Redo files whose stems are already in ``out_dir``.
    progress : bool
        Dask's progress bar (a widget in Jupyter) or a line per file here.
    repo, sha256, cache
        As for :class:`~bandscope_nb.separation.separator.Separator`.
    **options
        Fields of :class:`SeparationConfig`: ``model``, ``device``, ``segment``, ...

    Returns
    -------
    BatchResult

    Examples
    --------
    >>> import tempfile, bandscope_nb as bn
    >>> result = bn.separate_many([bn.demo.path("bass")], model="classical", device="cpu",
    ...                           out_dir=tempfile.mkdtemp(), cache=False, progress=False)
    >>> result.counts()
    {'done': 1}
    """
    from ..audio import SAVE_SUBTYPES
    from .devices import check_run
    from .separator import check_model_source, open_cache

    # Check every option here, before any task runs (a cluster's device is its workers' to check).
    config = (config or DEFAULTS).replace(**options)
    repo, sha256 = check_model_source(repo, sha256)
    open_cache(cache)
    if client is None:
        check_run(config)
    separator_options = {"repo": repo, "sha256": sha256, "cache": cache}
    if not isinstance(format, str) or format not in SAVE_SUBTYPES:
        raise ParameterError(f"Invalid format: {format!r}; choose one of {sorted(SAVE_SUBTYPES)}.")
    if out_dir is not None:
        out_dir = as_path(out_dir, what="out_dir")
        if Path(out_dir).exists() and not Path(out_dir).is_dir():
            raise ParameterError(f"Output folder {out_dir} is a file; choose a folder.")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    files = expand_inputs(inputs, exclude=out_dir)
    if not files:
        raise ParameterError(f"No audio files found in {inputs!r}.")
    names = output_names(files)
    out = str(Path(out_dir).resolve()) if out_dir is not None else None
    args = [(str(f), n, out, config, separator_options) for f, n in zip(files, names, strict=True)]
    if client is None:
        records = []
        for index, a in enumerate(args, 1):
            records.append(separate_one(*a, format=format, force=force))
            if progress:
                r = records[-1]
                print(f"[{index}/{len(args)}] {r['status']:>7} {r['input']}", flush=True)
        return BatchResult(records)
    futures = [
        client.submit(separate_one, *a, format=format, force=force, pure=False) for a in args
    ]
    if progress:
        from dask.distributed import progress as dask_progress

        dask_progress(futures)
    return BatchResult(client.gather(futures))
