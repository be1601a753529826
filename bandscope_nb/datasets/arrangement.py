"""Random, musical four-part arrangements: a drum kit, a bass line, chords, and a lead melody in
the vocal range, in a random key, mode, tempo, progression and instrumentation.

Everything is drawn from one ``numpy.random.Generator``, so a seed gives the same arrangement
on every machine. Times are in seconds; pitches are MIDI note numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .midi import DRUM_CHANNEL

__all__ = ["STEMS", "Arrangement", "arrange"]

STEMS = ("drums", "bass", "other", "vocals")
CHANNELS = {"drums": DRUM_CHANNEL, "bass": 0, "other": 1, "vocals": 2}

#: General MIDI programmes per stem (FluidR3 GM names in comments).
PROGRAMS = {
    "drums": [
        0,
        8,
        16,
        24,
        25,
        32,
        40,
    ],  # kits: standard, room, power, electronic, 808, jazz, brush
    "bass": [32, 33, 34, 35, 36, 37, 38, 39],  # acoustic, finger, pick, fretless, slap, synth
    "other": [0, 1, 2, 4, 5, 16, 17, 19, 24, 25, 26, 27, 48, 49, 50, 88, 89, 90, 91, 94],
    "vocals": [52, 53, 54, 56, 64, 65, 66, 68, 71, 73, 80, 81, 85],  # voices, brass, reeds, leads
}
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {  # scale degrees (0-based) of one chord per bar
    "major": [(0, 4, 5, 3), (0, 3, 4, 3), (5, 3, 0, 4), (0, 5, 3, 4), (1, 4, 0, 0), (0, 3, 0, 4)],
    "minor": [(0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 5, 4), (0, 5, 3, 4)],
}
DRUM_PATTERNS = {  # beats in a 4/4 bar: kick, snare, hats (eighths or sixteenths)
    "rock": ((0, 2, 2.5), (1, 3), 0.5),
    "four on the floor": ((0, 1, 2, 3), (1, 3), 0.5),
    "half time": ((0, 2.5), (2,), 0.5),
    "busy": ((0, 0.75, 2, 2.5), (1, 3), 0.25),
}
BASS_PATTERNS = {  # (beat, offset in semitones from the root, duration in beats)
    "eighths": [(b / 2, 0, 0.45) for b in range(8)],
    "root fifth": [(0, 0, 0.9), (1, 7, 0.9), (2, 0, 0.9), (3, 7, 0.9)],
    "octaves": [(0, 0, 0.45), (0.5, 12, 0.45), (1.5, 0, 0.45), (2, 0, 0.45), (3, 12, 0.9)],
    "syncopated": [(0, 0, 0.7), (0.75, 0, 0.2), (1.5, 7, 0.45), (2.5, 0, 0.45), (3.5, 10, 0.45)],
}


@dataclass(frozen=True)
class Arrangement:
    """One arrangement: its choices and, per stem, its part.

    Attributes
    ----------
    tempo : float
        Beats per minute.
    key, mode : int, str
        Tonic pitch class (0 = C) and ``"major"`` or ``"minor"``.
    programs, pans, gains_db : dict
        Per stem: General MIDI programme (a kit for drums), pan (0-127), level in dB (-9 to 0,
        applied once the renderer has brought every stem to the same RMS).
    notes : dict
        Per stem: ``(start_s, duration_s, pitch, velocity)`` tuples.
    """

    tempo: float
    key: int
    mode: str
    programs: dict
    pans: dict
    gains_db: dict
    notes: dict

    def describe(self) -> str:
        """One line: tempo, key and the instruments.

        Examples
        --------
        >>> arrange(np.random.default_rng(0), 4.0).describe()
        '118 bpm, Ebm; programmes: drums 24, bass 38, other 88, vocals 65'
        """
        names = "C C# D Eb E F F# G Ab A Bb B".split()
        tonic = names[self.key] + ("m" if self.mode == "minor" else "")
        parts = ", ".join(f"{s} {self.programs[s]}" for s in STEMS)
        return f"{self.tempo:.0f} bpm, {tonic}; programmes: {parts}"


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _velocity(rng, base: int, spread: int = 8) -> int:
    return int(np.clip(base + rng.integers(-spread, spread + 1), 1, 127))


def arrange(rng: np.random.Generator, seconds: float) -> Arrangement:
    """A random arrangement ``seconds`` long (notes past the end are left for the renderer
    to cut).

    Examples
    --------
    >>> a = arrange(np.random.default_rng(1), 6.0)
    >>> sorted(a.notes) == sorted(STEMS) and all(a.notes[s] for s in ("drums", "bass", "other"))
    True
    >>> all(55 <= pitch <= 81 for _, _, pitch, _ in a.notes["vocals"])
    True
    """
    tempo = float(rng.uniform(80, 140))
    beat = 60.0 / tempo
    mode = _pick(rng, ["major", "minor"])
    key = int(rng.integers(12))
    scale = MAJOR if mode == "major" else MINOR
    progression = _pick(rng, PROGRESSIONS[mode])
    bars = math.ceil(seconds / (4 * beat)) + 1

    def chord(bar: int) -> list[int]:  # pitch classes above the tonic, root first
        degree = progression[bar % len(progression)]
        return [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]

    notes = {stem: [] for stem in STEMS}
    kicks, snares, hat_step = DRUM_PATTERNS[_pick(rng, list(DRUM_PATTERNS))]
    bass_pattern = BASS_PATTERNS[_pick(rng, list(BASS_PATTERNS))]
    keys_style = _pick(rng, ["held", "stabs", "arpeggio"])
    lead_start = int(rng.integers(0, 2))  # a bar of intro without the lead, or none
    lead_low = 57 + int(rng.integers(0, 6))  # a singer's range: about an octave and a half
    bass_low = int(rng.integers(24, 37))  # roots in the octave above C1..C2 (5- and 4-string)
    keys_low = int(rng.integers(43, 61))  # chords voiced in the octave above G2..C4
    for bar in range(bars):
        t0 = bar * 4 * beat
        # drums
        for b in kicks:
            notes["drums"].append((t0 + b * beat, 0.2, 36, _velocity(rng, 108)))
        for b in snares:
            notes["drums"].append((t0 + b * beat, 0.2, 38, _velocity(rng, 96)))
        for k in range(int(4 / hat_step)):
            accent = 60 if (k * hat_step) % 1 == 0 else 44
            notes["drums"].append((t0 + k * hat_step * beat, 0.1, 42, _velocity(rng, accent)))
        if bar % 4 == 3 and rng.random() < 0.5:  # a fill on the toms
            for k, tom in enumerate((50, 48, 45, 43)):
                notes["drums"].append((t0 + (3 + k / 4) * beat, 0.2, tom, _velocity(rng, 90)))
        if bar % 4 == 0 and rng.random() < 0.6:
            notes["drums"].append((t0, 1.0, 49, _velocity(rng, 84)))
        # bass: the chord's root in the bass octave
        root = bass_low + (key + chord(bar)[0] - bass_low) % 12
        for b, offset, duration in bass_pattern:
            pitch = root + offset
            notes["bass"].append((t0 + b * beat, duration * beat, pitch, _velocity(rng, 96)))
        # chords: each tone in the octave above keys_low
        triad = [keys_low + (key + pc - keys_low) % 12 for pc in chord(bar)]
        if keys_style == "held":
            onsets = [(0.0, 4.0)]
        elif keys_style == "stabs":
            onsets = [(0.0, 1.2), (1.5, 0.9), (3.0, 0.9)]
        else:
            onsets = []
        for b, duration in onsets:
            for pitch in triad:
                notes["other"].append((t0 + b * beat, duration * beat, pitch, _velocity(rng, 74)))
        if keys_style == "arpeggio":
            for k in range(8):
                pitch = sorted(triad)[[0, 1, 2, 1][k % 4]] + (12 if k % 8 >= 4 else 0)
                notes["other"].append((t0 + k * beat / 2, 0.45 * beat, pitch, _velocity(rng, 70)))
        # lead: chord tones on strong beats, scale steps between, a rest now and then
        if bar < lead_start:
            continue
        b = 0.0
        while b < 4.0:
            duration = float(_pick(rng, [0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
            if rng.random() < 0.15:  # breathe
                b += duration
                continue
            pool = chord(bar) if b % 1 == 0 else list(scale)
            pc = (key + _pick(rng, pool)) % 12
            pitch = lead_low + (pc - lead_low) % 12 + (12 if rng.random() < 0.4 else 0)
            pitch = min(pitch, 81)
            length = min(duration, 4.0 - b) * 0.95 * beat
            notes["vocals"].append((t0 + b * beat, length, pitch, _velocity(rng, 96)))
            b += duration
    return Arrangement(
        tempo=tempo,
        key=key,
        mode=mode,
        programs={stem: int(_pick(rng, PROGRAMS[stem])) for stem in STEMS},
        pans={
            "drums": 64,
            "bass": 64 + int(rng.integers(-8, 9)),
            "other": 64 + int(rng.integers(-40, 41)),
            "vocals": 64 + int(rng.integers(-12, 13)),
        },
        gains_db={stem: float(rng.uniform(-9.0, 0.0)) for stem in STEMS},
        notes={stem: [n for n in notes[stem] if n[0] < seconds] for stem in STEMS},
    )
