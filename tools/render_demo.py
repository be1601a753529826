"""Render the demo song (bandscope_nb/demo/song.json) into per-stem FLAC files and their mix.

Each track is written as its own MIDI file and rendered alone with fluidsynth and the General MIDI
SoundFont from Debian (``apt-get install fluidsynth fluid-soundfont-gm``). All stems get one common
gain, are quantised to 16-bit integers, and the mix is their exact integer sum, so
``mix == drums + bass + other + vocals`` holds to the last bit. CI does not run this; the rendered
files are committed.

Usage: python tools/render_demo.py [--soundfont PATH]
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

DEMO = Path(__file__).resolve().parent.parent / "bandscope_nb" / "demo"
TICKS = 480  # per beat


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    while value > 0x7F:
        value >>= 7
        out.append(0x80 | (value & 0x7F))
    return bytes(reversed(out))


def midi_file(track: dict, tempo_bpm: float) -> bytes:
    """A type-0 MIDI file holding one track: tempo, program, pan, then its notes."""
    ch = track["channel"]
    events = []  # (tick, order, bytes): note-offs sort before note-ons at the same tick
    for start, dur, pitch, vel in track["notes"]:
        on, off = round(start * TICKS), round((start + dur) * TICKS)
        events.append((on, 1, bytes([0x90 | ch, pitch, vel])))
        events.append((off, 0, bytes([0x80 | ch, pitch, 0])))
    tempo = round(60_000_000 / tempo_bpm)
    body = b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    body += b"\x00" + bytes([0xC0 | ch, track["program"]])
    body += b"\x00" + bytes([0xB0 | ch, 10, track["pan"]])
    now = 0
    for tick, _, data in sorted(events):
        body += _varlen(tick - now) + data
        now = tick
    body += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS)
    return header + b"MTrk" + struct.pack(">I", len(body)) + body


def render(soundfont: str) -> None:
    song = json.loads((DEMO / "song.json").read_text())
    rate = song["sample_rate"]
    frames = round((song["beats"] * 60 / song["tempo_bpm"] + song["tail_seconds"]) * rate)
    stems = {}
    with tempfile.TemporaryDirectory() as tmp:
        for track in song["tracks"]:
            mid, wav = Path(tmp) / f"{track['stem']}.mid", Path(tmp) / f"{track['stem']}.wav"
            mid.write_bytes(midi_file(track, song["tempo_bpm"]))
            subprocess.run(
                [
                    "fluidsynth",
                    "-ni",
                    "-q",
                    "-g",
                    "0.6",
                    "-R",
                    "0",
                    "-C",
                    "0",
                    "-r",
                    str(rate),
                    "-F",
                    str(wav),
                    soundfont,
                    str(mid),
                ],
                check=True,
            )
            audio, sr = sf.read(wav, dtype="float64", always_2d=True)
            assert sr == rate, (sr, rate)
            audio = np.pad(audio, ((0, max(0, frames - len(audio))), (0, 0)))[:frames]
            stems[track["stem"]] = audio
    peak = np.abs(sum(stems.values())).max()
    gain = 10 ** (-3 / 20) * 32767 / peak  # mix peaks at -3 dBFS
    ints = {name: np.round(audio * gain).astype(np.int32) for name, audio in stems.items()}
    ints["mix"] = sum(ints.values())
    for name, data in ints.items():
        assert np.abs(data).max() <= 32767, name
        sf.write(
            DEMO / f"{name}.flac",
            data.astype(np.int16),
            rate,
            subtype="PCM_16",
            compression_level=1.0,
        )
    sizes = {p.name: p.stat().st_size for p in sorted(DEMO.glob("*.flac"))}
    print(f"{frames / rate:.2f} s; sizes: {sizes}; total {sum(sizes.values()) / 1e6:.2f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soundfont", default="/usr/share/sounds/sf2/FluidR3_GM.sf2")
    render(parser.parse_args().soundfont)
