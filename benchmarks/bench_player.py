"""Stem player benchmark: a 5-minute track with four stems, in JupyterLab and headless Chromium.

The demo song and its true stems tiled to 5 minutes (44.1 kHz stereo). In one run:

- the kernel side: building ``StemPlayer(stems, mix)`` (the time the kernel is blocked: PCM,
  overview tiles), the bytes it sends, and its offline copy;
- the browser side, in a real JupyterLab: from pressing Run on the cell to a player that can
  play (audio decoded into AudioBuffers), a mute's latency (click to silent gain node), and
  zoom / scroll repaints;
- the references from 0.1, measured the same way in the same run: a mixer change re-rendered
  in the kernel (remix of a 30 s window and its Ogg ``<audio>`` element, which also stopped
  playback and rewound it), and a zoom / scroll of the 5-row matplotlib ``SpectrogramView``.

Writes (or replaces) its section in the Markdown file given with --write.

Usage: python benchmarks/bench_player.py [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_sections import publish

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
HEADING = "## Stem player: 5-minute track, four stems"
MINUTES = 5
CHROMIUM = "/usr/bin/chromium"
SETUP = f"""import numpy as np, bandscope_nb as bn
from bandscope_nb.notebook.player import StemPlayer
mix, truth = bn.demo.load()
reps, frames = int(np.ceil({MINUTES} * 60 / mix.duration)), {MINUTES} * 60 * mix.sample_rate
mix = np.tile(mix.samples, reps)[:, :frames]
stems = bn.Stems(np.tile(truth.data, reps)[:, :, :frames], truth.names, 44100)
warm = StemPlayer(bn.Stems(truth.data[:, :, :44100], truth.names, 44100))  # imports, first STFT
"""
MUTE = """el => new Promise(done => {
    // unmute bass if needed, wait for its gain to come back, then time a mute
    const p = el.querySelector('.bn-player'), e = p.bandscope.engine;
    const i = e.model.get('tracks').indexOf('bass');
    const button = p.querySelector(".bn-lane[data-track='bass'] .bn-mute");
    if (e.model.get('muted').includes('bass')) button.click();
    const wait = () => e.nodes[i].gain.value > 0.5 ? measure() : setTimeout(wait, 5);
    const measure = () => {
        const t0 = performance.now();
        button.click();
        const poll = () => e.nodes[i].gain.value < 1e-3 ? done(performance.now() - t0)
            : setTimeout(poll, 1);
        poll();
    };
    wait();
})"""
REPAINT = """([el, how]) => { const b = el.querySelector('.bn-player').bandscope;
    const [v0, v1] = b.engine.model.get('view'); const t0 = performance.now();
    if (how === 'zoom') b.zoom(0.8, (v0 + v1) / 2); else b.setView(v0 + 1, v1 + 1);
    return performance.now() - t0; }"""


def timed(fn, repeat: int = 1) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def long_track():
    import bandscope_nb as bn

    mix, truth = bn.demo.load()
    reps = int(np.ceil(MINUTES * 60 / mix.duration))
    frames = MINUTES * 60 * mix.sample_rate
    stems = bn.Stems(np.tile(truth.data, reps)[:, :, :frames], truth.names, mix.sample_rate)
    return np.tile(mix.samples, reps)[:, :frames], stems


def kernel_side(mix, stems) -> list[tuple[str, str]]:
    from bandscope_nb.notebook.embed import audio_element
    from bandscope_nb.notebook.player import StemPlayer
    from bandscope_nb.notebook.player_page import offline_html
    from bandscope_nb.notebook.widgets import SpectrogramView

    StemPlayer(bn_short(stems))  # imports and first STFT, as any earlier cell would have done
    build = timed(lambda: StemPlayer(stems, mix=mix), 2)
    player = StemPlayer(stems, mix=mix)
    player.wait()  # the lanes and the audio, made in threads
    pcm = sum(len(data) for _, data in player.audio_chunks())
    lanes = sum(len(t["data"]) for t in player._lanes)
    offline = timed(lambda: offline_html(player), 1)[0]
    offline_mb = len(offline_html(player)) / 1e6
    gains = dict.fromkeys(stems.names, 1.0)

    def rerender():  # 0.1's StemExplorer on every gain / mute / solo change
        gains["bass"] = 0.0 if gains["bass"] else 1.0
        audio_element(stems.remix(gains, window=(0.0, 30.0)), stems.sample_rate, duration=None)

    old = timed(rerender, 5)
    view = SpectrogramView({"mix": mix, **{n: stems[n] for n in stems.names}}, stems.sample_rate)
    old_zoom = timed(lambda: setattr(view.window, "value", view.window.value * 0.8), 3)
    old_scroll = timed(lambda: setattr(view.start, "value", view.start.value + 1.0), 3)
    return [
        (
            "kernel blocked by `StemPlayer(stems, mix)` (audio and lanes follow from threads)",
            f"{min(build):.2f} s (first {build[0]:.2f} s)",
        ),
        (
            "sent to the browser once: 16-bit PCM / lane tiles",
            f"{pcm / 1e6:.0f} MB / {lanes / 1e6:.1f} MB",
        ),
        (
            "offline copy (30 s of Ogg per track, images, script): build / size",
            f"{offline:.2f} s / {offline_mb:.1f} MB",
        ),
        (
            "reference (0.1): a mixer change re-rendered in the kernel (30 s remix, Ogg)",
            f"{statistics.median(old) * 1000:.0f} ms, and playback stopped and rewound",
        ),
        (
            "reference (0.1): `SpectrogramView` of the 5 tracks, zoom / scroll repaint",
            f"{statistics.median(old_zoom) * 1000:.0f} / "
            f"{statistics.median(old_scroll) * 1000:.0f} ms",
        ),
    ]


def bn_short(stems):
    import bandscope_nb as bn

    return bn.Stems(stems.data[:, :, :44100], stems.names, stems.sample_rate)


def browser_side() -> list[tuple[str, str]]:
    import nbformat
    from labserver import lab_server
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="bench-player-"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("player = StemPlayer(stems, mix=mix)\nplayer"),
    ]
    nbformat.write(nb, root / "bench.ipynb")
    settings = {
        "@jupyterlab/notebook-extension:tracker": {
            "autoStartDefaultKernel": True,
            "windowingMode": "none",
        },
        "@jupyterlab/apputils-extension:notification": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
    }
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--autoplay-policy=no-user-gesture-required",
    ]
    try:
        with lab_server(root, settings) as (url, token), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(f"{url}/lab/tree/bench.ipynb?token={token}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
            cells = page.locator(".jp-Notebook .jp-CodeCell")
            cells.nth(0).locator(".cm-content").click()
            page.keyboard.press("Shift+Enter")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=300_000)
            time.sleep(2)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-InputArea-prompt')]"
                ".some(p => p.textContent.trim() === '[1]:')",
                timeout=300_000,
            )
            cells.nth(1).locator(".cm-content").click()
            start = time.perf_counter()
            page.keyboard.press("Control+Enter")
            output = cells.nth(1).locator(".jp-OutputArea")
            page.wait_for_selector(".bn-player[data-ready='1']", timeout=300_000)
            playable = time.perf_counter() - start
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-InputArea-prompt')]"
                ".some(p => p.textContent.trim() === '[2]:')",
                timeout=300_000,
            )
            cell_done = time.perf_counter() - start
            handle = output.element_handle()
            output.locator(".bn-play").click()
            page.wait_for_timeout(500)
            mutes = [page.evaluate(MUTE, handle) for _ in range(5)]
            zooms = [page.evaluate(REPAINT, [handle, "zoom"]) for _ in range(10)]
            scrolls = [page.evaluate(REPAINT, [handle, "scroll"]) for _ in range(10)]
            browser.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        ("with Playwright attached: Run pressed → the player can play", f"{playable:.2f} s"),
        (
            "with Playwright attached: Run → cell finished (offline copy encoded after the player)",
            f"{cell_done:.2f} s",
        ),
        (
            "mute while playing: click → silent (browser gain ramp, kernel not involved)",
            f"{statistics.median(mutes):.0f} ms (worst {max(mutes):.0f})",
        ),
        (
            "zoom / scroll repaint of the 5 lanes (browser)",
            f"{statistics.median(zooms):.1f} / {statistics.median(scrolls):.1f} ms",
        ),
    ]


def plain_browser() -> list[tuple[str, str]]:
    """Run → playable / complete in a Chromium with no DevTools attached (Playwright's network
    tracing copies every websocket frame, which slows large transfers several times): the
    notebook is opened in a plain headless Chromium, the cells run through its kernel from
    here, and the player reports when the browser could play (``player.browser``)."""
    import json
    import subprocess
    import urllib.request

    import nbformat
    from jupyter_client import BlockingKernelClient
    from labserver import lab_server

    root = Path(tempfile.mkdtemp(prefix="bench-plain-"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1")]
    nbformat.write(nb, root / "plain.ipynb")
    settings = {"@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True}}
    flags = ["--headless", "--no-sandbox", "--disable-gpu"]
    try:
        with lab_server(root, settings) as (url, token):
            page = f"{url}/lab/tree/plain.ipynb?token={token}"
            chrome = subprocess.Popen(
                [CHROMIUM, *flags, page], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            try:
                sessions = []
                for _ in range(120):
                    with urllib.request.urlopen(f"{url}/api/sessions?token={token}") as r:
                        sessions = json.loads(r.read())
                    if sessions:
                        break
                    time.sleep(1)
                kernel = sessions[0]["kernel"]["id"]
                time.sleep(8)  # the page's widget manager connects to the kernel
                client = BlockingKernelClient(
                    connection_file=str(root / "runtime" / f"kernel-{kernel}.json")
                )
                client.load_connection_file()
                client.start_channels()
                client.execute_interactive(SETUP, timeout=300, output_hook=lambda m: None)
                client.execute_interactive(
                    "import time\nt0 = time.time()\nplayer = StemPlayer(stems, mix=mix)\n"
                    "blocked = time.time() - t0",
                    timeout=300,
                    output_hook=lambda m: None,
                )
                found: dict = {}
                for _ in range(240):
                    found.clear()
                    client.execute_interactive(
                        "print(player.browser.get('playable', t0) - t0, "
                        "player.browser.get('complete', t0) - t0, blocked)",
                        timeout=60,
                        output_hook=lambda m: (
                            found.update(m["content"]) if m["msg_type"] == "stream" else None
                        ),
                    )
                    playable, complete, blocked = map(float, found["text"].split())
                    if playable > 0 and complete > 0:
                        break
                    time.sleep(0.5)
                client.stop_channels()
            finally:
                chrome.terminate()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        (
            "plain Chromium: kernel blocked / Run → can play / Run → all audio in",
            f"{blocked:.2f} / {playable:.2f} / {complete:.2f} s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    mix, stems = long_track()
    rows = plain_browser()
    print(rows, flush=True)
    rows += browser_side()
    print(rows, flush=True)
    rows += kernel_side(mix, stems)
    lines = [
        HEADING,
        "",
        f"`benchmarks/bench_player.py`: the demo song and its stems tiled to {MINUTES} minutes "
        "(44.1 kHz stereo), a mix and four stems; JupyterLab and headless Chromium on this "
        "machine, then the kernel-side rows and the 0.1 references, same run.",
        "",
        "| what | measured |",
        "|---|---:|",
    ]
    lines += [f"| {what} | {value} |" for what, value in rows]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
