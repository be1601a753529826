"""Synthetic multitracks made at run time: random arrangements (:mod:`.arrangement`) rendered stem
by stem with fluidsynth and a General MIDI SoundFont (:mod:`.fluidsynth`).

Each song is drawn from ``numpy.random.default_rng([seed, index])``, so song ``i`` of a seed is
the same whatever ``n`` is, and a longer set only adds songs. The four stems of a song are
rendered in one fluidsynth run (one after another in time, each on its own, then cut apart),
brought to the same RMS (General MIDI programmes differ in loudness: before version 3 the
chords came out a median 3.7 dB below the bass), given their random levels, quantised to 16 bits
with one gain, and stored as one 8-channel FLAC: the mix is their exact sum. Songs are kept
on disk under the folder of their seed, length, rate and renderer, written to a temporary name
and renamed into place, so an interrupted run leaves no song that looks complete. The bundled
demo song is never among them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..files import atomic_path
from ..stems import Stems
from .arrangement import CHANNELS, STEMS, Arrangement, arrange
from .fluidsynth import find_soundfont, fluidsynth_version, render_midi
from .midi import Part, midi_file

__all__ = ["Multitracks", "synth_multitracks"]

VERSION = 3  # arrangements and rendering (3: RMS levelling, lower chords); in each song's folder
TAIL = 2.0  # seconds of release rendered after each stem before the next begins
MAX_SONGS, MAX_SECONDS = 100_000, 600.0
RATES = (22050, 32000, 44100, 48000)


def default_folder() -> Path:
    """``BANDSCOPE_DATA_DIR``, else the platform's user data folder for bandscope-nb."""
    env = os.environ.get("BANDSCOPE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("bandscope-nb"))


class Multitracks(Sequence):
    """Synthetic songs: ``dataset[i]`` is song ``i``'s :class:`~bandscope_nb.Stems` (drums,
    bass, other, vocals), read from disk when asked for; ``stems.mix()`` is the mixture.

    Attributes
    ----------
    seed, seconds, sample_rate : int, float, int
    names : tuple of str
        The stems of every song.
    paths : list of Path
        One 8-channel FLAC per song (the stems' channels in order).
    """

    names = STEMS

    def __init__(self, paths: list[Path], seed: int, seconds: float, sample_rate: int):
        self.paths, self.seed, self.seconds, self.sample_rate = paths, seed, seconds, sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Multitracks(self.paths[index], self.seed, self.seconds, self.sample_rate)
        import soundfile as sf

        data, _ = sf.read(self.paths[index], dtype="float32", always_2d=True)
        return Stems(data.T.reshape(len(STEMS), 2, -1), STEMS, self.sample_rate)

    def arrangement(self, index: int) -> dict:
        """Song ``index``'s tempo, key, mode, programmes, pans and levels (its notes left out)."""
        return json.loads(self.paths[index].with_suffix(".json").read_text())

    def __repr__(self) -> str:
        return (
            f"Multitracks({len(self)} songs of {self.seconds:g} s at {self.sample_rate} Hz, "
            f"seed {self.seed})"
        )


def _check(n, seconds, seed, sample_rate) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SONGS:
        raise ParameterError(f"Invalid n: {n!r}; give a number of songs in 1..{MAX_SONGS}.")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ParameterError(f"Invalid seconds: {seconds!r}; give a number of seconds.")
    if not 1.0 <= seconds <= MAX_SECONDS:
        raise ParameterError(f"Invalid seconds: {seconds!r}; give 1 to {MAX_SECONDS:g}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ParameterError(f"Invalid seed: {seed!r}; give an int in 0..2**32-1.")
    if sample_rate not in RATES:
        raise ParameterError(f"Invalid sample_rate: {sample_rate!r}; give one of {RATES}.")


def synth_multitracks(
    n: int,
    *,
    seconds: float = 10.0,
    seed: int = 0,
    sample_rate: int = 44100,
    folder=None,
    soundfont=None,
    progress: bool = False,
) -> Multitracks:
    """``n`` synthetic songs with their true stems, made (once) with fluidsynth.

    Parameters
    ----------
    n : int
        Songs; song ``i`` of a seed is the same for any ``n``.
    seconds : float
        Length of each song.
    seed : int
        Which songs.
    sample_rate : int
        22050, 32000, 44100 or 48000.
    folder : str, os.PathLike or None
        Where songs are kept (default ``BANDSCOPE_DATA_DIR`` or the user data folder); a song
        made before is read, not rendered again.
    soundfont : str, os.PathLike or None
        A General MIDI ``.sf2`` (default ``BANDSCOPE_SOUNDFONT`` or the system's FluidR3 GM).
    progress : bool
        A progress bar over the songs rendered.

    Returns
    -------
    Multitracks

    Raises
    ------
    ParameterError
        A bad option (before anything is rendered).
    MissingDependencyError
        fluidsynth or a SoundFont is missing, naming what to install.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> songs = bn.datasets.synth_multitracks(2, seconds=3.0, seed=7)  # doctest: +SKIP
    >>> stems = songs[0]  # doctest: +SKIP
    >>> stems.names, stems.data.shape  # doctest: +SKIP
    (('drums', 'bass', 'other', 'vocals'), (4, 2, 132300))
    """
    _check(n, seconds, seed, sample_rate)
    font = find_soundfont(soundfont)
    stat = font.stat()
    renderer = f"{fluidsynth_version()}|{font}|{stat.st_size}|{int(stat.st_mtime)}"
    tag = hashlib.sha256(renderer.encode()).hexdigest()[:12]
    root = Path(folder).expanduser() if folder is not None else default_folder()
    here = root / "synth" / f"v{VERSION}-{tag}" / f"{sample_rate}hz-{seconds:g}s" / f"seed{seed}"
    paths = [here / f"song{i:05d}.flac" for i in range(n)]
    todo = [i for i, path in enumerate(paths) if not path.is_file()]
    if todo:
        here.mkdir(parents=True, exist_ok=True)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), unit="song", desc="synth multitracks")
        # fluidsynth runs in its own process: one song per core at a time
        pool = ThreadPoolExecutor(max_workers=min(len(todo), os.cpu_count() or 1))
        try:
            futures = [
                pool.submit(
                    _make_song,
                    paths[i],
                    np.random.default_rng([seed, i]),
                    seconds,
                    sample_rate,
                    font,
                )
                for i in todo
            ]
            for future in as_completed(futures):
                future.result()
                if bar is not None:
                    bar.update()
        finally:  # on an error or Ctrl-C: no new songs; those being made finish or vanish
            pool.shutdown(wait=True, cancel_futures=True)
            if bar is not None:
                bar.close()
    return Multitracks(paths, seed, float(seconds), sample_rate)


