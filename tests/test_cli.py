"""The bandscope command: exit codes, outputs, failures isolated per file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from helpers import RATE, noise, tiny_htdemucs

from bandscope_nb.cli import main
from bandscope_nb.separation.batch import output_names
from bandscope_nb.separation.modelfiles import save_safetensors
from bandscope_nb.separation.streams import stage_file


@pytest.fixture
def model(tmp_path):
    return str(save_safetensors(tiny_htdemucs(), tmp_path / "models" / "tiny.safetensors"))


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("one.wav", "two.flac"):
        sf.write(folder / name, noise(1.0).T, RATE)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    return folder


def run(*args):
    return main([str(a) for a in args])


def separate(model, out, *paths, extra=()) -> list[str]:
    """`bandscope separate` arguments on the CPU: options, then ``--`` and the input paths."""
    args = ("separate", "--model", model, "--device", "cpu", "-o", out, *extra, "--", *paths)
    return [str(a) for a in args]


def test_separate_writes_stems_and_exits_0(model, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(
        *separate(model, out, inputs / "one.wav", inputs / "two.flac", extra=("--format", "wav"))
    )
    assert code == 0
    for track in ("one", "two"):
        files = sorted(p.name for p in (out / track).iterdir())
        assert files == [".bandscope.json", "bass.wav", "drums.wav", "other.wav", "vocals.wav"]
        provenance = json.loads((out / track / ".bandscope.json").read_text())
        assert provenance["input"].endswith(("one.wav", "two.flac"))
        decoded = stage_file(Path(provenance["input"]), None).digest
        assert provenance["input_digest"] == decoded and provenance["cache_key"]
        data, rate = sf.read(out / track / "vocals.wav")
        assert rate == RATE and data.shape == (RATE, 2)
    assert "2 separated, 0 from the cache, 0 skipped (outputs exist), 0 failed, of 2 file(s)" in (
        capsys.readouterr().out
    )


def test_a_failing_file_is_reported_and_the_others_complete(model, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(*separate(model, out, *(inputs / n for n in ("one.wav", "broken.wav", "two.flac"))))
    assert code == 1
    assert (out / "one" / "drums.flac").is_file() and (out / "two" / "drums.flac").is_file()
    assert not (out / "broken").exists()
    err = capsys.readouterr().err
    assert "FAILED" in err and "broken.wav" in err


def test_existing_outputs_are_kept_unless_force(model, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    args = separate(model, out, inputs / "one.wav")
    assert run(*args) == 0
    before = (out / "one" / "bass.flac").stat().st_mtime_ns
    assert run(*args) == 0
    assert "outputs exist (pass --force to redo)" in capsys.readouterr().out
    assert (out / "one" / "bass.flac").stat().st_mtime_ns == before
    assert run(*separate(model, out, inputs / "one.wav", extra=["--force"])) == 0
    assert (out / "one" / "bass.flac").stat().st_mtime_ns != before


@pytest.mark.parametrize(
    "args",
    [
        ("--device", "cuda:7"),
        ("--overlap", "1.5"),
        ("--segment", "-1"),
    ],
)
def test_usage_errors_exit_2(args, model, inputs, tmp_path):
    assert run("separate", inputs / "one.wav", "-o", tmp_path, "--model", model, *args) == 2


def test_argparse_usage_error_exits_2():
    with pytest.raises(SystemExit) as info:
        main(["separate"])
    assert info.value.code == 2


def test_missing_model_exits_1_before_any_file(inputs, tmp_path, capsys):
    assert run("separate", inputs / "one.wav", "-o", tmp_path / "o", "--model", "htdemucs") == 1
    assert "bandscope models fetch htdemucs" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_output_names_never_escape_and_are_unique():
    names = output_names(
        ["a/song.wav", "b/song.wav", "../../etc/passwd", "-rf.wav", "..wav", "x/SONG.flac"]
    )
    assert names == ["song", "song-2", "passwd", "rf", "track", "SONG-3"]
    assert all("/" not in n and not n.startswith((".", "-")) for n in names)


def test_dash_leading_and_unicode_inputs(model, tmp_path):
    folder = tmp_path / "weird dir"
    folder.mkdir()
    src = folder / "-ünïcødé song.wav"
    sf.write(src, noise(0.5).T, RATE)
    out = tmp_path / "out"
    assert run(*separate(model, out, src)) == 0
    assert (out / "ünïcødé song" / "drums.flac").is_file()


def test_models_list(capsys):
    assert run("models", "list") == 0
    assert "htdemucs" in capsys.readouterr().out.split()


def test_cache_info_and_clear(model, inputs, tmp_path, capsys):
    run(*separate(model, tmp_path / "o", inputs / "one.wav"))
    capsys.readouterr()
    assert run("cache", "info", "--verify") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 1 and info["corrupt"] == {}
    assert run("cache", "clear") == 0
    assert "Removed 1 entries" in capsys.readouterr().out


def test_demo_offline_uses_the_bundled_model_and_writes_a_summary(tmp_path, capsys):
    assert run("demo", "-o", tmp_path / "demo", "--device", "cpu") == 0
    err = capsys.readouterr().err
    assert "bandscope: note: model='auto'" in err and "bundled bandscope-tiny instead" in err
    summary = (tmp_path / "demo" / "summary.txt").read_text()
    assert "model: bandscope-tiny" in summary and "vocals" in summary
    assert len(list((tmp_path / "demo" / "stems").glob("*.flac"))) == 4


def test_console_script_in_a_subprocess(model, inputs, tmp_path):
    env = {**os.environ, "BANDSCOPE_OFFLINE": "1"}
    args = separate(model, tmp_path / "o", inputs / "broken.wav", inputs / "one.wav")
    proc = subprocess.run(
        [sys.executable, "-m", "bandscope_nb", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert (tmp_path / "o" / "one" / "vocals.flac").is_file()


def test_bad_input_corpus_through_the_cli(model, tmp_path, capsys):
    from helpers import bad_input_corpus

    corpus = bad_input_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    code = run(*separate(model, out, *[path for path, _ in corpus.values()]))
    assert code == 1
    err = capsys.readouterr().err
    names = output_names([str(p) for p, _ in corpus.values()])
    for (name, (_, expected)), folder in zip(corpus.items(), names, strict=True):
        if expected is None:
            assert (out / folder / "vocals.flac").is_file(), name
        else:
            assert not (out / folder).exists(), name
            assert name in err, name
    assert err.count("FAILED") == sum(1 for _, e in corpus.values() if e is not None)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_killed_mid_separation_leaves_nothing_taken_as_complete(how, model, tmp_path):
    """A real `bandscope separate` process killed while separating: no cache entry, no stem
    file under its final name; after SIGKILL the next run recomputes and succeeds."""
    import signal
    import time

    from bandscope_nb.separation.cache import ResultCache

    song = tmp_path / "long.wav"
    sf.write(song, noise(80.0).T, RATE)  # long enough that the signal lands mid-separation
    cache_dir, out = tmp_path / "cache", tmp_path / "out"
    env = {**os.environ, "BANDSCOPE_OFFLINE": "1", "BANDSCOPE_CACHE_DIR": str(cache_dir)}
    cmd = [sys.executable, "-m", "bandscope_nb", *separate(model, out, song)]
    proc = subprocess.Popen(  # Ctrl-C reaches it as in a terminal, even where this test runs
        cmd,  # in the background of a shell (which makes SIGINT ignored, and children inherit it)
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    staged = []
    while not staged and time.monotonic() < deadline and proc.poll() is None:
        staged = [p for p in (cache_dir / "tmp").glob("*/stems.f32") if p.stat().st_size]
        time.sleep(0.05)
    assert staged and proc.poll() is None, "the separation did not start or finished too early"
    time.sleep(0.2)  # inside the separation: some regions are already written
    assert proc.poll() is None, "the separation finished before the signal could be sent"
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (-9, 130), (proc.returncode, err.decode()[-500:])
    if how == "SIGINT":
        assert b"interrupted" in err
    cache = ResultCache(cache_dir)
    assert cache.info()["entries"] == 0
    assert not list(out.rglob("*.flac")) if out.exists() else True
    if how == "SIGINT":
        return  # the rerun after a kill (below) is the same for both

    rerun = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-1000:]
    assert sorted(p.name for p in (out / "long").glob("*.flac")) == [
        "bass.flac",
        "drums.flac",
        "other.flac",
        "vocals.flac",
    ]
    assert cache.info()["entries"] == 1 and cache.verify() == {}


def test_separate_on_a_local_dask_cluster(model, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    files = [inputs / n for n in ("one.wav", "two.flac", "broken.wav")]
    code = run(*separate(model, out, *files, extra=("--workers", "2")))
    assert code == 1
    assert (out / "one" / "vocals.flac").is_file() and (out / "two" / "vocals.flac").is_file()
    assert "broken.wav" in capsys.readouterr().err


def run_cli(*args, env=None, timeout=300):
    """`python -m bandscope_nb ARGS` in a subprocess (offline): (exit code, stdout, stderr)."""
    env = {**os.environ, "BANDSCOPE_OFFLINE": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "bandscope_nb", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


class _Marker:
    """Unpickling this creates the marker file: proof that code from the weights file ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_th_named_after_its_own_hash_runs_no_code_via_model_or_repo(inputs, tmp_path):
    import hashlib
    import pickle

    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"klass": _Marker(marker), "args": [], "kwargs": {}, "state": {}})
    repo = tmp_path / "repo"
    repo.mkdir()
    evil = repo / f"955717e8-{hashlib.sha256(payload).hexdigest()[:8]}.th"
    evil.write_bytes(payload)
    (repo / "evil.yaml").write_text("models: ['955717e8']\n")
    out = tmp_path / "out"
    for how in (("--model", evil), ("--model", "evil", "--repo", repo)):
        code, _, err = run_cli("separate", inputs / "one.wav", "-o", out, "--device", "cpu", *how)
        assert code == 1 and "full unpickle" in err and "safetensors" in err, err
        assert not marker.exists()
    assert not out.exists()


