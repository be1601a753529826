"""Device choice: auto falls back to the CPU here; absent devices are named in the error."""

from __future__ import annotations

import pytest
import torch

import bandscope_nb as bn
from bandscope_nb.devices import default_batch_size


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


def test_batch_sizes():
    assert default_batch_size(torch.device("cpu")) == 1
    assert default_batch_size(torch.device("cuda", 0)) > 1