def _make_song(path: Path, rng, seconds: float, rate: int, font: Path) -> None:
    """Render one arrangement's stems (one fluidsynth run), level, quantise and store them."""
    import soundfile as sf

    song = arrange(rng, seconds)
    slot = seconds + TAIL
    parts = [
        Part(
            CHANNELS[stem],
            song.programs[stem],
            k * slot,
            k * slot + seconds,
            [(k * slot + t, d, p, v) for t, d, p, v in song.notes[stem]],
            pan=song.pans[stem],
        )
        for k, stem in enumerate(STEMS)
    ]
    frames, step = round(seconds * rate), round(slot * rate)
    audio = render_midi(midi_file(parts), font, rate, len(STEMS) * step)
    stems = np.stack([audio[:, k * step : k * step + frames] for k in range(len(STEMS))])
    rms = np.sqrt(np.mean(np.square(stems, dtype=np.float64), axis=(1, 2)))
    unit = np.where(rms > 0, 1.0 / np.maximum(rms, 1e-30), 1.0)  # each stem at the same RMS
    levels = 10 ** (np.array([song.gains_db[s] for s in STEMS]) / 20)
    stems *= (unit * levels).astype(np.float32)[:, None, None]
    peak = float(np.abs(stems.sum(axis=0)).max())
    gain = 10 ** (-1 / 20) * 32767 / peak if peak > 0 else 1.0  # the mix peaks at -1 dBFS
    ints = np.round(stems.astype(np.float64) * gain).astype(np.int32)
    ints = np.clip(ints, -32767, 32767)
    while np.abs(ints.sum(axis=0)).max() > 32767:  # rounding may push the sum over
        ints = np.round(ints * 0.999).astype(np.int32)
    interleaved = ints.reshape(len(STEMS) * 2, frames).T.astype(np.int16)
    with atomic_path(path.with_suffix(".json")) as tmp:  # first: the FLAC marks a song done
        tmp.write_text(json.dumps(_record(song), indent=1))
    with atomic_path(path) as tmp:
        sf.write(tmp, interleaved, rate, format="FLAC", subtype="PCM_16")


def _record(song: Arrangement) -> dict:
    return {
        "tempo": round(song.tempo, 3),
        "key": song.key,
        "mode": song.mode,
        "programs": song.programs,
        "pans": song.pans,
        "gains_db": {k: round(v, 3) for k, v in song.gains_db.items()},
        "notes": {k: len(v) for k, v in song.notes.items()},
        "description": song.describe(),
    }
