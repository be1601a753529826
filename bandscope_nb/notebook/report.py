"""Reproducible separation reports: what the report notebook shows, and running it to HTML.

``notebooks/03_report.ipynb`` is a parameterised notebook (a cell tagged ``parameters``, as
papermill expects). It calls the functions here for its tables and figures; :func:`run_report`
(``bandscope report``, ``make report``) checks the parameters, injects them after that cell,
executes the notebook in a fresh kernel and writes the executed notebook and its HTML export.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ..digests import sha256_file
from ..errors import ParameterError, ReportError
from ..evaluation.references import load_references, reference_folder
from ..files import atomic_write
from ..names import as_path
from ..separation.config import REPORT_DEFAULTS, SeparationConfig
from ..stems import Stems

__all__ = [
    "level_figure",
    "levels",
    "load_references",
    "provenance",
    "run_compare",
    "run_report",
]

_HERE = Path(__file__).resolve().parent
_CHECKOUT_NOTEBOOK = _HERE.parents[1] / "notebooks" / "03_report.ipynb"
#: The report notebook: the repository's ``notebooks/03_report.ipynb`` in a source checkout,
#: else the copy an installed wheel carries (see setup.py).
NOTEBOOK = _CHECKOUT_NOTEBOOK if _CHECKOUT_NOTEBOOK.is_file() else _HERE / "report.ipynb"
_CHECKOUT_COMPARE = _HERE.parents[1] / "notebooks" / "04_compare.ipynb"
#: The comparison notebook (``notebooks/04_compare.ipynb``; in a wheel, ``compare.ipynb``).
COMPARE_NOTEBOOK = _CHECKOUT_COMPARE if _CHECKOUT_COMPARE.is_file() else _HERE / "compare.ipynb"
_PACKAGES = ("bandscope-nb", "torch", "demucs", "numpy", "librosa", "soundfile", "soxr")


def provenance(stems: Stems, input: str | os.PathLike | None = None) -> dict[str, str]:
    """Where a separation came from: software versions, machine, model and its weights, the
    input file's sha256, every parameter and the cache key.

    Parameters
    ----------
    stems : Stems
        A result of :meth:`bandscope_nb.Separator.separate` (its ``info`` is read).
    input : path or None
        The separated file, hashed in full.

    Examples
    --------
    >>> import numpy as np
    >>> stems = Stems(np.zeros((1, 1, 8)), ["a"], 8000, info={"model": "classical"})
    >>> record = provenance(stems)
    >>> record["model"], "torch" in record
    ('classical', True)
    """
    record: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            record[name] = version(name)
        except PackageNotFoundError:
            record[name] = "not installed"
    record["python"] = sys.version.split()[0]
    record["platform"] = platform.platform()
    info = stems.info
    run = ("device", "segment", "overlap", "shifts", "seed", "precision", "backend", "batch_size")
    for key in ("model", "origin", "identity", *run):
        if key in info:
            record[key] = str(info[key])
    origin = str(info.get("origin", ""))
    if origin.startswith("file ") and Path(origin[5:]).is_file():
        record["weights sha256"] = sha256_file(Path(origin[5:]))
    if input is not None:
        record["input"] = str(input)
        record["input sha256"] = sha256_file(Path(input))
    record["sample rate"] = f"{stems.sample_rate} Hz"
    record["duration"] = f"{stems.duration:.2f} s"
    if "cache_key" in info:
        record["cache key"] = str(info["cache_key"])
        record["from cache"] = str(info.get("cached", False))
    return record


def levels(stems: Stems, *, window: float = 0.5) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """RMS level of each stem over time, in dBFS (all channels together, floor -120 dB).

    Parameters
    ----------
    stems : Stems
    window : float
        Length of each (non-overlapping) window in seconds.

    Returns
    -------
    times : np.ndarray
        Window starts in seconds.
    levels : dict of str to np.ndarray
        dBFS per window for each stem.

    Examples
    --------
    >>> import numpy as np
    >>> stems = Stems(np.full((1, 2, 8000), 0.5, np.float32), ["a"], 8000)
    >>> times, db = levels(stems, window=0.25)
    >>> times.tolist(), np.round(db["a"], 2).tolist()
    ([0.0, 0.25, 0.5, 0.75], [-6.02, -6.02, -6.02, -6.02])
    """
    if not window > 0:
        raise ParameterError(f"Invalid window: {window!r}; give seconds > 0.")
    size = max(1, int(window * stems.sample_rate))
    count = max(1, stems.frames // size)
    times = np.arange(count) * size / stems.sample_rate
    out = {}
    for name in stems.names:
        x = np.asarray(stems[name][:, : count * size], dtype=np.float64)
        power = np.mean(x.reshape(x.shape[0], count, -1) ** 2, axis=(0, 2))
        out[name] = 10 * np.log10(np.maximum(power, 1e-12))
    return times, out


def level_figure(stems: Stems, *, window: float = 0.5, width_px: int = 800):
    """Line plot of :func:`levels`, one line per stem; returns the ``Figure`` (no pyplot).

    Examples
    --------
    >>> import numpy as np
    >>> fig = level_figure(Stems(np.zeros((2, 1, 8000)), ["a", "b"], 8000))
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['a', 'b']
    """
    from matplotlib.figure import Figure

    times, db = levels(stems, window=window)
    fig = Figure(figsize=(width_px / 100, 2.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    for name, values in db.items():
        ax.step(times, values, where="post", label=name)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("RMS level (dBFS)")
    ax.set_ylim(max(-80.0, min(float(v.min()) for v in db.values()) - 3), 3.0)
    ax.legend(loc="upper right", fontsize=8, ncols=len(db))
    return fig


def _inject(nb, parameters: dict) -> None:
    """Insert the parameters as a cell after the one tagged ``parameters`` (papermill's rule)."""
    import nbformat

    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if not tagged:
        raise ReportError("The report notebook has no cell tagged 'parameters'.")
    source = "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(tagged[0] + 1, cell)


def _this_interpreter_kernel():
    """A kernel manager that starts ipykernel in this interpreter, so the report runs with the
    bandscope-nb it was asked from, whatever kernelspec named ``python3`` Jupyter would find
    first (nbval's ``--nbval-current-env`` does the same)."""
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name=f"Python {platform.python_version()} ({sys.prefix})",
        language="python",
    )

    class ThisInterpreter(KernelSpecManager):
        def get_kernel_spec(self, kernel_name):
            return spec

    return KernelManager(kernel_name="python3", kernel_spec_manager=ThisInterpreter())


