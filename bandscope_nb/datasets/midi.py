"""Standard MIDI files written from note lists, for rendering with a SoundFont synthesiser.

A :class:`Part` is one instrument on one channel over a stretch of time, its notes in seconds.
:func:`midi_file` writes parts as one type-0 file at a fixed tempo (so seconds map to ticks
exactly); each part sets its programme, pan and volume when it starts and silences its channel
when it ends, so parts rendered one after another in a file do not bleed into each other.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = ["DRUM_CHANNEL", "Part", "midi_file"]

#: General MIDI's percussion channel (0-based); its programmes select drum kits.
DRUM_CHANNEL = 9
TICKS_PER_BEAT = 480
TEMPO_US = 500_000  # 120 beats per minute: 960 ticks per second
TICKS_PER_SECOND = TICKS_PER_BEAT * 1_000_000 // TEMPO_US


@dataclass(frozen=True)
class Part:
    """One instrument on one channel from ``start`` to ``end`` seconds.

    Attributes
    ----------
    channel, program, pan, volume : int
        MIDI channel (0-15), programme (0-127), pan (0 left, 64 centre, 127 right), volume.
    start, end : float
        Seconds: controls are sent at ``start``, every sound on the channel stops at ``end``.
    notes : list of (start_s, duration_s, pitch, velocity)
        Absolute times in seconds; notes are cut at ``end``.
    """

    channel: int
    program: int
    start: float
    end: float
    notes: list = field(default_factory=list)
    pan: int = 64
    volume: int = 100


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def _tick(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


def midi_file(parts: list[Part]) -> bytes:
    """The parts as a type-0 MIDI file (bytes).

    Examples
    --------
    >>> data = midi_file([Part(0, 33, 0.0, 2.0, [(0.0, 0.5, 40, 100), (1.5, 1.0, 43, 90)])])
    >>> data[:4], len(data)
    (b'MThd', 67)
    """
    events = []  # (tick, order, bytes): offs, then controls, then ons at one tick
    for part in parts:
        ch, begin, end = part.channel, _tick(part.start), _tick(part.end)
        events.append((begin, 1, bytes([0xC0 | ch, part.program])))
        events.append((begin, 1, bytes([0xB0 | ch, 10, part.pan])))
        events.append((begin, 1, bytes([0xB0 | ch, 7, part.volume])))
        for start, duration, pitch, velocity in part.notes:
            on = max(begin, _tick(start))
            off = min(end, _tick(start + duration))
            if off > on:
                events.append((on, 2, bytes([0x90 | ch, pitch, velocity])))
                events.append((off, 0, bytes([0x80 | ch, pitch, 0])))
        events.append((end, 0, bytes([0xB0 | ch, 120, 0])))  # all sound off
    body = b"\x00\xff\x51\x03" + TEMPO_US.to_bytes(3, "big")
    now = 0
    for tick, _, data in sorted(events, key=lambda e: (e[0], e[1])):
        body += _varlen(tick - now) + data
        now = tick
    body += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_BEAT)
    return header + b"MTrk" + struct.pack(">I", len(body)) + body
