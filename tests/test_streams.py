"""Streaming storage: zero-padded windows, block-wise preparation, multi-pass writer."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import RATE, noise

import bandscope_nb as bn
from bandscope_nb.separation.streams import (
    ArraySource,
    RawSource,
    StemWriter,
    array_digest,
    open_stems,
    resample_raw,
    stage_file,
)


def test_array_source_pads_with_zeros():
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    out = ArraySource(x).read(-2, 7)
    np.testing.assert_array_equal(out[:, :2], 0)
    np.testing.assert_array_equal(out[:, 2:7], x)
    np.testing.assert_array_equal(out[:, 7:], 0)
    np.testing.assert_array_equal(ArraySource(x).read(8, 10), 0)


def test_one_pass_stages_checks_and_hashes_what_it_decoded(tmp_path):
    x = noise(1.0)
    sf.write(tmp_path / "x.wav", x.T, RATE, subtype="FLOAT")
    staged = stage_file(tmp_path / "x.wav", tmp_path / "x.f32", blocksize=1000)
    assert (staged.channels, staged.sample_rate, staged.frames) == (2, RATE, RATE)
    src = RawSource(tmp_path / "x.f32", 2)
    np.testing.assert_array_equal(src.read(0, RATE), x)
    np.testing.assert_array_equal(src.read(-3, 2)[:, 3:], x[:, :2])
    # the digest is the decoded audio's: the same for the array, another for other audio
    assert staged.digest == array_digest(x, RATE) == stage_file(tmp_path / "x.wav", None).digest
    assert array_digest(x * 0.5, RATE) != staged.digest
    assert array_digest(x, 48000) != staged.digest


def test_a_staged_file_resamples_in_blocks_without_decoding_again(tmp_path):
    x = noise(2.0, rate=48000)
    sf.write(tmp_path / "x.wav", x.T, 48000, subtype="FLOAT")
    staged = stage_file(tmp_path / "x.wav", tmp_path / "x.f32")
    (tmp_path / "x.wav").unlink()  # resampling reads only the staged raw file
    frames = resample_raw(tmp_path / "x.f32", tmp_path / "y.f32", 2, 48000, RATE, blocksize=4096)
    assert abs(frames - 2 * RATE) <= 2 and staged.frames == 2 * 48000
    whole = bn.audio.resample(x, 48000, RATE)
    got = RawSource(tmp_path / "y.f32", 2).read(0, whole.shape[1])
    assert np.abs(got - whole).max() < 1e-3  # the streaming and one-shot soxr agree


def test_staging_rejects_nan_in_a_late_block(tmp_path):
    x = noise(1.0).T.copy()
    x[-5, 1] = np.inf
    sf.write(tmp_path / "x.wav", x, RATE, subtype="FLOAT")
    with pytest.raises(bn.AudioError, match="NaN or Inf"):
        stage_file(tmp_path / "x.wav", tmp_path / "x.f32", blocksize=1000)


def test_writer_first_pass_writes_later_passes_add(tmp_path):
    writer = StemWriter(tmp_path / "o.f32", 2, 1, 6)
    writer.add(0, np.ones((2, 1, 4), np.float32))
    writer.add(4, np.full((2, 1, 2), 2.0, np.float32))
    writer.add(0, np.full((2, 1, 6), 0.5, np.float32))  # a second pass over everything
    writer.close()
    out = open_stems(tmp_path / "o.f32", (2, 1, 6))
    np.testing.assert_array_equal(out[:, 0], [[1.5] * 4 + [2.5] * 2] * 2)


def test_a_file_replaced_after_its_check_is_staged_with_its_own_layout(tmp_path, monkeypatch):
    """The header hashed and returned is the one the blocks were decoded with."""
    from bandscope_nb import audio

    song, mono = tmp_path / "song.wav", tmp_path / "mono.wav"
    sf.write(song, noise(1.0).T, RATE, subtype="FLOAT")
    sf.write(mono, noise(1.0)[0], 22050, subtype="FLOAT")
    checked = audio._check_path

    def check_then_replace(path, label):
        checked(path, label)
        if mono.exists():  # an export finishing with an atomic rename, just after the check
            mono.replace(song)

    monkeypatch.setattr(audio, "_check_path", check_then_replace)
    staged = stage_file(song, tmp_path / "x.f32")
    assert (staged.channels, staged.sample_rate, staged.frames) == (1, 22050, RATE)
    assert (tmp_path / "x.f32").stat().st_size == RATE * 4  # one channel, as decoded
    assert staged.digest == array_digest(bn.load_audio(song).samples, 22050)
