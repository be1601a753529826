"""Chunked separation: overlap-add with bounded memory.

The maths is demucs' ``apply_model`` (``demucs/apply.py``): chunks of ``segment`` seconds every
``(1 - overlap) * segment``, each padded with real context to the model's valid length, centre
trimmed, weighted by a triangle and normalised by the summed weights; bags of models are averaged
with per-source weights; ``shifts`` average over random time offsets of up to 0.5 s. Differences:

- finished regions go straight to a :class:`~bandscope_nb.streams.StemWriter` on disk, so memory
  does not grow with track length (``apply_model`` allocates the whole output);
- several chunks of equal length go through the network in one batch;
- the shift offsets come from a seeded RNG, so results are repeatable (and cacheable);
- progress and abort go through a plain callback, with no UI here.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import DeviceError, ParameterError, SeparationError
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


def _triangle(length: int, power: float = 1.0) -> np.ndarray:
    """``apply_model``'s transition weight: a triangle peaking mid-segment, to ``power``."""
    import torch

    weight = torch.cat(
        [torch.arange(1, length // 2 + 1), torch.arange(length - length // 2, 0, -1)]
    )
    return ((weight / weight.max()) ** power).numpy()


class _OverlapAdd:
    """Weighted accumulation over a sliding window; finished frames go to the writer."""

    def __init__(self, writer: StemWriter, scale: tuple[float, ...], frames: int, start: int):
        self.writer, self.frames, self.start = writer, frames, start
        self.scale = np.asarray(scale, dtype=np.float32)[:, None, None]
        sources, channels, _ = writer.shape
        self.acc = np.zeros((sources, channels, 0), np.float32)
        self.wsum = np.zeros(0, np.float32)

    def add(self, at: int, chunk: np.ndarray, weight: np.ndarray) -> None:
        self.flush(at)
        end = at + chunk.shape[-1]
        grow = end - (self.start + self.wsum.shape[0])
        if grow > 0:
            pad = np.zeros((*self.acc.shape[:2], grow), np.float32)
            self.acc = np.concatenate([self.acc, pad], axis=-1)
            self.wsum = np.concatenate([self.wsum, np.zeros(grow, np.float32)])
        lo, hi = at - self.start, end - self.start
        self.acc[..., lo:hi] += weight * chunk
        self.wsum[lo:hi] += weight

    def flush(self, until: int) -> None:
        n = min(until - self.start, self.wsum.shape[0])
        if n <= 0:
            return
        done = self.acc[..., :n] / self.wsum[:n] * self.scale
        lo, hi = max(self.start, 0), min(self.start + n, self.frames)
        if hi > lo:
            self.writer.add(lo, done[..., lo - self.start : hi - self.start])
        self.acc, self.wsum = self.acc[..., n:].copy(), self.wsum[n:].copy()
        self.start += n


def _valid_length(model, chunk: int, segment: float | None) -> int:
    from demucs.htdemucs import HTDemucs

    if isinstance(model, HTDemucs) and segment is not None:
        return int(segment * model.samplerate)
    if hasattr(model, "valid_length"):
        return int(model.valid_length(chunk))
    return chunk


def _center_trim(out: np.ndarray, length: int) -> np.ndarray:
    delta = out.shape[-1] - length
    if delta < 0:
        raise ParameterError(f"The model returned {out.shape[-1]} frames for {length} in.")
    return out[..., delta // 2 : delta // 2 + length]


class _Forward:
    """Runs batches through a model; on CUDA out-of-memory halves the batch and warns."""

    def __init__(self, batch_size: int, device):
        self.batch_size, self.device = batch_size, device

    def __call__(self, model, batch: np.ndarray) -> np.ndarray:
        import torch

        oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
        outs, i = [], 0
        while i < len(batch):
            part = batch[i : i + self.batch_size]
            try:
                with torch.inference_mode():
                    x = torch.from_numpy(np.ascontiguousarray(part)).to(self.device)
                    out = model(x).float().cpu().numpy()
                if not np.isfinite(out).all():  # never let NaN stems reach a file or the cache
                    raise SeparationError(
                        f"{type(model).__name__} produced NaN or Inf on {self.device}; nothing "
                        "was kept. Check the input's level and the model's weights."
                    )
                outs.append(out)
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
        return np.concatenate(outs)


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
    transition_power : float
        Sharpness of the cross-fade (``>= 1``).
    progress : callable or None
        Called with the seconds of audio just finished; may raise to abort.

    Examples
    --------
    >>> import numpy as np, torch, tempfile, pathlib
    >>> from demucs.hdemucs import HDemucs
    >>> from bandscope_nb.streams import ArraySource, StemWriter
    >>> net = HDemucs(["a", "b"], channels=4, depth=2, nfft=64, segment=1).eval()
    >>> writer = StemWriter(pathlib.Path(tempfile.mkdtemp()) / "out.f32", 2, 2, 50_000)
    >>> separate_stream([(net, [1.0, 1.0])], ArraySource(np.zeros((2, 50_000), np.float32)),
    ...                 writer, device=torch.device("cpu"))
    >>> writer.close()
    """
    forward = _Forward(batch_size, device)
    for p in plan_passes(parts, source.frames, shifts=shifts, seed=seed):
        model = parts[p.model_index][0]
        seg = segment if segment is not None else getattr(model, "segment", None)
        if seg is None:
            raise ParameterError(f"{type(model).__name__} has no segment attribute; pass segment=.")
        seg_len = int(model.samplerate * seg)
        stride = int((1 - overlap) * seg_len)
        if stride < 1:
            raise ParameterError(f"segment={seg} with overlap={overlap} leaves no stride.")
        weight = _triangle(seg_len, transition_power)
        length = source.frames - p.start
        ola = _OverlapAdd(writer, p.scale, source.frames, p.start)
        offsets = list(range(0, length, stride))
        while offsets:
            clen = min(seg_len, length - offsets[0])
            valid = _valid_length(model, clen, segment)
            group = [offsets.pop(0)]
            while offsets and len(group) < forward.batch_size:
                if min(seg_len, length - offsets[0]) != clen:
                    break
                group.append(offsets.pop(0))
            delta = valid - clen
            batch = np.stack(
                [
                    source.read(p.start + o - delta // 2, p.start + o - delta // 2 + valid)
                    for o in group
                ]
            )
            out = forward(model, batch)
            for o, chunk in zip(group, out, strict=True):
                ola.add(p.start + o, _center_trim(chunk, clen), weight[:clen])
            if progress is not None:
                done = min(group[-1] + stride, length) - min(group[0], length)
                progress(done / model.samplerate)
        ola.flush(source.frames)
