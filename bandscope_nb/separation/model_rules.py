"""What a separation model may be, checked before and after it is built.

One set of rules for every origin: a weights file's init arguments (plain, bounded data; a
plausible sample rate and segment; safe source names), the size a file's arguments describe, a
bag yaml's entries, and the attributes of any module the engine runs (:func:`check_contract`).
"""

from __future__ import annotations

import math
import numbers
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..errors import ModelIntegrityError, ParameterError
from ..names import check_stem_names

__all__ = [
    "ALLOWED_CLASSES",
    "MAX_HTDEMUCS_SEGMENT",
    "MAX_MODEL_RATE",
    "MAX_SEGMENT",
    "RECIPE_OPTIONS",
    "check_bag",
    "check_contract",
    "check_init",
    "check_recipe_options",
    "check_size",
    "keeps_silence",
    "max_segment",
]


#: Model classes a weights file may name; anything else is refused before import.
ALLOWED_CLASSES = frozenset(
    {
        "demucs.htdemucs.HTDemucs",
        "demucs.hdemucs.HDemucs",
        "demucs.demucs.Demucs",
        "bandscope_nb.separation.masknet.MaskNet",  # ours, trained with bandscope_nb.training
    }
)


#: Upper bounds of the init arguments that decide a model's size or loop counts.
_INIT_LIMITS = {
    "audio_channels": 8,
    "channels": 4096,
    "bottom_channels": 8192,
    "depth": 16,
    "growth": 8,
    "nfft": 65536,
    "t_layers": 64,
    "t_heads": 64,
    "t_hidden_scale": 16,
    "lstm_layers": 8,
    "hidden": 4096,
    "hop": 65536,
    "dconv_depth": 8,
    "kernel_size": 64,
    "stride": 64,
    "wiener_iters": 10,  # each iteration is a full Wiener pass over the chunk
    "end_iters": 10,
}


_MAX_NUMBER = 1e7  # any other number in the init arguments


#: Longest segment (s) a model or a caller may ask for: a chunk of this length goes through the
#: network at once, so it bounds the memory of a forward pass.
MAX_SEGMENT = 60.0


#: HTDemucs pads every chunk to its own segment and attends over all of it: published models
#: use 7.8 s, and the attention's cost grows with the square of the length.
MAX_HTDEMUCS_SEGMENT = 15.0


MAX_MODEL_RATE = 96_000


def check_plain(path: Path, value: Any, key: str = "", depth: int = 0) -> None:
    """Check an init argument is plain, bounded data (no objects, no NaN, no huge numbers)."""
    if depth > 4:
        raise ModelIntegrityError(f"{path}: init arguments nest too deeply.")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if len(value) > 256:
            raise ModelIntegrityError(
                f"{path}: init argument {key or 'value'} is a string of {len(value)} characters "
                "(at most 256)."
            )
        return
    if isinstance(value, (int, float, Fraction)):
        limit = _INIT_LIMITS.get(key, _MAX_NUMBER)
        try:
            number = float(value)
        except (OverflowError, ValueError):  # a Fraction or int beyond float's range
            number = math.inf
        if not (math.isfinite(number) and abs(number) <= limit):
            raise ModelIntegrityError(
                f"{path}: init argument {key or 'value'}={value!r} is out of range "
                f"(finite, at most {limit:g})."
            )
        return
    if isinstance(value, (list, tuple)) and len(value) <= 256:
        for item in value:
            check_plain(path, item, key, depth + 1)
        return
    if isinstance(value, dict) and len(value) <= 256:
        for k, item in value.items():
            if not isinstance(k, str):
                raise ModelIntegrityError(f"{path}: init argument keys must be str, got {k!r}.")
            check_plain(path, item, k, depth + 1)
        return
    raise ModelIntegrityError(
        f"{path}: init argument {key or 'value'} of type {type(value).__name__} is not plain data."
    )


def check_init(path: Path, klass, args: Any, kwargs: Any) -> None:
    """Check a model's init arguments before anything is built from them."""
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict) or len(args) > 1:
        raise ModelIntegrityError(
            f"{path}: 'args' must be a list holding at most the sources, and 'kwargs' a dict."
        )
    check_plain(path, list(args))
    check_plain(path, kwargs)
    check_attributes(
        str(path),
        ModelIntegrityError,
        klass=klass,
        sources=args[0] if args else kwargs.get("sources"),
        samplerate=kwargs.get("samplerate", 44100),  # demucs' default
        audio_channels=kwargs.get("audio_channels", 2),
        segment=kwargs.get("segment"),
    )


