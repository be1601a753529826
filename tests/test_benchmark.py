"""Separator.benchmark / bandscope bench: every mode the device runs, timed and compared."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import RATE, noise, tiny_htdemucs

import bandscope_nb as bn
from bandscope_nb.cli import main
from bandscope_nb.separation import onnx_backend
from bandscope_nb.separation.modelfiles import save_safetensors


def test_each_cpu_mode_is_timed_and_compared_with_fp32():
    sep = bn.Separator(tiny_htdemucs(), device="cpu", progress=False)
    result = sep.benchmark((noise(1.0), RATE), seconds=2.5)  # repeated to 2.5 s
    modes = [(r["precision"], r["backend"]) for r in result.rows]
    assert modes == [
        ("fp32", "torch"), ("bf16", "torch"), ("fp32", "onnxruntime"), ("fp32", "openvino"),
    ]  # fmt: skip
    fp32, bf16, *graphs = result.rows
    assert fp32["snr_db"] == float("inf") and 20 < bf16["snr_db"] < 120
    assert all(onnx_backend.MIN_SNR_DB <= r["snr_db"] < float("inf") for r in graphs)
    assert all(r["realtime"] == pytest.approx(2.5 / r["seconds"]) for r in result.rows)
    assert result.audio_seconds == pytest.approx(2.5) and result.device == "cpu"
    text = str(result)
    assert "fp32" in text and "bf16" in text and "fp32 onnxruntime" in text
    assert "fp32 openvino" in text
    assert "reference" in text
    assert "<table>" in result._repr_html_()


def test_benchmark_uses_no_cache_and_checks_its_length(tmp_path):
    sep = bn.Separator(tiny_htdemucs(), device="cpu", cache=tmp_path / "c", progress=False)
    sep.benchmark((np.zeros((2, RATE), np.float32), RATE), seconds=1.0)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("stems.f32"))
    for bad in (0, -1, 601, "10", True):
        with pytest.raises(bn.ParameterError, match="seconds"):
            sep.benchmark((noise(1.0), RATE), seconds=bad)


def test_bench_command_prints_the_table(tmp_path, capsys):
    model = save_safetensors(tiny_htdemucs(), tmp_path / "tiny.safetensors")
    assert main(["bench", "--model", str(model), "--device", "cpu", "--seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "tiny.safetensors on cpu" in out and "bf16" in out and "x real time" in out
    assert main(["bench", "--model", str(model), "--device", "cpu", "--seconds", "0"]) == 2
