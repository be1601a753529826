"""The streaming engine against demucs' own apply_model, on tiny real models."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest
import torch
from demucs.apply import BagOfModels, apply_model
from helpers import RATE, noise, snr_db, tiny_hdemucs, tiny_htdemucs
from hypothesis import given, settings
from hypothesis import strategies as st

from bandscope_nb.errors import ParameterError
from bandscope_nb.separation.engine import plan_passes, separate_stream
from bandscope_nb.separation.models import load_model
from bandscope_nb.separation.streams import (
    ArraySource,
    RawSource,
    StemWriter,
    open_stems,
    stage_file,
)

CPU = torch.device("cpu")


def run(model, x, tmp_path, **kwargs):
    loaded = load_model(model)
    shape = (len(loaded.sources), x.shape[0], x.shape[1])
    writer = StemWriter(tmp_path / "out.f32", *shape)
    separate_stream(loaded.parts, ArraySource(x), writer, device=CPU, **kwargs)
    writer.close()
    return np.array(open_stems(tmp_path / "out.f32", shape))


def reference(model, x, **kwargs):
    return apply_model(model, torch.from_numpy(x)[None], split=True, **kwargs)[0].numpy()


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (tiny_htdemucs, {}),
        (tiny_hdemucs, {}),
        (tiny_htdemucs, {"segment": 0.5}),
        (tiny_htdemucs, {"overlap": 0.5}),
        (tiny_hdemucs, {"overlap": 0.0}),
    ],
)
def test_matches_apply_model(make, kwargs, tmp_path):
    x = noise(3.3)
    out = run(make(), x, tmp_path, **kwargs)
    ref = reference(
        make(), x, shifts=0, overlap=kwargs.get("overlap", 0.25), segment=kwargs.get("segment")
    )
    assert out.shape == ref.shape == (4, 2, x.shape[1])
    for k in range(4):
        assert snr_db(ref[k], out[k]) >= 60


def test_bag_with_weights_matches_apply_model(tmp_path):
    weights = [[1.0, 0.0, 1.0, 0.5], [0.0, 1.0, 1.0, 0.5]]
    x = noise(2.5)
    out = run(BagOfModels([tiny_htdemucs(1), tiny_htdemucs(2)], weights), x, tmp_path)
    ref = reference(BagOfModels([tiny_htdemucs(1), tiny_htdemucs(2)], weights), x, shifts=0)
    for k in range(4):
        assert snr_db(ref[k], out[k]) >= 60


@pytest.mark.parametrize("batch_size", [2, 3, 8])
def test_batching_keeps_results(batch_size, tmp_path):
    x = noise(4.2)
    one = run(tiny_htdemucs(), x, tmp_path, batch_size=1)
    many = run(tiny_htdemucs(), x, tmp_path, batch_size=batch_size)
    for k in range(4):
        assert snr_db(one[k], many[k]) >= 100


@pytest.mark.parametrize(("make", "calls"), [(tiny_htdemucs, [5]), (tiny_hdemucs, [4, 1])])
def test_chunks_with_one_network_input_length_share_a_batch(make, calls, tmp_path):
    """HTDemucs always takes its training length, so the short last chunk joins the others
    (one call for 5 chunks); HDemucs' last chunk needs a shorter input and goes alone."""
    x, model, sizes = noise(3.7), make(), []
    model.register_forward_pre_hook(lambda _m, args: sizes.append(len(args[0])))
    out = run(model, x, tmp_path, batch_size=8)
    assert sizes == calls
    ref = reference(make(), x, shifts=0, overlap=0.25)
    for k in range(4):
        assert snr_db(ref[k], out[k]) >= 60


