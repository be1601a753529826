"""What demucs runs differently during a separation, so a GPU never waits for the host.

- :func:`without_host_waits`: each HTDemucs forward pass builds three constant tensors on the CPU
  and copies them to the model's device: the transformer's 2-D positional embedding and the
  STFT and inverse-STFT windows. A copy from ordinary host memory makes the host wait until
  the GPU has finished all the work queued before it, and the embedding takes the host tens of
  milliseconds (measured on an H100: a third of a batch's time, the GPU idle). Within the
  block those functions keep their results per shape, dtype and device for the process (made
  by demucs' own code or the same torch calls, once). The same block gives demucs a ``pad1d``
  without its on-device self-check, and on CUDA :func:`istft_without_wait` in place of
  ``torch.istft``: both made the host wait for the GPU at every forward pass.
- :func:`group_norms_by_reduction`: on CUDA a model's group norms computed by
  :func:`group_norm_by_reduction`, which keeps the whole GPU busy where torch's kernel did not.

The stems are the same: bit for bit for the constants and ``pad1d``, to float rounding for the
inverse STFT and the group norms (tested against torch's).

Examples
--------
>>> import torch
>>> from demucs.htdemucs import HTDemucs
>>> net = HTDemucs(["a", "b"], channels=4, depth=2, nfft=512, t_layers=1, t_heads=1,
...                dconv_mode=0, bottom_channels=0, segment=1).eval()
>>> x = torch.randn(1, 2, 44100)
>>> with torch.inference_mode():
...     plain = net(x)
...     with without_host_waits():
...         cached = net(x)
>>> bool(torch.equal(plain, cached))
True
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator

__all__ = [
    "group_norm_by_reduction",
    "group_norms_by_reduction",
    "istft_without_wait",
    "without_host_waits",
]

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
    """demucs.spec.ispectro with its window from :func:`_like_window` (the same torch call);
    on CUDA through :func:`istft_without_wait`, which does not stop the host."""
    import torch
    from demucs import spec

    if z.device.type in ("mps", "xpu"):
        return spec.ispectro(z, hop_length, length, pad)
    *other, freqs, frames = z.shape
    n_fft = 2 * freqs - 2
    win_length = n_fft // (1 + pad)
    istft = istft_without_wait if z.device.type == "cuda" else torch.istft
    x = istft(
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


def _overlap_add(frames, hop: int):
    """Frames ``(batch, count, n)`` laid ``hop`` apart and summed into ``(batch, total)``."""
    import torch.nn.functional as F

    batch, count, n = frames.shape
    total = n + hop * (count - 1)
    out = F.fold(frames.transpose(1, 2), (1, total), kernel_size=(1, n), stride=(1, hop))
    return out.view(batch, total)


@functools.lru_cache(maxsize=32)
def _envelope(window, n_fft: int, hop: int, count: int, start: int, end: int):
    """The window centred in ``n_fft`` samples, and the overlap-added squared window that
    ``torch.istft`` divides by (samples ``start`` to ``end``), made once per window and shape
    on the window's device. Checked on the host when made: ``torch.istft`` makes that check at
    every call, with a wait for the GPU."""
    import torch.nn.functional as F

    left = (n_fft - window.shape[-1]) // 2
    full = F.pad(window, (left, n_fft - window.shape[-1] - left))
    envelope = _overlap_add((full.cpu() ** 2).expand(1, count, -1), hop)[0, start:end]
    if bool((envelope.abs() < 1e-11).any()):
        raise RuntimeError("istft: the window's overlap-add is zero somewhere (NOLA not met)")
    return full, envelope.to(window.device)


def istft_without_wait(
    z, n_fft, hop_length=None, *, window, win_length=None, normalized, length, center
):
    """``torch.istft`` for a onesided complex ``(batch, freqs, frames)`` input and a given
    ``length``, without the host waiting for the device.

    ``torch.istft`` checks its window's overlap-add on the host at every call, which stops the
    host until the GPU has done all the work queued before it; here that check is made once
    per shape (:func:`_envelope`) and the same steps run on the device: an inverse real FFT
    of each frame, the window, overlap-add, division by the summed squared window, the centre
    padding trimmed. Equal to ``torch.istft`` up to float rounding (summation order).

    Examples
    --------
    >>> import torch
    >>> z = torch.stft(torch.randn(2, 8000), 512, 128, window=torch.hann_window(512),
    ...                return_complex=True, normalized=True)
    >>> kw = dict(window=torch.hann_window(512), win_length=512, normalized=True,
    ...           length=8000, center=True)
    >>> ours, torchs = istft_without_wait(z, 512, 128, **kw), torch.istft(z, 512, 128, **kw)
    >>> bool(torch.allclose(ours, torchs, atol=1e-6))
    True
    """
    import torch
    import torch.nn.functional as F

    hop = hop_length or n_fft // 4
    if not center or length is None or window is None:
        raise ValueError("istft_without_wait needs center=True, a length and a window")
    if win_length is not None and win_length != window.shape[-1]:
        raise ValueError(f"window has {window.shape[-1]} samples, win_length is {win_length}")
    frames = torch.fft.irfft(z.transpose(1, 2), n=n_fft, norm="ortho" if normalized else None)
    start, total = n_fft // 2, n_fft + hop * (z.shape[-1] - 1)
    end = min(start + length, total)
    full, envelope = _envelope(window, n_fft, hop, z.shape[-1], start, end)
    y = _overlap_add(frames * full, hop)[:, start:end] / envelope
    return F.pad(y, (0, length - y.shape[-1])) if y.shape[-1] < length else y


def _pad1d(x, paddings, mode="constant", value=0.0):
    """demucs.hdemucs.pad1d without its check that the padded tensor holds the input: the
    check compares the two on the device and makes the host wait for the GPU, and what it
    checks is ``F.pad``'s definition. The same padding, so the same values."""
    import torch.nn.functional as F

    length = x.shape[-1]
    left, right = paddings
    if mode == "reflect" and length <= max(left, right):  # demucs' zeros first: reflect needs them
        extra = max(left, right) - length + 1
        extra_right = min(right, extra)
        extra_left = extra - extra_right
        paddings = (left - extra_left, right - extra_right)
        x = F.pad(x, (extra_left, extra_right))
    out = F.pad(x, paddings, mode, value)
    assert out.shape[-1] == length + left + right
    return out