def test_model_stem_names_never_escape_the_output_folder(inputs, tmp_path, capsys):
    import json as _json

    from safetensors.torch import save_file

    net = tiny_htdemucs()
    kwargs = net._init_args_kwargs[1]
    meta = {
        "klass": "demucs.htdemucs.HTDemucs",
        "args": _json.dumps([["../../escaped", "bass", "other", "vocals"]]),
        "kwargs": _json.dumps(kwargs),
    }
    path = tmp_path / "evil.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    code = run(*separate(str(path), tmp_path / "a" / "out", inputs / "one.wav"))
    assert code == 1 and "stem name '../../escaped'" in capsys.readouterr().err
    assert not list(tmp_path.rglob("escaped*"))


def test_colliding_output_names_get_their_own_folders_and_a_true_summary(model, tmp_path, capsys):
    for seed, rel in enumerate(("b/song.wav", "c/song.wav", "c/song-2.wav")):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / rel, noise(0.5, seed=seed).T, RATE)
    out = tmp_path / "out"
    files = [tmp_path / r for r in ("b/song.wav", "c/song.wav", "c/song-2.wav")]
    assert run(*separate(model, out, *files)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["song", "song-2", "song-3"]
    assert "3 separated, 0 from the cache, 0 skipped" in capsys.readouterr().out
    assert run(*separate(model, out, *files)) == 0
    assert "0 separated, 0 from the cache, 3 skipped (outputs exist), 0 failed, of 3" in (
        capsys.readouterr().out
    )


def test_a_rerun_over_a_folder_does_not_separate_its_own_stems(
    model, tmp_path, capsys, monkeypatch
):
    sf.write(tmp_path / "song.wav", noise(0.5).T, RATE)
    monkeypatch.chdir(tmp_path)
    assert run(*separate(model, "stems", ".")) == 0
    assert run(*separate(model, "stems", ".")) == 0
    assert "of 1 file(s)" in capsys.readouterr().out.splitlines()[-1]
    assert sorted(p.name for p in (tmp_path / "stems").iterdir()) == ["song"]


def test_output_folder_that_is_a_file_is_a_usage_error(model, inputs, tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("mine")
    assert run(*separate(model, blocker, inputs / "one.wav")) == 2
    assert blocker.read_text() == "mine"


def test_a_folder_where_a_stem_goes_fails_that_file_only(model, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "one" / "drums.flac").mkdir(parents=True)
    code = run(*separate(model, out, inputs / "one.wav", inputs / "two.flac", extra=["--force"]))
    assert code == 1
    assert "drums.flac is a folder" in capsys.readouterr().err
    assert (out / "two" / "vocals.flac").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ("--segment", "inf"),
        ("--segment", "1e308"),
        ("--segment", "100000"),
        ("--segment", "nan"),
        ("--shifts", "100000000"),
        ("--overlap", "nan"),
    ],
)
def test_absurd_numbers_are_usage_errors(args, model, inputs, tmp_path):
    assert run(*separate(model, tmp_path / "o", inputs / "one.wav", extra=args)) == 2