def _tiny_masknet():
    from bandscope_nb.training import MaskNet

    torch.manual_seed(0)
    return MaskNet(hidden=16, segment=1.0).eval()


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("make", [tiny_htdemucs, tiny_hdemucs, _tiny_masknet])
def test_chunks_of_exact_silence_are_not_run_and_the_stems_are_the_same(
    make, batch_size, tmp_path, monkeypatch
):
    """1 s of noise, 4 s of digital silence, 1.3 s of noise: the network sees only the chunks
    with a sample that is not zero, and the stems are those of running them all (bit for bit
    one chunk at a time)."""
    from bandscope_nb.separation import engine

    x = np.concatenate(
        [noise(1.0), np.zeros((2, 4 * RATE), np.float32), noise(1.3, seed=1)], axis=1
    )
    model, seen = make(), []  # per network run: its rows, and how many of them are silent
    real = engine._Forward._run

    def observed(self, net, batch):
        seen.append((len(batch), int((batch.abs().amax(dim=(1, 2)) == 0).sum())))
        return real(self, net, batch)

    monkeypatch.setattr(engine._Forward, "_run", observed)
    skipping = run(model, x, tmp_path, batch_size=batch_size)
    ran, silent_ran = (sum(column) for column in zip(*seen, strict=True))
    seen.clear()
    monkeypatch.setattr(engine, "keeps_silence", lambda _model: False)
    (tmp_path / "all").mkdir()
    everything = run(model, x, tmp_path / "all", batch_size=batch_size)
    rows, silent = (sum(column) for column in zip(*seen, strict=True))
    assert everything.any()
    if batch_size == 1:
        assert np.array_equal(skipping, everything)
    else:  # batches of other sizes than before: float sums in another order
        assert all(snr_db(everything[k], skipping[k]) >= 100 for k in range(4))
    assert silent_ran == 0 and silent >= 2 and ran == rows - silent


def test_only_models_that_provably_keep_silence_skip_it():
    from demucs.demucs import Demucs
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    from bandscope_nb.separation.model_rules import keeps_silence

    class Louder(HDemucs):
        def forward(self, mix):
            return super().forward(mix) + 1

    assert keeps_silence(tiny_htdemucs()) and keeps_silence(tiny_hdemucs())
    assert keeps_silence(_tiny_masknet())
    assert not keeps_silence(Louder(["a"], channels=4, depth=2, segment=1))  # a subclass
    assert not keeps_silence(HDemucs(["a"], channels=4, depth=2, segment=1, cac=False))
    assert not keeps_silence(Demucs(["a"], channels=8, depth=2))
    drawing = HTDemucs(["a"], channels=4, depth=2, segment=1, t_sin_random_shift=200)
    assert not keeps_silence(drawing)  # draws random numbers in each forward pass
    hooked = tiny_htdemucs()
    handle = hooked.register_forward_hook(lambda _m, _args, out: out + 1e-3)
    assert not keeps_silence(hooked)
    handle.remove()
    assert keeps_silence(hooked)
    hooked.forward = lambda mix: torch.ones(1)
    assert not keeps_silence(hooked)
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        assert not keeps_silence(tiny_htdemucs())
    finally:
        handle.remove()
    x = torch.zeros(1, 2, RATE)
    for make in (tiny_htdemucs, tiny_hdemucs, _tiny_masknet):  # the rule, checked
        with torch.inference_mode():
            out = make()(x)
        assert out.shape == (1, 4, 2, RATE) and not out.any()


def test_seeded_shifts_match_apply_model_with_same_seed(tmp_path):
    # HDemucs draws no random numbers in its forward, so apply_model's offsets follow the seed.
    x = noise(2.2)
    out = run(tiny_hdemucs(), x, tmp_path, shifts=2, seed=11)
    random.seed(11)
    ref = reference(tiny_hdemucs(), x, shifts=2)
    for k in range(4):
        assert snr_db(ref[k], out[k]) >= 60


