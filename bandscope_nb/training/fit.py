"""Train a separator on multitracks within a time budget: seeded, interrupt-safe, and with every
improvement on the validation songs checkpointed so that it loads through the Separator.

Each step draws a batch of random crops from the training songs (:mod:`.batches`), gives every
stem a random level and channel order (so the mixtures vary more than the songs do), mixes them
and lowers the squared distance between the masked mixture's magnitude and each true stem's
(whose magnitudes are made once per song, on the clock, before the first step), with Adam at a
learning rate that falls along a cosine to a twentieth of its start by the end of the budget. Every
``validate_every`` steps the model separates the first :data:`VALIDATION_SECONDS` of up to
:data:`VALIDATION_SONGS` validation songs (the last tenth of the data, unless given) and its
mean SDR over songs and stems is measured; the best state so far is kept, written
(``<out>/masknet.safetensors`` and ``masknet.yaml``, each written whole and renamed into place)
and, at the end or on Ctrl-C, put back into the model.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..stems import Stems
from .batches import Crops, Targets, inner_frames, shortest_crop, stem_magnitudes

__all__ = ["FitResult", "batch_loss", "fit"]

CHECKPOINT = "masknet.safetensors"
RECORD = "masknet.yaml"


@dataclass
class FitResult:
    """What :func:`fit` did.

    Attributes
    ----------
    model : torch.nn.Module
        The model, holding its best state (by validation SDR).
    steps, seconds : int, float
        Steps taken and training wall time. A run given ``steps=`` repeats exactly (same seed,
        data, software and machine); in a ``minutes=`` run the learning rate follows the clock,
        so ``steps=result.steps`` repeats it closely but not bit for bit.
    history : list of dict
        Per validation: ``step``, ``seconds``, ``loss`` (mean since the last one),
        ``learning_rate`` (of the last step) and ``val_sdr``.
    best : dict
        The history entry whose state the model holds.
    interrupted : bool
        Stopped by Ctrl-C (the best state is kept all the same).
    checkpoint : Path or None
        The saved weights (load with ``bn.Separator(model=path)``).
    """

    model: object
    steps: int
    seconds: float
    history: list = field(default_factory=list)
    best: dict = field(default_factory=dict)
    interrupted: bool = False
    checkpoint: Path | None = None


def _digest(data: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(data, np.float32).tobytes()).hexdigest()


def _check_held_out(songs: list) -> None:
    """The bundled demo song is for evaluation: refuse it (or a part of it) as training data."""
    from .. import demo

    truth = demo.load()[1]
    for stems in songs:
        if isinstance(stems, Stems) and stems.frames <= truth.frames and stems.frames > 0:
            head = truth.data[..., : stems.frames]
            if stems.data.shape == head.shape and np.array_equal(stems.data, head):
                raise ParameterError(
                    "The demo song is held out: it measures what a trained model learnt "
                    "(bn.demo.load()), so it cannot be training data. Train on "
                    "bn.datasets.synth_multitracks(...) or your own multitracks."
                )


#: Validation separates the start of up to this many validation songs, each up to this many
#: seconds long: enough audio that the SDR measures the network rather than the excerpt (eight
#: 2 s excerpts moved it by about 0.3 dB from one validation to the next, so the kept state was
#: often a lucky one, not the best; 12 songs' mean stopped following all 24's late in a run);
#: each validation costs about 10 steps' time (two CPU cores).
VALIDATION_SONGS, VALIDATION_SECONDS = 24, 10.0


def _validation_excerpts(songs, samplerate: int) -> list[np.ndarray]:
    """The start of each validation song, ``(sources, channels, frames)``: up to
    :data:`VALIDATION_SECONDS`, all of the same length (the shortest song's, if shorter)."""
    held = Crops(songs, 1)
    frames = min(min(held.lengths), int(VALIDATION_SECONDS * samplerate))
    return [held.crop(i, 0, frames) for i in range(len(songs))]


def _validation_sdr(model, crops: list[np.ndarray], device) -> float:
    import torch

    from ..dsp.metrics import sdr

    scores = []
    model.eval()
    with torch.no_grad():
        for stems in crops:
            mix = torch.from_numpy(stems.sum(axis=0)[None]).to(device)
            estimate = model(mix)[0].cpu().numpy()
            for truth, guess in zip(stems, estimate, strict=True):
                if np.any(truth):
                    scores.append(sdr(truth, guess))
    model.train()
    return float(np.mean(scores)) if scores else float("nan")


def batch_loss(model, batch, targets=None):
    """Mean squared distance between the masked mixture's magnitude and each true stem's, for a
    batch of stems ``(batch, sources, channels, frames)`` (their sum is the mixture), over the
    STFT frames whose windows lie inside the crops (:func:`~.batches.inner_frames`). Squared,
    like the SDR's error energy, it weighs loud bins (the bass) more than an L1 distance does.
    ``targets``: the stems' magnitudes, if already made (:class:`~.batches.Targets`).

    Examples
    --------
    >>> import torch
    >>> from bandscope_nb.separation.masknet import MaskNet
    >>> batch = torch.randn(2, 4, 2, 8192)
    >>> batch_loss(MaskNet(hidden=8), batch).item() > 0
    True
    """
    import torch

    inner = inner_frames(model, batch.shape[-1])
    with torch.no_grad():  # the data: no gradient flows through it
        mixture = batch.sum(dim=1)
        spec = model.spectrogram(mixture)
        mix = model.magnitude(spec)
        if targets is None:
            targets = stem_magnitudes(model, batch)
        # sum over channels c of (m X_c - T_c)^2 = m^2 sum X_c^2 - 2 m sum X_c T_c + sum T_c^2:
        # the graph then holds (batch, sources, bins, steps), not a channel axis more (faster)
        # laid out (B, N, S, F) as the network makes the masks: the graph's arrays are contiguous
        x, t = mix[..., inner], targets[..., inner]
        power = x.square().sum(dim=1)[:, None].permute(0, 3, 1, 2).contiguous()  # (B, N, 1, F)
        cross = (t * x[:, None]).sum(dim=2).permute(0, 3, 1, 2).contiguous()  # (B, N, S, F)
        energy, count = t.square().sum(), t.numel()
    masks = model.mask(spec, mix, audio=mixture).permute(0, 3, 1, 2)[:, inner]
    return ((masks * (masks * power - 2 * cross)).sum() + energy) / count


def _save(model, out: Path, record: dict) -> Path:
    import yaml

    from ..files import atomic_write
    from ..separation.modelfiles import save_safetensors

    path = save_safetensors(model, out / CHECKPOINT)
    atomic_write(out / RECORD, yaml.safe_dump(record, sort_keys=False).encode())
    return path


def fit(
    model,
    data,
    *,
    minutes: float = 10.0,
    steps: int | None = None,
    device: str = "auto",
    seed: int = 0,
    batch_size: int = 8,
    crop_seconds: float = 2.0,
    learning_rate: float = 2e-3,
    validation=None,
    validate_every: int = 400,
    average: float = 0.0,
    out=None,
    progress: bool = True,
    callback=None,
) -> FitResult:
    """Train ``model`` (a :class:`~bandscope_nb.separation.masknet.MaskNet`) on ``data``.

    Parameters
    ----------
    model : MaskNet
    data : Multitracks or list of Stems
        Training songs (the demo song is refused: it is held out for evaluation).
    minutes : float
        Time budget: the step that ends past it validates once more, and training stops.
    steps : int or None
        Stop after exactly this many steps instead (for a run to repeat exactly).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    seed : int
        Seeds the crops, the levels and the weights' updates.
    batch_size, crop_seconds : int, float
        Crops per step and their length.
    learning_rate : float
        Adam's rate at the start; it falls along a cosine to a twentieth of it by the end of
        the steps (or of the minutes).
    validation : Multitracks, list of Stems or None
        Songs to measure on (default: the last tenth of ``data``, at least one song); the
        first :data:`VALIDATION_SECONDS` of the first :data:`VALIDATION_SONGS` of them are
        separated.
    validate_every : int
        Steps between validations (and checkpoints). Each costs about as much as 25 steps of
        the default batch and network when there are 24 validation songs of 10 s or longer.
    average : float
        0 to validate, keep and save the weights themselves; else the running average of the
        weights over the steps (an exponential one, of this decay: 0.999 weighs about the last
        thousand steps), which the steps' noise moves less.
    out : str, os.PathLike or None
        Folder for the best checkpoint, rewritten at every improvement.
    progress : bool
        A progress bar over the time budget (or the steps).
    callback : callable or None
        Called with the history (a list of dicts) after every validation: a live plot.

    Returns
    -------
    FitResult

    Notes
    -----
    A new network (its input statistics still at mean 0 and scale 1) first gets them from the
    mixtures of 64 training crops (:meth:`MaskNet.standardise_inputs`); a network trained
    before keeps its own. The starting weights are the network's (``MaskNet(seed=)``): with
    those, the same ``seed`` and ``steps`` repeat a run exactly.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> from bandscope_nb.separation.masknet import MaskNet
    >>> rng = np.random.default_rng(0)
    >>> songs = [bn.Stems(rng.standard_normal((4, 2, 44100)).astype(np.float32) * 0.1,
    ...                   ["drums", "bass", "other", "vocals"], 44100) for _ in range(3)]
    >>> result = fit(MaskNet(hidden=16), songs, steps=2, batch_size=2, crop_seconds=0.5,
    ...              validate_every=1, device="cpu", progress=False)
    >>> result.steps, len(result.history)
    (2, 2)
    """
    import torch

    from ..separation.devices import resolve_device

    _check_options(model, data, minutes, steps, batch_size, crop_seconds, validate_every)
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
        raise ParameterError(f"Invalid learning_rate: {learning_rate!r}; give a number.")
    if not 0 < learning_rate <= 1:
        raise ParameterError(f"Invalid learning_rate: {learning_rate!r}; give one in (0, 1].")
    if isinstance(average, bool) or not isinstance(average, int | float) or not 0 <= average < 1:
        raise ParameterError(f"Invalid average: {average!r}; give 0 (none) or a decay in (0, 1).")
    songs = list(data) if not hasattr(data, "paths") else data
    if validation is None:
        cut = len(songs) - max(1, len(songs) // 10)
        if cut < 1:
            raise ParameterError("Give at least two songs (one is kept for validation).")
        songs, validation = songs[:cut], songs[cut:]
    _check_held_out([s for s in songs if isinstance(s, Stems)])
    device = resolve_device(device)
    frames = int(crop_seconds * model.samplerate)
    train = Crops(songs, frames, align=model.hop)
    checks = _validation_excerpts(validation[:VALIDATION_SONGS], model.samplerate)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()  # the stems' magnitudes are made on the clock
    model.to(device).train()
    targets = Targets(model, train, device)
    _standardise_new_inputs(model, train, np.random.default_rng([seed, 1]), device)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    # what is validated, kept and saved: the weights themselves, or their running average
    judged = copy.deepcopy(model) if average else model
    pairs = list(zip(judged.parameters(), model.parameters(), strict=True)) if average else []
    out = Path(out) if out is not None else None
    budget = minutes * 60.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps or round(budget), unit="step" if steps else "s", desc="training")
    result = FitResult(model, 0, 0.0)
    best_state, losses = None, []
    try:
        while True:
            done_part = result.steps / steps if steps else (time.perf_counter() - start) / budget
            for group in optimiser.param_groups:
                group["lr"] = _rate(learning_rate, done_part)
            picks = train.picks(rng, batch_size)
            audio = torch.from_numpy(train.audio(picks)).to(device)
            loss = batch_loss(model, audio, targets(picks, audio))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if pairs:
                weight = 1.0 - min(average, (1.0 + result.steps) / (10.0 + result.steps))
                with torch.no_grad():
                    for mean, param in pairs:
                        mean.lerp_(param, weight)
            losses.append(loss.item())
            result.steps += 1
            elapsed = time.perf_counter() - start
            if bar is not None:
                bar.update(1 if steps else max(0, min(round(elapsed), bar.total) - bar.n))
            done = result.steps >= steps if steps else elapsed >= budget
            if result.steps % validate_every == 0 or done:
                entry = {
                    "step": result.steps,
                    "seconds": round(elapsed, 2),
                    "loss": float(np.mean(losses)),
                    "learning_rate": optimiser.param_groups[0]["lr"],
                    "val_sdr": _validation_sdr(judged, checks, device),
                }
                losses = []
                result.history.append(entry)
                if bar is not None:
                    best = max(entry["val_sdr"], result.best.get("val_sdr", -np.inf))
                    bar.set_postfix(
                        loss=f"{entry['loss']:.4f}",
                        val_sdr=f"{entry['val_sdr']:.2f}",
                        best=f"{best:.2f}",
                    )
                if not result.best or entry["val_sdr"] > result.best["val_sdr"]:
                    result.best = entry
                    best_state = copy.deepcopy(judged.state_dict())
                    if out is not None:
                        result.checkpoint = _save(judged, out, _record(result, seed, data))
                if callback is not None:
                    callback(list(result.history))
            if done:
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        if bar is not None:
            bar.close()
        result.seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if result.interrupted:
        from ..errors import warn

        where = f"; its checkpoint: {result.checkpoint}" if result.checkpoint else ""
        kept = (
            f"kept the best state (step {result.best['step']}, validation SDR "
            f"{result.best['val_sdr']:.2f} dB){where}"
            if result.best
            else "no validation had run yet, so the model holds its last state"
        )
        warn(f"Training interrupted at step {result.steps}: {kept}.")
    return result


#: Crops whose mixtures set a new network's input statistics.
STATISTICS_CROPS = 64


def _standardise_new_inputs(model, train: Crops, rng: np.random.Generator, device) -> None:
    """A network whose input statistics are still at their start (mean 0, scale 1) gets them
    from mixtures of training crops (:meth:`MaskNet.standardise_inputs`); one that has them
    (trained before, or set by hand) keeps them."""
    import torch

    mean, scale = model.input_mean, model.input_scale
    if torch.count_nonzero(mean) or not torch.all(scale == 1):
        return
    mixtures = train.batch(rng, STATISTICS_CROPS).sum(axis=1)
    model.standardise_inputs(torch.from_numpy(mixtures).to(device))


def _rate(start: float, done: float) -> float:
    """The learning rate after ``done`` (0..1) of the budget: a cosine from ``start`` down to
    ``start / 20``."""
    done = min(max(done, 0.0), 1.0)
    return start * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * done)))