@pytest.mark.parametrize("workers", ["-1", "0", "1000", "two"])
def test_bad_worker_counts_are_usage_errors(workers, model, inputs, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(separate(model, tmp_path / "o", inputs / "one.wav", extra=("--workers", workers)))
    assert info.value.code == 2


@pytest.mark.slow
def test_unreachable_scheduler_is_a_usage_error_in_seconds(model, inputs, tmp_path, capsys):
    import time

    start = time.monotonic()
    extra = ("--scheduler", "tcp://127.0.0.1:9")
    assert run(*separate(model, tmp_path / "o", inputs / "one.wav", extra=extra)) == 2
    assert "Cannot reach the Dask scheduler" in capsys.readouterr().err
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    ("model_arg", "match"),
    [("user/name", "Unknown model"), ("/dev/zero", "not a regular file")],
)
def test_odd_model_arguments_fail_typed(model_arg, match, inputs, tmp_path, capsys):
    assert run(*separate(model_arg, tmp_path / "o", inputs / "one.wav")) == 1
    assert match in capsys.readouterr().err


def test_fifo_as_model_fails_at_once(inputs, tmp_path, capsys):
    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    assert run(*separate(fifo, tmp_path / "o", inputs / "one.wav")) == 1
    assert "not a regular file" in capsys.readouterr().err


