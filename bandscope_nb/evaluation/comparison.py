"""Compare separations of one song: each run's stems, speed, memory and quality, side by side.

Every run goes through the normal, cached :class:`~bandscope_nb.Separator`, so a rerun or an
added run computes only what is new; a cache hit is shown as such, never as a speed. With true
stems (``references``) each run gets BSS Eval medians per stem
(:func:`bandscope_nb.metrics.evaluate`); without them a comparison can only say how much the
runs differ, and says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..dsp.ensemble import ensemble as ensemble_stems
from ..dsp.metrics import evaluate, sdr
from ..errors import BandscopeError, ParameterError
from ..stems import Stems
from .references import check_references, load_references
from .runs import check_runs

__all__ = ["Comparison", "Run", "compare"]

MEASURES = ("SDR", "SIR", "SAR", "SI-SDR")


@dataclass(frozen=True)
class Run:
    """One row of a :class:`Comparison`.

    Attributes
    ----------
    label : str
    stems : Stems
    how : str
        ``"separated"`` (computed by this call), ``"cache hit"``, ``"given"`` (stems passed
        in) or ``"ensemble"``.
    seconds : float or None
        Wall time of the separation proper (the model already loaded): measured by this call
        when ``"separated"``, stored with the stems when a ``"cache hit"`` (None for entries
        older than that record, and for given stems).
    peak_mb : float or None
        Growth of the process's resident memory during the separation, sampled every 5 ms
        (None: not separated by this call, or psutil missing).
    metrics : dict or None
        Per stem, the medians of ``SDR``, ``SIR``, ``SAR`` and ``SI-SDR`` in dB.
    options : dict
        The run's options as given.
    call_seconds : float or None
        Wall time of this call's ``separate`` (for a cache hit: finding and reading the stems).
    """

    label: str
    stems: Stems
    how: str
    seconds: float | None = None
    peak_mb: float | None = None
    metrics: dict | None = None
    options: dict | None = None
    call_seconds: float | None = None

    @property
    def realtime(self) -> float | None:
        """Seconds of audio separated per second of :attr:`seconds` (None where not known)."""
        if not self.seconds:
            return None
        return self.stems.duration / self.seconds

    def mean(self, measure: str = "SDR") -> float | None:
        """The measure's mean over stems (None without references)."""
        if not self.metrics:
            return None
        return float(np.mean([m[measure] for m in self.metrics.values()]))


class _PeakMemory:
    """Peak growth of this process's resident set size while the block runs (psutil)."""

    def __enter__(self):
        try:
            import psutil
        except ImportError:
            self.process = None
            return self
        self.process = psutil.Process()
        self.base = self.peak = self.process.memory_info().rss
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.done.set()
            self.thread.join()
            self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def megabytes(self) -> float | None:
        return None if self.process is None else (self.peak - self.base) / 1e6