def test_shifts_are_repeatable_and_depend_on_seed(tmp_path):
    x = noise(2.0)
    a = run(tiny_htdemucs(), x, tmp_path, shifts=2, seed=1)
    b = run(tiny_htdemucs(), x, tmp_path, shifts=2, seed=1)
    c = run(tiny_htdemucs(), x, tmp_path, shifts=2, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_plan_passes_order_and_scales():
    weights = [[1.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 2.0]]
    bag = BagOfModels([tiny_hdemucs(0), tiny_hdemucs(1)], weights)
    parts = load_model(bag).parts
    passes = plan_passes(parts, 1000, shifts=3, seed=0)
    assert [p.model_index for p in passes] == [0, 0, 0, 1, 1, 1]
    assert passes[0].scale == pytest.approx((1 / 2 / 3, 0.0, 1 / 2 / 3, 1 / 2 / 3))
    assert passes[3].scale == pytest.approx((1 / 2 / 3, 1 / 3, 1 / 2 / 3, 1 / 2 / 3))
    assert all(-RATE // 2 <= p.start <= 0 for p in passes)


def test_progress_reports_every_second_of_audio(tmp_path):
    x = noise(3.7)
    done = []
    run(tiny_htdemucs(), x, tmp_path, progress=done.append)
    assert sum(done) == pytest.approx(x.shape[1] / RATE)
    assert len(done) == len(range(0, x.shape[1], int(0.75 * RATE)))


def test_progress_callback_can_abort(tmp_path):
    def stop(_seconds):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(tiny_htdemucs(), noise(3.0), tmp_path, progress=stop)


def test_segment_without_stride_is_rejected(tmp_path):
    with pytest.raises(ParameterError, match="stride"):
        run(tiny_hdemucs(), noise(1.0), tmp_path, segment=1e-6)


class Identity(torch.nn.Module):
    """Returns its input as every source: overlap-add must give the input back."""

    def __init__(self, channels: int, segment: float):
        super().__init__()
        self.sources, self.samplerate, self.audio_channels = ["a", "b"], 1000, channels
        self.segment = segment

    def forward(self, x):
        return torch.stack([x, x], dim=1)


@settings(max_examples=40, deadline=None)
@given(
    frames=st.integers(1, 5000),
    channels=st.integers(1, 3),
    segment=st.floats(0.05, 2.0),
    overlap=st.floats(0.0, 0.9),
)
def test_identity_model_reproduces_input(frames, channels, segment, overlap, tmp_path_factory):
    x = np.random.default_rng(frames).standard_normal((channels, frames)).astype(np.float32)
    if int((1 - overlap) * int(segment * 1000)) < 1:
        return
    out = run(Identity(channels, segment), x, tmp_path_factory.mktemp("id"), overlap=overlap)
    assert out.shape == (2, channels, frames)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], x, atol=1e-5)
    np.testing.assert_allclose(out[1], x, atol=1e-5)


def test_memory_does_not_hold_the_whole_output(tmp_path):
    """A 60 s file: numpy's peak stays far below the 85 MB the stems take on disk."""
    import soundfile as sf

    path = tmp_path / "long.wav"
    sf.write(path, noise(60).T, RATE)
    loaded = load_model(tiny_hdemucs())
    tracemalloc.start()
    staged = stage_file(path, tmp_path / "in.f32")
    channels, frames = staged.channels, staged.frames
    writer = StemWriter(tmp_path / "out.f32", 4, channels, frames)
    separate_stream(loaded.parts, RawSource(tmp_path / "in.f32", channels), writer, device=CPU)
    writer.close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    output_bytes = 4 * channels * frames * 4
    assert output_bytes > 80e6
    assert peak < output_bytes / 5


class NeedsSmallBatches(torch.nn.Module):
    """Raises torch's out-of-memory error for batches above ``limit``, like a full GPU."""

    def __init__(self, limit: int):
        super().__init__()
        self.sources, self.samplerate, self.audio_channels, self.segment = ["a"], 1000, 1, 0.1
        self.limit, self.batches = limit, []

    def forward(self, x):
        self.batches.append(len(x))
        if len(x) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated by a full device)")
        return x[:, None]


def test_out_of_memory_halves_the_batch_and_warns(tmp_path):
    model = NeedsSmallBatches(limit=2)
    x = np.random.default_rng(0).standard_normal((1, 3000)).astype(np.float32)
    with pytest.warns(UserWarning, match="batch_size=4"):
        out = run(model, x, tmp_path, batch_size=8, overlap=0.0)
    np.testing.assert_allclose(out[0], x, atol=1e-6)
    assert model.batches[:3] == [8, 4, 2]
    assert max(model.batches[3:]) <= 2


def test_out_of_memory_at_batch_one_is_a_device_error(tmp_path):
    from bandscope_nb.errors import DeviceError

    with pytest.raises(DeviceError, match="batch_size=1"):
        run(NeedsSmallBatches(limit=0), np.zeros((1, 500), np.float32), tmp_path, batch_size=1)


def test_bf16_runs_the_network_in_bfloat16_and_keeps_float32_stems(tmp_path):
    model, x = tiny_htdemucs(), noise(2.0)
    exact = run(model, x, tmp_path, precision="fp32")
    mixed = run(model, x, tmp_path, precision="bf16")
    assert mixed.dtype == np.float32 and np.isfinite(mixed).all()
    assert 25 < snr_db(exact, mixed) < 120  # close to fp32, but not fp32: autocast ran


