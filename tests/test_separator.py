"""The Separator: validation at the edge, inputs of every kind, fidelity, auto/classical."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf
import torch
from demucs.apply import apply_model
from helpers import RATE, noise, snr_db, tiny_htdemucs

import bandscope_nb as bn
from bandscope_nb.separation.modelfiles import save_safetensors


def test_fidelity_against_apply_model_from_a_file(wav, tmp_path):
    path = save_safetensors(tiny_htdemucs(), tmp_path / "m.safetensors")
    stems = bn.Separator(path, device="cpu", progress=False).separate(wav)
    x, _ = sf.read(wav, dtype="float32", always_2d=True)
    ref = apply_model(
        tiny_htdemucs(), torch.from_numpy(x.T.copy())[None], shifts=0, split=True, overlap=0.25
    )[0].numpy()
    assert stems.names == ("drums", "bass", "other", "vocals")
    for k, name in enumerate(stems.names):
        assert snr_db(ref[k], stems[name]) >= 60
    assert stems.info["segment"] is None and stems.info["overlap"] == 0.25
    assert stems.info["device"] == "cpu" and stems.info["model"] == "m.safetensors"


def test_parameters_reach_the_engine(ht_model):
    x = noise(2.0)
    stems = bn.Separator(
        ht_model, device="cpu", segment=0.5, overlap=0.1, cache=False, progress=False
    ).separate(x, RATE)
    ref = apply_model(
        tiny_htdemucs(), torch.from_numpy(x)[None], shifts=0, split=True, overlap=0.1, segment=0.5
    )[0].numpy()
    for k in range(4):
        assert snr_db(ref[k], stems.data[k]) >= 60


def test_precision_is_recorded_and_part_of_the_cache_key(ht_model, tmp_path):
    x = noise(1.0)
    runs = {
        p: bn.Separator(ht_model, device="cpu", precision=p, cache=tmp_path, progress=False)
        for p in ("fp32", "bf16")
    }
    exact, mixed = (runs[p].separate(x, RATE) for p in ("fp32", "bf16"))
    assert (exact.info["precision"], mixed.info["precision"]) == ("fp32", "bf16")
    assert exact.info["cache_key"] != mixed.info["cache_key"]
    assert not mixed.info["cached"] and snr_db(exact.data, mixed.data) < 120
    assert runs["bf16"].separate(x, RATE).info["cached"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"segment": 0}, "segment"),
        ({"shifts": -1}, "shifts"),
        ({"shifts": 1.5}, "shifts"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"segment": "abc"}, "segment"),
        ({"segment": float("inf")}, "segment"),
        ({"segment": float("nan")}, "segment"),
        ({"segment": 1e308}, "segment"),
        ({"segment": 100000}, "segment"),
        ({"overlap": "x"}, "overlap"),
        ({"shifts": 100_000_000}, "shifts"),
        ({"seed": "abc"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"cache": 123}, "cache"),
        ({"sha256": 5}, "sha256"),
        ({"repo": 5}, "repo"),
    ],
)
def test_invalid_parameters(kwargs, match):
    with pytest.raises(bn.ParameterError, match=match):
        bn.Separator("htdemucs", **kwargs)


def _absent_devices() -> list[str]:
    """Device names this machine lacks (a GPU machine runs this file too)."""
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = torch.backends.mps.is_available()
    return [
        *(["cuda"] if cuda == 0 else []),
        *([f"cuda:{cuda}"]),
        *(["mps"] if not mps else []),
        "gpu",
        "cpu:2",
    ]


@pytest.mark.parametrize("device", _absent_devices())
def test_unavailable_devices_fail_up_front(device):
    with pytest.raises(bn.DeviceError, match=device.split(":")[0]):
        bn.Separator("htdemucs", device=device)


def test_segment_above_htdemucs_training_length(ht_model):
    sep = bn.Separator(ht_model, device="cpu", segment=2.0, progress=False)
    for _ in range(2):  # the second call must not skip the check the first one raised
        with pytest.raises(bn.ParameterError, match=r"maximum of 1\.00 s"):
            sep.separate(noise(1.0), RATE)


def test_huge_finite_samples_are_rejected_before_any_model_work(ht_model, tmp_path):
    huge = np.full((2, RATE), 3e38, np.float32)
    huge[:, ::2] *= -1
    sep = bn.Separator(ht_model, device="cpu", progress=False)
    with pytest.raises(bn.AudioError, match="magnitude 3e"):
        sep.separate(huge, RATE)
    path = tmp_path / "huge.wav"
    sf.write(path, huge.T, RATE, subtype="FLOAT")
    with pytest.raises(bn.AudioError, match=r"huge\.wav: has samples of magnitude"):
        sep.separate(path)
    assert sep.cache.info()["entries"] == 0


class _NaNModel(torch.nn.Module):
    """A real model whose output is NaN (as an overflowing normalisation would make it)."""

    def __init__(self):
        super().__init__()
        self.sources, self.samplerate, self.audio_channels, self.segment = ["a", "b"], RATE, 2, 1
        self.scale = torch.nn.Parameter(torch.tensor(float("nan")))

    def forward(self, x):
        return self.scale * x[:, None].repeat(1, 2, 1, 1)


def test_nan_output_is_a_typed_error_naming_the_input_and_nothing_is_cached(wav):
    sep = bn.Separator(_NaNModel(), device="cpu", progress=False)
    with pytest.raises(bn.SeparationError, match=r"clip\.wav: _NaNModel produced NaN"):
        sep.separate(wav)
    assert sep.cache.info()["entries"] == 0


def test_bad_audio_is_rejected_before_the_model_loads(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    sep = bn.Separator("htdemucs", device="cpu", progress=False)  # weights absent: offline
    with pytest.raises(bn.AudioError, match=r"bad\.wav"):
        sep.separate(bad)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full((100, 2), np.nan, np.float32), RATE, subtype="FLOAT")
    with pytest.raises(bn.AudioError, match="NaN"):
        sep.separate(nan)
    with pytest.raises(bn.AudioError, match="NaN"):
        sep.separate(np.full((2, 100), np.inf, np.float32), RATE)


def test_mono_is_duplicated_to_stereo(ht_model):
    mono = noise(1.5, channels=1)
    stems = bn.Separator(ht_model, device="cpu", cache=False, progress=False).separate(mono, RATE)
    stereo = bn.Separator(ht_model, device="cpu", cache=False, progress=False).separate(
        np.repeat(mono, 2, axis=0), RATE
    )
    assert stems.channels == 2
    np.testing.assert_array_equal(stems.data, stereo.data)


def test_mono_file_is_duplicated_to_stereo(ht_model, tmp_path):
    path = tmp_path / "mono.flac"
    sf.write(path, noise(1.5, channels=1)[0], RATE)
    assert bn.Separator(ht_model, device="cpu", progress=False).separate(path).channels == 2


def test_too_many_channels(ht_model, tmp_path):
    path = tmp_path / "six.wav"
    sf.write(path, noise(0.5, channels=6).T, RATE)
    with pytest.raises(bn.AudioError, match="6 channels"):
        bn.Separator(ht_model, device="cpu", progress=False).separate(path)


def test_resampled_to_the_model_rate(ht_model, tmp_path):
    path = tmp_path / "48k.wav"
    sf.write(path, noise(2.0, rate=48000).T, 48000)
    stems = bn.Separator(ht_model, device="cpu", progress=False).separate(path)
    assert stems.sample_rate == RATE
    assert abs(stems.frames - 2 * RATE) <= 2


def test_callers_array_is_not_modified(ht_model):
    x = noise(1.2)
    before = x.copy()
    bn.Separator(ht_model, device="cpu", cache=False, progress=False).separate(x, RATE)
    np.testing.assert_array_equal(x, before)


def test_audio_object_and_tuple_inputs_agree(ht_model):
    x = noise(1.2)
    sep = bn.Separator(ht_model, device="cpu", cache=False, progress=False)
    a = sep.separate(bn.Audio(x, RATE))
    b = sep.separate((x, RATE))
    np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(bn.ParameterError, match="sample_rate"):
        sep.separate(x)


@pytest.mark.parametrize("cache", [False, True])
def test_an_arrays_digest_hashed_beside_the_separation_is_its_own(ht_model, cache, tmp_path):
    """Uncached, an array is hashed on a thread while the network runs; the digest and key in
    the stems' provenance are still exactly those of the samples."""
    from bandscope_nb.separation.streams import array_digest

    x = noise(1.2)
    sep = bn.Separator(ht_model, device="cpu", cache=tmp_path if cache else False, progress=False)
    stems = sep.separate(x, RATE)
    assert stems.info["input_digest"] == array_digest(x, RATE)
    assert stems.info["cache_key"] == sep.cache_key(array_digest(x, RATE))[0]
    assert stems.info["seconds"] > 0 and stems.info["cached"] is False


