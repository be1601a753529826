"""The stem studio's player: play, mix and look at stems in the browser, state mirrored in Python.

:class:`StemPlayer` is an `anywidget <https://anywidget.dev>`_ widget. Its audio goes to the
browser once, as 16-bit PCM in binary widget buffers (chunks, :mod:`.player_audio`) sent from a
thread right after the widget opens, so it arrives even while later cells keep the kernel busy.
There every track (the mix, if given, and each stem) is an ``AudioBufferSourceNode -> GainNode
-> master`` on one ``AudioContext``, and all sources start with one ``start(when, offset)``, so
stems cannot drift apart. Gain, mute, solo and A/B are gain ramps in the browser: no kernel round
trip, so they work while the kernel is busy.
Python sees and sets the same state (``gains``, ``muted``, ``soloed``, ``listen``, ``position``,
``playing``, ``loop``, ``view``) and :meth:`StemPlayer.remix` returns what is heard.

Lanes show each track's spectrogram from byte tiles (:mod:`.lanes`) the kernel renders once for
the whole track; zoom and scroll redraw in the browser and sharper tiles for the visible span
come from the kernel in the background.

Memory: the browser holds each track as float32 (twice the PCM sent). Up to ``max_mb`` of PCM
(default 320 MB: a 6-minute stereo track with a mix and four stems at 44.1 kHz) is sent at the
stems' rate; longer material is sent at the highest lower rate that fits (a preview, announced
in the widget and as a :class:`~bandscope_nb.errors.BandscopeWarning`), and what does not fit
even at 8 kHz raises :class:`~bandscope_nb.errors.ParameterError`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anywidget
import numpy as np
import traitlets as T

from ..errors import AudioError, ParameterError, warn
from ..stems import Stems
from .lanes import KINDS, lane_tile, mask_tile, quantise
from .player_audio import (
    at_rate,
    chunk_edges,
    pcm_chunks,
    send_rate,
    track_peak,
    track_scale,
)

__all__ = ["StemPlayer"]

STATIC = Path(__file__).with_name("static")
OVERVIEW_COLS = 1600
MAX_TILE_COLS = 4096


# The player's script, in parts that share one scope (see the head of player_common.js).
PARTS = ("player_common", "player_audio", "player_tiles", "player_view", "player_hosts")


def player_script() -> str:
    """The player's JavaScript (shared by the widget and the offline page): its parts joined
    inside one function, which sets ``globalThis.BandscopePlayer``."""
    parts = [(STATIC / f"{name}.js").read_text(encoding="utf-8") for name in PARTS]
    return '(() => {\n  "use strict";\n' + "\n".join(parts) + "})();\n"


def player_style() -> str:
    """The player's CSS (shared by the widget and the offline page)."""
    return (STATIC / "player.css").read_text(encoding="utf-8")


