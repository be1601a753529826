"""Test helpers: tiny real Demucs models with random weights, short signals, a bad-input corpus."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

SOURCES = ["drums", "bass", "other", "vocals"]
RATE = 44100


def tiny_htdemucs(seed: int = 0, *, segment: float = 1, samplerate: int = RATE):
    """An HTDemucs of ~6k parameters with random weights (real architecture, real forward)."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(
        SOURCES,
        audio_channels=2,
        samplerate=samplerate,
        segment=segment,
        channels=4,
        depth=2,
        nfft=512,
        t_layers=1,
        t_heads=1,
        bottom_channels=0,
        dconv_mode=0,
        t_hidden_scale=1.0,
    )
    return model.eval()


def tiny_hdemucs(seed: int = 0, *, segment: float = 1):
    """An HDemucs of ~4k parameters with random weights."""
    import torch
    from demucs.hdemucs import HDemucs

    torch.manual_seed(seed)
    return HDemucs(
        SOURCES, audio_channels=2, samplerate=RATE, segment=segment, channels=4, depth=2, nfft=64
    ).eval()


def noise(seconds: float, *, channels: int = 2, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Quiet white noise, float32 (channels, frames)."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, int(seconds * rate)))).astype(np.float32)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Signal-to-noise ratio of ``estimate`` against ``reference`` in dB (inf when equal)."""
    err = np.sum((np.asarray(reference, np.float64) - estimate) ** 2)
    return float("inf") if err == 0 else float(10 * np.log10(np.sum(reference**2.0) / err))


def _patched_rate_wav(path: Path, rate: int) -> Path:
    """A valid 8 kHz WAV whose header is then edited to claim ``rate`` Hz."""
    import struct

    sf.write(path, noise(0.1, rate=8000).T, 8000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = struct.pack("<I", rate)  # sample rate
    data[28:32] = struct.pack("<I", rate * 4)  # byte rate (2 channels x 16 bit)
    path.write_bytes(bytes(data))
    return path


def bad_input_corpus(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """Files a user might pass, made on the spot: name -> (path, expected error text or None).

    ``None`` means the file is legitimately valid and must separate.
    """
    folder.mkdir(parents=True, exist_ok=True)
    corpus: dict[str, tuple[Path, str | None]] = {}

    def add(name, expected, write=None, data=None):
        path = folder / name
        if write is not None:
            write(path)
        elif data is not None:
            path.write_bytes(data)
        corpus[name] = (path, expected)

    add("empty.wav", "empty", data=b"")
    add(
        "zero_frames.wav",
        "no audio frames",
        write=lambda p: sf.write(p, np.zeros((0, 2), np.float32), RATE),
    )
    sf.write(folder / "_ok.wav", noise(0.2).T, RATE)
    add("truncated_header.wav", "not a readable", data=(folder / "_ok.wav").read_bytes()[:30])
    (folder / "_ok.wav").unlink()
    add("random_bytes.wav", "not a readable", data=np.random.default_rng(0).bytes(4096))
    add("text.mp3", "not a readable", data=b"this is not audio\n" * 100)
    nan = noise(0.2).T.copy()
    nan[100, 0] = np.nan
    add("nan.wav", "NaN", write=lambda p: sf.write(p, nan, RATE, subtype="FLOAT"))
    inf = noise(0.2).T.copy()
    inf[-1, 1] = np.inf
    add("inf.wav", "Inf", write=lambda p: sf.write(p, inf, RATE, subtype="FLOAT"))
    add("silence.wav", None, write=lambda p: sf.write(p, np.zeros((RATE // 2, 2)), RATE))
    add("one_frame.wav", None, write=lambda p: sf.write(p, noise(1 / RATE).T, RATE))
    add(
        "six_channels.wav",
        "6 channels",
        write=lambda p: sf.write(p, noise(0.2, channels=6).T, RATE),
    )
    add("rate_1hz.wav", "sample rate", write=lambda p: _patched_rate_wav(p, 1))
    add("rate_768khz.wav", "sample rate", write=lambda p: _patched_rate_wav(p, 768_000))
    add("pcm24.wav", None, write=lambda p: sf.write(p, noise(0.3).T, RATE, subtype="PCM_24"))
    add("float64.wav", None, write=lambda p: sf.write(p, noise(0.3).T, RATE, subtype="DOUBLE"))
    add("zero_byte.flac", "empty", data=b"")
    add("with space ünïcødé.wav", None, write=lambda p: sf.write(p, noise(0.3).T, RATE))
    add("-leading-dash.wav", None, write=lambda p: sf.write(p, noise(0.3).T, RATE))
    add("a_directory.wav", "directory", write=lambda p: p.mkdir())
    add("missing.wav", "no such file")
    import os

    if os.getuid() != 0:  # root reads everything: permissions cannot make a file unreadable

        def unreadable(p):
            sf.write(p, noise(0.2).T, RATE)
            p.chmod(0)

        add("unreadable.wav", "permission denied", write=unreadable)
    return corpus


def five_minute_stems():
    """Four 5-minute stereo noise stems at 22.05 kHz (for size checks of embedded players)."""
    import bandscope_nb as bn

    rng = np.random.default_rng(0)
    data = 0.1 * rng.standard_normal((4, 2, 300 * 22050), dtype=np.float32)
    return bn.Stems(data, ["drums", "bass", "other", "vocals"], 22050)


class _FileHandler(http.server.BaseHTTPRequestHandler):
    """GET of any ``*.th`` path returns ``body``; ``/stall`` sends half of it and goes quiet for
    5 s, ``/short`` sends half and hangs up; anything else is 404."""

    body = b""

    def do_GET(self):
        if not (self.path.endswith(".th") or self.path in ("/stall", "/short")):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if self.path in ("/stall", "/short"):
            self.wfile.write(self.body[: len(self.body) // 2])
            self.wfile.flush()
            time.sleep(5 if self.path == "/stall" else 0)
            return
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@contextmanager
def serve_file(path: Path) -> Iterator[str]:
    """Serve ``path``'s bytes over HTTP on 127.0.0.1 (see ``_FileHandler``); yield the base URL."""
    handler = type("Handler", (_FileHandler,), {"body": Path(path).read_bytes()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