def test_an_arrays_hash_does_not_hold_back_the_separation(ht_model, monkeypatch):
    """The digest is made while the network runs: a hash that can only finish once the
    separation has started must not stop it from starting."""
    from bandscope_nb.separation import engine, inputs
    from bandscope_nb.separation.streams import array_digest

    started, seen = threading.Event(), []
    real_stream = engine.separate_stream

    def slow_digest(samples, rate):
        seen.append(started.wait(timeout=5))
        return array_digest(samples, rate)

    def stream(*args, **kwargs):
        started.set()
        return real_stream(*args, **kwargs)

    monkeypatch.setattr(inputs, "array_digest", slow_digest)
    monkeypatch.setattr(engine, "separate_stream", stream)
    x = noise(1.2)
    stems = bn.Separator(ht_model, device="cpu", cache=False, progress=False).separate(x, RATE)
    assert seen == [True]
    assert stems.info["input_digest"] == array_digest(x, RATE)


def test_classical_on_the_demo_sums_to_the_mix():
    mix, _ = bn.demo.load()
    stems = bn.Separator("classical", device="cpu", progress=False).separate(bn.demo.path())
    assert stems.names == ("drums", "bass", "other", "vocals")
    np.testing.assert_allclose(stems.mix(), mix.samples, atol=1e-5)


