"""Chunked separation: overlap-add with bounded memory.

The maths is demucs' ``apply_model`` (``demucs/apply.py``): chunks of ``segment`` seconds every
``(1 - overlap) * segment``, each padded with real context to the model's valid length, centre
trimmed, weighted by a triangle and normalised by the summed weights; bags of models are averaged
with per-source weights; ``shifts`` average over random time offsets of up to 0.5 s. Differences:

- overlap-add happens on the model's device; finished regions go to a
  :class:`~bandscope_nb.separation.streams.StemWriter` on disk, so memory does not grow with
  track length (``apply_model`` allocates the whole output). Copying them to the host,
  checking and writing them runs on a worker thread beside the network (:class:`_Drain`),
  and on CUDA chunks go up from pinned memory without waiting, so the host never stops the
  GPU between batches;
- several chunks whose network input has one length go through the network in one batch;
- demucs runs with the changes of :mod:`~bandscope_nb.separation.demucs_patches` (constants
  made once, no host waits inside a forward pass, on CUDA group norms that fill the GPU);
- a chunk whose network input is exact silence is not run through a model that provably
  returns silence for it (:func:`~.model_rules.keeps_silence`): its output is those zeros;
- the shift offsets come from a seeded RNG, so results are repeatable (and cacheable);
- progress and abort go through a plain callback, with no UI here.
"""

from __future__ import annotations

import contextlib
import functools
import random
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import DeviceError, ParameterError, SeparationError
from .demucs_patches import group_norms_by_reduction, without_host_waits
from .model_rules import keeps_silence
from .streams import Source, StemWriter

__all__ = ["Pass", "plan_passes", "separate_stream"]


@dataclass(frozen=True)
class Pass:
    """One overlap-add sweep of one model over the signal.

    ``start`` is where the sweep begins relative to the signal (negative with a shift), ``scale``
    the factor per source it contributes with (bag weight / total / shifts).
    """

    model_index: int
    start: int
    scale: tuple[float, ...]


def plan_passes(parts, frames: int, *, shifts: int = 0, seed: int = 0) -> list[Pass]:
    """List the sweeps for ``parts`` in ``apply_model``'s order, drawing shifts from ``seed``.

    With ``shifts=0`` there is one sweep per model starting at 0. Otherwise each model gets
    ``shifts`` sweeps starting at ``offset - max_shift`` with ``offset`` drawn uniformly from
    ``0..max_shift`` (``max_shift`` = 0.5 s), exactly as ``apply_model`` draws them from Python's
    ``random`` module, so seeding ``random`` with the same seed reproduces its result.

    Examples
    --------
    >>> from demucs.hdemucs import HDemucs
    >>> net = HDemucs(["a", "b"], channels=4, depth=2, nfft=64)
    >>> plan_passes([(net, [1.0, 1.0])], 1000)
    [Pass(model_index=0, start=0, scale=(1.0, 1.0))]
    """
    totals = [sum(col) for col in zip(*(w for _, w in parts), strict=True)]
    rng = random.Random(seed)
    passes = []
    for index, (model, weights) in enumerate(parts):
        for _ in range(max(shifts, 1)):
            start = 0
            if shifts:
                max_shift = int(0.5 * model.samplerate)
                start = rng.randint(0, max_shift) - max_shift
            scale = tuple(w / t / max(shifts, 1) for w, t in zip(weights, totals, strict=True))
            passes.append(Pass(index, start, scale))
    return passes


