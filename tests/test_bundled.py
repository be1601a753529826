"""The bundled bandscope-tiny: loaded by name and checked against its digest, size, what it does
on the held-out demo song, and model="auto" preferring it to the classical recipe, announced."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import RATE, noise

import bandscope_nb as bn
from bandscope_nb.digests import sha256_file
from bandscope_nb.separation import bundled, models
from bandscope_nb.separation.masknet import MaskNet


@pytest.fixture
def fresh_models(monkeypatch):
    """Models loaded in this test only (load_model keeps what it loaded per process)."""
    monkeypatch.setattr(models, "_LOADED", {})


def test_the_file_ships_small_and_matches_its_digest():
    path = bundled.bundled_path("bandscope-tiny")
    assert path.stat().st_size <= 5 * 1024 * 1024
    assert sha256_file(path) == bundled.BUNDLED["bandscope-tiny"].sha256
    loaded = bn.load_model("bandscope-tiny")
    (net, _), = loaded.parts
    assert isinstance(net, MaskNet) and loaded.name == "bandscope-tiny"
    assert loaded.sources == ("drums", "bass", "other", "vocals") and net.samplerate == 44100
    assert "bundled file" in loaded.origin
    assert sum(p.numel() for p in net.parameters()) < 2_500_000  # "of the order of 1 M"
    assert "bandscope-tiny" in bundled.bundled_names()


def test_a_tampered_file_is_refused(tmp_path, monkeypatch, fresh_models):
    copy = tmp_path / bundled.BUNDLED["bandscope-tiny"].file
    shutil.copy(bundled.bundled_path("bandscope-tiny"), copy)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1  # one bit of a weight
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(bundled, "WEIGHTS", tmp_path)
    with pytest.raises(bn.ModelIntegrityError, match="sha256"):
        bn.load_model("bandscope-tiny")


def test_auto_offline_prefers_the_tiny_model_and_says_so(fresh_models):
    sep = bn.Separator("auto", device="cpu", cache=False, progress=False)
    with pytest.warns(bn.ModelFallbackWarning) as caught:
        stems = sep.separate(noise(1.0), RATE)
    out = str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller's line
    assert "htdemucs weights are not on this machine" in out and "offline mode is on" in out
    assert "bundled bandscope-tiny" in out and "synthetic" in out and "model='classical'" in out
    assert stems.info["model"] == "bandscope-tiny"
    np.testing.assert_allclose(stems.mix(), noise(1.0), atol=1e-4)  # softmax masks sum to 1


def test_auto_without_the_file_falls_back_to_classical_saying_why(
    tmp_path, monkeypatch, fresh_models
):
    monkeypatch.setattr(bundled, "WEIGHTS", tmp_path)  # an install without the file
    sep = bn.Separator("auto", device="cpu", cache=False, progress=False)
    with pytest.warns(bn.ModelFallbackWarning) as caught:
        stems = sep.separate(noise(1.0), RATE)
    out = str(caught[0].message)
    assert "bandscope-tiny did not load" in out and "missing from this install" in out
    assert "classical separator" in out and stems.info["model"] == "classical"


@pytest.mark.slow
def test_its_scores_on_the_demo_song_are_those_in_the_docs():
    """docs/baselines.md states what the shipped weights score on the held-out demo song (and
    whether that meets the Teaching lab's goal): recomputed here, so the claim cannot go stale."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "baselines.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("classical", "bandscope-tiny (fp16)"):
            rows[cells[0]] = [float(c) for c in cells[1:]]
    _, truth = bn.demo.load()
    sep = bn.Separator("bandscope-tiny", device="cpu", cache=False, progress=False)
    medians = bn.metrics.evaluate(truth, sep.separate(bn.demo.path())).medians
    got = [medians[name]["SDR"] for name in truth.names]
    np.testing.assert_allclose(got, rows["bandscope-tiny (fp16)"], atol=0.01)
    gains = np.subtract(got, rows["classical"])
    met = "Not met." not in doc.split("## bandscope-tiny")[1]
    assert met == bool(gains.min() >= 3.0), gains  # the docs' verdict follows the numbers
