"""What a comparison runs: labelled Separator options, checked before anything runs, and grids.

A run is ``label -> options`` (the :class:`~bandscope_nb.Separator` options: ``model``,
``device``, ``segment``, ``overlap``, ``shifts``, ``seed``, ``batch_size``, ``precision``,
``backend``, ``repo``, ``sha256``; with ``model="classical"`` also the recipe's
``kernel_size``, ``width`` and ``bass_cutoff``, so classical variants are runs like any
other) or ``label -> Stems`` (a separation already made: an ensemble, the oracle masks'
estimates, a result from elsewhere).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..errors import ParameterError
from ..separation.config import OPTION_NAMES, SeparationConfig
from ..separation.model_rules import RECIPE_OPTIONS, check_recipe_options
from ..stems import Stems

__all__ = ["CONFIG_OPTIONS", "RunSpec", "check_runs", "parse_run", "parse_value", "sweep"]

CONFIG_OPTIONS = OPTION_NAMES
SOURCE_OPTIONS = ("repo", "sha256")
OPTIONS = (*CONFIG_OPTIONS, *SOURCE_OPTIONS, *RECIPE_OPTIONS)


@dataclass(frozen=True)
class RunSpec:
    """One checked run: a config and where its model comes from, or given stems."""

    label: str
    config: SeparationConfig | None = None
    source: dict | None = None
    stems: Stems | None = None
    options: dict | None = None  # as given (without defaults), for tables


def check_runs(runs, *, device: str = "auto") -> list[RunSpec]:
    """Check every run's label and options (values too: a bad one fails here, before any
    separation runs); ``device`` is the default device.

    Examples
    --------
    >>> [spec.config.overlap for spec in check_runs({"a": {"model": "classical"},
    ...                                              "b": {"model": "classical", "overlap": 0.5}})]
    [0.25, 0.5]
    >>> check_runs({"c": {"model": "classical", "kernel_size": 17}})[0].config.model
    ClassicalModel(segment=30.0, options={'kernel_size': 17}, silence trimmed)
    """
    if not isinstance(runs, dict) or not runs:
        raise ParameterError(
            f"Invalid runs: {runs!r}; give a dict of label to Separator options (or Stems), "
            "e.g. {'htdemucs': {'model': 'htdemucs'}}, or bn.sweep(...)."
        )
    specs = []
    for label, options in runs.items():
        if not isinstance(label, str) or not label.strip():
            raise ParameterError(f"Invalid run label {label!r}: give a non-empty string.")
        if isinstance(options, Stems):
            specs.append(RunSpec(label, stems=options))
            continue
        if not isinstance(options, dict):
            raise ParameterError(
                f"Run {label!r}: give a dict of Separator options or Stems, not {options!r}."
            )
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise ParameterError(
                f"Run {label!r}: unknown option(s) {sorted(unknown)}; options are {list(OPTIONS)}."
            )
        config_options = {k: v for k, v in options.items() if k in CONFIG_OPTIONS}
        config_options.setdefault("device", device)
        recipe = {k: v for k, v in options.items() if k in RECIPE_OPTIONS}
        try:
            if recipe:
                config_options["model"] = _classical(options.get("model"), recipe)
            config = SeparationConfig(**config_options)
        except ParameterError as exc:
            raise ParameterError(f"Run {label!r}: {exc}") from exc
        source = {k: v for k, v in options.items() if k in SOURCE_OPTIONS}
        specs.append(RunSpec(label, config=config, source=source, options=dict(options)))
    return specs


def _classical(model, recipe: dict):
    """The classical recipe with ``recipe``'s options, as the run's model."""
    if model != "classical":
        named = "names no model" if model is None else f"is {model!r}"
        raise ParameterError(
            f"{sorted(recipe)} are options of the classical separator; add model=classical "
            f"(the run {named})."
        )
    from ..separation.classical_model import ClassicalModel

    return ClassicalModel(**check_recipe_options(recipe))


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep(**grid) -> dict[str, dict]:
    """Runs for every combination of the options given as lists (a grid).

    Labels name the options that vary, in the order given.

    Examples
    --------
    >>> sweep(model="htdemucs", overlap=[0.25, 0.5], shifts=[0, 2])
    ... # doctest: +NORMALIZE_WHITESPACE
    {'overlap=0.25 shifts=0': {'model': 'htdemucs', 'overlap': 0.25, 'shifts': 0},
     'overlap=0.25 shifts=2': {'model': 'htdemucs', 'overlap': 0.25, 'shifts': 2},
     'overlap=0.5 shifts=0': {'model': 'htdemucs', 'overlap': 0.5, 'shifts': 0},
     'overlap=0.5 shifts=2': {'model': 'htdemucs', 'overlap': 0.5, 'shifts': 2}}
    """
    unknown = set(grid) - set(OPTIONS)
    if unknown:
        raise ParameterError(f"sweep: unknown option(s) {sorted(unknown)}.")
    axes = {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in grid.items()}
    if not axes or any(not values for values in axes.values()):
        raise ParameterError("sweep: give each option one value or a non-empty list.")
    varying = [k for k, values in axes.items() if len(values) > 1] or [next(iter(axes))]
    runs = {}
    for combo in itertools.product(*axes.values()):
        options = dict(zip(axes, combo, strict=True))
        label = " ".join(f"{k}={_value_text(options[k])}" for k in varying)
        runs[label] = options
    return runs


def parse_run(text: str) -> tuple[str, dict]:
    """``"label:model=htdemucs,shifts=1"`` (the command line's ``--run``) as ``(label,
    options)``; numbers become numbers, ``none`` becomes None.

    Examples
    --------
    >>> parse_run("fast:model=htdemucs,overlap=0.1,shifts=0,segment=none")
    ('fast', {'model': 'htdemucs', 'overlap': 0.1, 'shifts': 0, 'segment': None})
    """
    label, sep, rest = text.partition(":")
    if not sep or not label.strip() or not rest.strip():
        raise ParameterError(f"Invalid run {text!r}: write LABEL:option=value,option=value.")
    options = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ParameterError(f"Invalid run {text!r}: {item!r} is not option=value.")
        options[key.strip()] = parse_value(value.strip())
    return label.strip(), options


def parse_value(value: str):
    """A command-line value: ``none`` -> None, then int, then float, else the text.

    Examples
    --------
    >>> [parse_value(v) for v in ("none", "2", "0.5", "htdemucs")]
    [None, 2, 0.5, 'htdemucs']
    """
    if value.lower() == "none":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