def check_contract(module, where: str, error: type[Exception]) -> None:
    """Check the attributes the engine and the output paths rely on, whatever the model's
    origin (a file, a bag, a module passed in): the same rules as :func:`check_init`."""
    check_attributes(
        where,
        error,
        klass=type(module),
        sources=module.sources,
        samplerate=module.samplerate,
        audio_channels=module.audio_channels,
        segment=getattr(module, "segment", None),
    )


def check_attributes(
    where: str, error: type[Exception], *, klass, sources, samplerate, audio_channels, segment
) -> None:
    """Safe, unique stem names; an int sample rate a model may have; 1 to 8 channels; a segment
    of at most :func:`max_segment` seconds (or None)."""
    from ..audio import MIN_SAMPLE_RATE

    check_stem_names(sources, where=f"{where}: sources", error=error)
    if not is_number(samplerate, integral=True) or not (
        MIN_SAMPLE_RATE <= samplerate <= MAX_MODEL_RATE
    ):
        raise error(
            f"{where}: samplerate={samplerate!r} must be an int in "
            f"{MIN_SAMPLE_RATE}..{MAX_MODEL_RATE} Hz."
        )
    channels = _INIT_LIMITS["audio_channels"]
    if not is_number(audio_channels, integral=True) or not 1 <= audio_channels <= channels:
        raise error(f"{where}: audio_channels={audio_channels!r} must be an int in 1..{channels}.")
    limit = max_segment(klass)
    if segment is not None and not (is_number(segment) and 0 < segment <= limit):
        raise error(f"{where}: segment={segment!r} must be None or seconds in (0, {limit:g}].")


def max_segment(klass) -> float:
    """Longest segment (s) allowed for a model class (HTDemucs less: see the constants)."""
    name = getattr(klass, "__name__", str(klass))
    return MAX_HTDEMUCS_SEGMENT if name.endswith("HTDemucs") else MAX_SEGMENT


def keeps_silence(model) -> bool:
    """Whether ``model`` returns exact silence, as long as its input, for an input of exact
    silence (all samples zero), so that the engine may skip such chunks with the very output.

    True for these exact classes (not subclasses, whose forward pass may differ): HDemucs and
    HTDemucs with complex-as-channels output (demucs' default, every pretrained model): each
    branch's output is scaled by the input's standard deviation and offset by its mean, both 0,
    and the inverse STFT of zeros is zeros; the exported-graph HTDemucs (ONNX Runtime,
    OpenVINO), which computes the same; and :class:`~.masknet.MaskNet`, whose masks multiply the
    input's spectrogram. Not when the model draws random numbers in its forward pass (HTDemucs
    with ``t_sin_random_shift``: skipping a chunk would change the draws of the others) or has
    forward hooks, of its own or global, or a ``forward`` of its own set on the instance (they
    may change the output). (A network whose own output were not finite would raise a NaN error
    there; a skipped chunk is silent.) False for all else: their chunks always run.

    Examples
    --------
    >>> from demucs.htdemucs import HTDemucs
    >>> keeps_silence(HTDemucs(["a", "b"], channels=4, depth=2, segment=1))
    True
    >>> keeps_silence(HTDemucs(["a", "b"], channels=4, depth=2, segment=1, cac=False))
    False
    """
    from demucs.hdemucs import HDemucs
    from demucs.htdemucs import HTDemucs

    from .masknet import MaskNet
    from .onnx_backend import OnnxHTDemucs

    if type(model) is OnnxHTDemucs:
        model = model.wrapped
    if type(model) not in (HDemucs, HTDemucs, MaskNet) or _hooked(model):
        return False
    if type(model) is MaskNet:
        return True
    cross = getattr(model, "crosstransformer", None)
    return bool(model.cac) and not getattr(cross, "sin_random_shift", 0)


def _hooked(module) -> bool:
    """Whether calling ``module`` runs more than its class's ``forward``: hooks of its own,
    global hooks, or a ``forward`` set on the instance."""
    from torch.nn.modules import module as torch_module

    hooks = ("_forward_hooks", "_forward_pre_hooks")
    return (
        "forward" in vars(module)
        or any(getattr(module, name, None) for name in hooks)
        or any(getattr(torch_module, f"_global{name}", None) for name in hooks)
    )