def _check_output(output: Path, notebook: Path) -> None:
    """The report goes to an ``.html`` file in a folder (or where one can be made), and its
    executed notebook beside it may replace only an earlier report's notebook: never the
    notebook being run, never a notebook of the user's."""
    if output.suffix.lower() not in (".html", ".htm") or output.is_dir():
        raise ParameterError(
            f"Report output {output} must be an .html file (the executed notebook is written "
            "beside it as .ipynb)."
        )
    for parent in output.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ParameterError(f"Report output {output}: {parent} is a file, not a folder.")
            break
    executed = output.with_suffix(".ipynb")
    if executed.exists():
        if executed.resolve() == Path(notebook).resolve():
            raise ParameterError(
                f"Report output {output} would overwrite the report notebook {notebook} with "
                "its executed copy; choose another -o."
            )
        try:
            ours = json.loads(executed.read_text()).get("metadata", {}).get("bandscope")
        except (OSError, ValueError, AttributeError):
            ours = None
        if not ours:
            raise ParameterError(
                f"{executed} exists and is not a report written by bandscope; the executed "
                "notebook would replace it. Choose another -o or move that file."
            )


def _report_config(config, options: dict) -> SeparationConfig:
    """The checked run options of a report: a model the kernel can load by name or path (made
    absolute: the kernel runs in the output folder) and a device this machine has."""
    from ..separation.devices import check_run

    if config is not None and not isinstance(config, SeparationConfig):
        raise ParameterError(f"Invalid config: {config!r}; give a SeparationConfig.")
    config = (config or REPORT_DEFAULTS).replace(**options)
    model = config.model
    if not isinstance(model, (str, os.PathLike)):
        raise ParameterError(
            f"The report notebook runs in its own kernel: give model= as a name or a path, not "
            f"a {type(model).__name__} object."
        )
    check_run(config)
    return config.replace(model=_for_kernel(model))


