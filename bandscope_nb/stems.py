"""The result of a separation: named stems sharing one sample rate."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .audio import SAVE_SUBTYPES, Audio, as_audio, frame_range, resample, save_audio
from .errors import ParameterError
from .names import as_path, check_stem_names

__all__ = ["Stems"]


class Stems(Mapping):
    """Named stems, each float32 ``(channels, frames)`` at :attr:`sample_rate`.

    Stems read from the cache are read-only memory maps: indexing is free and nothing is loaded
    until used. Copy a stem (``stems["vocals"].copy()``) to modify it.

    Parameters
    ----------
    data : np.ndarray [shape=(sources, channels, frames)]
    names : sequence of str
        One name per source, in order.
    sample_rate : int
    info : dict or None
        Provenance: model, device, parameters, cache key.

    Examples
    --------
    >>> import numpy as np
    >>> stems = Stems(np.ones((2, 1, 4), np.float32), ["a", "b"], 8000)
    >>> stems.names, stems["b"].shape, stems.mix()[0, 0]
    (('a', 'b'), (1, 4), np.float32(2.0))
    """

    def __init__(self, data: np.ndarray, names, sample_rate: int, *, info: dict | None = None):
        names = check_stem_names(names, where="Stems")
        if data.ndim != 3 or data.shape[0] != len(names):
            raise ParameterError(
                f"Stems data must be (sources, channels, frames) with {len(names)} sources, "
                f"got shape {data.shape}."
            )
        self._data = data
        self.names = names
        self.sample_rate = int(sample_rate)
        self.info = dict(info or {})

    @classmethod
    def from_dict(cls, stems: Mapping[str, np.ndarray], sample_rate: int, **kwargs) -> Stems:
        """Build from ``{name: (channels, frames)}`` arrays of equal shape.

        Examples
        --------
        >>> Stems.from_dict({"x": np.zeros((2, 3))}, 8000).names
        ('x',)
        """
        shapes = {np.shape(v) for v in stems.values()}
        if len(shapes) != 1:
            raise ParameterError(f"All stems must share one shape, got {sorted(shapes)}.")
        data = np.stack([np.asarray(v, dtype=np.float32) for v in stems.values()])
        return cls(data, list(stems), sample_rate, **kwargs)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._data[self.names.index(name)]
        except ValueError:
            raise KeyError(f"No stem {name!r}; stems are {self.names}.") from None

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def data(self) -> np.ndarray:
        """All stems as one ``(sources, channels, frames)`` array (read-only when cached)."""
        return self._data

    @property
    def channels(self) -> int:
        return int(self._data.shape[1])

    @property
    def frames(self) -> int:
        return int(self._data.shape[2])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def __repr__(self) -> str:
        model = f", model={self.info['model']!r}" if "model" in self.info else ""
        return (
            f"Stems(names={self.names}, channels={self.channels}, frames={self.frames}, "
            f"sample_rate={self.sample_rate}, duration={self.duration:.2f}s{model})"
        )

    def _ipython_display_(self) -> None:
        """In a live kernel, the stem player and its offline copy
        (:func:`bandscope_nb.notebook.widgets.show`); elsewhere the repr."""
        from .notebook.widgets import show

        show(self)

    def _repr_html_(self) -> str:
        """Spectrogram grid and players (first 30 s): what static exports show."""
        from .notebook.embed import stems_html

        return stems_html(self)

    def mix(self) -> np.ndarray:
        """Sum of all stems, float32 ``(channels, frames)``."""
        return self.remix({})

    def remix(
        self, gains: Mapping[str, float], *, window: tuple[float, float | None] | None = None
    ) -> np.ndarray:
        """Weighted sum of the stems; stems not named in ``gains`` keep gain 1.

        Parameters
        ----------
        gains : mapping of str to float
            Linear gain per stem name (0 mutes it).
        window : (start, duration) in seconds, or None
            Mix only this stretch (duration None: to the end); None mixes the whole length.
            Only the window is read, so a remix of a long memory-mapped result stays cheap.

        Returns
        -------
        np.ndarray [shape=(channels, frames in the window)], float32

        Examples
        --------
        >>> stems = Stems(np.ones((2, 1, 8000), np.float32), ["a", "b"], 8000)
        >>> stems.remix({"a": 0.0, "b": 0.5}, window=(0.5, 0.25)).shape
        (1, 2000)
        >>> float(stems.remix({"a": 0.0, "b": 0.5})[0, 0])
        0.5
        """
        unknown = set(gains) - set(self.names)
        if unknown:
            raise ParameterError(f"Unknown stem(s) {sorted(unknown)}; stems are {self.names}.")
        start, duration = (0.0, None) if window is None else window
        lo, hi = frame_range(self.sample_rate, self.frames, start, duration)
        out = np.zeros((self.channels, hi - lo), dtype=np.float32)
        for index, name in enumerate(self.names):
            gain = float(gains.get(name, 1.0))
            if gain:
                out += gain * self._data[index, :, lo:hi]
        return out

    def residual(self, audio, sample_rate: int | None = None) -> np.ndarray:
        """What the stems leave out of ``audio``: ``audio - mix()``.

        ``audio`` may be an :class:`Audio`, an ``(array, rate)`` pair or an array with
        ``sample_rate``; it is resampled to the stems' rate if needed.

        Examples
        --------
        >>> stems = Stems(np.ones((1, 1, 3), np.float32), ["a"], 8000)
        >>> stems.residual(np.full((1, 3), 1.5, np.float32), sample_rate=8000)
        array([[0.5, 0.5, 0.5]], dtype=float32)
        """
        audio = as_audio(audio, sample_rate)
        samples = resample(audio.samples, audio.sample_rate, self.sample_rate)
        if samples.shape != self._data.shape[1:]:
            raise ParameterError(
                f"Audio of shape {samples.shape} does not match the stems' "
                f"{self._data.shape[1:]} (channels, frames)."
            )
        return samples - self.mix()

    def to_audio(self, name: str) -> Audio:
        """One stem as an :class:`Audio`."""
        return Audio(self[name], self.sample_rate)

    def save(
        self,
        out_dir: str | os.PathLike,
        *,
        format: str = "flac",
        overwrite: bool = False,
        prefix: str = "",
    ) -> dict[str, Path]:
        """Write one file per stem, ``<out_dir>/<prefix><name>.<format>``.

        Each file is written to a temporary name and renamed into place, so no half-written
        stem is ever left under the final name.

        Parameters
        ----------
        out_dir : str or os.PathLike
        format : {"flac", "wav"}
        overwrite : bool
            Replace existing files; otherwise an existing target raises before anything is
            written.
        prefix : str
            Prepended to every file name.

        Returns
        -------
        dict of str to pathlib.Path

        Examples
        --------
        >>> import tempfile
        >>> stems = Stems(np.zeros((1, 2, 100), np.float32), ["a"], 8000)
        >>> sorted(p.name for p in stems.save(tempfile.mkdtemp(), format="wav").values())
        ['a.wav']
        """
        out_dir = as_path(out_dir, what="out_dir")
        if not isinstance(prefix, str):
            raise ParameterError(f"Invalid prefix: {prefix!r}; give a str.")
        if not isinstance(format, str) or format not in SAVE_SUBTYPES:
            raise ParameterError(
                f"Invalid format: {format!r}; choose one of {sorted(SAVE_SUBTYPES)}."
            )
        if prefix:  # each file name must be as safe as a stem name
            check_stem_names([prefix + name for name in self.names], where=f"prefix {prefix!r}")
        if out_dir.exists() and not out_dir.is_dir():
            raise ParameterError(f"Output folder {out_dir} is a file; choose a folder.")
        out_dir.mkdir(parents=True, exist_ok=True)
        root = out_dir.resolve()
        targets = {name: out_dir / f"{prefix}{name}.{format}" for name in self.names}
        for path in targets.values():  # second guard: names are checked, paths are proved
            if path.resolve().parent != root:
                raise ParameterError(f"{path} would be written outside {root}; refused.")
            if path.is_dir():
                raise ParameterError(f"{path} is a folder; cannot write a stem there.")
        existing = [str(p) for p in targets.values() if p.exists()]
        if existing and not overwrite:
            raise ParameterError(f"Output exists: {', '.join(existing)}; pass overwrite=True.")
        return {
            name: save_audio(self._data[index], self.sample_rate, targets[name], format=format)
            for index, name in enumerate(self.names)
        }