def _tracks(stems: Stems, mix: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """``[(name, (channels, frames))]``: the mix first (when given), then the stems; checked."""
    if not isinstance(stems, Stems):
        raise ParameterError(f"StemPlayer plays Stems, not {type(stems).__name__}.")
    tracks = [(name, stems[name]) for name in stems.names]
    if mix is not None:
        mix = np.asarray(mix, dtype=np.float32)
        mix = mix[None] if mix.ndim == 1 else mix
        if mix.ndim != 2 or mix.shape[-1] != stems.frames:
            raise AudioError(
                f"The mix has shape {mix.shape} but the stems have {stems.frames} frames: give "
                "the mix the stems came from, at their sample rate "
                f"({stems.sample_rate} Hz), as (channels, frames)."
            )
        if mix.shape[0] not in (1, stems.channels):
            raise AudioError(f"The mix has {mix.shape[0]} channels and the stems {stems.channels}.")
        if "mix" in stems.names:
            raise ParameterError("A stem is named 'mix'; rename it to show the mix beside it.")
        tracks.insert(0, ("mix", np.broadcast_to(mix, (stems.channels, stems.frames))))
    return tracks


class StemPlayer(anywidget.AnyWidget):
    """Play, mix and look at stems in the browser: one clock, live gains, spectrogram lanes.

    Parameters
    ----------
    stems : Stems
    mix : np.ndarray [shape=(channels, frames)] or None
        The original mix: shown first, and the other side of A/B.
    max_mb : float
        The most PCM sent to the browser (see the module notes); beyond it, a preview rate.
    height : int
        Height of one lane in CSS pixels.
    offline_seconds : float or None
        Audio per track in the offline copy a notebook keeps beside the widget (from the
        start; ``None``: all of it, as reports do). See :mod:`.player_page`.
    mixer : bool
        True: a mixer (gain, mute, solo per stem) and ``listen="remix"``. False: one track is
        heard at a time (``listen`` names it; A/B switches between the last two), for
        comparing versions of one sound, as :class:`~.mask_explorer.MaskExplorer` does.
    masks : dict of str to (np.ndarray, int) or None
        Picture-only lanes: name to ``(mask, hop_length)``, a mask of values 0 to 1 on an STFT
        grid (see :func:`.lanes.mask_tile`), drawn on the lanes' frequency rows; change one
        with :meth:`set_mask`.
    order : list of str or None
        The lanes top to bottom (tracks and masks); default: the tracks, then the masks.
    labels : dict of str to str or None
        What some lanes are called on screen (any text; names must be safe file names, labels
        need not be), e.g. run labels in a comparison.

    Attributes
    ----------
    gains : dict of str to float
        Gain per stem in dB.
    muted, soloed : list of str
        Stems muted / soloed (any solo silences the stems not soloed).
    listen : str
        What is heard: ``"remix"`` (the mixer), ``"mix"`` or one stem's name (alone, at its gain).
    position : float
        Playhead in seconds; setting it seeks.
    playing : bool
        Setting it plays or pauses (a browser may wait for a first click before it plays sound).
    loop : list of float
        ``[start, end]`` in seconds, or ``[]`` for no loop.
    view : list of float
        The visible span ``[start, end]`` in seconds.
    kind : str
        Lane picture: ``"stft"``, ``"mel"``, ``"cqt"`` or ``"waveform"``.
    lane_order : list of str
        The lanes top to bottom.

    Examples
    --------
    >>> import bandscope_nb as bn
    >>> mix, truth = bn.demo.load()
    >>> player = StemPlayer(truth, mix=mix.samples)
    >>> player.tracks
    ['mix', 'drums', 'bass', 'other', 'vocals']
    >>> player.muted = ["vocals"]
    >>> player.gains = {**player.gains, "drums": -6.0}
    >>> heard = player.remix()
    >>> expected = truth.remix({"vocals": 0.0, "drums": 10 ** (-6 / 20)})
    >>> bool(np.allclose(heard, expected))
    True
    """

    _esm = T.Unicode().tag(sync=True)
    _css = T.Unicode().tag(sync=True)
    _uid = T.Unicode(read_only=True).tag(sync=True)

    tracks = T.List(T.Unicode(), read_only=True).tag(sync=True)
    stem_names = T.List(T.Unicode(), read_only=True).tag(sync=True)
    pictures = T.List(T.Unicode(), read_only=True).tag(sync=True)
    lane_order = T.List(T.Unicode(), read_only=True).tag(sync=True)
    mixer = T.Bool(True, read_only=True).tag(sync=True)
    lane_labels = T.Dict(value_trait=T.Unicode(), read_only=True).tag(sync=True)
    sample_rate = T.Int(read_only=True).tag(sync=True)
    source_rate = T.Int(read_only=True).tag(sync=True)
    frames = T.Int(read_only=True).tag(sync=True)
    duration = T.Float(read_only=True).tag(sync=True)
    channels = T.Int(read_only=True).tag(sync=True)
    _scales = T.List(T.Float(), read_only=True).tag(sync=True)
    _lanes = T.List(T.Dict(), read_only=True).tag(sync=True)
    _lut = T.Bytes(read_only=True).tag(sync=True)
    _lut_linear = T.Bytes(read_only=True).tag(sync=True)
    ref_db = T.Float(read_only=True).tag(sync=True)
    note = T.Unicode("").tag(sync=True)
    lane_height = T.Int(64).tag(sync=True)

    gains = T.Dict(value_trait=T.Float()).tag(sync=True)
    muted = T.List(T.Unicode()).tag(sync=True)
    soloed = T.List(T.Unicode()).tag(sync=True)
    listen = T.Unicode("remix").tag(sync=True)
    position = T.Float(0.0).tag(sync=True)
    playing = T.Bool(False).tag(sync=True)
    loop = T.List(T.Float()).tag(sync=True)
    view = T.List(T.Float()).tag(sync=True)
    kind = T.Unicode("stft").tag(sync=True)
    db_range = T.Float(80.0).tag(sync=True)

    def __init__(
        self,
        stems: Stems,
        mix: np.ndarray | None = None,
        *,
        max_mb: float = 320.0,
        height: int = 64,
        offline_seconds: float | None = 30.0,
        mixer: bool = True,
        masks: dict | None = None,
        order: list[str] | None = None,
        labels: dict | None = None,
    ):
        tracks = _tracks(stems, mix)
        self._masks = _masks(masks, [name for name, _ in tracks], stems)
        lanes_order = _order(order, [name for name, _ in tracks], list(self._masks))
        if not 24 <= height <= 400:
            raise ParameterError(f"Invalid height: {height!r}; a lane is 24 to 400 px high.")
        if offline_seconds is not None and not offline_seconds > 0:
            raise ParameterError(
                f"Invalid offline_seconds: {offline_seconds!r}; give seconds > 0, or None for all."
            )
        self.offline_seconds = offline_seconds
        rate = send_rate(stems.sample_rate, stems.frames, stems.channels, len(tracks), max_mb)
        note = ""
        if rate != stems.sample_rate:
            note = (
                f"Preview at {rate} Hz: {len(tracks)} tracks of {stems.duration / 60:.1f} min "
                f"at {stems.sample_rate} Hz exceed max_mb={max_mb:g}."
            )
            warn(f"StemPlayer: {note}")
        self.stems, self._mix = stems, (tracks[0][1] if mix is not None else None)
        self._samples = dict(tracks)
        with ThreadPoolExecutor(max_workers=2) as pool:  # numpy and soxr release the GIL
            peaks = list(pool.map(lambda t: track_peak(t[1]), tracks))
            for (name, _), peak in zip(tracks, peaks, strict=True):
                if not np.isfinite(peak):
                    raise AudioError(
                        f"Track {name!r} holds NaN or infinite samples; it cannot be played."
                    )
            sent = list(pool.map(lambda t: at_rate(t[1], stems.sample_rate, rate), tracks))
            scales = [track_scale(peak) for peak in peaks]  # resampling keeps the peak near
        self._sent = sent  # the tracks at the rate sent (the same arrays at the stems' rate)
        # The state is set before the widget opens, so the browser gets it in one message.
        # The audio follows in chunks and the lanes' pictures when computed, both from
        # threads, so the kernel is free at once (_push_audio, _make_lanes).
        self.set_trait("_esm", player_script() + "\nexport default BandscopePlayer.widget;\n")
        self.set_trait("_css", player_style())
        self.set_trait("_uid", uuid.uuid4().hex)
        self.set_trait("tracks", [name for name, _ in tracks])
        self.set_trait("stem_names", list(stems.names))
        self.set_trait("pictures", list(self._masks))
        self.set_trait("lane_order", lanes_order)
        self.set_trait("mixer", bool(mixer))
        self.set_trait("lane_labels", _labels(labels, lanes_order))
        self.set_trait("sample_rate", rate)
        self.set_trait("source_rate", stems.sample_rate)
        self.set_trait("frames", sent[0].shape[-1])
        self.set_trait("duration", stems.duration)
        self.set_trait("channels", stems.channels)
        self.set_trait("_scales", scales)
        self.set_trait("_lut", _colour_table())
        self.set_trait("_lut_linear", _colour_table("viridis"))
        self._gens = [0] * (len(tracks) + len(self._masks))  # one per lane: bumped on change
        self._tiles = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bandscope-tiles")
        self._latest = 0
        self._lock = threading.Lock()
        super().__init__(
            note=note,
            lane_height=height,
            gains=dict.fromkeys(stems.names, 0.0),
            listen="remix" if mixer else stems.names[0],
            view=[0.0, stems.duration],
        )
        self.browser: dict[str, float] = {}  # when a browser said it could play / had it all
        self.on_msg(self._on_message)
        self._pushing = threading.Lock()
        self._lanes_done = threading.Event()
        self._first_slice = threading.Event()
        self._pusher = threading.Thread(
            target=self._push_audio, name="bandscope-audio", daemon=True
        )
        self._pusher.start()
        threading.Thread(target=self._make_lanes, name="bandscope-lanes", daemon=True).start()

    def wait(self, timeout: float | None = None, *, audio: bool = True) -> bool:
        """Block until the lanes' pictures are computed and (``audio=True``) the audio is sent:
        both are made in threads after the widget opens. False if ``timeout`` s passed first."""
        if audio:
            self._pusher.join(timeout)
        return self._lanes_done.wait(timeout) and not (audio and self._pusher.is_alive())

    def _make_lanes(self) -> None:
        """The whole-track tile of every lane, at one dB reference (the loudest pixel). If that
        fails the lanes stay empty and the player says why; the audio still plays."""
        rate = self.stems.sample_rate
        self._first_slice.wait(5.0)  # let the first audio out before taking the cores
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:  # librosa's FFTs release the GIL
                overview = list(
                    pool.map(
                        lambda name: lane_tile(self._samples[name], rate, cols=OVERVIEW_COLS),
                        self.tracks,
                    )
                )
            ref_db = float(max(db.max() for _, db in overview))
            self.set_trait("ref_db", ref_db)
            with self._lock:
                lanes = [
                    _tile_state(i, tile, db, ref_db, self._gens[i])
                    for i, (tile, db) in enumerate(overview)
                ]
                lanes += [self._mask_state(name) for name in self._masks]
                self.set_trait("_lanes", lanes)
        except Exception as exc:  # a thread's error would otherwise vanish
            self.note = f"The lanes could not be drawn: {type(exc).__name__}: {exc}"
        finally:
            self._lanes_done.set()

    def _mask_state(self, name: str, **span) -> dict:
        """A mask lane's tile (the whole track unless ``span`` says otherwise) with its bytes."""
        mask, hop = self._masks[name]
        span.setdefault("cols", OVERVIEW_COLS)
        tile, values = mask_tile(mask, self.stems.sample_rate, hop, **span)
        index = len(self.tracks) + list(self._masks).index(name)
        data = np.rint(values * 255).astype(np.uint8).tobytes()
        return {**tile, "track": index, "gen": self._gens[index], "data": data}

    def change(self, *, tracks: dict | None = None, masks: dict | None = None) -> None:
        """Swap new audio into tracks and new masks into mask lanes, as one change.

        Everything is checked first. Then the audio goes (the browser swaps every changed
        track in at one moment, where it is playing, on the same clock), then the masks'
        pictures, then the changed tracks' pictures.

        Parameters
        ----------
        tracks : dict of str to np.ndarray [shape=(channels, frames)] or None
            New audio per track (a stem or the mix), each of its track's shape.
        masks : dict of str to np.ndarray or None
            New masks per mask lane, each on its lane's STFT grid.

        Examples
        --------
        >>> import bandscope_nb as bn
        >>> truth = bn.demo.load()[1]
        >>> player = StemPlayer(truth, mixer=False)
        >>> player.change(tracks={"drums": truth["drums"] / 2, "bass": truth["bass"] / 2})
        >>> player.listen = "drums"
        >>> bool(np.allclose(player.remix(), truth["drums"] / 2))
        True
        """
        tracks = {name: self._check_track(name, s) for name, s in (tracks or {}).items()}
        masks = {name: self._check_new_mask(name, m) for name, m in (masks or {}).items()}
        rate = self.stems.sample_rate
        sent = {name: at_rate(samples, rate, self.sample_rate) for name, samples in tracks.items()}
        self._lanes_done.wait()  # the first overview is in: the new pictures follow it
        with self._lock:
            batch = [self.tracks.index(name) for name in tracks]
            scales, messages = list(self._scales), []
            for name, samples in tracks.items():
                index = self.tracks.index(name)
                self._gens[index] += 1
                self._samples[name], self._sent[index] = samples, sent[name]
                scales[index] = scale = track_scale(track_peak(samples))
                meta = {"type": "replace", "track": index, "gen": self._gens[index]}
                pieces = list(pcm_chunks(sent[name], scale))
                for offset, frames, data in pieces:
                    part = {"offset": offset, "frames": frames, "parts": len(pieces)}
                    messages.append(({**meta, **part, "scale": scale, "batch": batch}, data))
            self.set_trait("_scales", scales)
            gens = [self._gens[i] for i in batch]  # this change's, whatever follows it
            if tracks:
                self._set_stems(tracks)
            for name, mask in masks.items():
                self._gens[len(self.tracks) + self.pictures.index(name)] += 1
                self._masks[name] = (mask, self._masks[name][1])
            mask_states = [self._mask_state(name) for name in masks]
        for meta, data in messages:
            self.send(meta, buffers=[data])  # (no browser yet: nothing goes)
        self._set_lanes(mask_states)
        with ThreadPoolExecutor(max_workers=2) as pool:  # librosa's FFTs release the GIL
            pictures = list(
                pool.map(lambda s: lane_tile(s, rate, cols=OVERVIEW_COLS), tracks.values())
            )
        states = [
            _tile_state(i, tile, db, self.ref_db, gen)
            for i, gen, (tile, db) in zip(batch, gens, pictures, strict=True)
        ]
        self._set_lanes(states)

    def relabel(self, labels: dict) -> None:
        """Name lanes anew (``{lane: text}``; lanes left out show their own names).

        Examples
        --------
        >>> import bandscope_nb as bn
        >>> player = StemPlayer(bn.demo.load()[1])
        >>> player.relabel({"vocals": "vocals · run 2"})
        >>> player.lane_labels
        {'vocals': 'vocals · run 2'}
        """
        self.set_trait("lane_labels", _labels(labels, list(self.lane_order)))

    def replace_track(self, name: str, samples: np.ndarray) -> None:
        """Give track ``name`` new audio of the same shape (see :meth:`change`)."""
        self.change(tracks={name: samples})

    def set_mask(self, name: str, mask: np.ndarray) -> None:
        """Show a new mask (same grid) in the mask lane ``name`` (see :meth:`change`)."""
        self.change(masks={name: mask})

    def _check_track(self, name: str, samples) -> np.ndarray:
        if name not in self.tracks:
            raise ParameterError(f"Unknown track {name!r}; tracks are {self.tracks}.")
        old = self._samples[name]
        samples = np.asarray(samples, dtype=np.float32)
        samples = samples[None] if samples.ndim == 1 else samples
        if samples.shape != old.shape:
            raise AudioError(
                f"Track {name!r} is {old.shape} (channels, frames); its new audio is "
                f"{samples.shape}: give the same shape."
            )
        if not np.isfinite(track_peak(samples)):
            raise AudioError(f"The new audio of {name!r} holds NaN or infinite samples.")
        return samples

    def _check_new_mask(self, name: str, mask) -> np.ndarray:
        if name not in self._masks:
            raise ParameterError(f"Unknown mask lane {name!r}; mask lanes are {self.pictures}.")
        old = self._masks[name][0]
        mask = _check_mask(name, mask)
        if mask.shape[-2:] != old.shape[-2:]:
            raise ParameterError(
                f"Mask {name!r} is {old.shape[-2:]} (bins, frames); the new one is "
                f"{mask.shape[-2:]}: give the same STFT grid."
            )
        return mask

    def _set_stems(self, tracks: dict) -> None:
        """The stems (and mix) that :meth:`remix` plays, with new audio for ``tracks``."""
        self._mix = tracks.get("mix", self._mix)
        if set(tracks) - {"mix"}:
            data = np.array(self.stems.data)
            for name in set(tracks) - {"mix"}:
                data[self.stems.names.index(name)] = tracks[name]
            self.stems = Stems(data, self.stems.names, self.stems.sample_rate)

    def _set_lanes(self, states: list[dict]) -> None:
        """Swap lanes' overview tiles (the browser drops those lanes' sharper tiles)."""
        with self._lock:
            lanes = list(self._lanes)
            if not lanes or not states:  # nothing new, or the lanes failed (the note says why)
                return
            for state in states:  # (a newer change's picture stays)
                if state.get("gen", 0) >= lanes[state["track"]].get("gen", 0):
                    lanes[state["track"]] = state
            self.set_trait("_lanes", lanes)

    def audio_chunks(self) -> Iterator[tuple[dict, bytes]]:
        """The audio messages, in order: ``({"type": "audio", "track", "slice", "slices",
        "offset", "frames"}, planar int16 bytes)`` (see :mod:`.player_audio`).

        Time slice by time slice, every track's chunk of a slice together: the browser can
        play from the start as soon as the first slice is in."""
        sent, scales = list(self._sent), list(self._scales)
        # every track's chunk edges at once, so all of them are cut alike
        edges = [chunk_edges(*samples.shape) for samples in sent]
        slices = len(edges[0]) - 1
        tracks = [pcm_chunks(*track) for track in zip(sent, scales, edges, strict=True)]
        for index, chunks in enumerate(zip(*tracks, strict=True)):
            for track, (offset, frames, data) in enumerate(chunks):
                meta = {"type": "audio", "track": track, "slice": index, "slices": slices}
                yield {**meta, "offset": offset, "frames": frames}, data

    def _push_audio(self) -> None:
        """Send every chunk (after the widget opened, or when a browser asks again, e.g. after
        a page reload); the browser ignores chunks it has."""
        if not self._pushing.acquire(blocking=False):
            return  # a push is under way
        try:
            for meta, data in self.audio_chunks():
                if self.comm is None:  # closed meanwhile
                    return
                if meta["slice"] == 1:
                    self._first_slice.set()
                self.send(meta, buffers=[data])
        finally:
            self._first_slice.set()
            self._pushing.release()

    def _ipython_display_(self) -> None:
        """Two outputs: the live widget, then its offline copy (:mod:`.player_page`), which
        the widget hides while it runs and which plays where no kernel or widget state is."""
        from IPython.display import display

        from .embed import display_widget_view
        from .player_page import offline_html

        display_widget_view(self)  # shown first: the browser gets audio meanwhile
        display({"text/html": offline_html(self, seconds=self.offline_seconds)}, raw=True)

    def save_html(self, path, *, title: str = "bandscope player", seconds: float | None = None):
        """Write the player as one offline HTML page (script inline, audio embedded as Ogg;
        ``seconds``: embed only the first seconds of each track); return the path."""
        from .player_page import save_html

        return save_html(self, path, title=title, seconds=seconds)

    # --- state checks -------------------------------------------------------------------

    @T.validate("gains")
    def _check_gains(self, proposal):
        gains = dict(proposal["value"])
        unknown = set(gains) - set(self.stems.names)
        if unknown:
            raise ParameterError(
                f"Unknown stem(s) {sorted(unknown)}; stems are {self.stems.names}."
            )
        for name, db in gains.items():
            if not np.isfinite(db) or not -120.0 <= db <= 24.0:
                raise ParameterError(f"Invalid gain for {name!r}: {db!r} dB; use -120 to 24 dB.")
        return {name: float(gains.get(name, 0.0)) for name in self.stems.names}

    @T.validate("muted", "soloed")
    def _check_names(self, proposal):
        names = list(dict.fromkeys(proposal["value"]))
        unknown = set(names) - set(self.stems.names)
        if unknown:
            raise ParameterError(
                f"Unknown stem(s) {sorted(unknown)} in {proposal['trait'].name}; "
                f"stems are {self.stems.names}."
            )
        return names

    @T.validate("listen")
    def _check_listen(self, proposal):
        value = proposal["value"]
        allowed = [
            *(["remix"] if self.mixer else []),
            *(["mix"] if self._mix is not None else []),
            *self.stems.names,
        ]
        if value not in allowed:
            raise ParameterError(f"Invalid listen: {value!r}; choose one of {allowed}.")
        return value

    @T.validate("position")
    def _check_position(self, proposal):
        value = float(proposal["value"])
        if not np.isfinite(value):
            raise ParameterError(f"Invalid position: {value!r} s.")
        return min(max(0.0, value), self.stems.duration)

    @T.validate("loop", "view")
    def _check_span(self, proposal):
        span = [float(v) for v in proposal["value"]]
        name = proposal["trait"].name
        if name == "loop" and not span:
            return span
        if len(span) != 2 or not 0.0 <= span[0] < span[1] <= self.stems.duration + 1e-6:
            raise ParameterError(
                f"Invalid {name}: {span!r}; give [start, end] seconds within "
                f"0 to {self.stems.duration:.3f} s."
            )
        return span

    @T.validate("kind")
    def _check_kind(self, proposal):
        allowed = (*KINDS, "waveform")
        if proposal["value"] not in allowed:
            raise ParameterError(f"Invalid kind: {proposal['value']!r}; choose one of {allowed}.")
        return proposal["value"]

    @T.validate("db_range")
    def _check_db_range(self, proposal):
        value = float(proposal["value"])
        if not 10.0 <= value <= 120.0:
            raise ParameterError(f"Invalid db_range: {value!r}; use 10 to 120 dB.")
        return value

    # --- what is heard ------------------------------------------------------------------

    def track_gains(self) -> dict[str, float]:
        """Linear gain per track (the mix too) for the current state: what the browser's
        ``GainNode`` s are ramped to.

        Examples
        --------
        >>> import bandscope_nb as bn
        >>> player = StemPlayer(bn.demo.load()[1])
        >>> player.soloed = ["bass"]
        >>> player.track_gains()
        {'drums': 0.0, 'bass': 1.0, 'other': 0.0, 'vocals': 0.0}
        """
        names = self.stems.names
        if not self.mixer:
            return {n: float(n == self.listen) for n in self.tracks}
        linear = {n: float(10 ** (self.gains[n] / 20)) for n in names}
        if self.listen == "mix":
            out = dict.fromkeys(names, 0.0)
        elif self.listen != "remix":
            out = {n: linear[n] if n == self.listen else 0.0 for n in names}
        elif self.soloed:
            out = {n: linear[n] if n in self.soloed else 0.0 for n in names}
        else:
            out = {n: 0.0 if n in self.muted else linear[n] for n in names}
        if self._mix is not None:
            out = {"mix": 1.0 if self.listen == "mix" else 0.0, **out}
        return out

    def remix(self) -> np.ndarray:
        """What the player plays now, at the stems' rate: :meth:`Stems.remix` with the mixer's
        gains, or the mix when ``listen == "mix"``. float32 ``(channels, frames)``."""
        gains = self.track_gains()
        if not self.mixer:
            return np.array(self._samples[self.listen], dtype=np.float32)
        if gains.pop("mix", 0.0):
            return np.array(self._mix, dtype=np.float32)
        return self.stems.remix(gains)

    # --- sharper tiles on request -------------------------------------------------------

    def tiles(self, *, kind: str, t0: float, t1: float, cols: int) -> list[tuple[dict, bytes]]:
        """Tiles of every track for a span, at this player's dB reference: what the browser
        asks for after a zoom or when the lane picture changes."""
        cols = int(min(max(cols, 16), MAX_TILE_COLS))
        self._lanes_done.wait()  # the dB reference comes with the overview
        out = []
        for index, name in enumerate(self.tracks):
            with self._lock:
                samples, gen = self._samples[name], self._gens[index]
            tile, db = lane_tile(
                samples, self.stems.sample_rate, kind=kind, t0=t0, t1=t1, cols=cols
            )
            out.append(_tile_state(index, tile, db, self.ref_db, gen))
        for name in self._masks:
            with self._lock:
                out.append(self._mask_state(name, kind=kind, t0=t0, t1=t1, cols=cols))
        return [(state, state.pop("data")) for state in out]

    def _on_message(self, widget, content, buffers) -> None:
        if not isinstance(content, dict):
            return
        if content.get("type") in ("playable", "complete"):
            self.browser[content["type"]] = time.time()
            return
        if content.get("type") == "audio":
            self._pusher = threading.Thread(target=self._push_audio, daemon=True)
            self._pusher.start()
            return
        if content.get("type") != "tiles":
            return
        with self._lock:
            self._latest = request = int(content.get("request", 0))
        self._tiles.submit(self._reply_tiles, request, content)

    def _reply_tiles(self, request: int, content: dict) -> None:
        if request != self._latest:  # a newer view superseded this one
            return
        try:
            tiles = self.tiles(
                kind=str(content["kind"]),
                t0=float(content["t0"]),
                t1=float(content["t1"]),
                cols=int(content["cols"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            self.send({"type": "error", "request": request, "message": str(exc)})
            return
        self.send(
            {"type": "tiles", "request": request, "tiles": [meta for meta, _ in tiles]},
            buffers=[data for _, data in tiles],
        )


def _tile_state(track: int, tile: dict, db: np.ndarray, ref_db: float, gen: int) -> dict:
    return {**tile, "track": track, "gen": gen, "data": quantise(db, ref_db).tobytes()}


def _check_mask(name: str, mask) -> np.ndarray:
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim not in (2, 3) or not np.isfinite(mask).all():
        raise ParameterError(
            f"Mask {name!r} must be finite, (bins, frames) or (channels, bins, frames); "
            f"it is {mask.shape}."
        )
    return mask


def _masks(masks: dict | None, tracks: list[str], stems: Stems) -> dict:
    """``{name: (mask, hop_length)}`` checked: names new, grids covering the stems."""
    out = {}
    for name, value in (masks or {}).items():
        if not isinstance(name, str) or not name or name in tracks or name in out:
            raise ParameterError(f"Invalid mask lane name {name!r}: it must be new and non-empty.")
        try:
            mask, hop = value
        except (TypeError, ValueError):
            raise ParameterError(f"Mask {name!r}: give (mask, hop_length).") from None
        mask = _check_mask(name, mask)
        if not isinstance(hop, int | np.integer) or hop < 1:
            raise ParameterError(f"Mask {name!r}: invalid hop_length {hop!r}.")
        if abs(mask.shape[-1] * hop - stems.frames) > 2 * hop + 1:
            raise ParameterError(
                f"Mask {name!r} has {mask.shape[-1]} frames of {hop} samples; the stems have "
                f"{stems.frames} samples: give the mask of these stems."
            )
        out[name] = (mask, int(hop))
    return out


def _labels(labels: dict | None, lanes: list[str]) -> dict:
    """``{lane: text}`` checked: known lanes, short text."""
    out = {}
    for name, text in (labels or {}).items():
        if name not in lanes:
            raise ParameterError(f"A label for {name!r}, which is no lane; lanes are {lanes}.")
        if not isinstance(text, str) or not 0 < len(text) <= 80:
            raise ParameterError(f"Invalid label for {name!r}: {text!r}; give 1 to 80 characters.")
        out[name] = text
    return out


def _order(order: list[str] | None, tracks: list[str], masks: list[str]) -> list[str]:
    lanes = [*tracks, *masks]
    if order is None:
        return lanes
    if sorted(order) != sorted(lanes):
        raise ParameterError(f"Invalid order {order!r}: list every lane once: {lanes}.")
    return list(order)


def _colour_table(name: str = "magma") -> bytes:
    """A matplotlib colour map as 256 RGB triples (magma: the lanes; viridis: the masks)."""
    from matplotlib import colormaps

    table = colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    return (np.rint(table * 255).astype(np.uint8)).tobytes()