def test_missing_repo_folder(tmp_path):
    with pytest.raises(bn.ModelUnavailableError, match="not a folder"):
        bn.Separator("x", repo=tmp_path / "nope")


def test_progress_bar_counts_seconds(ht_model, capsys):
    bn.Separator(ht_model, device="cpu", cache=False, progress=True).separate(noise(2.0), RATE)
    err = capsys.readouterr().err
    assert "2.0/2.0 s audio" in err and err.endswith("\n")  # the finished bar stays


def test_a_transient_progress_bar_goes_when_done(ht_model, capsys):
    sep = bn.Separator(ht_model, device="cpu", cache=False, progress="transient")
    sep.separate(noise(2.0), RATE)
    err = capsys.readouterr().err
    assert "s audio" in err and not err.rstrip(" ").endswith("s audio]")  # cleared at the end
    assert not err.endswith("\n")
    with pytest.raises(bn.ParameterError, match="progress"):
        bn.Separator(ht_model, device="cpu", progress="yes")


def test_bad_input_corpus_through_the_api(ht_model, tmp_path):
    from helpers import bad_input_corpus

    sep = bn.Separator(ht_model, device="cpu", progress=False)
    for name, (path, expected) in bad_input_corpus(tmp_path / "corpus").items():
        if expected is None:
            stems = sep.separate(path)
            assert stems.names == ("drums", "bass", "other", "vocals"), name
            assert np.isfinite(stems.data).all(), name
            assert stems.frames == sf.info(path).frames, name
        else:
            with pytest.raises(bn.AudioError, match=expected) as info:
                sep.separate(path)
            assert name in str(info.value), name


def mount_full_tmpfs(path):
    import subprocess

    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {proc.stderr.decode().strip()}")
    return path


