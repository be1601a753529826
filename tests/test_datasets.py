"""Synthetic multitracks: rendered with fluidsynth, the same for a seed, the mix their exact sum,
written so that nothing half-made is taken as a song, bad options refused before any work."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import bandscope_nb as bn
from bandscope_nb.datasets import synth
from bandscope_nb.datasets.fluidsynth import find_soundfont


@pytest.fixture(scope="module", autouse=True)
def renderer():
    try:
        if shutil.which("fluidsynth") is None:
            raise bn.MissingDependencyError("fluidsynth is not installed")
        find_soundfont()
    except bn.MissingDependencyError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs fluidsynth and a SoundFont (make system-deps): {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    return bn.datasets.synth_multitracks(
        3, seconds=4.0, seed=11, folder=tmp_path_factory.mktemp("songs")
    )


def test_songs_are_four_stems_on_the_16_bit_grid_and_the_mix_is_their_sum(songs):
    assert len(songs) == 3 and songs.sample_rate == 44100
    for i in range(3):
        stems = songs[i]
        assert stems.names == ("drums", "bass", "other", "vocals")
        assert stems.data.shape == (4, 2, 4 * 44100) and stems.data.dtype == np.float32
        grid = stems.data * 32768
        np.testing.assert_array_equal(grid, np.round(grid))  # 16-bit samples, exactly
        mix = stems.data.sum(axis=0, dtype=np.float64)
        assert np.abs(mix).max() <= 32767 / 32768  # the mix of the stored stems never clips
        np.testing.assert_array_equal(stems.mix(), mix.astype(np.float32))  # exact in float32
        loud = np.sqrt((stems.data**2).mean(axis=(1, 2)))
        assert (loud[:3] > 1e-3).all(), loud  # drums, bass and chords always play


def test_stems_are_levelled_by_rms_so_their_levels_are_the_recorded_ones(songs):
    # whatever the programme's own loudness, the stems' RMS differ by the levels drawn for them
    for i in range(3):
        loud = np.sqrt((songs[i].data.astype(np.float64) ** 2).mean(axis=(1, 2)))
        gains = songs.arrangement(i)["gains_db"]
        drawn = np.array([gains[name] for name in songs.names])
        assert ((drawn >= -9.0) & (drawn <= 0.0)).all(), drawn
        playing = loud > 1e-4
        measured = 20 * np.log10(loud[playing])
        spread = (measured - measured.max()) - (drawn[playing] - drawn[playing].max())
        np.testing.assert_allclose(spread, 0.0, atol=0.05)


def test_a_seed_gives_the_same_songs_anywhere_and_song_i_does_not_depend_on_n(songs, tmp_path):
    again = bn.datasets.synth_multitracks(1, seconds=4.0, seed=11, folder=tmp_path)
    np.testing.assert_array_equal(again[0].data, songs[0].data)  # rendered anew, identical
    assert again.arrangement(0) == songs.arrangement(0)
    other = bn.datasets.synth_multitracks(1, seconds=4.0, seed=12, folder=tmp_path)
    assert not np.array_equal(other[0].data, songs[0].data)
    described = {songs.arrangement(i)["description"] for i in range(3)}
    assert len(described) == 3  # tempo, key and instruments vary from song to song


def test_songs_made_before_are_read_not_rendered(songs, monkeypatch):
    folder = songs.paths[0].parents[4]  # <folder>/synth/<renderer>/<rate-length>/<seed>
    monkeypatch.setattr(synth, "_make_song", lambda *a: pytest.fail("rendered again"))
    again = bn.datasets.synth_multitracks(2, seconds=4.0, seed=11, folder=folder)
    assert again.paths == songs.paths[:2]


def test_an_interrupted_render_leaves_no_song_that_looks_complete(tmp_path, monkeypatch):
    import soundfile as sf

    real_write = sf.write

    def interrupted(path, data, *args, **kwargs):
        real_write(path, data[: len(data) // 2], *args, **kwargs)  # half the song, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(sf, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bn.datasets.synth_multitracks(1, seconds=2.0, seed=3, folder=tmp_path)
    assert not list(tmp_path.rglob("*.flac")) and not list(tmp_path.rglob("*.part"))
    monkeypatch.setattr(sf, "write", real_write)
    songs = bn.datasets.synth_multitracks(1, seconds=2.0, seed=3, folder=tmp_path)
    assert songs[0].frames == 2 * 44100  # made whole on the next call


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "Invalid n: 0"),
        ({"n": 2.5}, "Invalid n"),
        ({"seconds": 0.1}, "Invalid seconds: 0.1"),
        ({"seconds": "10"}, "Invalid seconds"),
        ({"seed": -1}, "Invalid seed: -1"),
        ({"sample_rate": 8000}, "Invalid sample_rate: 8000"),
    ],
)
def test_bad_options_are_refused_before_anything_is_rendered(options, message, tmp_path):
    arguments = {"n": 1, **options}
    n = arguments.pop("n")
    with pytest.raises(bn.ParameterError, match=message):
        bn.datasets.synth_multitracks(n, folder=tmp_path, **arguments)
    assert not any(tmp_path.iterdir())


def test_a_missing_or_broken_soundfont_is_named(tmp_path):
    missing = tmp_path / "none.sf2"
    with pytest.raises(bn.MissingDependencyError, match=r"none\.sf2"):
        bn.datasets.synth_multitracks(1, seconds=2.0, folder=tmp_path, soundfont=missing)
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"not a soundfont")
    with pytest.raises(bn.MissingDependencyError, match="could not render with"):
        bn.datasets.synth_multitracks(1, seconds=2.0, folder=tmp_path, soundfont=broken)
    assert not list(tmp_path.rglob("*.flac"))
