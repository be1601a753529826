"""Stems: mapping access, mixing, residuals, atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import bandscope_nb as bn
from bandscope_nb import ParameterError, Stems


@pytest.fixture
def stems():
    data = np.stack([np.full((2, 100), v, np.float32) for v in (0.1, 0.2, 0.3)])
    return bn.Stems(data, ["a", "b", "c"], 8000, info={"model": "m"})


def test_mapping(stems):
    assert stems.names == ("a", "b", "c") and list(stems) == ["a", "b", "c"] and len(stems) == 3
    assert stems["b"].shape == (2, 100) and stems.duration == 100 / 8000
    with pytest.raises(KeyError, match="No stem 'x'"):
        stems["x"]
    assert "model='m'" in repr(stems)


def test_mix_remix_residual(stems):
    np.testing.assert_allclose(stems.mix(), 0.6)
    np.testing.assert_allclose(stems.remix({"a": 0.0, "c": 2.0}), 0.8)
    with pytest.raises(bn.ParameterError, match="Unknown stem"):
        stems.remix({"vocals": 0.0})
    np.testing.assert_allclose(stems.residual(np.ones((2, 100)), sample_rate=8000), 0.4)
    with pytest.raises(bn.ParameterError, match="does not match"):
        stems.residual(np.ones((2, 99)), sample_rate=8000)


def test_constructor_checks():
    with pytest.raises(bn.ParameterError, match="3 sources"):
        bn.Stems(np.zeros((2, 1, 4)), ["a", "b", "c"], 8000)
    with pytest.raises(bn.ParameterError, match="unique"):
        bn.Stems(np.zeros((2, 1, 4)), ["a", "a"], 8000)
    with pytest.raises(bn.ParameterError, match="one shape"):
        bn.Stems.from_dict({"a": np.zeros((1, 4)), "b": np.zeros((1, 5))}, 8000)


def test_save_and_overwrite(stems, tmp_path):
    paths = stems.save(tmp_path, format="wav")
    assert sorted(p.name for p in paths.values()) == ["a.wav", "b.wav", "c.wav"]
    np.testing.assert_allclose(sf.read(paths["c"], dtype="float32")[0].T, 0.3)
    with pytest.raises(bn.ParameterError, match="overwrite=True"):
        stems.save(tmp_path, format="wav")
    stems.save(tmp_path, format="wav", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.wav", "c.wav"]


def test_flac_round_trip(stems, tmp_path):
    paths = stems.save(tmp_path, format="flac", prefix="song_")
    assert paths["a"].name == "song_a.flac"
    np.testing.assert_allclose(sf.read(paths["a"])[0].T, 0.1, atol=1e-6)


@pytest.mark.parametrize("name", ["../x", "/etc/x", "a/b", "", ".", "..", "a\x00b", "x" * 65])
def test_unsafe_stem_names_are_refused(name):
    with pytest.raises(ParameterError, match=r"stem name|between"):
        Stems(np.zeros((1, 1, 4), np.float32), [name], 8000)


def test_save_refuses_paths_outside_the_folder_and_folders_in_the_way(tmp_path):
    stems = Stems(np.zeros((2, 1, 100), np.float32), ["a", "b"], 8000)
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "victim.wav"
    outside.write_text("mine")
    (out / "a.wav").symlink_to(outside)
    with pytest.raises(ParameterError, match="outside"):
        stems.save(out, format="wav", overwrite=True)
    assert outside.read_text() == "mine"
    (out / "a.wav").unlink()
    (out / "b.wav").mkdir()
    with pytest.raises(ParameterError, match="is a folder"):
        stems.save(out, format="wav", overwrite=True)
    with pytest.raises(ParameterError, match="is a file"):
        stems.save(outside, format="wav")
    with pytest.raises(ParameterError, match="prefix"):
        stems.save(out, format="wav", prefix="../")
    assert sorted(p.name for p in out.iterdir()) == ["b.wav"]


SAVE_CHILD = """
import resource, sys, numpy as np
import bandscope_nb as bn
from bandscope_nb.separation.streams import open_stems
frames = int(sys.argv[2])
data = open_stems(sys.argv[1], (4, 2, frames))
stems = bn.Stems(data, ["drums", "bass", "other", "vocals"], 22050)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stems.save(sys.argv[3], format=sys.argv[4])
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_saving_a_long_cached_result_keeps_memory_flat(tmp_path, fmt):
    """Peak RSS of a child saving 4 x 2 x 12.6 M frames (400 MB of stems, ~9.5 min at 22 kHz)."""
    import subprocess
    import sys

    frames = 12 << 20
    raw = tmp_path / "stems.f32"
    pattern = (0.1 * np.random.default_rng(0).standard_normal(1 << 20)).astype(np.float32)
    with open(raw, "wb") as f:
        for _ in range(4 * 2 * frames // pattern.size):
            f.write(pattern.tobytes())
    proc = subprocess.run(
        [sys.executable, "-c", SAVE_CHILD, str(raw), str(frames), str(tmp_path / "out"), fmt],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, peak = (int(v) * 1024 for v in proc.stdout.split())
    assert peak - before < 150e6, f"saving grew RSS by {(peak - before) / 1e6:.0f} MB"
    info = sf.info(str(tmp_path / "out" / f"vocals.{fmt}"))
    assert info.frames == frames and info.channels == 2


def test_remix_window_reads_only_that_stretch_and_matches_the_whole_remix():
    rng = np.random.default_rng(5)
    stems = bn.Stems(rng.standard_normal((3, 2, 8000)).astype(np.float32), ["a", "b", "c"], 8000)
    gains = {"a": 0.5, "b": 0.0}
    whole = stems.remix(gains)
    part = stems.remix(gains, window=(0.25, 0.5))
    np.testing.assert_array_equal(part, whole[:, 2000:6000])
    np.testing.assert_array_equal(stems.remix(gains, window=(0.75, None)), whole[:, 6000:])
    assert stems.remix(gains, window=(2.0, 1.0)).shape == (2, 0)  # past the end: empty
