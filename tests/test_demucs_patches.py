"""What demucs runs differently during a separation (constants made once, no host waits, group
norms by reduction): the same values as demucs' and torch's, demucs restored afterwards."""

from __future__ import annotations

import threading

import pytest
import torch
from demucs import hdemucs, htdemucs, spec, transformer
from helpers import noise, snr_db, tiny_htdemucs

from bandscope_nb.separation.demucs_patches import (
    group_norm_by_reduction,
    group_norms_by_reduction,
    istft_without_wait,
    without_host_waits,
)

PATCHED = [
    (transformer, "create_2d_sin_embedding"),
    (htdemucs, "spectro"),
    (htdemucs, "ispectro"),
    (hdemucs, "spectro"),
    (hdemucs, "ispectro"),
    (htdemucs, "pad1d"),
    (hdemucs, "pad1d"),
]


def _current():
    return [getattr(module, name) for module, name in PATCHED]


@pytest.mark.parametrize(("n_fft", "hop", "pad"), [(4096, 1024, 0), (512, None, 0), (256, 64, 1)])
def test_stft_and_inverse_are_bit_identical_to_demucs(n_fft, hop, pad):
    x = torch.from_numpy(noise(0.5)).reshape(1, 2, -1)
    z = spec.spectro(x, n_fft, hop, pad)
    with without_host_waits():
        cached_z = htdemucs.spectro(x, n_fft, hop, pad)
        again = htdemucs.spectro(x, n_fft, hop, pad)  # the window now comes from the cache
        back = htdemucs.ispectro(cached_z, hop, x.shape[-1], pad)
    assert torch.equal(z, cached_z) and torch.equal(z, again)
    assert torch.equal(back, spec.ispectro(z, hop, x.shape[-1], pad))


@pytest.mark.filterwarnings("ignore:The length of signal is shorter")
@pytest.mark.parametrize(
    ("n_fft", "hop", "win", "length"),
    [(4096, 1024, 4096, 8820), (512, 128, 256, 8000), (256, 64, 256, 9000), (256, 64, 256, 3000)],
)
def test_istft_without_wait_equals_torch_istft(n_fft, hop, win, length):
    x = torch.from_numpy(noise(0.2)).reshape(2, -1)
    window = torch.hann_window(win)
    kw = dict(window=window, win_length=win, normalized=True, center=True)
    z = torch.stft(x, n_fft, hop, return_complex=True, **kw)
    # 9000 asks for more samples than the frames hold (8896): both end with zeros
    expected = torch.istft(z, n_fft, hop, length=length, **kw)
    ours = istft_without_wait(z, n_fft, hop, length=length, **kw)
    again = istft_without_wait(z, n_fft, hop, length=length, **kw)  # envelope from the cache
    assert ours.shape == expected.shape == (2, length)
    assert torch.equal(ours, again)
    err = (ours - expected).abs().max().item()
    assert err < 1e-6 * expected.abs().max().item()
    assert not torch.equal(ours, torch.zeros_like(ours))


def test_istft_without_wait_refuses_what_torch_refuses():
    z = torch.stft(torch.randn(1, 4000), 256, 256, window=torch.ones(256), return_complex=True)
    with pytest.raises(RuntimeError, match="overlap-add is zero"):
        # a window whose ends are zero, frames that do not overlap: NOLA fails
        istft_without_wait(
            z, 256, 256, window=torch.hann_window(256), normalized=False, length=4000, center=True
        )
    with pytest.raises(ValueError, match="center=True"):
        istft_without_wait(
            z, 256, 256, window=torch.ones(256), normalized=False, length=None, center=True
        )


@pytest.mark.parametrize(
    ("length", "paddings", "mode"),
    [
        (100, (30, 20), "reflect"),
        (10, (3, 40), "reflect"),
        (5, (8, 2), "reflect"),
        (50, (7, 9), "constant"),
    ],
)
def test_pad1d_is_demucs_own_values(length, paddings, mode):
    x = torch.randn(2, 3, length)
    with without_host_waits():
        ours = htdemucs.pad1d(x, paddings, mode)
    assert torch.equal(ours, hdemucs.pad1d(x, paddings, mode))


def test_embedding_is_demucs_own_and_made_once():
    with without_host_waits():
        first = transformer.create_2d_sin_embedding(16, 4, 30)
        second = transformer.create_2d_sin_embedding(16, 4, 30)
    assert first is second
    assert torch.equal(first, transformer.create_2d_sin_embedding(16, 4, 30))


def test_a_real_model_gives_the_same_output_and_demucs_is_restored():
    model, x = tiny_htdemucs(), torch.from_numpy(noise(1.0))[None]
    before = _current()
    with torch.inference_mode():
        plain = model(x)
        with without_host_waits():
            assert all(a is not b for a, b in zip(_current(), before, strict=True))
            with without_host_waits():  # re-entrant: the inner exit keeps them in place
                nested = model(x)
            assert all(a is not b for a, b in zip(_current(), before, strict=True))
            cached = model(x)
    assert _current() == before
    assert torch.equal(plain, cached) and torch.equal(plain, nested)


def test_threads_overlapping_leave_demucs_restored():
    before, errors = _current(), []
    barrier = threading.Barrier(4)

    def use():
        try:
            with without_host_waits():
                barrier.wait(timeout=10)
                htdemucs.spectro(torch.ones(1, 1024), 256)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and _current() == before


@pytest.mark.parametrize(
    ("shape", "groups", "affine"),
    [((3, 8, 1000), 1, True), ((2, 48, 64, 10), 4, True), ((2, 6, 300), 3, False)],
)
def test_group_norm_by_reduction_equals_torchs(shape, groups, affine):
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(groups, shape[1], affine=affine)
    if affine:
        torch.nn.init.normal_(norm.weight)
        torch.nn.init.normal_(norm.bias)
    x = torch.randn(shape) * 3 + 1
    with torch.no_grad():
        ours, torchs = group_norm_by_reduction(norm, x), norm(x)
    assert ours.dtype == torchs.dtype and ours.shape == torchs.shape
    assert torch.allclose(ours, torchs, atol=2e-5), (ours - torchs).abs().max()


def test_a_models_group_norms_replaced_for_the_block_then_restored():
    torch.manual_seed(0)
    # small, with every kind of norm HTDemucs has: encoder/decoder GroupNorm(4), DConv's
    # GroupNorm(1), the transformer's MyGroupNorm
    model = htdemucs.HTDemucs(
        ["drums", "bass"],
        channels=8,
        depth=2,
        nfft=512,
        t_layers=1,
        t_heads=1,
        norm_starts=0,
        dconv_mode=3,
        dconv_comp=4,
        bottom_channels=0,
        segment=1,
    ).eval()
    x = torch.from_numpy(noise(1.0))[None]
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    own = norms[0]
    own.forward = own.forward  # an instance forward of its own is left alone
    with torch.inference_mode():
        plain = model(x)
        with group_norms_by_reduction([model]) as replaced:
            fast = model(x)
            kinds = {type(m).__name__ for m in norms if "forward" in vars(m) and m is not own}
    assert replaced == len(norms) - 1 and kinds == {"GroupNorm", "MyGroupNorm"}
    assert [m for m in norms if "forward" in vars(m)] == [own]
    assert snr_db(plain.numpy(), fast.numpy()) > 100
    assert not torch.equal(plain, fast)  # the other arithmetic ran