class Comparison:
    """Runs of one song side by side (made by :func:`compare`).

    Index it by label for a :class:`Run`; :meth:`table` gives the rows, :meth:`differences`
    how far runs are from each other, :meth:`ensemble` and :meth:`add` new rows.
    """

    def __init__(
        self, runs: list[Run], *, references: Stems | None = None, mix: np.ndarray | None = None
    ):
        self.runs = {run.label: run for run in runs}
        self.references = references
        self.mix = mix  # the input at the runs' rate, (channels, frames), if known

    def __getitem__(self, label: str) -> Run:
        if label not in self.runs:
            raise ParameterError(f"No run {label!r}; runs are {list(self.runs)}.")
        return self.runs[label]

    def __iter__(self) -> Iterator[str]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    @property
    def note(self) -> str:
        """What the numbers are, or why there are none."""
        return " ".join(filter(None, (self._quality_note(), self._speed_note())))

    def _speed_note(self) -> str:
        hits = [run.label for run in self.runs.values() if run.how == "cache hit"]
        if not hits:
            return ""
        return (
            "Cache hits (" + "; ".join(f"'{h}'" for h in hits) + ") were read, not computed: "
            "their seconds and "
            "realtime are those measured when their stems were separated (stored with them), "
            "and their memory was not measured."
        )

    def _quality_note(self) -> str:
        if self.references is not None:
            note = "SDR: median over 1 s frames against the true stems (BSS Eval v4), in dB."
            undefined = [
                f"'{run.label}' ({name})"
                for run in self.runs.values()
                for name, m in (run.metrics or {}).items()
                if np.isnan(m["SDR"])
            ]
            if undefined:
                note += (
                    " No SDR for " + ", ".join(undefined) + ": BSS Eval is undefined when a "
                    "stem is silent in every frame (a separator may return a silent stem on a "
                    "short excerpt; compare a longer one)."
                )
            return note
        first = next(iter(self.runs))
        return (
            "No true stems were given (references=), so quality cannot be measured here; "
            f"'vs {first}' is each run's SDR taking the run {first!r} as the reference: how "
            "much the runs differ, not how good they are."
        )

    def differences(self) -> dict[str, np.ndarray]:
        """Per stem, ``D[i, j]``: SDR (dB) of run ``j`` taking run ``i`` as the reference
        (NaN on the diagonal), runs in order."""
        runs = list(self.runs.values())
        out = {}
        for name in runs[0].stems.names:
            d = np.full((len(runs), len(runs)), np.nan)
            for i, a in enumerate(runs):
                for j, b in enumerate(runs):
                    if i != j:
                        d[i, j] = sdr(a.stems[name], b.stems[name])
            out[name] = d
        return out

    def table(self) -> list[dict]:
        """One dict per run: label, how, seconds, realtime (x), peak MB, then per stem SDR and
        the mean over stems (or, without references, the SDR against the first run)."""
        runs = list(self.runs.values())
        first = runs[0]
        rows = []
        for run in runs:
            row = {
                "run": run.label,
                "how": run.how,
                "seconds": run.seconds,
                "realtime": run.realtime,
                "peak MB": run.peak_mb,
            }
            if run.metrics:
                row.update({name: m["SDR"] for name, m in run.metrics.items()})
                row["mean SDR"] = run.mean()
            else:
                row[f"vs {first.label}"] = (
                    None
                    if run is first
                    else float(np.mean([sdr(first.stems[n], run.stems[n]) for n in run.stems]))
                )
            rows.append(row)
        return rows

    def add(self, label: str, stems: Stems, *, how: str = "given") -> Comparison:
        """A new comparison with ``stems`` as one more run (evaluated like the others)."""
        if label in self.runs:
            raise ParameterError(f"A run is already labelled {label!r}.")
        _same_audio(label, stems, next(iter(self.runs.values())).stems)
        run = Run(label, stems, how, metrics=_metrics(stems, self.references))
        return Comparison([*self.runs.values(), run], references=self.references, mix=self.mix)

    def ensemble(
        self, members: list[str], *, method: str = "mean", weights=None, label: str | None = None
    ) -> Comparison:
        """A new comparison with the ensemble of runs ``members`` as one more run (no model
        runs; see :func:`bandscope_nb.ensemble`)."""
        stems = ensemble_stems({m: self[m].stems for m in members}, method=method, weights=weights)
        label = label or f"{method}({', '.join(members)})"
        return self.add(label, stems, how="ensemble")

    def _ipython_display_(self) -> None:
        """In a notebook: the table, quality against speed, and the runs in the player
        (:class:`~bandscope_nb.notebook.compare_view.CompareView`); elsewhere the text."""
        from ..notebook.widgets import in_live_kernel

        if in_live_kernel():
            from ..notebook.compare_view import CompareView

            CompareView(self)._ipython_display_()
        else:
            print(repr(self))

    def _repr_html_(self) -> str:
        from ..notebook.compare_view import quality_speed_png, table_html

        return table_html(self) + quality_speed_png(self)

    def __repr__(self) -> str:
        rows = self.table()
        columns = list(dict.fromkeys(k for row in rows for k in row))
        cells = [[_cell(row.get(c)) for c in columns] for row in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
        return "\n".join([line(columns), *(line(r) for r in cells), self.note])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _same_audio(label: str, stems: Stems, like: Stems) -> None:
    if (stems.sample_rate, stems.channels, stems.frames) != (
        like.sample_rate,
        like.channels,
        like.frames,
    ) or set(stems.names) != set(like.names):
        raise ParameterError(
            f"Run {label!r} ({stems.names}, {stems.channels} x {stems.frames} at "
            f"{stems.sample_rate} Hz) is not a separation of the same audio as the others "
            f"({like.names}, {like.channels} x {like.frames} at {like.sample_rate} Hz)."
        )


def _mix(audio, like: Stems) -> np.ndarray | None:
    """The input at the runs' rate and channels (for listening beside them), if it fits."""
    from ..audio import as_audio, resample

    mix = as_audio(audio)
    samples = mix.samples
    if mix.sample_rate != like.sample_rate:
        samples = resample(samples, mix.sample_rate, like.sample_rate)
    if abs(samples.shape[-1] - like.frames) > 16 or samples.shape[0] not in (1, like.channels):
        return None  # not the audio the runs separated (they say so: a given run's own input)
    fitted = np.zeros((samples.shape[0], like.frames), np.float32)  # resampling may differ
    fitted[:, : min(like.frames, samples.shape[-1])] = samples[:, : like.frames]  # by a frame
    return np.broadcast_to(fitted, (like.channels, like.frames))


def _metrics(stems: Stems, references: Stems | None) -> dict | None:
    if references is None:
        return None
    medians = evaluate(references, stems).medians
    return {name: {m: float(medians[name][m]) for m in MEASURES} for name in stems.names}


def compare(
    audio,
    runs: dict,
    *,
    references=None,
    device: str = "auto",
    cache=True,
    progress: bool = False,
) -> Comparison:
    """Separate ``audio`` with each run and compare them: stems, time, memory and quality.

    Parameters
    ----------
    audio : str, os.PathLike, Audio or (np.ndarray, int)
    runs : dict of str to dict or Stems
        Label to :class:`~bandscope_nb.Separator` options (or to stems already made); see
        :func:`sweep` for grids. Everything is checked before the first run starts.
    references : None, "demo", folder or Stems
        True stems; with them every run is evaluated (BSS Eval medians per stem).
    device : str
        Default device of the runs.
    cache : bool, folder or ResultCache
        The Separator's result cache: runs computed before are read, not recomputed.
    progress : bool
        Show a bar over the whole comparison (each run separated, then scored: scoring takes
        a few seconds per run), and each separation's own bar while it runs.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> clip = slice(10 * 44100, 12 * 44100)  # 2 s in which every stem plays
    >>> mix = bn.Audio(mix.samples[:, clip], 44100)
    >>> truth = bn.Stems(truth.data[..., clip], truth.names, 44100)
    >>> oracle = bn.oracle_masks(mix, truth).estimates  # the ceiling of masking
    >>> runs = {"classical": {"model": "classical"}, "oracle": oracle}
    >>> result = compare(mix, runs, references=truth, device="cpu", cache=False)
    >>> [(row["run"], row["how"]) for row in result.table()]
    [('classical', 'separated'), ('oracle', 'given')]
    >>> bool(result["oracle"].mean("SDR") > result["classical"].mean("SDR"))
    True
    """
    from ..separation.separator import Separator

    specs = check_runs(runs, device=device)
    check_references(references)
    separators = {}
    for spec in specs:  # every model loads (or fails, naming its run) before any separation
        if spec.stems is None:
            separator = Separator.from_config(  # each run's bar goes when it ends; ours stays
                spec.config,
                cache=cache,
                progress="transient" if progress else False,
                **(spec.source or {}),
            )
            try:
                separator.model  # noqa: B018 (loads it: not part of the timing)
            except BandscopeError as exc:
                raise type(exc)(f"Run {spec.label!r}: {exc}") from exc
            separators[spec.label] = separator
    steps = len(separators) + (len(specs) if references is not None else 0)
    bar = _Steps(steps) if progress and steps else None  # nothing to wait for: no bar
    made: list[tuple] = []
    for spec in specs:
        if spec.stems is not None:
            made.append((spec, spec.stems, "given", None, None, None))
            continue
        if bar is not None:
            bar.next(f"separating {spec.label}")
        separator = separators[spec.label]
        start = time.perf_counter()
        with _PeakMemory() as peak:
            stems = separator.separate(audio)
        call = time.perf_counter() - start
        how = "cache hit" if stems.info.get("cached") else "separated"
        peak_mb = peak.megabytes if how == "separated" else None
        made.append((spec, stems, how, stems.info.get("seconds"), peak_mb, call))
    like = made[0][1]
    for spec, stems, *_ in made:
        _same_audio(spec.label, stems, like)
    truth = None if references is None else load_references(references, like)
    rows = []
    for spec, stems, how, seconds, mb, call in made:
        if bar is not None and truth is not None:
            bar.next(f"scoring {spec.label}")
        metrics = _metrics(stems, truth)
        rows.append(Run(spec.label, stems, how, seconds, mb, metrics, spec.options or {}, call))
    if bar is not None:
        bar.close()
    return Comparison(rows, references=truth, mix=_mix(audio, like))


class _Steps:
    """A ``tqdm.auto`` bar over a comparison's steps (a widget in a notebook), each named as
    it starts and counted when the next one starts."""

    def __init__(self, steps: int):
        from tqdm.auto import tqdm

        self.bar, self.started = tqdm(total=steps, unit="step", desc="comparing"), False

    def next(self, what: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description(what)

    def close(self) -> None:
        self.bar.set_description("compared")
        self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()