def _patches():
    """(module, attribute, replacement) for each demucs function replaced by
    :func:`without_host_waits`."""
    from demucs import hdemucs, htdemucs, transformer

    global _embedding
    if _embedding is None:
        _embedding = functools.lru_cache(maxsize=16)(transformer.create_2d_sin_embedding)
    patches = [(transformer, "create_2d_sin_embedding", _embedding)]
    for module in (hdemucs, htdemucs):
        patches += [(module, "spectro", _spectro), (module, "ispectro", _ispectro)]
        patches += [(module, "pad1d", _pad1d)]
    return patches


@contextlib.contextmanager
def without_host_waits() -> Iterator[None]:
    """Within this block, demucs' models reuse their positional embedding and STFT windows,
    pad without checking ``F.pad`` on the device, and on CUDA invert their STFTs with
    :func:`istft_without_wait`: a forward pass no longer makes the host wait for the GPU.

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


def _autocast_on(x) -> bool:
    import torch

    try:
        return torch.is_autocast_enabled(x.device.type)
    except TypeError:  # torch < 2.4: the question is asked for CUDA only
        return torch.is_autocast_enabled()


def group_norm_by_reduction(norm, x):
    """``norm(x)`` for a :class:`torch.nn.GroupNorm`, its statistics made by a reduction.

    On CUDA ``F.group_norm`` gives each (sample, group) row one thread block: demucs' norms
    have one to four groups over up to millions of values, so a batch of 16 keeps 16 to 64
    blocks busy on a GPU with over a hundred multiprocessors (measured on an H100: 42 % of an
    HTDemucs forward pass). Here :func:`torch.var_mean` spreads each row over the whole GPU
    and the normalisation with its affine weights is one multiply-add, as in ``F.group_norm``
    (float32 arithmetic, float32 out under autocast). Equal up to float rounding.

    Examples
    --------
    >>> import torch
    >>> norm, x = torch.nn.GroupNorm(2, 6), torch.randn(3, 6, 50)
    >>> bool(torch.allclose(group_norm_by_reduction(norm, x), norm(x), atol=1e-5))
    True
    """
    import torch

    n, c, groups = x.shape[0], x.shape[1], norm.num_groups
    x32 = x.float()
    var, mean = torch.var_mean(x32.reshape(n, groups, -1), dim=-1, correction=0)
    per = (n, groups, c // groups)  # each group's numbers for each of its channels
    scale = torch.rsqrt(var + norm.eps)[..., None].expand(per).reshape(n, c)
    shift = -mean[..., None].expand(per).reshape(n, c) * scale
    if norm.affine:
        shift = shift * norm.weight.float() + norm.bias.float()
        scale = scale * norm.weight.float()
    view = (n, c) + (1,) * (x.dim() - 2)
    y = torch.addcmul(shift.view(view), x32, scale.view(view))
    return y if _autocast_on(x) else y.to(x.dtype)


def _transposed_group_norm(norm, x):
    """demucs' transformer ``MyGroupNorm``: a group norm over ``(batch, time, channels)``."""
    return group_norm_by_reduction(norm, x.transpose(1, 2)).transpose(1, 2)


@contextlib.contextmanager
def group_norms_by_reduction(models) -> Iterator[int]:
    """Within this block, the group norms of ``models`` run :func:`group_norm_by_reduction`.

    Each :class:`torch.nn.GroupNorm` (and demucs' transposing ``MyGroupNorm``) gets the new
    ``forward`` on the instance, removed on exit; a norm that already has one of its own is
    left alone. Yields how many norms it replaced.
    """
    import torch
    from demucs.transformer import MyGroupNorm

    replaced = []
    for model in models:
        for module in model.modules():
            if "forward" in vars(module):
                continue
            if type(module) is torch.nn.GroupNorm:
                fn = functools.partial(group_norm_by_reduction, module)
            elif type(module) is MyGroupNorm:
                fn = functools.partial(_transposed_group_norm, module)
            else:
                continue
            module.forward = fn
            replaced.append((module, fn))
    try:
        yield len(replaced)
    finally:
        for module, fn in replaced:
            if vars(module).get("forward") is fn:
                del module.forward
