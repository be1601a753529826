"""demucs' constants cached during a separation: same values, demucs restored afterwards."""

from __future__ import annotations

import threading

import pytest
import torch
from demucs import hdemucs, htdemucs, spec, transformer
from helpers import noise, tiny_htdemucs

from bandscope_nb.separation.demucs_constants import cached_constants

PATCHED = [
    (transformer, "create_2d_sin_embedding"),
    (htdemucs, "spectro"),
    (htdemucs, "ispectro"),
    (hdemucs, "spectro"),
    (hdemucs, "ispectro"),
]


def _current():
    return [getattr(module, name) for module, name in PATCHED]


@pytest.mark.parametrize(("n_fft", "hop", "pad"), [(4096, 1024, 0), (512, None, 0), (256, 64, 1)])
def test_stft_and_inverse_are_bit_identical_to_demucs(n_fft, hop, pad):
    x = torch.from_numpy(noise(0.5)).reshape(1, 2, -1)
    z = spec.spectro(x, n_fft, hop, pad)
    with cached_constants():
        cached_z = htdemucs.spectro(x, n_fft, hop, pad)
        again = htdemucs.spectro(x, n_fft, hop, pad)  # the window now comes from the cache
        back = htdemucs.ispectro(cached_z, hop, x.shape[-1], pad)
    assert torch.equal(z, cached_z) and torch.equal(z, again)
    assert torch.equal(back, spec.ispectro(z, hop, x.shape[-1], pad))


def test_embedding_is_demucs_own_and_made_once():
    with cached_constants():
        first = transformer.create_2d_sin_embedding(16, 4, 30)
        second = transformer.create_2d_sin_embedding(16, 4, 30)
    assert first is second
    assert torch.equal(first, transformer.create_2d_sin_embedding(16, 4, 30))


def test_a_real_model_gives_the_same_output_and_demucs_is_restored():
    model, x = tiny_htdemucs(), torch.from_numpy(noise(1.0))[None]
    before = _current()
    with torch.inference_mode():
        plain = model(x)
        with cached_constants():
            assert all(a is not b for a, b in zip(_current(), before, strict=True))
            with cached_constants():  # re-entrant: the inner exit keeps them in place
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
            with cached_constants():
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
