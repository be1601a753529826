"""Audio at the edge: loading formats, validation errors naming the file, atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import RATE, noise

import bandscope_nb as bn
from bandscope_nb.audio import as_audio, check_samples, resample


@pytest.mark.parametrize(
    ("ext", "kwargs"), [("wav", {}), ("flac", {}), ("ogg", {}), ("mp3", {"format": "MP3"})]
)
def test_load_formats(ext, kwargs, tmp_path):
    path = tmp_path / f"x.{ext}"
    sf.write(path, noise(1.0).T, RATE, **kwargs)
    audio = bn.load_audio(path)
    assert audio.samples.dtype == np.float32 and audio.channels == 2
    assert audio.sample_rate == RATE and audio.path == path
    assert abs(audio.frames - RATE) < 3000  # lossy codecs pad a little


def test_load_resample_and_mono(tmp_path):
    path = tmp_path / "x.wav"
    sf.write(path, noise(1.0, rate=48000).T, 48000)
    audio = bn.load_audio(path, sample_rate=RATE, mono=True)
    assert audio.channels == 1 and audio.sample_rate == RATE and audio.frames == RATE


def bad_files(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "random.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "text.mp3").write_text("this is not audio\n" * 50)
    sf.write(tmp_path / "good.wav", noise(0.1).T, RATE)
    data = (tmp_path / "good.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(data[:30])
    (tmp_path / "folder.wav").mkdir()
    sf.write(tmp_path / "nan.wav", np.full((10, 2), np.nan, np.float32), RATE, subtype="FLOAT")
    return {
        "missing.wav": "no such file",
        "empty.wav": "empty",
        "random.wav": "not a readable",
        "text.mp3": "not a readable",
        "truncated.wav": "not a readable",
        "folder.wav": "directory",
        "nan.wav": "NaN",
    }


def test_bad_files_raise_audio_error_naming_the_file(tmp_path):
    for name, match in bad_files(tmp_path).items():
        with pytest.raises(bn.AudioError, match=match) as info:
            bn.load_audio(tmp_path / name)
        assert name in str(info.value)


@pytest.mark.parametrize("rate", [1, 500, 768_000])
def test_absurd_sample_rates(rate, tmp_path):
    with pytest.raises(bn.AudioError, match="sample rate"):
        check_samples(np.zeros((2, 10)), rate)


def test_check_samples_shapes():
    assert check_samples(np.zeros(5), RATE).shape == (1, 5)
    with pytest.raises(bn.AudioError, match="no samples"):
        check_samples(np.zeros((2, 0)), RATE)
    with pytest.raises(bn.AudioError, match=r"samples\.T"):
        check_samples(np.zeros((1000, 2)), RATE)
    with pytest.raises(bn.AudioError, match="real numbers"):
        check_samples(np.zeros((2, 4), complex), RATE)


def test_as_audio_needs_a_rate_for_arrays():
    with pytest.raises(bn.ParameterError, match="sample_rate"):
        as_audio(np.zeros((2, 4)))
    assert as_audio((np.zeros((2, 4)), 8000)).sample_rate == 8000


def test_resample_length():
    assert resample(np.zeros((2, 48000), np.float32), 48000, RATE).shape == (2, RATE)


def test_save_is_atomic_and_leaves_no_temp(tmp_path):
    x = noise(0.5)
    out = bn.save_audio(x, RATE, tmp_path / "a" / "x.wav")
    np.testing.assert_array_equal(sf.read(out, dtype="float32")[0].T, x)
    assert [p.name for p in out.parent.iterdir()] == ["x.wav"]


def test_save_refuses_bad_input_without_writing(tmp_path):
    with pytest.raises(bn.AudioError):
        bn.save_audio(np.full((2, 10), np.nan), RATE, tmp_path / "x.wav")
    with pytest.raises(bn.ParameterError, match="format"):
        bn.save_audio(noise(0.1), RATE, tmp_path / "x.mp4", format="mp4")
    assert list(tmp_path.iterdir()) == []


def test_flac_clipping_is_reported(tmp_path):
    with pytest.warns(UserWarning, match="3 samples"):
        bn.save_audio(
            np.array([[0.5, 1.5, -2.0, 3.0]], np.float32), RATE, tmp_path / "x.flac", format="flac"
        )


@pytest.mark.parametrize(
    ("samples", "rate", "match"),
    [
        (np.zeros((1000, 2)), 44100, "looks like \\(frames, channels\\)"),
        (np.zeros((2, 1000)), 3, "sample rate 3"),
        (np.zeros((2, 1000)), "fast", "sample rate must be a number"),
        (np.full((2, 10), 3e38, np.float32), 44100, "magnitude"),
        (np.full((2, 10), np.nan), 44100, "NaN"),
    ],
)
def test_audio_objects_validate_themselves(samples, rate, match):
    with pytest.raises(bn.AudioError, match=match):
        bn.Audio(samples, rate)
