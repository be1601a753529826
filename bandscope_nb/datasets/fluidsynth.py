"""Render MIDI with the fluidsynth program and a General MIDI SoundFont (Debian:
``apt-get install fluidsynth fluid-soundfont-gm``), to float samples with no reverb, chorus or
dither, so the same file always renders to the same samples."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import MissingDependencyError

__all__ = ["SOUNDFONTS", "find_soundfont", "fluidsynth_version", "render_midi"]

#: Where General MIDI SoundFonts are installed (Debian/Ubuntu, Fedora, Arch), tried in order
#: after ``BANDSCOPE_SOUNDFONT``.
SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
)


def _fluidsynth() -> str:
    found = shutil.which("fluidsynth")
    if found is None:
        raise MissingDependencyError(
            "The fluidsynth program is not installed; synthetic multitracks are rendered with "
            "it. Install it (Debian/Ubuntu: apt-get install fluidsynth fluid-soundfont-gm)."
        )
    return found


def find_soundfont(soundfont: str | os.PathLike | None = None) -> Path:
    """The SoundFont to render with: ``soundfont``, else ``BANDSCOPE_SOUNDFONT``, else the first
    of :data:`SOUNDFONTS` that exists."""
    chosen = soundfont or os.environ.get("BANDSCOPE_SOUNDFONT")
    candidates = [Path(chosen)] if chosen else [Path(p) for p in SOUNDFONTS]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise MissingDependencyError(
        f"No General MIDI SoundFont at {[str(p) for p in candidates]}; install one (Debian/"
        "Ubuntu: apt-get install fluid-soundfont-gm) or set BANDSCOPE_SOUNDFONT to a .sf2 file."
    )


def fluidsynth_version() -> str:
    """The installed fluidsynth's version line (part of a rendering's identity)."""
    out = subprocess.run([_fluidsynth(), "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def render_midi(midi: bytes, soundfont: Path, sample_rate: int, frames: int) -> np.ndarray:
    """``midi`` rendered to ``(2, frames)`` float32 (cut or padded with silence)."""
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="bandscope-synth-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        command = [_fluidsynth(), "-ni", "-q", "-g", "0.5", "-R", "0", "-C", "0"]
        command += ["-r", str(sample_rate), "-O", "float", "-T", "wav", "-F", str(wav)]
        done = subprocess.run(
            [*command, str(soundfont), str(mid)], capture_output=True, text=True, timeout=600
        )
        said = (done.stderr or "") + (done.stdout or "")
        # fluidsynth exits 0 with silence when the SoundFont is unusable: its errors count
        if done.returncode != 0 or "error" in said.lower() or not wav.is_file():
            raise MissingDependencyError(
                f"fluidsynth could not render with {soundfont} (exit {done.returncode}): "
                f"{said.strip()[-300:]}"
            )
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise MissingDependencyError(f"fluidsynth wrote {rate} Hz instead of {sample_rate} Hz.")
    out = np.zeros((2, frames), np.float32)
    out[:, : min(frames, len(audio))] = audio[:frames].T
    return out
