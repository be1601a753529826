"""demucs' per-call constants made once, so a forward pass on a GPU does not wait for the host.

Each HTDemucs forward pass builds three constant tensors on the CPU and copies them to the
model's device: the transformer's 2-D positional embedding and the STFT and inverse-STFT
windows. A copy from ordinary host memory makes the host wait until the GPU has finished all
the work queued before it, and the embedding takes the host tens of milliseconds to compute
(measured on an H100: about a third of a batch's time, with the GPU idle). Inside
:func:`cached_constants` those functions of demucs keep their results per shape, dtype and
device for the whole process: the values are the ones demucs computes (made by its own code or
the same torch calls, once), so the stems are unchanged.

Examples
--------
>>> import torch
>>> from demucs.htdemucs import HTDemucs
>>> net = HTDemucs(["a", "b"], channels=4, depth=2, nfft=512, t_layers=1, t_heads=1,
...                dconv_mode=0, bottom_channels=0, segment=1).eval()
>>> x = torch.randn(1, 2, 44100)
>>> with torch.inference_mode():
...     plain = net(x)
...     with cached_constants():
...         cached = net(x)
>>> bool(torch.equal(plain, cached))
True
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator

__all__ = ["cached_constants"]

_lock = threading.Lock()
_users = 0
_saved: list = []
_embedding = None  # demucs' own create_2d_sin_embedding behind a cache, made on first use


@functools.lru_cache(maxsize=16)
def _window(n: int, device, dtype):
    """``torch.hann_window(n)`` moved to ``device`` and ``dtype`` (what ``.to(like)`` does)."""
    import torch

    return torch.hann_window(n).to(device=device, dtype=dtype)


def _like_window(n: int, like):
    """The window demucs makes with ``torch.hann_window(n).to(like)``, made once per process."""
    return _window(n, like.device, like.dtype)


def _spectro(x, n_fft=512, hop_length=None, pad=0):
    """demucs.spec.spectro with its window from :func:`_like_window` (the same torch call)."""
    import torch
    from demucs import spec

    if x.device.type in ("mps", "xpu"):  # demucs moves these to the CPU first
        return spec.spectro(x, n_fft, hop_length, pad)
    *other, length = x.shape
    x = x.reshape(-1, length)
    z = torch.stft(
        x,
        n_fft * (1 + pad),
        hop_length or n_fft // 4,
        window=_like_window(n_fft, x),
        win_length=n_fft,
        normalized=True,
        center=True,
        return_complex=True,
        pad_mode="reflect",
    )
    return z.view(*other, *z.shape[1:])


def _ispectro(z, hop_length=None, length=None, pad=0):
    """demucs.spec.ispectro with its window from :func:`_like_window` (the same torch call)."""
    import torch
    from demucs import spec

    if z.device.type in ("mps", "xpu"):
        return spec.ispectro(z, hop_length, length, pad)
    *other, freqs, frames = z.shape
    n_fft = 2 * freqs - 2
    win_length = n_fft // (1 + pad)
    x = torch.istft(
        z.view(-1, freqs, frames),
        n_fft,
        hop_length,
        window=_like_window(win_length, z.real),
        win_length=win_length,
        normalized=True,
        length=length,
        center=True,
    )
    return x.view(*other, x.shape[-1])


def _patches():
    """(module, attribute, replacement) for each demucs function made constant-caching."""
    from demucs import hdemucs, htdemucs, transformer

    global _embedding
    if _embedding is None:
        _embedding = functools.lru_cache(maxsize=16)(transformer.create_2d_sin_embedding)
    patches = [(transformer, "create_2d_sin_embedding", _embedding)]
    for module in (hdemucs, htdemucs):
        patches += [(module, "spectro", _spectro), (module, "ispectro", _ispectro)]
    return patches


@contextlib.contextmanager
def cached_constants() -> Iterator[None]:
    """Within this block, demucs' models reuse their positional embedding and STFT windows.

    Re-entrant and thread-safe: the first user installs the caching functions, the last one
    restores demucs' own. The caches stay for the process (a few MB per device), so the next
    separation finds them made.
    """
    global _users
    with _lock:
        if _users == 0:
            for module, name, replacement in _patches():
                _saved.append((module, name, getattr(module, name)))
                setattr(module, name, replacement)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                while _saved:
                    module, name, original = _saved.pop()
                    setattr(module, name, original)
