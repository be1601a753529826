"""Reports: provenance, levels, references, and the report notebook run end to end to HTML."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import RATE, SOURCES, noise, tiny_htdemucs

import bandscope_nb as bn
from bandscope_nb.cli import main
from bandscope_nb.notebook.report import (
    level_figure,
    levels,
    load_references,
    provenance,
    run_report,
)
from bandscope_nb.separation.modelfiles import save_safetensors

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def other_python3_kernelspec(tmp_path, monkeypatch):
    """A 'python3' kernelspec of another interpreter ahead on JUPYTER_PATH (as a user-level
    kernelspec of another environment would be): reports must still run in this one."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = ["/nonexistent/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Other", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(spec.parent.parent))


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def song(tmp_path):
    """A 3 s mix of four noise 'stems' at different levels, and a folder with the stems."""
    truth = {name: noise(3, seed=k) * 0.05 * (k + 1) for k, name in enumerate(SOURCES)}
    refs = tmp_path / "refs"
    refs.mkdir()
    for name, samples in truth.items():
        sf.write(refs / f"{name}.wav", samples.T, RATE, subtype="FLOAT")
    mix = tmp_path / "mix.wav"
    sf.write(mix, sum(truth.values()).T, RATE, subtype="FLOAT")
    return mix, refs, bn.Stems.from_dict(truth, RATE)


def test_levels_are_windowed_rms_in_dbfs():
    x = noise(2, seed=1) * 0.3
    stems = bn.Stems.from_dict({"a": x, "b": np.zeros_like(x)}, RATE)
    times, db = levels(stems, window=0.5)
    assert times.tolist() == [0.0, 0.5, 1.0, 1.5]
    size = RATE // 2
    expected = [10 * np.log10(np.mean(x[:, i * size : (i + 1) * size] ** 2)) for i in range(4)]
    np.testing.assert_allclose(db["a"], expected, rtol=1e-6)
    assert np.all(db["b"] == -120.0)
    fig = level_figure(stems)
    assert [line.get_label() for line in fig.axes[0].lines] == ["a", "b"]
    with pytest.raises(bn.ParameterError, match="window"):
        levels(stems, window=0)


def test_provenance_names_versions_weights_input_and_cache_key(tmp_path, song):
    mix, _, _ = song
    weights = save_safetensors(tiny_htdemucs(), tmp_path / "tiny.safetensors")
    stems = bn.Separator(weights, device="cpu", progress=False).separate(mix)
    record = provenance(stems, mix)
    assert record["torch"] == torch.__version__ and record["bandscope-nb"] == bn.__version__
    assert record["weights sha256"] == sha256(weights)
    assert record["input sha256"] == sha256(mix)
    assert record["identity"] == stems.info["identity"]
    assert record["cache key"] == stems.info["cache_key"] and record["from cache"] == "False"
    assert record["device"] == "cpu" and record["overlap"] == "0.25"


def test_references_from_a_folder_or_the_demo(song, tmp_path):
    _, refs, truth = song
    loaded = load_references(refs, truth)
    assert loaded.names == truth.names
    np.testing.assert_array_equal(loaded.data, truth.data)
    (refs / "vocals.wav").unlink()
    with pytest.raises(bn.ParameterError, match="No reference for stem 'vocals'"):
        load_references(refs, truth)
    with pytest.raises(bn.ParameterError, match="do not match"):
        load_references("demo", truth)  # 20 s of demo stems against 3 s of stems
    with pytest.raises(bn.ParameterError, match="does not exist"):
        load_references(tmp_path / "nowhere", truth)