def _for_kernel(value):
    """A model or repo as a kernel running in the output folder must see it: an existing path
    made absolute, a name as it is."""
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


def _exporter(html_exporter):
    """nbconvert's lab template for a report that plays offline: code, prompts and the cells
    only nbval reads (tag ``nbval-check``) left out; no script or font from a CDN (widget views
    drop out, since no widget state is stored, and the players' offline copies play)."""
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = html_exporter(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        require_js_url="",
        mathjax_url="",
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={"nbval-check"}), enabled=True
    )
    return exporter


def run_report(
    input: str | os.PathLike | None = None,
    *,
    output: str | os.PathLike = "build/report/report.html",
    config: SeparationConfig | None = None,
    references: str | os.PathLike | None = None,
    notebook: str | os.PathLike | None = None,
    timeout: int = 1800,
    **options,
) -> Path:
    """Execute the report notebook for one input and write it as HTML (and ``.ipynb``).

    Everything is checked before the kernel starts: the input file, the run options (a
    :class:`SeparationConfig`), the device, the references folder. Both files are written to
    temporary names and renamed, so a failed run leaves no report behind.

    Parameters
    ----------
    input : path or None
        The audio file; None: the demo song (and its true stems as references).
    output : path
        The HTML file; the executed notebook is written beside it (``.ipynb``).
    config : SeparationConfig or None
        The run options; None: :data:`REPORT_DEFAULTS` (``model="auto"``, which works offline).
        ``**options`` override its fields (``model=``, ``device=``, ``segment=``, ...). The
        model must be a name or a path: the notebook runs in a kernel of its own.
    references : path, "demo" or None
        True stems for the metrics table (see :func:`load_references`).
    notebook : path or None
        The report notebook (default: :data:`NOTEBOOK`, ``notebooks/03_report.ipynb``).
    timeout : int
        Seconds allowed for each cell.

    Returns
    -------
    Path
        The HTML report.

    Raises
    ------
    AudioError, DeviceError, ParameterError, ReportError

    Examples
    --------
    >>> run_report("missing.wav")
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.AudioError: missing.wav: no such file; check the path.
    """
    from ..audio import open_checked

    if input is not None:
        input = str(open_checked(input)[0].resolve())
    config = _report_config(config, options)
    if references is not None and str(references) != "demo":
        references = str(reference_folder(references))
    parameters = {
        "INPUT": input,
        "CONFIG": config.as_dict(),
        "REFERENCES": None if references is None else str(references),
    }
    return _execute(notebook, NOTEBOOK, parameters, output, timeout, what=input or "the demo song")


