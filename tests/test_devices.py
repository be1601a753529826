"""Device choice: auto falls back to the CPU here; absent devices are named in the error."""

from __future__ import annotations

import pytest
import torch

import bandscope_nb as bn
from bandscope_nb.separation.devices import check_precision, default_batch_size


def test_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert bn.resolve_device("auto").type in {expected, "mps"}
    assert bn.resolve_device("CPU") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_absent():
    with pytest.raises(bn.DeviceError, match="no CUDA device"):
        bn.resolve_device("cuda:0")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu", ""])
def test_unknown_names(name):
    with pytest.raises(bn.DeviceError, match="Unknown device"):
        bn.resolve_device(name)


@pytest.mark.parametrize(("gib", "batch"), [(80, 16), (24, 16), (12, 8), (6, 4)])
def test_batch_sizes_follow_gpu_memory(gib, batch, monkeypatch):
    from types import SimpleNamespace

    asked = []

    def properties(device):
        asked.append(device)
        return SimpleNamespace(total_memory=gib * 2**30)

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    assert default_batch_size(torch.device("cuda", 1)) == batch
    assert asked == [torch.device("cuda", 1)]
    assert default_batch_size(torch.device("cpu")) == 1
    assert default_batch_size(torch.device("mps")) == 4


@pytest.mark.parametrize(
    ("device", "ok", "refused"),
    [
        ("cpu", ["fp32", "bf16"], ["tf32", "fp16"]),
        ("mps", ["fp32", "fp16"], ["tf32", "bf16"]),
    ],
)
def test_precisions_each_device_runs(device, ok, refused):
    for precision in ok:
        assert check_precision(torch.device(device), precision) == precision
    for precision in refused:
        with pytest.raises(bn.DeviceError, match=f"precision='{precision}' does not run on"):
            check_precision(torch.device(device), precision)


def test_separator_checks_precision_against_the_device_before_loading():
    with pytest.raises(bn.DeviceError, match=r"fp16.*use one of fp32, bf16"):
        bn.Separator("no-such-model", device="cpu", precision="fp16")