def test_fifo_as_input_is_named_as_such(model, tmp_path, capsys):
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    assert run(*separate(model, tmp_path / "o", fifo)) == 1
    assert "is a FIFO" in capsys.readouterr().err


def test_bad_cache_size_in_the_environment_is_a_usage_error(model, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("BANDSCOPE_CACHE_MAX_BYTES", "abc")
    assert run(*separate(model, tmp_path / "o", inputs / "one.wav")) == 2


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("--notebook", "/etc/passwd"), "not a readable Jupyter notebook"),
        (("--segment", "inf"), "segment"),
        (("-o", "report.ipynb"), "must be an .html file"),
    ],
)
def test_report_usage_errors(args, match, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("report", "--model", "classical", "--device", "cpu", *args) == 2
    assert match in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_symlinked_input_folder_inside_the_output_is_refused(model, inputs, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "drums.flac").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "one").symlink_to(victim)
    assert run(*separate(model, out, inputs / "one.wav")) == 1
    assert "is a symlink or leads outside" in capsys.readouterr().err
    assert sorted(p.name for p in victim.iterdir()) == ["drums.flac"]
    assert (victim / "drums.flac").read_text() == "precious"


def test_outputs_of_another_file_with_the_same_name_are_not_taken_as_done(model, tmp_path, capsys):
    for seed, folder in enumerate("ab"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "song.wav", noise(0.5, seed=seed).T, RATE)
    out = tmp_path / "out"
    assert run(*separate(model, out, tmp_path / "b" / "song.wav")) == 0
    before = (out / "song" / "vocals.flac").read_bytes()
    capsys.readouterr()
    assert run(*separate(model, out, tmp_path / "a" / "song.wav")) == 1
    captured = capsys.readouterr()
    assert "holds stems made from other audio" in captured.err
    assert "0 skipped" in captured.out and "1 failed" in captured.out
    assert (out / "song" / "vocals.flac").read_bytes() == before
    assert run(*separate(model, out, tmp_path / "b" / "song.wav")) == 0  # its own: skipped
    assert "1 skipped" in capsys.readouterr().out
    assert run(*separate(model, out, tmp_path / "a" / "song.wav", extra=["--force"])) == 0
    assert (out / "song" / "vocals.flac").read_bytes() != before


@pytest.mark.parametrize(
    "args",
    [("--sha256", ""), ("--sha256", "xyz"), ("--model", "x" * 300)],
)
def test_odd_checksums_and_names_fail_typed(args, model, inputs, tmp_path, capsys):
    argv = ["separate", "--device", "cpu", "-o", tmp_path / "o", "--model", model, *args]
    assert run(*argv, "--", inputs / "one.wav") in (1, 2)
    err = capsys.readouterr().err
    assert err.startswith("bandscope: error:") and "Traceback" not in err


def test_report_never_replaces_the_notebook_it_runs_or_a_users_notebook(tmp_path, capsys):
    import shutil

    from bandscope_nb.notebook.report import NOTEBOOK

    nb = tmp_path / "rep.ipynb"
    shutil.copy(NOTEBOOK, nb)
    before = nb.read_bytes()
    args = ("report", "--model", "classical", "--device", "cpu", "--notebook", nb)
    assert run(*args, "-o", tmp_path / "rep.html") == 2
    assert "would overwrite the report notebook" in capsys.readouterr().err
    (tmp_path / "mine.ipynb").write_text('{"cells": [], "metadata": {}}')
    assert run(*args, "-o", tmp_path / "mine.html") == 2
    assert "is not a report written by bandscope" in capsys.readouterr().err
    assert nb.read_bytes() == before
    (tmp_path / "in.wav").write_text("a file")
    assert run(*args, "-o", tmp_path / "in.wav" / "x.html") == 2
