"""True stems to measure separations against: the demo song's, a folder of files, or Stems."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ParameterError
from ..stems import Stems

__all__ = ["check_references", "load_references", "read_references"]


def reference_folder(references: str | os.PathLike) -> Path:
    """An existing folder of true stems, resolved; :class:`ParameterError` if there is none."""
    folder = Path(references).expanduser()
    if not folder.is_dir():
        raise ParameterError(f"References folder {folder} does not exist.")
    return folder.resolve()


def check_references(references) -> None:
    """Check ``references`` (None, ``"demo"``, a folder or Stems) before any separation runs."""
    if references is None or isinstance(references, Stems) or str(references) == "demo":
        return
    if not isinstance(references, str | os.PathLike):
        raise ParameterError(
            f"Invalid references: {references!r}; give a folder of true stems, 'demo' or Stems."
        )
    reference_folder(references)


def read_references(references, names, sample_rate: int) -> Stems:
    """True stems ``names`` at ``sample_rate``: ``"demo"`` for the demo song's, a folder with one
    audio file per stem named after it (``drums.flac``, ``vocals.wav``, ...), or Stems; any
    length (:func:`load_references` checks them against a separation).

    Examples
    --------
    >>> read_references("demo", ["bass", "vocals"], 22050).data.shape
    (2, 2, 441000)
    """
    from ..audio import load_audio, resample

    check_references(references)
    if isinstance(references, Stems) or str(references) == "demo":
        if isinstance(references, Stems):
            truth = references
        else:
            from .. import demo

            truth = demo.load()[1]
        missing = [n for n in names if n not in truth.names]
        if missing:
            raise ParameterError(f"The references have no stem(s) {missing}: {truth.names}.")
        found = {n: truth[n] for n in names}
        if truth.sample_rate != sample_rate:
            found = {n: resample(s, truth.sample_rate, sample_rate) for n, s in found.items()}
        return Stems.from_dict(found, sample_rate)
    folder = reference_folder(references)
    found = {}
    for name in names:
        matches = sorted(p for p in folder.glob(f"{name}.*") if p.is_file())
        if not matches:
            raise ParameterError(
                f"No reference for stem {name!r} in {folder}; add {name}.wav or {name}.flac."
            )
        found[name] = load_audio(matches[0], sample_rate=sample_rate).samples
    lengths = {s.shape[-1] for s in found.values()}
    if len(lengths) > 1:
        raise ParameterError(
            f"The reference files in {folder} differ in length: {sorted(lengths)}."
        )
    return Stems.from_dict(found, sample_rate)


def load_references(references, like: Stems) -> Stems:
    """True stems to evaluate ``like`` against: ``"demo"`` for the demo song's, a folder
    with one audio file per stem, named after it (``drums.flac``, ``vocals.wav``, ...), or
    :class:`Stems`.

    Files are resampled to ``like``'s rate; every stem must be there, with its length.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> load_references("demo", truth).names
    ('drums', 'bass', 'other', 'vocals')
    """
    if isinstance(references, Stems) and (
        set(like.names) - set(references.names) or references.sample_rate != like.sample_rate
    ):
        truth = references  # not these stems at this rate: said below, not resampled
    else:
        truth = read_references(references, like.names, like.sample_rate)
    if (truth.frames, truth.sample_rate) != (like.frames, like.sample_rate) or set(
        like.names
    ) - set(truth.names):
        raise ParameterError(
            f"References ({truth.names}, {truth.frames} frames at {truth.sample_rate} Hz) do not "
            f"match the stems ({like.names}, {like.frames} frames at {like.sample_rate} Hz)."
        )
    return Stems.from_dict({n: truth[n] for n in like.names}, like.sample_rate)