def test_full_cache_disk_still_returns_stems_and_warns(ht_model, wav, tmp_path):
    import subprocess

    full = mount_full_tmpfs(tmp_path / "full")
    try:
        with pytest.warns(UserWarning, match="Could not use the result cache") as record:
            stems = bn.Separator(ht_model, device="cpu", cache=full, progress=False).separate(wav)
        assert any("No space left" in str(w.message) for w in record)
        expected = bn.Separator(ht_model, device="cpu", cache=False, progress=False).separate(wav)
        np.testing.assert_array_equal(stems.data, expected.data)
        assert not stems.info["cached"]
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_read_only_cache_dir_still_returns_stems_and_warns(ht_model, wav, tmp_path):
    import os
    import subprocess

    root = tmp_path / "ro"
    root.mkdir()
    if os.getuid() == 0:
        if subprocess.run(["chattr", "+i", str(root)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not supported here")
        undo = ["chattr", "-i", str(root)]
    else:
        root.chmod(0o500)
        undo = ["chmod", "700", str(root)]
    try:
        with pytest.warns(UserWarning, match="Could not use the result cache"):
            stems = bn.Separator(ht_model, device="cpu", cache=root, progress=False).separate(wav)
        assert stems.frames == 3 * RATE and not stems.info["cached"]
    finally:
        subprocess.run(undo, check=False)


NO_DISK_CHILD = r"""
import resource, signal, sys, warnings
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
import bandscope_nb as bn
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))  # no file may grow past 16 KiB
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    stems = bn.Separator(sys.argv[1], device="cpu", cache=sys.argv[3], progress=False
                         ).separate(sys.argv[2])
print("WARN:", " | ".join(str(w.message) for w in caught))
np.save(sys.stdout.buffer, np.asarray(stems.data))
"""


def test_no_disk_space_at_all_separates_in_memory(wav, tmp_path):
    import io
    import subprocess
    import sys

    model = save_safetensors(tiny_htdemucs(), tmp_path / "m.safetensors")
    proc = subprocess.run(
        [sys.executable, "-c", NO_DISK_CHILD, str(model), str(wav), str(tmp_path / "cache")],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    head, _, payload = proc.stdout.partition(b"\n")
    assert b"Could not use the result cache" in head and b"in memory" in head
    data = np.load(io.BytesIO(payload))
    expected = bn.Separator(model, device="cpu", cache=False, progress=False).separate(wav)
    # Another process may run torch with another thread count: last-bit differences only.
    np.testing.assert_allclose(data, expected.data, rtol=0, atol=1e-6)


def _progress_comm(kc, msg_id: str) -> float:
    """Read the kernel's output until its tqdm progress widget reports progress; return it."""
    progress_id = None
    while True:
        msg = kc.get_iopub_msg(timeout=120)
        content = msg["content"]
        if msg["parent_header"].get("msg_id") != msg_id or "comm_id" not in content:
            continue
        state = content.get("data", {}).get("state", {})
        if state.get("_model_name") == "FloatProgressModel":
            progress_id = content["comm_id"]
        if content["comm_id"] == progress_id and state.get("value", 0) > 0:
            return state["value"]


def test_in_a_kernel_progress_is_a_widget_and_interrupt_stops_cleanly(tmp_path):
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        msg_id = kc.execute(
            "import numpy as np, bandscope_nb as bn\n"
            "sep = bn.Separator(model='classical')\n"
            "x = np.random.default_rng(0).standard_normal((2, 44100 * 600)).astype(np.float32)\n"
            "stems = sep.separate((0.1 * x, 44100))\n"
        )
        done = _progress_comm(kc, msg_id)  # a tqdm.auto widget, counting seconds of audio
        assert 0 < done < 600
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=60)["content"]
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
        outputs = []
        kc.execute_interactive(
            "print(sep.cache.info()['entries'], 'stems' in dir())\n"
            "print(sep.separate((0.1 * x[:, :44100], 44100)).data.shape)",
            timeout=120,
            output_hook=lambda m: outputs.append(m["content"].get("text", "")),
        )
        # nothing half-done was kept, and the kernel goes on working
        assert "".join(outputs) == "0 False\n(4, 2, 44100)\n"
    finally:
        km.shutdown_kernel(now=True)


def test_a_cache_hit_reports_what_computed_the_stems(ht_model, tmp_path):
    x = noise(1.0)
    first = bn.Separator(ht_model, device="cpu", batch_size=1, cache=tmp_path, progress=False)
    again = bn.Separator(ht_model, device="cpu", batch_size=3, cache=tmp_path, progress=False)
    assert first.separate(x, RATE).info["batch_size"] == 1
    hit = again.separate(x, RATE)
    assert hit.info["cached"] and hit.info["batch_size"] == 1


def _changed_in_place(model, scale=0.5):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)


@pytest.mark.parametrize("cache", [True, False], ids=["cached", "uncached"])
def test_weights_changed_in_place_are_separated_with_not_served_from_before(cache, tmp_path):
    """A Separator kept across training steps uses the module's weights as they are at each
    call: no stems of the old weights come back from the result cache, and none of the new
    ones are stored under the old weights' identity."""
    model, audio = tiny_htdemucs(), noise(1.5)
    store = tmp_path / "c" if cache else False
    sep = bn.Separator(model, device="cpu", cache=store, progress=False)
    before, key_before = np.asarray(sep.separate(audio, RATE).data), sep.cache_key("0" * 40)[0]
    _changed_in_place(model)
    after = np.asarray(sep.separate(audio, RATE).data)
    fresh = np.asarray(
        bn.Separator(model, device="cpu", cache=False, progress=False).separate(audio, RATE).data
    )
    assert np.array_equal(after, fresh) and not np.allclose(after, before)
    assert sep.cache_key("0" * 40)[0] != key_before
    _changed_in_place(model, 2.0)  # back to the first weights: the first stems again
    assert np.allclose(np.asarray(sep.separate(audio, RATE).data), before, atol=1e-6)


def test_weights_changed_behind_autograds_back_are_seen_and_files_are_not_hashed_again(
    monkeypatch, tmp_path
):
    """``p.data.mul_()`` leaves no trace in a tensor's version counter: the weights themselves
    are compared. A model loaded from a file is the caller's only through the file."""
    from bandscope_nb.separation import loaded

    model, audio = tiny_htdemucs(), noise(1.0)
    sep = bn.Separator(model, device="cpu", cache=False, progress=False)
    key = sep.cache_key("0" * 40)[0]
    for p in model.parameters():
        p.data.mul_(0.5)
    assert sep.cache_key("0" * 40)[0] != key
    path = tmp_path / "tiny.safetensors"
    save_safetensors(model, path)
    from_file = bn.Separator(path, device="cpu", cache=False, progress=False)
    from_file.separate(audio, RATE)
    hashed = []
    real = loaded._identity
    monkeypatch.setattr(loaded, "_identity", lambda parts: hashed.append(1) or real(parts))
    from_file.separate(audio, RATE)
    sep.separate(audio, RATE)
    assert len(hashed) == 1  # the module, once per separation; not the file's model


def test_weights_made_and_changed_in_inference_mode_are_seen():
    """Inference tensors keep no version counter: their digest is compared instead."""
    with torch.inference_mode():
        model = tiny_htdemucs()
    audio = noise(1.0)
    sep = bn.Separator(model, device="cpu", cache=False, progress=False)
    key = sep.cache_key("0" * 40)[0]
    with torch.inference_mode():
        _changed_in_place(model)
    assert sep.cache_key("0" * 40)[0] != key
    fresh = bn.Separator(model, device="cpu", cache=False, progress=False).separate(audio, RATE)
    assert np.array_equal(np.asarray(sep.separate(audio, RATE).data), np.asarray(fresh.data))


def test_settings_and_classical_options_changed_in_place_are_seen(tmp_path):
    """Not only weights: an option that changes the output (HTDemucs' freq_emb_scale, a
    classical recipe's segment) gives a new identity, so no stems of the old one are served."""
    from bandscope_nb.separation.classical_model import ClassicalModel

    audio = noise(2.0)
    for model, change in (
        (tiny_htdemucs(), lambda m: setattr(m, "freq_emb_scale", 5.0)),
        (ClassicalModel(segment=2.0), lambda m: setattr(m, "segment", 1.0)),
    ):
        sep = bn.Separator(model, device="cpu", cache=tmp_path / "c", progress=False)
        sep.separate(audio, RATE)
        change(model)
        again = sep.separate(audio, RATE)
        fresh = bn.Separator(model, device="cpu", cache=False, progress=False)
        assert not again.info["cached"]
        assert np.array_equal(np.asarray(again.data), np.asarray(fresh.separate(audio, RATE).data))


def test_weights_changed_during_a_separation_are_not_cached(tmp_path):
    model, audio = tiny_htdemucs(), noise(2.0)

    def train_meanwhile(module, _args, _out):  # as a training thread would
        with torch.no_grad():
            module.decoder[-1].conv_tr.weight.add_(0.5)

    handle = model.register_forward_hook(train_meanwhile)
    sep = bn.Separator(model, device="cpu", cache=tmp_path / "c", progress=False)
    with pytest.warns(UserWarning, match="changed while it separated"):
        stems = sep.separate(audio, RATE)
    handle.remove()
    assert not stems.info["cached"] and bn.ResultCache(tmp_path / "c").info()["entries"] == 0