def is_number(value: Any, *, integral: bool = False) -> bool:
    """A finite real number (``bool`` is not one); with ``integral``, an integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if integral:
        return isinstance(value, numbers.Integral)
    try:
        return math.isfinite(value)
    except OverflowError:  # an int or Fraction beyond float's range
        return False


def check_size(path: Path, package: dict, file_bytes: int) -> None:
    """Build the model on the ``meta`` device (no memory) and refuse one that would be far
    larger than its file: hostile arguments must not allocate gigabytes."""
    import torch

    try:
        with torch.device("meta"):
            model = package["klass"](*package["args"], **package["kwargs"])
    except (Exception, SystemExit) as exc:
        raise ModelIntegrityError(
            f"{path}: its init arguments do not build a model ({exc})."
        ) from exc
    nbytes = 4 * sum(p.numel() for p in model.parameters())
    if nbytes > 16 * file_bytes + 64 * 1024**2:
        raise ModelIntegrityError(
            f"{path}: its init arguments describe a model of {nbytes / 1e6:.0f} MB, far more than "
            f"the {file_bytes / 1e6:.1f} MB of weights in the file; refused."
        )


#: A model name or bag signature that may become part of a file name.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def check_bag(name: str, origin: str, spec: Any) -> tuple[list[str], Any, Any]:
    """Validate a bag yaml's ``models``, ``weights`` and ``segment`` before anything loads."""

    def bad(what: str) -> ModelIntegrityError:
        return ModelIntegrityError(f"{origin}: bag yaml for {name!r}: {what}.")

    if not isinstance(spec, dict) or not isinstance(spec.get("models"), list):
        raise bad("has no 'models' list")
    models = spec["models"]
    if not 1 <= len(models) <= 32:
        raise bad(f"lists {len(models)} models (1 to 32 allowed)")
    for sig in models:
        if not isinstance(sig, str) or not PLAIN_NAME.fullmatch(sig):
            raise bad(f"model signature {sig!r} is not a plain name")
    weights = spec.get("weights")
    if weights is not None and not (
        isinstance(weights, list)
        and len(weights) == len(models)
        and all(
            isinstance(w, list) and w and all(is_number(x) and x >= 0 for x in w) for w in weights
        )
    ):
        raise bad("'weights' must be one list of finite numbers >= 0 per model")
    segment = spec.get("segment")
    if segment is not None and not (is_number(segment) and 0 < segment <= MAX_SEGMENT):
        raise bad(f"segment={segment!r} must be seconds in (0, {MAX_SEGMENT:g}]")
    return models, weights, segment


#: The recipe's options a run may set, and their ranges: the HPSS median filter's length in
#: frames, REPET-SIM's exclusion width in seconds, the bass band's upper edge in Hz.
RECIPE_OPTIONS = {
    "kernel_size": (int, 3, 255),
    "width": (float, 0.1, 10.0),
    "bass_cutoff": (float, 20.0, 2000.0),
}


def check_recipe_options(options: dict) -> dict:
    """The classical recipe's options checked against :data:`RECIPE_OPTIONS` (numbers made
    ``int`` or ``float``), or a :class:`ParameterError` naming the option and its range.

    Examples
    --------
    >>> check_recipe_options({"kernel_size": 17, "width": 1})
    {'kernel_size': 17, 'width': 1.0}
    >>> check_recipe_options({"kernel_size": 2.5})
    Traceback (most recent call last):
    ...
    bandscope_nb.errors.ParameterError: Invalid kernel_size: 2.5; give an int in 3..255.
    """
    unknown = set(options) - set(RECIPE_OPTIONS)
    if unknown:
        raise ParameterError(
            f"Unknown classical option(s) {sorted(unknown)}; they are {list(RECIPE_OPTIONS)}."
        )
    checked = {}
    for name, value in options.items():
        kind, low, high = RECIPE_OPTIONS[name]
        if not is_number(value, integral=kind is int) or not low <= value <= high:
            what = "an int" if kind is int else "a number"
            raise ParameterError(f"Invalid {name}: {value!r}; give {what} in {low:g}..{high:g}.")
        checked[name] = kind(value)
    return checked
