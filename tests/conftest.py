"""Shared fixtures: an isolated, offline environment for every test, and common inputs.

No test touches the network: BANDSCOPE_OFFLINE=1 is set for every test, and the Hugging Face and
torch hub caches point into the test's temporary folder. Helpers live in ``helpers.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from helpers import RATE, noise, serve_file, tiny_hdemucs, tiny_htdemucs


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Offline, with private cache folders, for every test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BANDSCOPE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.setenv("BANDSCOPE_CACHE_DIR", str(home / "cache"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hf" / "hub"))
    yield
    from bandscope_nb.separation import models

    models._LOADED.clear()  # each test loads its own models


@pytest.fixture
def wav(tmp_path) -> Path:
    """A 3-second stereo 44.1 kHz noise WAV file."""
    path = tmp_path / "clip.wav"
    sf.write(path, noise(3).T, RATE, subtype="FLOAT")
    return path


@pytest.fixture
def ht_model():
    return tiny_htdemucs()


@pytest.fixture
def hd_model():
    return tiny_hdemucs()


@pytest.fixture
def weights_server(tmp_path):
    """A tiny HTDemucs saved as demucs' ``htdemucs`` weights (``955717e8-<sha>.th``) and served
    over HTTP on 127.0.0.1; yields (base URL, the file)."""
    from bandscope_nb.separation.modelfiles import save_th

    path = save_th(tiny_htdemucs(), tmp_path / "served" / "955717e8.th")
    with serve_file(path) as url:
        yield url, path
