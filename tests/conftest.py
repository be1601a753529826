"""Shared fixtures: tiny real Demucs models with random weights, short signals, an isolated cache.

No test touches the network: BANDSCOPE_OFFLINE=1 is set for every test, and the Hugging Face and
torch hub caches point into the test's temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SOURCES = ["drums", "bass", "other", "vocals"]
RATE = 44100


def tiny_htdemucs(seed: int = 0, *, segment: float = 1, samplerate: int = RATE):
    """An HTDemucs of ~6k parameters with random weights (real architecture, real forward)."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(
        SOURCES,
        audio_channels=2,
        samplerate=samplerate,
        segment=segment,
        channels=4,
        depth=2,
        nfft=512,
        t_layers=1,
        t_heads=1,
        bottom_channels=0,
        dconv_mode=0,
        t_hidden_scale=1.0,
    )
    return model.eval()


def tiny_hdemucs(seed: int = 0, *, segment: float = 1):
    """An HDemucs of ~4k parameters with random weights."""
    import torch
    from demucs.hdemucs import HDemucs

    torch.manual_seed(seed)
    return HDemucs(
        SOURCES, audio_channels=2, samplerate=RATE, segment=segment, channels=4, depth=2, nfft=64
    ).eval()


def noise(seconds: float, *, channels: int = 2, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Quiet white noise, float32 (channels, frames)."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, int(seconds * rate)))).astype(np.float32)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` in dB (inf when equal)."""
    err = np.sum((np.asarray(reference, np.float64) - estimate) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(reference**2.0) / err))


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
    from bandscope_nb import models

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
