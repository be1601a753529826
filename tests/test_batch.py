"""separate_many: locally and on a real Dask LocalCluster; resumable, failures isolated."""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers import RATE, noise, tiny_htdemucs

import bandscope_nb as bn
from bandscope_nb.separation import batch
from bandscope_nb.separation.modelfiles import save_safetensors

BATCH = "bandscope_nb.separation.batch"


@pytest.fixture
def model(tmp_path):
    return str(save_safetensors(tiny_htdemucs(), tmp_path / "m.safetensors"))


@pytest.fixture
def collection(tmp_path):
    """Six short songs in two folders (two share a name) plus one corrupt file."""
    folder = tmp_path / "songs"
    for i in range(6):
        sub = folder / ("a" if i < 3 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        name = "same.wav" if i in (0, 3) else f"song{i}.wav"
        sf.write(sub / name, noise(1.0, seed=i).T, RATE, subtype="FLOAT")
    (folder / "b" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return folder


def check_outputs(result, model, out):
    sep = bn.Separator(model, device="cpu", cache=False, progress=False)
    for r in result.records:
        if r["status"] == "failed":
            continue
        expected = sep.separate(r["input"])
        for stem in expected.names:
            data, _ = sf.read(out / r["name"] / f"{stem}.wav", dtype="float32", always_2d=True)
            # Dask workers run torch on one thread: summation order, not results, may differ.
            np.testing.assert_allclose(data.T, expected[stem], rtol=0, atol=1e-6)


def test_local_batch_results_failures_and_resume(model, collection, tmp_path):
    out = tmp_path / "out"
    result = bn.separate_many(
        collection, out_dir=out, model=model, device="cpu", format="wav", progress=False
    )
    assert result.counts() == {"done": 6, "failed": 1}
    (failed,) = result.failed
    assert failed["input"].endswith("corrupt.wav") and "AudioError" in failed["error"]
    assert sorted(p.name for p in out.iterdir()) == [
        "same",
        "same-2",
        "song1",
        "song2",
        "song4",
        "song5",
    ]
    check_outputs(result, model, out)
    again = bn.separate_many(
        collection, out_dir=out, model=model, device="cpu", format="wav", progress=False
    )
    assert again.counts() == {"skipped": 6, "failed": 1}
    cached = bn.separate_many(collection, model=model, device="cpu", progress=False)
    assert cached.counts() == {"cached": 6, "failed": 1}
    assert "skipped" in repr(again) and "<table>" in again._repr_html_()


def test_glob_and_list_inputs(model, collection):
    files = batch.expand_inputs(str(collection / "a" / "*.wav"))
    assert [p.name for p in files] == ["same.wav", "song1.wav", "song2.wav"]
    assert batch.expand_inputs([collection / "a" / "song1.wav"]) == [collection / "a" / "song1.wav"]
    with pytest.raises(bn.ParameterError, match="No audio files"):
        bn.separate_many(str(collection / "*.nothing"), model=model, device="cpu")


def test_bad_options_fail_before_any_work(model, collection):
    with pytest.raises(bn.ParameterError, match="overlap"):
        bn.separate_many(collection, model=model, overlap=2.0)
    with pytest.raises(bn.ParameterError, match="Unknown separation option"):
        bn.separate_many(collection, model=model, overlapp=0.5)
    with pytest.raises(bn.DeviceError, match="fp16"):
        bn.separate_many(collection, model=model, device="cpu", precision="fp16")
    with pytest.raises(bn.ParameterError, match="sha256"):
        bn.separate_many(collection, model=model, sha256="xyz")


def test_a_config_runs_every_file_and_its_options_are_recorded(model, tmp_path):
    song = tmp_path / "in" / "song.wav"
    song.parent.mkdir()
    sf.write(song, noise(1.0).T, RATE)
    config = bn.SeparationConfig(model=model, device="cpu", overlap=0.5, precision="bf16")
    out = tmp_path / "out"
    result = bn.separate_many(song, out_dir=out, config=config, shifts=1, seed=3, progress=False)
    assert result.counts() == {"done": 1}
    record = json.loads((out / "song" / ".bandscope.json").read_text())
    assert {k: record[k] for k in ("overlap", "precision", "shifts", "seed", "device")} == {
        "overlap": 0.5,
        "precision": "bf16",
        "shifts": 1,
        "seed": 3,
        "device": "cpu",
    }
    direct = bn.Separator.from_config(config.replace(shifts=1, seed=3), cache=False)
    expected = direct.separate(song)
    got, _ = sf.read(out / "song" / "vocals.flac", dtype="float32", always_2d=True)
    assert np.abs(got.T - expected["vocals"]).max() < 1e-4  # 16-bit FLAC of the same stems


@pytest.fixture
def client():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_cluster_matches_local_and_reruns_recompute_nothing(
    model, collection, tmp_path, client
):
    out = tmp_path / "out"
    to_out = functools.partial(
        bn.separate_many,
        collection,
        out_dir=out,
        client=client,
        model=model,
        device="cpu",
        format="wav",
        progress=False,
    )
    result = to_out()
    assert result.counts() == {"done": 6, "failed": 1}
    check_outputs(result, model, out)
    # one Separator (and so one model load) per worker process that ran tasks
    per_worker = client.run(lambda: len(importlib.import_module(BATCH)._SEPARATORS))
    assert set(per_worker.values()) <= {0, 1} and sum(per_worker.values()) >= 1
    again = to_out()
    assert again.counts() == {"skipped": 6, "failed": 1}
    cached = bn.separate_many(collection, client=client, model=model, device="cpu", progress=False)
    assert cached.counts() == {"cached": 6, "failed": 1}


def test_killed_worker_tasks_are_retried(model, tmp_path, client):
    folder = tmp_path / "long"
    folder.mkdir()
    for i in range(4):
        sf.write(folder / f"s{i}.wav", noise(12.0, seed=i).T, RATE)
    futures = client.map(
        batch.separate_one,
        [str(p) for p in sorted(folder.iterdir())],
        [f"s{i}" for i in range(4)],
        [str(tmp_path / "out")] * 4,
        [bn.SeparationConfig(model=model, device="cpu")] * 4,
        [{}] * 4,
        pure=False,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        processing = client.processing()
        if any(processing.values()):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    victim = next(addr for addr, tasks in client.processing().items() if tasks)
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    records = client.gather(futures)
    assert [r["status"] for r in records] == ["done"] * 4
    assert pid not in client.run(os.getpid).values()  # the worker really died and was replaced
    for i in range(4):
        assert sorted(p.name for p in (tmp_path / "out" / f"s{i}").iterdir()) == [
            ".bandscope.json",
            "bass.flac",
            "drums.flac",
            "other.flac",
            "vocals.flac",
        ]


class _FailsOnLoudInput(torch.nn.Module):
    """A real model that raises a plain ValueError (no BandscopeError) for loud input."""

    def __init__(self):
        super().__init__()
        self.sources, self.samplerate, self.audio_channels, self.segment = ["a"], RATE, 2, 1

    def forward(self, x):
        if x.abs().max() > 0.5:
            raise ValueError("too loud for this model")
        return x[:, None]


def test_any_exception_fails_only_its_own_file(tmp_path):
    quiet, loud = tmp_path / "quiet.wav", tmp_path / "loud.wav"
    sf.write(quiet, noise(0.5).T, RATE)
    sf.write(loud, (8 * noise(0.5)).T, RATE)
    result = batch.separate_many(
        [loud, quiet], model=_FailsOnLoudInput(), device="cpu", cache=False, progress=False
    )
    assert [r["status"] for r in result.records] == ["failed", "done"]
    assert result.records[0]["error"] == "ValueError: too loud for this model"


def test_outputs_written_by_0_1_are_still_recognised(model, tmp_path):
    """0.1 recorded 'file:' + BLAKE2b-160 of the file's bytes: such folders are skipped, not
    reported as another file's stems."""
    import hashlib

    song = tmp_path / "in" / "song.wav"
    song.parent.mkdir()
    sf.write(song, noise(1.0).T, RATE)
    out = tmp_path / "out"
    first = bn.separate_many(song, out_dir=out, model=model, device="cpu", progress=False)
    assert first.counts() == {"done": 1}
    record_path = out / "song" / ".bandscope.json"
    record = json.loads(record_path.read_text())
    legacy = hashlib.blake2b(song.read_bytes(), digest_size=20).hexdigest()
    record["input_digest"] = "file:" + legacy
    record_path.write_text(json.dumps(record))
    again = bn.separate_many(song, out_dir=out, model=model, device="cpu", progress=False)
    assert again.counts() == {"skipped": 1}
    record["input_digest"] = "file:" + "0" * 40  # another file's bytes
    record_path.write_text(json.dumps(record))
    other = bn.separate_many(song, out_dir=out, model=model, device="cpu", progress=False)
    assert other.counts() == {"failed": 1} and "other audio" in other.failed[0]["error"]


def test_outputs_made_with_other_settings_are_not_skipped_as_done(model, tmp_path):
    song = tmp_path / "in" / "song.wav"
    song.parent.mkdir()
    sf.write(song, noise(1.0).T, RATE)
    out, run = tmp_path / "out", functools.partial(bn.separate_many, song, progress=False)
    assert run(out_dir=out, model=model, device="cpu").counts() == {"done": 1}
    assert run(out_dir=out, model=model, device="cpu").counts() == {"skipped": 1}
    other = run(out_dir=out, model=model, device="cpu", overlap=0.5)
    assert other.counts() == {"failed": 1}
    assert "another model or other options" in other.failed[0]["error"]
    redone = run(out_dir=out, model=model, device="cpu", overlap=0.5, force=True)
    assert redone.counts() == {"done": 1}
    record = json.loads((out / "song" / ".bandscope.json").read_text())
    assert record["overlap"] == 0.5
    assert run(out_dir=out, model=model, device="cpu", overlap=0.5).counts() == {"skipped": 1}