@functools.lru_cache(maxsize=8)
def _triangle(length: int, power: float = 1.0, device=None):
    """``apply_model``'s transition weight: a triangle peaking mid-segment, to ``power``, on
    ``device`` (made once per length, power and device)."""
    import torch

    weight = torch.cat(
        [torch.arange(1, length // 2 + 1), torch.arange(length - length // 2, 0, -1)]
    )
    return ((weight / weight.max()) ** power).to(device)


class _OverlapAdd:
    """Weighted accumulation over a sliding window, on the model's device.

    Chunks are added where the network left them (no copy to the host per chunk). Frames no
    later chunk can reach are normalised by their summed weight and kept on the device until
    at least ``block`` frames are finished; then they go to the :class:`_Drain` in one piece.
    """

    def __init__(self, drain: _Drain, scale, frames: int, start: int, *, device, block):
        import torch

        self.drain, self.frames, self.start, self.block = drain, frames, start, block
        self.scale = torch.tensor(scale, dtype=torch.float32, device=device)[:, None, None]
        sources, channels, _ = drain.writer.shape
        self.acc = torch.zeros((sources, channels, 0), device=device)  # frames from self.start
        self.wsum = torch.zeros(0, device=device)
        self.done: list = []  # finished frames on the device, from self.done_at
        self.done_at, self.done_frames = start, 0

    def add(self, at: int, chunk, weight) -> None:
        self._finish(at)  # nothing before ``at`` can change any more
        end = at + chunk.shape[-1]
        grow = end - (self.start + self.wsum.shape[0])
        if grow > 0:
            self.acc = _cat(self.acc, self.acc.new_zeros((*self.acc.shape[:2], grow)))
            self.wsum = _cat(self.wsum, self.wsum.new_zeros(grow))
        lo, hi = at - self.start, end - self.start
        self.acc[..., lo:hi] += weight * chunk
        self.wsum[lo:hi] += weight

    def flush(self, until: int) -> None:
        """Finish every frame before ``until`` and copy all finished frames to the writer."""
        self._finish(until)
        self._copy()

    def _finish(self, until: int) -> None:
        n = min(until - self.start, self.wsum.shape[0])
        if n <= 0:
            return
        self.done.append(self.acc[..., :n] / self.wsum[:n] * self.scale)
        self.done_frames += n
        self.acc, self.wsum = self.acc[..., n:].clone(), self.wsum[n:].clone()
        self.start += n
        if self.done_frames >= self.block:
            self._copy()

    def _copy(self) -> None:
        if not self.done:
            return
        block = _cat(*self.done)
        first = self.done_at
        self.done, self.done_at, self.done_frames = [], first + block.shape[-1], 0
        lo, hi = max(first, 0), min(first + block.shape[-1], self.frames)
        if hi > lo:
            self.drain.put(lo, block[..., lo - first : hi - first])


class _Drain:
    """Finished regions from the device to the :class:`StemWriter`, on one worker thread.

    On CUDA each region is copied into pinned host memory without waiting (its device memory
    is free for the next batch at once) and the worker waits for that copy alone; elsewhere
    the region is already on the host. The worker checks each region for NaN/Inf and writes
    it, in the order given. At most ``depth`` regions wait at once (bounded host memory). An
    error on the worker (a non-finite region, a failed write) comes back to the caller at the
    next :meth:`put` or at :meth:`close`; after it nothing more is written, so NaN stems never
    reach a file or the cache.
    """

    def __init__(self, writer: StemWriter, depth: int = 16):
        self.writer, self.depth = writer, depth
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="bandscope-drain")
        self.pending: deque = deque()
        self.failed = False

    def put(self, start: int, region) -> None:
        import torch

        copied = None
        if region.device.type == "cuda":
            host = torch.empty(region.shape, dtype=region.dtype, pin_memory=True)
            host.copy_(region, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record()
            region = host
        while len(self.pending) >= self.depth:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self._write, start, region, copied))

    def _write(self, start: int, region, copied) -> None:
        if self.failed:
            return
        if copied is not None:
            copied.synchronize()
        host = region.cpu().numpy()
        if not np.isfinite(host).all():
            self.failed = True
            raise _NonFinite()
        try:
            self.writer.add(start, host)
        except BaseException:
            self.failed = True
            raise

    def close(self) -> None:
        """Wait for every region given and re-raise the first error; the worker then ends.
        Called on every exit (after an abort too): nothing is written once this returns."""
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.failed = True  # regions still queued after an error are skipped
            self.pool.shutdown(wait=True)


def _cat(*tensors):
    """Concatenate along time (the last axis)."""
    import torch

    return torch.cat(tensors, dim=-1)


class _NonFinite(Exception):
    """The network produced NaN or Inf (turned into a :class:`SeparationError` naming it)."""