def _execute(notebook, default: Path, parameters: dict, output, timeout: int, *, what: str):
    """Run ``notebook`` (or ``default``) with ``parameters`` injected, in a kernel of this
    interpreter, and write it as HTML and ``.ipynb`` (temporary names, then renamed)."""
    notebook = as_path(notebook, what="notebook") if notebook is not None else default
    if not notebook.is_file():
        raise ParameterError(
            f"Report notebook {notebook} not found; pass notebook= the path of {default.name} "
            "(in the bandscope-nb repository's notebooks/ folder)."
        )
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
        from nbconvert import HTMLExporter
    except ImportError as exc:
        raise ReportError(
            f"Reports need nbclient and nbconvert ({exc}); pip install 'bandscope-nb[notebook]'."
        ) from exc

    output = as_path(output, what="report output")
    _check_output(output, notebook)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except Exception as exc:  # nbformat raises several kinds for a file that is no notebook
        raise ParameterError(
            f"{notebook} is not a readable Jupyter notebook ({type(exc).__name__}); pass the "
            f"path of {default.name}."
        ) from exc
    output.parent.mkdir(parents=True, exist_ok=True)
    _inject(nb, parameters)
    client = NotebookClient(
        nb,
        km=_this_interpreter_kernel(),
        timeout=timeout,
        store_widget_state=False,
        resources={"metadata": {"path": str(output.parent.resolve())}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        raise ReportError(f"The report for {what} failed:\n{exc}") from exc
    except (OSError, RuntimeError) as exc:  # the kernel did not start, died, or timed out
        raise ReportError(
            f"The report kernel ({sys.executable} -m ipykernel_launcher) failed: "
            f"{type(exc).__name__}: {exc}. Check that ipykernel is installed in this environment."
        ) from exc
    nb.metadata["bandscope"] = {"report": True}  # marks the executed notebook as ours
    html, _ = _exporter(HTMLExporter).from_notebook_node(nb)
    atomic_write(output.with_suffix(".ipynb"), nbformat.writes(nb).encode())
    atomic_write(output, html.encode())
    return output


def run_compare(
    input: str | os.PathLike | None = None,
    runs: dict | None = None,
    *,
    output: str | os.PathLike = "build/compare/compare.html",
    references: str | os.PathLike | None = "auto",
    excerpt: tuple[float, float] | None = None,
    device: str = "auto",
    notebook: str | os.PathLike | None = None,
    timeout: int = 3600,
) -> Path:
    """Execute the comparison notebook (``notebooks/04_compare.ipynb``) for one input and write
    it as HTML (and ``.ipynb``), checking everything before its kernel starts.

    Parameters
    ----------
    input : path or None
        The audio file; None: the demo song.
    runs : dict or None
        Label to Separator options (names or paths for models: the notebook runs in a kernel
        of its own); None: the notebook's own runs (classical variants, htdemucs when its
        weights are here). With references, the oracle ceiling is added.
    output : path
        The HTML file; the executed notebook is written beside it.
    references : path, "demo", "auto" or None
        True stems (a folder of ``drums.flac`` ...); ``"demo"`` only for the demo song;
        ``"auto"``: the demo's for the demo song, none for a file.
    excerpt : (float, float) or None
        Start and end in seconds of what is compared; None: all of it.
    device : str
        The runs' default device.
    notebook : path or None
    timeout : int
        Seconds allowed for each cell.

    Returns
    -------
    Path
        The HTML report.

    Examples
    --------
    >>> run_compare(runs={"x": {"model": "htdemucs", "overlaps": 0.5}})
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.ParameterError: Run 'x': unknown option(s) ['overlaps']; options are ...
    """
    from ..audio import open_checked
    from ..evaluation.runs import check_runs
    from ..separation.devices import resolve_device

    if input is not None:
        input = str(open_checked(input)[0].resolve())
    resolve_device(device)
    if runs is not None:
        runs = {label: _kernel_options(label, options) for label, options in runs.items()}
        check_runs(runs, device=device)
    if str(references) == "auto":
        references = "demo" if input is None else None
    if references is not None and str(references) == "demo" and input is not None:
        raise ParameterError(
            "references='demo' are the demo song's true stems; for another song give a folder "
            "of its true stems, or none."
        )
    if references is not None and str(references) != "demo":
        references = str(reference_folder(references))
    if excerpt is not None:
        start, end = (float(t) for t in excerpt)
        if not 0 <= start < end:
            raise ParameterError(f"Invalid excerpt {excerpt!r}: give 0 <= start < end seconds.")
        excerpt = (start, end)
    parameters = {
        "AUDIO": input,
        "REFERENCES": None if references is None else str(references),
        "EXCERPT": excerpt,
        "DEVICE": device,
        "RUNS": runs,
    }
    return _execute(
        notebook, COMPARE_NOTEBOOK, parameters, output, timeout, what=input or "the demo song"
    )


def _kernel_options(label: str, options) -> dict:
    """A run's options as the comparison notebook's kernel gets them: literals, a model by name
    or absolute path."""
    if not isinstance(options, dict):
        raise ParameterError(
            f"Run {label!r}: the comparison notebook runs in its own kernel: give options as a "
            f"dict of names, numbers and paths, not {type(options).__name__}."
        )
    options = dict(options)
    model = options.get("model")
    if model is not None and not isinstance(model, str | os.PathLike):
        raise ParameterError(
            f"Run {label!r}: give model= as a name or a path, not a {type(model).__name__}."
        )
    for key in ("model", "repo"):
        if options.get(key) is not None:
            options[key] = _for_kernel(options[key])
    return options