def test_cuda_fp32_is_ieee_and_tf32_opt_in_and_flags_are_restored():
    from bandscope_nb.separation.engine import _precision, _tf32_flags

    flags, (tf32, ieee) = _tf32_flags(torch)
    before = [getattr(obj, name) for obj, name in flags]
    cuda = torch.device("cuda")  # only the type matters: nothing runs
    for precision, want in (("fp32", ieee), ("tf32", tf32)):
        with _precision(cuda, precision):
            assert [getattr(obj, name) for obj, name in flags] == [want] * len(flags)
        assert [getattr(obj, name) for obj, name in flags] == before
    with pytest.raises(RuntimeError), _precision(cuda, "fp32"):
        raise RuntimeError("the flags come back after an error too")
    assert [getattr(obj, name) for obj, name in flags] == before


class NaNWhereLoud(torch.nn.Module):
    """Passes its input through as one source, except NaN wherever ``|x| > 50``."""

    def __init__(self):
        super().__init__()
        self.sources, self.samplerate, self.audio_channels, self.segment = ["a"], 1000, 1, 1.0

    def forward(self, x):
        return torch.where(x.abs() > 50, torch.full_like(x, float("nan")), x)[:, None]


def _drain_threads():
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("bandscope-drain")]


def test_nan_midway_is_an_error_and_no_nan_or_later_region_reaches_the_file(tmp_path):
    """Regions are written on a worker thread: the first region with a NaN stops everything,
    nothing after it is written even if the network ran ahead, and the worker ends."""
    from bandscope_nb.errors import SeparationError

    x = np.random.default_rng(1).standard_normal((1, 100_000)).astype(np.float32)
    x[0, 45_000:46_000] = 100.0  # the second 30 s region (30..60 s at 1 kHz) turns NaN
    with pytest.raises(SeparationError, match="NaNWhereLoud produced NaN"):
        run(NaNWhereLoud(), x, tmp_path, overlap=0.0)
    written = np.fromfile(tmp_path / "out.f32", dtype=np.float32)
    assert np.isfinite(written).all()
    np.testing.assert_allclose(written[:30_000], x[0, :30_000], atol=1e-6)  # before: kept
    assert not written[60_000:].any()  # after it: never written
    assert _drain_threads() == []


class FailingWriter(StemWriter):
    """Fails on its second region, as a full disk would."""

    def add(self, start, block):
        if start > 0:
            raise OSError(28, "No space left on device")
        super().add(start, block)


def test_a_failed_write_on_the_worker_reaches_the_caller(tmp_path):
    x = np.random.default_rng(2).standard_normal((1, 70_000)).astype(np.float32)
    writer = FailingWriter(tmp_path / "out.f32", 1, 1, x.shape[1])
    with pytest.raises(OSError, match="No space left"):
        separate_stream(load_model(NaNWhereLoud()).parts, ArraySource(x), writer, device=CPU)
    writer.close()
    assert _drain_threads() == []


def test_abort_waits_for_the_worker(tmp_path):
    calls = []

    def stop(seconds):
        calls.append(seconds)
        if len(calls) == 40:  # past the first 30 s region, which is being written
            raise KeyboardInterrupt

    x = np.random.default_rng(3).standard_normal((1, 100_000)).astype(np.float32)
    with pytest.raises(KeyboardInterrupt):
        run(NaNWhereLoud(), x, tmp_path, overlap=0.0, progress=stop)
    assert _drain_threads() == []
    written = np.fromfile(tmp_path / "out.f32", dtype=np.float32)
    np.testing.assert_allclose(written[:30_000], x[0, :30_000], atol=1e-6)
    assert not written[40_000:].any()


def test_on_the_cpu_attention_avoids_the_fast_path_and_convolutions_are_channels_last(tmp_path):
    """Both measured faster on the CPU (docs/benchmarks.md); values stay within 60 dB of
    apply_model (the tests above) and the global fast-path switch comes back."""
    model, seen = tiny_htdemucs(), []
    model.register_forward_pre_hook(
        lambda _m, _a: seen.append(torch.backends.mha.get_fastpath_enabled())
    )
    assert torch.backends.mha.get_fastpath_enabled()
    run(model, noise(1.5), tmp_path)
    assert seen and not any(seen)
    assert torch.backends.mha.get_fastpath_enabled()
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