def _valid_length(model, chunk: int, segment: float | None) -> int:
    from demucs.htdemucs import HTDemucs

    # a model run by another backend (onnx_backend.OnnxHTDemucs) is sized as its torch model
    if isinstance(getattr(model, "wrapped", model), HTDemucs) and segment is not None:
        return int(segment * model.samplerate)
    if hasattr(model, "valid_length"):
        return int(model.valid_length(chunk))
    return chunk


def _center_trim(out, length: int):
    """The centre ``length`` frames of a chunk's output (a tensor)."""
    delta = out.shape[-1] - length
    if delta < 0:
        raise ParameterError(f"The model returned {out.shape[-1]} frames for {length} in.")
    return out[..., delta // 2 : delta // 2 + length]


_AUTOCAST = {"bf16": "bfloat16", "fp16": "float16"}


@contextlib.contextmanager
def _precision(device, precision: str):
    """The arithmetic a forward pass runs in (:data:`.config.PRECISIONS`).

    ``"fp32"`` is IEEE float32 everywhere: on CUDA, cuDNN's convolutions default to TF32 (10-bit
    mantissa), so they are switched to IEEE for the pass; ``"tf32"`` runs convolutions and
    matrix products in TF32 (what torch does for convolutions by default). ``"bf16"`` and
    ``"fp16"`` use ``torch.autocast``: only the matrix work runs in the reduced type; demucs
    rescales the network's output by the input's float32 mean and std before the inverse STFT,
    so the STFT, the masks and the stems stay float32.
    """
    import torch

    if precision in _AUTOCAST:
        with torch.autocast(device.type, dtype=getattr(torch, _AUTOCAST[precision])):
            yield
        return
    if device.type != "cuda":
        yield
        return
    flags, (tf32, ieee) = _tf32_flags(torch)
    saved = [getattr(obj, name) for obj, name in flags]
    for obj, name in flags:
        setattr(obj, name, tf32 if precision == "tf32" else ieee)
    try:
        yield
    finally:
        for (obj, name), value in zip(flags, saved, strict=True):
            setattr(obj, name, value)


@contextlib.contextmanager
def _cpu_layout(parts, device):
    """On the CPU: Demucs' 2-D convolutions with channels-last weights, and attention through
    ``scaled_dot_product_attention`` rather than ``nn.MultiheadAttention``'s fast path.

    Measured side by side on 2 cores with a full-size HTDemucs (docs/benchmarks.md): the fast
    path computes self-attention as plain batched matrix products over the whole 2688 x 2688
    score matrix, and oneDNN runs the frequency branch's convolutions faster channels-last;
    together about 1.2x, at 126 dB from the plain forward pass. The weights keep their values
    (only their memory layout changes, in place); the fast-path switch is restored afterwards.
    """
    import torch

    if device.type != "cpu":
        yield
        return
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    for model, _ in parts:
        if isinstance(model, (HDemucs, HTDemucs)):
            # weights made in inference mode can only be replaced in inference mode; others
            # are converted outside it, so they stay trainable and exportable
            inference = any(p.is_inference() for p in model.parameters())
            with torch.inference_mode(inference):
                model.to(memory_format=torch.channels_last)
    mha = torch.backends.mha
    fast = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(fast)


@contextlib.contextmanager
def _cuda_norms(parts, device):
    """On CUDA: the models' group norms by reduction (:func:`.group_norm_by_reduction`;
    measured on an H100 with a full-size HTDemucs: torch's own took 42 % of a forward pass)."""
    if device.type != "cuda":
        yield
        return
    with group_norms_by_reduction([model for model, _ in parts]):
        yield


def _tf32_flags(torch):
    """torch's switches between TF32 and IEEE float32 on CUDA, and their two values.

    torch >= 2.9 has one ``fp32_precision`` per backend (the legacy ``allow_tf32`` flags must not
    be mixed with it); older versions have only ``allow_tf32``.
    """
    b = torch.backends
    if hasattr(getattr(b.cudnn, "conv", None), "fp32_precision"):
        flags = [(b.cudnn.conv, "fp32_precision"), (b.cudnn.rnn, "fp32_precision")]
        return [*flags, (b.cuda.matmul, "fp32_precision")], ("tf32", "ieee")
    return [(b.cudnn, "allow_tf32"), (b.cuda.matmul, "allow_tf32")], (True, False)


class _Forward:
    """Runs batches through a model; on CUDA out-of-memory halves the batch and warns."""

    def __init__(self, batch_size: int, device, precision: str = "fp32"):
        self.batch_size, self.device, self.precision = batch_size, device, precision

    def __call__(self, model, batch, silent=()):
        """The model's float32 output for ``batch`` (a host tensor), as a tensor on the device.
        Rows flagged in ``silent`` (exact silence, for a model that keeps it) are not run:
        their output is zeros, as the model's would be."""
        import torch

        if not any(silent):
            return self._run(model, batch)
        out = torch.zeros((len(batch), len(model.sources), *batch.shape[1:]), device=self.device)
        loud = [i for i, quiet in enumerate(silent) if not quiet]
        if loud:
            # the loud rows moved to the front of the same (pinned) buffer, so their copy to
            # the device need not wait; the results placed back row by row, with no index
            # tensor to send up
            batch[: len(loud)] = batch[loud]
            for row, result in zip(loud, self._run(model, batch[: len(loud)]), strict=True):
                out[row] = result
        return out

    def _run(self, model, batch):
        import torch

        oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
        outs, i = [], 0
        while i < len(batch):
            part = batch[i : i + self.batch_size]
            try:
                with _precision(self.device, self.precision):
                    x = part.to(self.device, non_blocking=part.is_pinned())
                    outs.append(model(x).float())
                i += len(part)
            except oom as exc:
                if self.batch_size == 1:
                    raise DeviceError(
                        f"Out of memory on {self.device} even with batch_size=1; use a shorter "
                        "segment or device='cpu'."
                    ) from exc
                self.batch_size //= 2
                torch.cuda.empty_cache()
                warnings.warn(
                    f"Out of memory on {self.device}; retrying with batch_size={self.batch_size}.",
                    stacklevel=2,
                )
        return torch.cat(outs)

    def host_batch(self, size: int, channels: int, frames: int):
        """An empty ``(size, channels, frames)`` host tensor to read a batch into; for CUDA in
        pinned memory, whose copy to the device need not wait (a copy from ordinary memory
        waits for the GPU to finish all the work queued before it)."""
        import torch

        pinned = self.device.type == "cuda"
        return torch.empty((size, channels, frames), dtype=torch.float32, pin_memory=pinned)


def separate_stream(
    parts,
    source: Source,
    writer: StemWriter,
    *,
    device,
    segment: float | None = None,
    overlap: float = 0.25,
    shifts: int = 0,
    seed: int = 0,
    batch_size: int = 1,
    precision: str = "fp32",
    transition_power: float = 1.0,
    progress: Callable[[float], None] | None = None,
) -> None:
    """Separate ``source`` with ``parts`` into ``writer``, holding only a few chunks in memory.

    Parameters
    ----------
    parts : list of (torch.nn.Module, list of float)
        Models (already on ``device``) with their per-source weights.
    source : Source
        ``(channels, frames)`` input at the models' sample rate.
    writer : StemWriter
        Receives ``(sources, channels, frames)``.
    device : torch.device
    segment : float or None
        Chunk length in seconds; ``None`` uses each model's own.
    overlap : float
        Fraction of a chunk shared with the next, in ``[0, 1)``.
    shifts, seed : int
        Number of random shifts (0 = none) and the seed they are drawn from.
    batch_size : int
        Chunks per forward pass.
    precision : {"fp32", "tf32", "bf16", "fp16"}
        Arithmetic of the network (see :data:`~bandscope_nb.separation.config.PRECISIONS`).
    transition_power : float
        Sharpness of the cross-fade (``>= 1``).
    progress : callable or None
        Called with the seconds of audio just finished; may raise to abort.

    Examples
    --------
    >>> import numpy as np, torch, tempfile, pathlib
    >>> from demucs.hdemucs import HDemucs
    >>> from bandscope_nb.separation.streams import ArraySource, StemWriter
    >>> net = HDemucs(["a", "b"], channels=4, depth=2, nfft=64, segment=1).eval()
    >>> writer = StemWriter(pathlib.Path(tempfile.mkdtemp()) / "out.f32", 2, 2, 50_000)
    >>> separate_stream([(net, [1.0, 1.0])], ArraySource(np.zeros((2, 50_000), np.float32)),
    ...                 writer, device=torch.device("cpu"))
    >>> writer.close()
    """
    import torch

    forward = _Forward(batch_size, device, precision)
    drain = _Drain(writer)
    model = None
    try:
        # the layout change comes first: weights converted in inference mode would become
        # inference tensors, which the caller could no longer train or export
        with without_host_waits(), _cpu_layout(parts, device), _cuda_norms(parts, device):
            with torch.inference_mode():
                for p in plan_passes(parts, source.frames, shifts=shifts, seed=seed):
                    model = parts[p.model_index][0]
                    _sweep(
                        model,
                        p,
                        source,
                        drain,
                        forward,
                        segment,
                        overlap,
                        transition_power,
                        progress,
                    )
        drain.close()
    except _NonFinite:
        raise SeparationError(
            f"{type(model).__name__} produced NaN or Inf on {device}; nothing was kept. "
            "Check the input's level and the model's weights."
        ) from None
    finally:
        with contextlib.suppress(Exception):  # the error in flight is the one to report
            drain.close()


#: Finished frames cross from the device to the host in blocks of this many seconds (short:
#: the last block is copied and written after the network is done, while nothing overlaps it).
_COPY_SECONDS = 10


def _read_ahead(items):
    """Iterate over ``items`` with the next one produced on a worker thread meanwhile."""
    with ThreadPoolExecutor(1, thread_name_prefix="bandscope-read") as pool:
        upcoming = pool.submit(next, items, None)
        while (item := upcoming.result()) is not None:
            upcoming = pool.submit(next, items, None)
            yield item


def _sweep(model, p: Pass, source, drain, forward, segment, overlap, power, progress) -> None:
    """One overlap-add sweep (:class:`Pass`) of ``model`` over ``source`` into ``drain``."""
    seg = segment if segment is not None else getattr(model, "segment", None)
    if seg is None:
        raise ParameterError(f"{type(model).__name__} has no segment attribute; pass segment=.")
    seg_len = int(model.samplerate * seg)
    stride = int((1 - overlap) * seg_len)
    if stride < 1:
        raise ParameterError(f"segment={seg} with overlap={overlap} leaves no stride.")
    weight = _triangle(seg_len, power, forward.device)
    length = source.frames - p.start
    ola = _OverlapAdd(
        drain,
        p.scale,
        source.frames,
        p.start,
        device=forward.device,
        block=_COPY_SECONDS * model.samplerate,
    )

    def batches():
        # Chunks whose network input has the same length go through together: for HTDemucs
        # all of them (its input is always its training length), for the others all but the
        # last one or two. Each chunk is read with real context on both sides up to that
        # length, and its output is trimmed back to the centre ``clen`` frames.
        offsets = list(range(0, length, stride))
        while offsets:
            group = [offsets.pop(0)]
            valid = _valid_length(model, min(seg_len, length - group[0]), segment)
            while offsets and len(group) < forward.batch_size:
                if _valid_length(model, min(seg_len, length - offsets[0]), segment) != valid:
                    break
                group.append(offsets.pop(0))
            batch, spans, silent = forward.host_batch(len(group), source.channels, valid), [], []
            for row, o in zip(batch.numpy(), group, strict=True):
                clen = min(seg_len, length - o)
                at = p.start + o - (valid - clen) // 2
                source.read(at, at + valid, out=row)
                spans.append((o, clen))
                silent.append(skip_silence and not row.any())
            yield spans, batch, silent

    # a model that returns silence for silence is not run on chunks of it
    skip_silence = keeps_silence(model)
    # the next batch is read (and pinned) on a thread while the network runs on this one
    for spans, batch, silent in _read_ahead(batches()):
        out = forward(model, batch, silent)
        for (o, clen), chunk in zip(spans, out, strict=True):
            ola.add(p.start + o, _center_trim(chunk, clen), weight[:clen])
        if progress is not None:
            done = min(spans[-1][0] + stride, length) - min(spans[0][0], length)
            progress(done / model.samplerate)
    ola.flush(source.frames)