def _record(result: FitResult, seed: int, data) -> dict:
    return {
        "model": "MaskNet",
        "step": result.best["step"],
        "seconds": result.best["seconds"],
        "val_sdr_db": round(result.best["val_sdr"], 3),
        "seed": seed,
        "data": repr(data) if hasattr(data, "paths") else f"{len(data)} songs (Stems)",
    }


def _check_options(model, data, minutes, steps, batch_size, crop_seconds, validate_every):
    if not (hasattr(model, "spectrogram") and hasattr(model, "mask")):
        raise ParameterError(
            f"fit trains a MaskNet (bandscope_nb.separation.masknet), not {type(model).__name__}."
        )
    is_songs = hasattr(data, "paths") or (
        isinstance(data, list | tuple) and all(isinstance(s, Stems) for s in data)
    )
    if not is_songs or len(data) < 2:
        raise ParameterError("Invalid data: give Multitracks or a list of at least two Stems.")
    for stems in [data] if hasattr(data, "paths") else data:  # Multitracks: one for all
        if tuple(stems.names) != tuple(model.sources) or stems.sample_rate != model.samplerate:
            raise ParameterError(
                f"The songs' stems {list(stems.names)} at {stems.sample_rate} Hz do not match the "
                f"model's {model.sources} at {model.samplerate} Hz."
            )
    for name, value, low in (("minutes", minutes, 0.0), ("crop_seconds", crop_seconds, 0.1)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > low:
            raise ParameterError(f"Invalid {name}: {value!r}; give a number > {low:g}.")
    if int(crop_seconds * model.samplerate) < shortest_crop(model):  # else the loss is 0 / 0
        shortest = math.ceil(1000 * shortest_crop(model) / model.samplerate)
        raise ParameterError(
            f"Invalid crop_seconds: {crop_seconds!r}; a crop must hold a whole STFT window of "
            f"this model ({model.nfft} samples, hop {model.hop}) away from its ends: give at "
            f"least {shortest / 1000:.3f}."
        )
    for name, value in (("batch_size", batch_size), ("validate_every", validate_every)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
            raise ParameterError(f"Invalid {name}: {value!r}; give an int in 1..4096.")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ParameterError(f"Invalid steps: {steps!r}; give an int >= 1, or None.")
