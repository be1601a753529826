"""Embedded players and figures: compressed, windowed, small."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
import soundfile as sf
from helpers import five_minute_stems

import bandscope_nb as bn
from bandscope_nb.notebook.embed import audio_element, encode_audio, stems_html


def test_ogg_window_round_trip():
    t = np.arange(3 * 8000) / 8000
    y = np.stack([np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32) * 0.5
    data = encode_audio(y, 8000, start=1.0, duration=1.5)
    decoded, rate = sf.read(io.BytesIO(data), always_2d=True)
    assert rate == 8000 and decoded.shape == (12000, 2)
    assert np.abs(decoded).max() == pytest.approx(0.5, abs=0.05)


def test_mp3_and_bad_format():
    data = encode_audio(np.full((1, 8000), 0.25, np.float32), 8000, format="mp3")
    decoded, rate = sf.read(io.BytesIO(data), always_2d=True)
    assert rate == 8000 and abs(decoded.shape[0] - 8000) < 2000
    with pytest.raises(bn.ParameterError, match="format"):
        encode_audio(np.zeros((1, 10)), 8000, format="aac")


def test_audio_element_is_a_playable_data_uri():
    html = audio_element(np.zeros((2, 8000)), 8000, label="bass <1>")
    src = re.search(r'src="data:audio/ogg;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(src)[:4] == b"OggS"
    assert "bass &lt;1&gt;" in html


def test_five_minute_stems_stay_small():
    stems = five_minute_stems()
    html = stems_html(stems, mix=stems.mix())
    assert html.count("<audio") == 5 and "first 30 s" in html
    assert len(html) < 5_000_000


def test_rich_reprs_show_players():
    mix, truth = bn.demo.load()
    assert truth._repr_html_().count("<audio") == 4
    assert mix._repr_html_().count("<audio") == 1