def test_report_command_runs_the_notebook_to_html(song, tmp_path, capsys):
    mix, refs, truth = song
    out = tmp_path / "out" / "song.html"
    code = main(
        ["report", str(mix), "-o", str(out), "--model", "classical", "--references", str(refs)]
    )
    assert code == 0 and str(out) in capsys.readouterr().out
    nb = nbformat.read(out.with_suffix(".ipynb"), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert f"INPUT = {str(mix.resolve())!r}" in injected[0].source
    assert "CONFIG = {'model': 'classical', 'device': 'auto'" in injected[0].source
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the metrics the report printed are those of the same separation computed here
    stems = bn.Separator("classical", progress=False).separate(mix)
    table = bn.metrics.evaluate(truth, stems)
    expected = {n: round(v["SDR"], 1) for n, v in table.medians.items()}
    printed = [o.text for o in outputs if o.output_type == "stream" and "'drums':" in o.text]
    assert printed == [str(expected) + "\n"]
    html = out.read_text()
    assert "Median over frames" in html and html.count('<audio class="bn-track"') == 5
    assert sha256(mix) in html  # provenance: the input's sha256
    # music first, provenance last; code, nbval-only cells and CDN scripts left out
    assert html.index('id="Listen"') < html.index('id="Metrics"') < html.index('id="Provenance"')
    assert "BandscopePlayer.upgrade(" in html and "NBVAL" not in html
    assert "Separator.from_config" not in html and "hl-ipython3" not in html  # no code
    assert not re.search(r'<script[^>]+src="https?://', html)


def test_report_checks_everything_before_starting_a_kernel(song, tmp_path):
    mix, _, _ = song
    out = tmp_path / "r" / "x.html"
    with pytest.raises(bn.AudioError, match="no such file"):
        run_report(tmp_path / "missing.wav", output=out)
    with pytest.raises(bn.DeviceError):
        run_report(mix, output=out, device="cuda:7")
    with pytest.raises(bn.ParameterError, match="overlap"):
        run_report(mix, output=out, overlap=1.5)
    with pytest.raises(bn.ParameterError, match="References folder"):
        run_report(mix, output=out, references=tmp_path / "none")
    with pytest.raises(bn.ParameterError, match="Report notebook"):
        run_report(mix, output=out, notebook=tmp_path / "none.ipynb")
    assert main(["report", str(mix), "-o", str(out), "--device", "cuda:7"]) == 2
    assert main(["report", str(mix), "-o", str(out), "--notebook", str(tmp_path / "no.ipynb")]) == 2
    assert not out.parent.exists() or not list(out.parent.iterdir())


def test_a_failing_report_raises_and_leaves_no_report(song, tmp_path):
    mix, _, _ = song
    out = tmp_path / "r" / "x.html"
    with pytest.raises(bn.ReportError, match="failed") as info:
        run_report(mix, output=out, model=str(tmp_path / "no-such-model.th"))
    assert "no-such-model.th" in str(info.value)
    assert list(out.parent.iterdir()) == []
    notebook = tmp_path / "plain.ipynb"
    notebook.write_text(json.dumps(nbformat.v4.new_notebook()))
    with pytest.raises(bn.ReportError, match="tagged 'parameters'"):
        run_report(mix, output=out, notebook=notebook)


def test_a_kernel_that_cannot_start_is_a_report_error(song, tmp_path, monkeypatch):
    mix, _, _ = song
    out = tmp_path / "r" / "x.html"
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(bn.ReportError, match=r"no-python -m ipykernel_launcher.*FileNotFoundError"):
        run_report(mix, output=out, model="classical")
    assert list(out.parent.iterdir()) == []


def test_report_with_a_weights_file_given_by_a_relative_path(song, tmp_path, monkeypatch):
    mix, _, _ = song
    weights = save_safetensors(tiny_htdemucs(), tmp_path / "tiny.safetensors")
    monkeypatch.chdir(tmp_path)
    out = run_report("mix.wav", output="reports/tiny.html", model="tiny.safetensors")
    html = out.read_text()
    assert out.resolve() == (tmp_path / "reports" / "tiny.html").resolve()
    assert sha256(weights) in html and sha256(mix) in html  # weights and input, by content
    assert "No references given: no metrics" in html


def pep517(hook: str, source: Path, out: Path) -> Path:
    """Run setuptools' PEP 517 ``hook`` (build_sdist / build_wheel) in ``source``; the file."""
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(out)!r}))"
    name = subprocess.run(
        [sys.executable, "-c", code], cwd=source, check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    return out / name


@pytest.mark.slow
def test_an_installed_wheel_carries_the_report_notebook(song, tmp_path):
    """sdist -> wheel, as a release is built; the unpacked wheel, outside the repository, runs
    `bandscope report` with its own copy of notebooks/03_report.ipynb."""
    source, dist, site = tmp_path / "src", tmp_path / "dist", tmp_path / "site"
    shutil.copytree(
        ROOT / "bandscope_nb", source / "bandscope_nb", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, source)
    (source / "notebooks").mkdir()
    for notebook in ("03_report.ipynb", "04_compare.ipynb"):
        shutil.copy2(ROOT / "notebooks" / notebook, source / "notebooks")
    dist.mkdir()
    with tarfile.open(pep517("build_sdist", source, dist)) as tar:
        tar.extractall(tmp_path / "sdist", filter="data")
    (unpacked,) = (tmp_path / "sdist").iterdir()
    shutil.unpack_archive(pep517("build_wheel", unpacked, dist), site, format="zip")
    packaged = site / "bandscope_nb" / "notebook" / "report.ipynb"
    assert (site / "bandscope_nb" / "notebook" / "static" / "player_view.js").is_file()
    assert packaged.read_bytes() == (ROOT / "notebooks" / "03_report.ipynb").read_bytes()
    compare = site / "bandscope_nb" / "notebook" / "compare.ipynb"
    assert compare.read_bytes() == (ROOT / "notebooks" / "04_compare.ipynb").read_bytes()

    env = {**os.environ, "PYTHONPATH": str(site)}
    where = [sys.executable, "-c", "import bandscope_nb.notebook.report as r; print(r.NOTEBOOK)"]
    found = subprocess.run(where, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert found.stdout.strip() == str(packaged), found.stderr
    mix, _, _ = song
    out = tmp_path / "report" / "song.html"
    command = ["report", str(mix), "-o", str(out), "--model", "classical"]
    run = subprocess.run(
        [sys.executable, "-m", "bandscope_nb", *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert "Median over frames" not in out.read_text()  # no references given
    assert sha256(mix) in out.read_text()


@pytest.mark.slow
def test_compare_command_runs_the_comparison_notebook(song, tmp_path, monkeypatch, capsys):
    from bandscope_nb.cli import main

    mix, refs, _ = song
    save_safetensors(tiny_htdemucs(), tmp_path / "tiny.safetensors")
    monkeypatch.chdir(tmp_path)  # a relative model path reaches the kernel made absolute
    out = tmp_path / "cmp" / "song.html"
    argv = ["compare", str(mix), "-o", str(out), "--references", str(refs), "--excerpt", "0:1"]
    argv += ["--run", "tiny:model=tiny.safetensors", "--sweep", "model=tiny.safetensors"]
    argv += ["--sweep", "overlap=0.1,0.5", "--device", "cpu"]
    assert main(argv) == 0, capsys.readouterr().err
    html = out.read_text()
    for label in ("tiny", "overlap=0.1", "overlap=0.5", "oracle IRM"):  # a sweep: what varies
        assert label in html
    assert "against the true stems" in html and "classical, wide HPSS" not in html
    assert "NBVAL" not in html and not re.search(r'<script[^>]+src="https?://', html)
    executed = json.loads(out.with_suffix(".ipynb").read_text())
    printed = "".join(
        "".join(o.get("text", ""))
        for c in executed["cells"]
        for o in c.get("outputs", [])
        if c["cell_type"] == "code"
    )
    assert "tiny                           Separator" in printed


def test_compare_command_checks_everything_before_a_kernel(song, tmp_path, capsys):
    from bandscope_nb.cli import main

    mix, _, _ = song
    out = str(tmp_path / "c.html")
    bad = [
        (["--run", "nolabel"], "Invalid run"),
        (["--run", "a:overlaps=0.5"], "unknown option"),
        (["--run", "a:model=classical,overlap=2"], "overlap"),
        (["--run", "a:model=classical,kernel_size=2"], "Invalid kernel_size"),
        (["--sweep", "width=1,99"], "options of the classical separator"),
        (["--run", "a:model=classical", "--run", "a:model=classical"], "share a label"),
        (["--sweep", "overlap"], "Invalid --sweep"),
        (["--excerpt", "5"], "Invalid --excerpt"),
        (["--excerpt", "3:1"], "Invalid excerpt"),
        (["--references", str(tmp_path / "nowhere")], "does not exist"),
        (["--references", "demo"], "demo song's true stems"),
        (["--device", "tpu"], "device"),
    ]
    for extra, message in bad:
        assert main(["compare", str(mix), "-o", out, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not list(tmp_path.glob("c.*"))  # no kernel ran, nothing written
