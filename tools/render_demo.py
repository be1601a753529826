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
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from bandscope_nb.datasets.midi import Part, midi_file

DEMO = Path(__file__).resolve().parent.parent / "bandscope_nb" / "demo"


def track_midi(track: dict, tempo_bpm: float) -> bytes:
    """One track of song.json (times in beats) as a MIDI file of its own."""
    beat = 60.0 / tempo_bpm
    notes = [(start * beat, dur * beat, pitch, vel) for start, dur, pitch, vel in track["notes"]]
    end = max(start + dur for start, dur, _, _ in notes)  # (+2 s below: the releases ring on)
    part = Part(track["channel"], track["program"], 0.0, end + 2.0, notes, pan=track["pan"])
    return midi_file([part])


def render(soundfont: str) -> None:
    song = json.loads((DEMO / "song.json").read_text())
    rate = song["sample_rate"]
    frames = round((song["beats"] * 60 / song["tempo_bpm"] + song["tail_seconds"]) * rate)
    stems = {}
    with tempfile.TemporaryDirectory() as tmp:
        for track in song["tracks"]:
            mid, wav = Path(tmp) / f"{track['stem']}.mid", Path(tmp) / f"{track['stem']}.wav"
            mid.write_bytes(track_midi(track, song["tempo_bpm"]))
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
