"""Training your own separator: MaskNet's contract, save and load through the Separator, fit's
steps, reproducibility, interrupts, the held-out demo song and bad options."""

from __future__ import annotations

import copy
import shutil
import sys
import warnings

import numpy as np
import pytest
import torch

import bandscope_nb as bn
from bandscope_nb.separation.masknet import MaskNet
from bandscope_nb.separation.modelfiles import load_safetensors, save_safetensors
from bandscope_nb.training import batches, fit
from bandscope_nb.training.fit import batch_loss

fit_module = sys.modules["bandscope_nb.training.fit"]  # the name fit is the function

NAMES = ["drums", "bass", "other", "vocals"]
RATE = 44100


def tone_songs(count: int, seconds: float = 1.0) -> list[bn.Stems]:
    """Songs whose stems are told apart by pitch: a separable toy task."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    songs = []
    for _ in range(count):
        stems = []
        for k, base in enumerate((60.0, 110.0, 440.0, 1760.0)):
            f = base * rng.uniform(0.9, 1.1)
            wave = np.sin(2 * np.pi * f * t) * rng.uniform(0.05, 0.2)
            stems.append(np.stack([wave, wave * rng.uniform(0.5, 1.0)]))
            if k == 0:  # drums: clicks
                stems[-1][:, :: RATE // 8] += 0.5
        songs.append(bn.Stems(np.asarray(stems, np.float32), NAMES, RATE))
    return songs


def small() -> MaskNet:
    return MaskNet(hidden=16, lstm_layers=1, low_hidden=8)


def test_a_masknet_starts_from_its_seed_whatever_ran_before():
    first = small().state_dict()
    torch.rand(1000)  # the global random state moves on; the network does not follow it
    state = torch.get_rng_state()
    again = small().state_dict()
    assert torch.equal(torch.get_rng_state(), state)  # and it leaves that state alone
    assert all(torch.equal(first[k], again[k]) for k in first)
    other = MaskNet(hidden=16, lstm_layers=1, seed=1).state_dict()
    assert not torch.equal(first["masks.weight"], other["masks.weight"])


def test_masknet_keeps_the_contract_and_its_stems_sum_to_the_mix():
    net = small()
    assert (net.sources, net.samplerate, net.audio_channels, net.segment) == (NAMES, RATE, 2, 10.0)
    mix = torch.from_numpy(tone_songs(1)[0].mix()[None])
    stems = net(mix)
    assert stems.shape == (1, 4, 2, RATE)
    torch.testing.assert_close(stems.sum(dim=1), mix, atol=1e-5, rtol=0)


def test_saved_weights_load_through_the_separator_and_separate_identically(tmp_path):
    net = small().eval()
    path = save_safetensors(net, tmp_path / "net.safetensors")
    song = tone_songs(1)[0]
    separator = bn.Separator(model=path, device="cpu", cache=False, progress=False)
    got = separator.separate((song.mix(), RATE))
    with torch.no_grad():
        expected = net(torch.from_numpy(song.mix()[None]))[0].numpy()
    assert got.names == tuple(NAMES) and separator.model.identity
    np.testing.assert_allclose(got.data, expected, atol=1e-6)


@pytest.mark.parametrize(
    ("missing", "made", "expected"),
    [
        (("direct_hz", "low_nfft", "low_hidden"), (0.0, None), (0, 0, 2048)),
        (("low_nfft", "low_hidden"), (700.0, None), (33, 33, 2048)),
        (("low_hidden",), (700.0, 8192), (33, 131, 8192)),
    ],
    ids=["before-direct_hz", "before-low_nfft", "before-low_hidden"],
)
def test_a_checkpoint_from_before_an_argument_existed_loads_as_it_was_made(
    tmp_path, missing, made, expected
):
    direct_hz, low_nfft = made
    old = MaskNet(
        hidden=16, lstm_layers=1, direct_hz=direct_hz, low_nfft=low_nfft, low_hidden=0
    ).eval()
    for name in missing:
        del old._init_args_kwargs[1][name]  # as written before the argument existed
    loaded = load_safetensors(save_safetensors(old, tmp_path / "old.safetensors"))
    assert (loaded.direct, loaded.low_bins, loaded.low_nfft) == expected
    assert loaded.low_lstm is None and loaded.low_masks is None
    assert (MaskNet(hidden=16).direct, MaskNet(hidden=16).low_bins) == (33, 131)  # 700 Hz
    mix = torch.from_numpy(tone_songs(1)[0].mix()[None])
    with torch.no_grad():
        torch.testing.assert_close(loaded(mix), old(mix))


def test_the_low_lstm_starts_silent_and_then_moves_only_the_low_masks():
    plain = MaskNet(hidden=16, lstm_layers=1, low_hidden=0).eval()
    net = MaskNet(hidden=16, lstm_layers=1, low_hidden=8).eval()
    assert net.low_lstm.input_size == 2 * net.low_bins and net.low_lstm.hidden_size == 4
    assert net.low_masks.out_features == 4 * net.direct == 4 * 33
    state = net.state_dict()
    for name, value in plain.state_dict().items():  # the other layers start as they were
        torch.testing.assert_close(state[name], value, atol=0, rtol=0)
    mix = tone_songs(1)[0].mix()
    before = net.masks_for(mix)
    np.testing.assert_array_equal(before, plain.masks_for(mix))  # its last layer starts at 0
    with torch.no_grad():
        net.low_masks.weight.normal_(0.0, 0.1)
    after = net.masks_for(mix)
    np.testing.assert_array_equal(after[:, net.direct :], before[:, net.direct :])
    assert np.abs(after[:, : net.direct] - before[:, : net.direct]).max() > 0.01
    np.testing.assert_allclose(after.sum(axis=0), 1.0, atol=1e-5)


def tone(freq: float, seconds: float = 1.0, level: float = 0.3) -> torch.Tensor:
    """A stereo sine ``(1, 2, frames)``, faded in and out (Hann) so that its spectrum is a
    peak and nothing else."""
    t = np.arange(int(seconds * RATE)) / RATE
    wave = level * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))
    return torch.from_numpy(np.stack([wave, wave])[None].astype(np.float32))


def test_the_low_bins_reach_the_lstm_as_they_are_from_their_own_finer_stft():
    net = small().eval()
    assert net.lstm.input_size == 16 + 2 * net.low_bins and net.low_bins == 131
    with torch.no_grad():
        for param in net.encode.parameters():
            param.zero_()  # the first layer passes nothing on: only the direct path is left
        base = tone(1000.0, level=0.01)[0].numpy()

        def change(freq):  # of the masks
            mix = base + tone(freq)[0].numpy()
            return np.abs(net.masks_for(mix) - net.masks_for(base)).mean()

        assert change(3000.0) < 0.01 * change(300.0)  # above 700 Hz: only through encode


def test_the_low_features_are_the_bins_of_a_full_rate_stft():
    net = small()
    mix = torch.from_numpy(bn.demo.load()[0].samples[None, :, : 5 * RATE].copy())
    window = torch.hann_window(8192)
    spec = torch.stft(mix[0], 8192, 1024, window=window, pad_mode="constant", return_complex=True)
    full = torch.log1p(spec[:, : net.low_bins].abs()).permute(2, 0, 1).reshape(1, -1, 262)
    low = net.low_features(mix)
    assert low.shape == full.shape == (1, 1 + 5 * RATE // 1024, 262)
    # the last frames' windows reach past the end, where the low-pass sees zeros
    torch.testing.assert_close(low[:, :-4], full[:, :-4], atol=1e-3, rtol=0)


@pytest.mark.parametrize("frames", [44100, 44101, 16])
def test_decimating_is_low_passing_with_conv1d_and_keeping_every_step_th_sample(frames):
    from bandscope_nb.separation.masknet import _decimate, _lowpass

    signals = torch.randn(3, frames, generator=torch.Generator().manual_seed(frames))
    taps = _lowpass(16).flatten()[:257]  # the 16 * 16 + 1 taps, without the zero padding
    assert abs(float(taps.sum()) - 1) < 1e-6 and torch.equal(taps, taps.flip(0))  # centred
    expected = torch.nn.functional.conv1d(
        signals[:, None], taps[None, None], stride=16, padding=128
    )
    got = _decimate(signals, _lowpass(16), 16)
    assert got.shape == (3, 1 + (frames - 1) // 16)
    torch.testing.assert_close(got, expected[:, 0], atol=1e-5, rtol=0)


def test_the_finer_bins_tell_apart_notes_the_main_stft_puts_in_one_bin():
    net = small()
    main, fine = [], []
    for freq in (55.0, 58.27):  # A1 and B-flat 1
        audio = tone(freq)
        main.append(int(net.magnitude(net.spectrogram(audio))[0, 0, :, 20].argmax()))
        fine.append(int(net.low_features(audio)[0, 20, : net.low_bins].argmax()))
    assert main[0] == main[1] and fine == [10, 11]


def test_a_masknet_with_a_finer_low_stft_asks_for_the_audio():
    net = small()
    spec = net.spectrogram(torch.zeros(1, 2, RATE))
    with pytest.raises(bn.ParameterError, match="8192-point STFT of the mixture"):
        net.mask(spec)


def test_hostile_init_arguments_in_a_masknet_file_are_refused(tmp_path):
    net = small()
    net._init_args_kwargs[1]["hidden"] = 100_000  # a file that asks for a huge network
    path = save_safetensors(net, tmp_path / "big.safetensors")
    with pytest.raises(bn.ModelIntegrityError, match="hidden=100000 is out of range"):
        bn.load_model(path)


def test_the_loss_is_the_squared_distance_of_the_masked_mixture_magnitude_and_its_gradient():
    net = small()
    batch = torch.from_numpy(np.stack([s.data for s in tone_songs(2)]))
    stems = net.spectrogram(batch.flatten(0, 1))
    stems = stems.reshape(*batch.shape[:2], *stems.shape[1:])  # (B, S, C, F, N)
    mixture = batch.sum(dim=1)
    mix = net.spectrogram(mixture)
    estimate = net.mask(mix, audio=mixture)[:, :, None] * mix.abs()[:, None]
    # 44 frames: the first and the last reach past the crop, into padding
    assert batches.inner_frames(net, RATE) == slice(1, 43) and stems.shape[-1] == 44
    plain = (estimate - stems.abs())[..., 1:-1].pow(2).mean()
    (expected,) = torch.autograd.grad(plain, net.masks.weight)
    fast = batch_loss(net, batch)
    (got,) = torch.autograd.grad(fast, net.masks.weight)
    assert abs(fast.item() - plain.item()) <= 1e-6 * plain.item()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    songs = tone_songs(4)
    batch = torch.from_numpy(np.stack([s.data for s in songs[:3]]))
    net = small()
    with torch.no_grad():
        before = float(batch_loss(net, batch))
    fit(
        net,
        songs,
        steps=8,
        batch_size=3,
        crop_seconds=1.0,
        learning_rate=1e-2,
        validate_every=8,
        device="cpu",
        progress=False,
    )
    with torch.no_grad():
        after = float(batch_loss(net, batch))
    assert after < 0.9 * before, (before, after)


def test_the_targets_made_once_per_song_are_the_crops_magnitudes(monkeypatch):
    """A crop starts on the hop, so its inner frames are frames of the whole song's STFT:
    magnitudes made once per song (half precision) give each batch's targets."""
    net = small()
    crops = batches.Crops(tone_songs(3, seconds=2.0), RATE // 2, align=net.hop)
    picks = crops.picks(np.random.default_rng(5), 6)
    assert all(p.start % net.hop == 0 for p in picks) and any(p.start for p in picks)
    assert any(p.swap.any() for p in picks) and all(np.ptp(p.gains) > 0 for p in picks)
    audio = torch.from_numpy(crops.audio(picks))
    kept = batches.Targets(net, crops, "cpu")
    monkeypatch.setattr(batches, "TARGET_BYTES", 0)  # too little room: made from each batch
    made = batches.Targets(net, crops, "cpu")
    assert kept.songs is not None and made.songs is None
    got, expected = kept(picks, audio), made(picks, audio)
    assert got.shape == expected.shape == (6, 4, 2, 1025, 22)
    inner = batches.inner_frames(net, RATE // 2)
    torch.testing.assert_close(got[..., inner], expected[..., inner], rtol=2e-3, atol=1e-3)
    # the edge frames differ (a crop's padding is not its song), which is why the loss skips them
    assert not torch.allclose(got[..., -1], expected[..., -1], rtol=2e-3, atol=1e-3)


def one_step(net, **options):
    options = {"steps": 1, "batch_size": 2, "crop_seconds": 0.5, "validate_every": 1} | options
    return fit(net, tone_songs(3), device="cpu", progress=False, **options)


def test_fit_standardises_a_new_networks_inputs_and_keeps_a_trained_ones():
    net = small()
    assert not torch.count_nonzero(net.input_mean) and torch.all(net.input_scale == 1)
    one_step(net, learning_rate=1e-6, seed=3)
    # the statistics of 64 crops of the training songs (not the validation song), drawn by seed
    crops = batches.Crops(tone_songs(3)[:2], RATE // 2, align=1024)
    mixes = crops.batch(np.random.default_rng([3, 1]), fit_module.STATISTICS_CROPS).sum(axis=1)
    expected = small()
    expected.standardise_inputs(torch.from_numpy(mixes))
    for name in ("input_mean", "input_scale"):  # one step at 1e-6 moves them by about that
        torch.testing.assert_close(getattr(net, name), getattr(expected, name), atol=1e-4, rtol=0)
    trained = small()
    with torch.no_grad():
        trained.input_mean.fill_(0.5)
    one_step(trained, learning_rate=1e-6)
    torch.testing.assert_close(trained.input_mean, torch.full_like(trained.input_mean, 0.5))


def test_averaging_keeps_the_running_mean_of_the_weights(tmp_path):
    start = small()
    start.standardise_inputs(torch.from_numpy(tone_songs(1)[0].mix()[None]))  # not new: kept
    before = {k: v.clone() for k, v in start.state_dict().items()}
    raw = one_step(copy.deepcopy(start)).model.state_dict()
    averaged = one_step(copy.deepcopy(start), average=0.99, out=tmp_path)
    # the first step's weight is 1 - min(decay, 1/10): the mean moves 0.9 of the way
    for name, value in averaged.model.state_dict().items():
        torch.testing.assert_close(value, 0.1 * before[name] + 0.9 * raw[name])
    saved = load_safetensors(averaged.checkpoint).state_dict()
    assert all(torch.equal(saved[k], v) for k, v in averaged.model.state_dict().items())


def test_a_seed_and_a_step_count_repeat_a_run_exactly():
    runs = [
        fit(
            small(),
            tone_songs(3),
            steps=3,
            batch_size=2,
            crop_seconds=0.5,
            learning_rate=1e-3,
            seed=5,
            validate_every=1,
            device="cpu",
            progress=False,
        )
        for _ in range(2)
    ]
    rates = [h["learning_rate"] for h in runs[0].history]  # a cosine over the 3 steps
    assert rates == pytest.approx([1e-3, 1e-3 * (0.05 + 0.95 * 0.75), 1e-3 * (0.05 + 0.95 * 0.25)])
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]


def test_an_interrupt_keeps_the_best_checkpoint_loadable(tmp_path):
    def interrupt(history):
        if len(history) == 2:
            raise KeyboardInterrupt

    with pytest.warns(bn.BandscopeWarning, match="Training interrupted at step 2: kept the best"):
        result = fit(
            small(),
            tone_songs(3),
            steps=50,
            batch_size=2,
            crop_seconds=0.5,
            validate_every=1,
            device="cpu",
            progress=False,
            out=tmp_path,
            callback=interrupt,
        )
    assert result.interrupted and result.steps == 2
    assert result.checkpoint == tmp_path / "masknet.safetensors"
    assert not list(tmp_path.glob("*.part"))
    loaded = bn.load_model(result.checkpoint)
    held = result.model.state_dict()
    parts = loaded.parts[0][0].state_dict()
    assert all(torch.equal(held[k], parts[k]) for k in held)  # the model holds the checkpoint
    record = (tmp_path / "masknet.yaml").read_text()
    assert f"step: {result.best['step']}" in record


def test_the_demo_song_is_held_out():
    truth = bn.demo.load()[1]
    head = bn.Stems(truth.data[..., : 5 * RATE], truth.names, RATE)
    for demo in (truth, head):
        with pytest.raises(bn.ParameterError, match="The demo song is held out"):
            fit(small(), [demo, *tone_songs(2)], steps=1, device="cpu", progress=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden": 1}, "Invalid hidden: 1"),
        ({"nfft": 8}, "Invalid nfft: 8"),
        ({"hop": 0}, "Invalid hop: 0"),
        ({"lstm_layers": 2.5}, "Invalid lstm_layers"),
        ({"max_freq": 0}, "Invalid max_freq: 0"),
        ({"low_nfft": 1024}, "Invalid low_nfft: 1024"),
        ({"hidden": 17}, "Invalid hidden: 17; give an even number"),
        ({"low_hidden": 9}, "Invalid low_hidden: 9; give an even number"),
        ({"low_hidden": -2}, "Invalid low_hidden: -2"),
        ({"low_hidden": 8, "direct_hz": 0}, "Invalid low_hidden: 8; it reads the bins below"),
        ({"seed": -1}, "Invalid seed: -1"),
        ({"seed": "0"}, "Invalid seed: '0'"),
        ({"sources": ["drums", "../bass"]}, "sources"),
    ],
)
def test_bad_masknet_arguments_fail_with_a_typed_error(change, message):
    with pytest.raises(bn.ParameterError, match=message):
        MaskNet(**change)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"minutes": 0}, "Invalid minutes: 0"),
        ({"steps": 0}, "Invalid steps: 0"),
        ({"batch_size": 0}, "Invalid batch_size: 0"),
        ({"crop_seconds": 5.0}, "at least 220500 frames"),
        (
            {
                "model": MaskNet(hidden=16, lstm_layers=1, nfft=8192, low_nfft=8192),
                "crop_seconds": 0.15,
            },
            r"Invalid crop_seconds: 0.15; a crop must hold a whole STFT window .* at least 0.186",
        ),
        ({"validate_every": 1.5}, "Invalid validate_every"),
        ({"learning_rate": -0.1}, "Invalid learning_rate: -0.1"),
        ({"average": 1.0}, "Invalid average: 1.0"),
        ({"data": "songs"}, "Invalid data"),
        ({"data": [bn.Stems(np.zeros((2, 2, RATE), np.float32), ["a", "b"], RATE)] * 3}, "match"),
        ({"model": torch.nn.Linear(2, 2)}, "fit trains a MaskNet"),
        ({"device": "tpu"}, "tpu"),
    ],
)
def test_bad_options_fail_before_training(change, message):
    arguments = {"model": small(), "data": tone_songs(3), "steps": 1, "progress": False}
    arguments.update(change)
    with pytest.raises(bn.BandscopeError, match=message):
        fit(arguments.pop("model"), arguments.pop("data"), **arguments)


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")
def test_fit_trains_alike_on_multitracks_held_in_memory_or_read_crop_by_crop(
    tmp_path, monkeypatch
):
    songs = bn.datasets.synth_multitracks(3, seconds=2.0, seed=4, folder=tmp_path)
    states = []
    for preload in (batches.PRELOAD_BYTES, 0):  # in memory (16-bit), then from the files
        monkeypatch.setattr(batches, "PRELOAD_BYTES", preload)
        assert (batches.Crops(songs, RATE).held is not None) == bool(preload)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = fit(
                small(),
                songs,
                steps=2,
                batch_size=2,
                crop_seconds=1.0,
                validate_every=1,
                device="cpu",
                progress=False,
            )
        assert result.steps == 2 and np.isfinite(result.best["val_sdr"])
        states.append(result.model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_validation_separates_the_start_of_up_to_24_whole_songs(monkeypatch):
    """Each validation scores the same excerpts: the first VALIDATION_SECONDS (here cut to the
    shortest song) of the first VALIDATION_SONGS validation songs, not a few short crops."""
    monkeypatch.setattr(fit_module, "VALIDATION_SECONDS", 0.75)
    validation = tone_songs(26)
    validation[3] = bn.Stems(validation[3].data[..., : RATE // 2], NAMES, RATE)  # 0.5 s
    seen = []
    real = fit_module._validation_sdr

    def spy(model, crops, device):
        seen.append([c.copy() for c in crops])
        return real(model, crops, device)

    monkeypatch.setattr(fit_module, "_validation_sdr", spy)
    one_step(small(), validation=validation, steps=2)
    assert len(seen) == 2 and len(seen[0]) == fit_module.VALIDATION_SONGS == 24
    for crops in seen:
        for crop, song in zip(crops, validation, strict=False):
            np.testing.assert_array_equal(crop, song.data[..., : RATE // 2])
    monkeypatch.setattr(fit_module, "VALIDATION_SECONDS", 0.25)  # shorter than every song
    excerpts = fit_module._validation_excerpts(validation[:2], RATE)
    assert [e.shape for e in excerpts] == [(4, 2, RATE // 4)] * 2


def test_the_learning_rate_falls_along_a_cosine_to_a_twentieth():
    rate = sys.modules["bandscope_nb.training.fit"]._rate
    assert rate(2e-3, 0.0) == pytest.approx(2e-3) and rate(2e-3, 1.0) == pytest.approx(1e-4)
    assert rate(2e-3, 0.5) == pytest.approx(1.05e-3)
    assert rate(2e-3, 7.0) == rate(2e-3, 1.0)  # past the budget (the last step's validation)
    steps = [rate(1.0, k / 10) for k in range(11)]
    assert steps == sorted(steps, reverse=True)


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed")
def test_the_train_command_writes_weights_the_separator_runs(tmp_path, monkeypatch, capsys):
    from bandscope_nb.cli import main

    monkeypatch.setenv("BANDSCOPE_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "model"
    argv = ["train", "-o", str(out), "--steps", "2", "--songs", "3", "--song-seconds", "4"]
    assert main([*argv, "--hidden", "16", "--device", "cpu"]) == 0
    assert "2 steps in" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["masknet.safetensors", "masknet.yaml"]
    song = tone_songs(1)[0]
    separator = bn.Separator(model=out / "masknet.safetensors", device="cpu", cache=False)
    assert separator.separate((song.mix(), RATE)).names == tuple(NAMES)


def test_train_command_usage_errors_exit_2(tmp_path, capsys):
    from bandscope_nb.cli import main

    afile = tmp_path / "file"
    afile.write_text("")
    for argv, message in (
        (["-o", str(afile)], "is a file"),
        (["-o", str(tmp_path / "m"), "--hidden", "1"], "Invalid hidden: 1"),
        (["-o", str(tmp_path / "m"), "--songs", "0"], "Invalid n: 0"),
        (["-o", str(tmp_path / "m"), "--minutes", "0"], "Invalid --minutes"),
    ):
        assert main(["train", *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "m").exists()
