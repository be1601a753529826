"""The quick-start notebook in a real JupyterLab, driven in headless Chromium with Playwright.

JupyterLab serves a copy of notebooks/ on 127.0.0.1 with a token; the tests run every cell from
the Run menu once and then use the stem player as a person would: play, then mute, solo and pull
a gain while it plays (playback goes on, sources started once, together); the browser's own
render of the mixer state against the kernel's ``player.remix()``; a mute while the kernel
sleeps; seek by clicking a lane; zoom and scroll repaint times; keys that must not reach
JupyterLab. Then the saved notebook is reopened without its kernel and exported with nbconvert,
and both must still play. Screenshots (light, dark, 1024 px) go to build/screenshots/. Outside CI
the tests skip when Chromium or Playwright is missing; in CI (``CI`` set) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from labserver import LabError, lab_server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SHOTS = ROOT / "build" / "screenshots"
LAB_SETTINGS = {  # start the notebook's kernel without asking; no news or update checks
    "@jupyterlab/notebook-extension:tracker": {
        "autoStartDefaultKernel": True,
        "windowingMode": "none",
    },
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": False},
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"The JupyterLab browser test cannot run in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over a copy of notebooks/; yields its base URL, token and root."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    try:
        with lab_server(root, LAB_SETTINGS) as (url, token):
            yield url, token, root
    except LabError as exc:
        pytest.fail(str(exc))


def _wait_all_cells_ran(page, timeout_s: float = 300) -> list[str]:
    """Wait until every code cell shows an execution count; return the prompts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        if prompts and all(p.strip() not in ("[ ]:", "[*]:", "") for p in prompts):
            return prompts
        time.sleep(1)
    pytest.fail(f"Not every cell ran within {timeout_s} s: {prompts}")


PAINTED = """el => [...el.querySelectorAll('canvas.bn-lane-canvas')].every(c => {
    if (c.width < 200) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let colours = new Set();
    for (let i = 0; i < d.length && colours.size < 40; i += 4 * 97) {
        colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return colours.size >= 40;  // a spectrogram, not a blank or flat canvas
})"""
VIEW = "el => el.querySelector('.bn-player').bandscope.engine.model.get('view')"
STATE = """el => { const p = el.querySelector('.bn-player'), e = p.bandscope.engine;
    return {position: e.position(), playing: e.playing, time: e.ctx ? e.ctx.currentTime : 0,
            starts: e.starts.map(s => [s.track, s.when, s.offset]), ready: p.dataset.ready,
            draw: Number(p.dataset.drawMs)}; }"""


def _run_new_cell(page, code: str, *, wait: bool = True) -> str:
    """Add a cell at the end of the notebook, run it and return its text output."""
    page.locator(".jp-Notebook .jp-Cell").last.locator(".jp-InputPrompt").click()  # not its output
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    cell = page.locator(".jp-Notebook .jp-Cell").nth(
        page.locator(".jp-Notebook .jp-Cell").count() - 1
    )
    cell.locator(".cm-content").click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Control+Enter")  # run in place (Shift+Enter would add a cell below)
    if wait:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            prompt = cell.locator(".jp-InputArea-prompt").inner_text().strip()
            if prompt not in ("[ ]:", "[*]:", ""):
                break
            time.sleep(0.2)
    return cell.locator(".jp-OutputArea").inner_text() if wait else ""


@pytest.fixture(scope="module")
def studio(lab):
    """The quick-start notebook run top to bottom in JupyterLab; yields (page, explorer, lab)."""
    from playwright.sync_api import sync_playwright

    url, token, root = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"{url}/lab/tree/notebooks/01_quickstart.ipynb?token={token}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            _wait_all_cells_ran(page)
            errors = page.locator(".jp-OutputArea-output[data-mime-type*='error']")
            assert errors.count() == 0, errors.all_inner_texts()
            cell = page.locator(".jp-CodeCell").filter(has_text="bn.widgets.StemExplorer(")
            explorer = cell.locator(".jp-OutputArea").first
            explorer.locator(".bn-player").wait_for(timeout=60_000)
            explorer.scroll_into_view_if_needed()
            page.wait_for_function(
                "el => el.querySelector('.bn-player').dataset.ready === '1'",
                arg=explorer.element_handle(),
                timeout=60_000,
            )
            page.wait_for_function(PAINTED, arg=explorer.element_handle(), timeout=60_000)
            yield page, explorer, (url, token, root, browser)
        finally:
            browser.close()


def test_the_studio_shows_one_player_per_output_and_hides_its_offline_copy(studio):
    page, explorer, _ = studio
    page.screenshot(path=SHOTS / "01_quickstart.png")
    explorer.screenshot(path=SHOTS / "01_player.png")
    assert explorer.locator(".bn-player").count() == 1
    lanes = explorer.locator(".bn-lane").evaluate_all("ls => ls.map(l => l.dataset.track)")
    assert lanes == ["mix", "drums", "bass", "other", "vocals"]
    offline = explorer.locator(".bandscope-offline")
    assert offline.count() == 1 and not offline.is_visible()  # the live widget claimed it
    # Audio, Stems and karaoke displays are players too: four in the notebook, all live.
    assert page.locator(".jp-Notebook .bn-player").count() == 4
    assert "model not found" not in page.locator(".jp-Notebook").inner_text()


def test_mixing_while_playing_never_interrupts_playback(studio):
    page, explorer, _ = studio
    handle = explorer.element_handle()
    explorer.locator(".bn-play").click()
    page.wait_for_timeout(800)
    before = page.evaluate(STATE, handle)
    assert before["playing"] and before["position"] > 0.3
    assert len(before["starts"]) == 5  # one start per track ...
    assert len({(when, offset) for _, when, offset in before["starts"]}) == 1  # ... together
    drums = explorer.locator(".bn-lane[data-track='drums']")
    drums.locator(".bn-mute").click()
    explorer.locator(".bn-lane[data-track='bass'] .bn-solo").click()
    explorer.locator(".bn-lane[data-track='bass'] .bn-solo").click()
    gain = explorer.locator(".bn-lane[data-track='other'] .bn-gain")
    box = gain.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    explorer.locator(".bn-ab").click()
    explorer.locator(".bn-ab").click()
    page.wait_for_timeout(600)
    after = page.evaluate(STATE, handle)
    assert after["playing"]
    assert after["position"] > before["position"] + 0.5  # it kept going, no rewind
    assert after["starts"] == before["starts"]  # no source was restarted
    assert after["time"] > before["time"]
    explorer.screenshot(path=SHOTS / "01_player_mixing.png")
    explorer.locator(".bn-play").click()  # pause
    state = _run_new_cell(
        page, "print(explorer.muted, explorer.soloed, round(explorer.gains['other'], 1))"
    )
    assert "['drums', 'vocals'] [] -" in state  # the kernel sees the mixer (vocals: cell 11)


RENDER = """async ([el, slices]) => {
    const chans = await el.querySelector('.bn-player').bandscope.render(null, {slices});
    return chans.map(c => { const b = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
        let s = ''; for (let i = 0; i < b.length; i += 8192)
            s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
        return btoa(s); });
}"""


def _snr_db(page, handle, expected, *, slices: bool = False) -> float:
    """The browser's offline render of the player's graph against ``expected``, in dB."""
    import base64

    import numpy as np

    rendered = page.evaluate(RENDER, [handle, slices])
    heard = np.stack([np.frombuffer(base64.b64decode(c), np.float32) for c in rendered])
    assert heard.shape == expected.shape
    return float(10 * np.log10(np.sum(expected**2) / np.sum((heard - expected) ** 2)))


def test_the_browser_plays_what_player_remix_returns(studio):
    import numpy as np

    page, explorer, (_, _, root, _) = studio
    _run_new_cell(
        page,
        "import numpy as np\n"
        "explorer.gains = {**explorer.gains, 'drums': -6.0, 'bass': 3.0}\n"
        "explorer.muted = ['vocals']\n"
        "np.save('remix.npy', explorer.remix())",
    )
    page.wait_for_timeout(500)
    expected = np.load(root / "notebooks" / "remix.npy")
    snr = _snr_db(page, explorer.element_handle(), expected)
    assert snr >= 40, f"the browser's mix differs from player.remix(): {snr:.1f} dB SNR"
    # While audio still arrives, the player plays it slice by slice, back to back: the same
    # mix, with no seam between slices (20 s in nine slices here).
    _run_new_cell(
        page,
        "import bandscope_nb.notebook.player_audio as pa\n"
        "pa.CHUNK_BYTES, chunk = 400_000, pa.CHUNK_BYTES\n"
        "sliced = bn.widgets.StemPlayer(stems, mix=mix.samples)\n"
        "sliced.wait()\n"
        "pa.CHUNK_BYTES = chunk\n"
        "sliced.gains, sliced.muted = explorer.gains, ['vocals']\n"
        "sliced",
    )
    cell = page.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-OutputArea")
    cell.locator(".bn-player[data-ready='1']").wait_for(timeout=60_000)
    handle = cell.element_handle()
    slices = page.evaluate(
        "el => el.querySelector('.bn-player').bandscope.audio.slices.length", handle
    )
    assert slices == 9
    snr = _snr_db(page, handle, expected, slices=True)
    assert snr >= 40, f"slices played back to back differ from player.remix(): {snr:.1f} dB"


def test_a_mute_takes_effect_while_the_kernel_is_busy(studio):
    page, explorer, _ = studio
    explorer.locator(".bn-play").click()
    _run_new_cell(page, "import time; time.sleep(20)", wait=False)
    page.wait_for_timeout(1000)
    sleeping = page.locator(".jp-Notebook .jp-CodeCell").last.locator(".jp-InputArea-prompt")
    assert sleeping.inner_text().strip() == "[*]:"  # the kernel is busy
    latency = page.evaluate(
        """el => new Promise(done => {
            const p = el.querySelector('.bn-player'), e = p.bandscope.engine;
            const i = e.model.get('tracks').indexOf('bass');
            const t0 = performance.now();
            p.querySelector(".bn-lane[data-track='bass'] .bn-mute").click();
            const poll = () => e.nodes[i].gain.value < 1e-3 ? done(performance.now() - t0)
                : (performance.now() - t0 > 2000 ? done(9999) : setTimeout(poll, 2));
            poll();
        })""",
        explorer.element_handle(),
    )
    state = page.evaluate(STATE, explorer.element_handle())
    assert latency < 100, f"mute took {latency:.0f} ms while the kernel slept"
    assert state["playing"] and sleeping.inner_text().strip() == "[*]:"
    explorer.locator(".bn-play").click()


def test_click_seeks_and_zoom_scroll_repaint_in_the_browser(studio):
    page, explorer, _ = studio
    handle = explorer.element_handle()
    lane = explorer.locator(".bn-lane[data-track='other'] canvas")
    box = lane.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.wait_for_timeout(200)
    position = page.evaluate(STATE, handle)["position"]
    assert abs(position - 10.0) < 0.3, position  # the demo is 20 s long
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    page.keyboard.down("Control")
    for _ in range(3):  # zoom in well past the overview's resolution
        page.mouse.wheel(0, -300)
        page.wait_for_timeout(100)
    page.keyboard.up("Control")
    page.wait_for_timeout(300)
    view = page.evaluate(VIEW, handle)
    assert view[1] - view[0] < 5.0 and view[0] < 10.0 < view[1], view  # around the cursor
    zoom_ms = page.evaluate(STATE, handle)["draw"]
    page.keyboard.down("Shift")
    page.mouse.wheel(0, 300)
    page.keyboard.up("Shift")
    page.wait_for_timeout(300)
    scrolled = page.evaluate(VIEW, handle)
    scroll_ms = page.evaluate(STATE, handle)["draw"]
    assert scrolled[0] > view[0]
    assert zoom_ms < 100 and scroll_ms < 100, (zoom_ms, scroll_ms)
    # Sharper tiles for the zoomed span come from the kernel, once it is free again (the last
    # test left it sleeping).
    tiles = "el => { const t = el.querySelector('.bn-player').bandscope.tiles;"
    tiles += " return [t.list('stft', 1).length, t.request, [...t.asked], t.pending]; }"
    deadline = time.monotonic() + 40
    while page.evaluate(tiles, handle)[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert page.evaluate(tiles, handle)[0] >= 2, page.evaluate(tiles, handle)
    tile = page.evaluate(
        "el => { const t = el.querySelector('.bn-player').bandscope.tiles.list('stft', 1);"
        " return [t[1].t0, t[1].t1, t[1].cols, t[0].cols]; }",
        handle,
    )
    assert tile[0] >= scrolled[0] - 0.01 and tile[1] <= scrolled[1] + 0.01  # the visible span
    assert tile[2] / (tile[1] - tile[0]) > 2 * tile[3] / 20.0  # sharper than the overview
    explorer.screenshot(path=SHOTS / "01_player_zoomed.png")


def test_keys_drive_the_player_and_not_jupyterlab(studio):
    page, explorer, _ = studio
    markdown = page.locator(".jp-Notebook .jp-MarkdownCell").count()
    explorer.locator(".bn-lane[data-track='vocals'] .bn-name").click()
    muted = lambda: page.evaluate(  # noqa: E731
        "el => el.querySelector('.bn-player').bandscope.engine.model.get('muted')",
        explorer.element_handle(),
    )
    was = "vocals" in muted()
    page.keyboard.press("m")
    page.wait_for_timeout(200)
    assert ("vocals" in muted()) != was
    page.keyboard.press("a")  # JupyterLab would insert a cell above
    page.keyboard.press("a")
    page.keyboard.press(" ")
    page.wait_for_timeout(500)
    assert page.evaluate(STATE, explorer.element_handle())["playing"]
    page.keyboard.press(" ")
    assert page.locator(".jp-Notebook .jp-MarkdownCell").count() == markdown
    page.keyboard.press("m" if ("vocals" in muted()) != was else "Shift")
    # M and S act on the lane holding the focus, e.g. after tabbing to its gain slider
    explorer.locator(".bn-lane[data-track='bass'] .bn-gain").focus()
    soloed = page.evaluate(
        "el => el.querySelector('.bn-player').bandscope.engine.model.get('soloed')",
        explorer.element_handle(),
    )
    page.keyboard.press("s")
    page.wait_for_timeout(200)
    after = page.evaluate(
        "el => el.querySelector('.bn-player').bandscope.engine.model.get('soloed')",
        explorer.element_handle(),
    )
    assert ("bass" in after) != ("bass" in soloed) and set(after) ^ set(soloed) == {"bass"}
    page.keyboard.press("s")  # and back
    # A/B compares any two choices: the one heard and the one heard before it
    listen = lambda: page.evaluate(  # noqa: E731
        "el => el.querySelector('.bn-player').bandscope.engine.model.get('listen')",
        explorer.element_handle(),
    )
    explorer.locator(".bn-listen").select_option("drums")
    explorer.locator(".bn-listen").select_option("bass")
    explorer.locator(".bn-name").first.click()  # the player holds the focus again
    heard = []
    for _ in range(3):
        page.keyboard.press("a")
        page.wait_for_timeout(100)
        heard.append(listen())
    assert heard == ["drums", "bass", "drums"]
    explorer.locator(".bn-listen").select_option("remix")


def test_a_scrub_lands_where_released_and_a_drawn_loop_restarts_once(studio):
    page, explorer, _ = studio
    handle = explorer.element_handle()
    page.evaluate("el => el.querySelector('.bn-player').bandscope.setView(0, 20)", handle)
    box = explorer.locator(".bn-lane[data-track='drums'] canvas").bounding_box()
    y = box["y"] + box["height"] / 2

    def x(fraction: float) -> float:
        return box["x"] + fraction * box["width"]

    page.mouse.move(x(0.05), y)
    page.mouse.down()
    page.mouse.move(x(0.8), y, steps=3)  # fast: fewer moves than the scrub's seek rate
    page.mouse.up()
    page.wait_for_timeout(200)
    assert abs(page.evaluate(STATE, handle)["position"] - 16.0) < 0.2
    explorer.locator(".bn-play").click()
    page.wait_for_timeout(300)
    before = len(page.evaluate(STATE, handle)["starts"])
    page.keyboard.down("Shift")
    page.mouse.move(x(0.25), y)
    page.mouse.down()
    page.mouse.move(x(0.5), y, steps=12)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_timeout(600)
    state = page.evaluate(STATE, handle)
    loop = page.evaluate("el => el.querySelector('.bn-player').bandscope.engine.loopSpan()", handle)
    assert abs(loop[0] - 5.0) < 0.1 and abs(loop[1] - 10.0) < 0.1, loop
    assert len(state["starts"]) - before == 5  # one restart of the five tracks, not one a move
    assert 5.0 <= state["position"] <= 10.0 and state["playing"]
    explorer.locator(".bn-loop").click()  # loop off
    page.keyboard.press("End")  # to the end while playing: it stops there
    page.wait_for_timeout(300)
    state = page.evaluate(STATE, handle)
    assert not state["playing"] and state["position"] == pytest.approx(20.0, abs=0.05)


def test_mel_and_cqt_lanes_come_from_the_kernel_and_downloads_are_the_tracks(studio, tmp_path):
    import numpy as np
    import soundfile as sf

    page, explorer, (_, _, root, _) = studio
    handle = explorer.element_handle()
    count = "([el, kind]) => el.querySelector('.bn-player').bandscope.tiles.list(kind, 1).length"
    for kind, rows in (("mel", 128), ("cqt", 84)):
        explorer.locator(".bn-kind").select_option(kind)
        page.wait_for_function(f"{count}", arg=[handle, kind], timeout=60_000)
        tile = page.evaluate(
            "([el, kind]) => { const t = el.querySelector('.bn-player').bandscope.tiles"
            ".list(kind, 1)[0]; return [t.rows, t.cols, t.freqs[0]]; }",
            [handle, kind],
        )
        assert tile[0] == rows and tile[1] > 100
        explorer.screenshot(path=SHOTS / f"01_player_{kind}.png")
    assert tile[2] == pytest.approx(32.7, abs=0.1)  # CQT rows start at C1 (labelled C1, C3...)
    explorer.locator(".bn-kind").select_option("waveform")
    page.wait_for_timeout(300)
    explorer.screenshot(path=SHOTS / "01_player_waveform.png")
    explorer.locator(".bn-kind").select_option("stft")
    with page.expect_download() as download:
        explorer.locator(".bn-download").select_option("bass")
    path = tmp_path / "bass.wav"
    download.value.save_as(path)
    bass, rate = sf.read(path, always_2d=True)
    _run_new_cell(page, "np.save('bass.npy', stems['bass'])")
    expected = np.load(root / "notebooks" / "bass.npy")
    assert rate == 44100 and bass.T.shape == expected.shape
    assert np.abs(bass.T - expected).max() < 2 / 32767  # the track itself, 16-bit exact


def test_a_comparison_switches_runs_at_the_same_playhead(studio):
    page, _, _ = studio
    _run_new_cell(
        page,
        "half = bn.Stems(stems.data / 2, stems.names, stems.sample_rate)\n"
        "comparison = bn.compare(mix, {'separated': stems, 'half as loud': half})\n"
        "comparison",
    )
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    cell = cells.nth(cells.count() - 1).locator(".jp-OutputArea")
    cell.locator(".bn-player[data-ready='1']").wait_for(timeout=60_000)
    cell.scroll_into_view_if_needed()
    handle = cell.element_handle()
    assert "quality cannot be measured" in cell.locator("table + p").first.inner_text()
    names = cell.locator(".bn-lane .bn-name").all_inner_texts()
    assert names == ["mix", "separated", "half as loud"]
    cell.locator(".bn-play").click()
    page.wait_for_timeout(700)
    before = page.evaluate(STATE, handle)
    assert before["playing"] and len(before["starts"]) == 3
    cell.locator(".bn-lane[data-track='run 2'] .bn-hear").click()
    page.wait_for_timeout(500)
    after = page.evaluate(STATE, handle)
    heard = page.evaluate("el => el.querySelector('.bn-player').bandscope.trackGains()", handle)
    assert heard == {"mix": 0, "run 1": 0, "run 2": 1}
    assert after["playing"] and after["position"] > before["position"] + 0.3  # on, no rewind
    assert after["starts"] == before["starts"]  # the switch restarted nothing
    cell.screenshot(path=SHOTS / "04_comparison.png")
    with page.expect_download() as download:  # named after the run, not its lane id
        cell.locator(".bn-download").select_option("run 2")
    assert download.value.suggested_filename == "half as loud.wav"
    # a mix of runs: the stems with their mixer, one run picked per stem
    cell.get_by_role("button", name="A mix of runs, one per stem").click()
    cell.locator(".bn-player[data-ready='1'] .bn-lane[data-track='vocals']").wait_for(
        timeout=60_000
    )
    assert cell.locator(".bn-lane[data-track='run 2']").count() == 0  # the runs' player hidden
    page.wait_for_function(  # all its audio in (a swap while it streams restarts, by design)
        "el => el.querySelector('.bn-player').bandscope.audio.progress() === 1",
        arg=handle,
        timeout=60_000,
    )
    cell.locator(".bn-play").click()
    page.wait_for_timeout(700)
    before = page.evaluate(STATE, handle)
    assert before["playing"] and len(before["starts"]) == 5  # the mix and four stems
    pick = cell.locator(".widget-dropdown").filter(has_text="vocals").locator("select")
    pick.select_option(label="half as loud")
    page.wait_for_function(f"el => ({SWAPS})(el).length === 1", arg=handle, timeout=20_000)
    after = page.evaluate(STATE, handle)
    ((track, when, offset),) = page.evaluate(SWAPS, handle)
    tracks = page.evaluate(
        "el => el.querySelector('.bn-player').bandscope.engine.model.get('tracks')", handle
    )
    _, first_when, first_offset = before["starts"][0]
    assert track == tracks.index("vocals") and after["playing"]
    assert after["position"] > before["position"]
    assert after["starts"][:5] == before["starts"]  # the other stems played on, untouched
    assert offset - (when - first_when) == pytest.approx(first_offset, abs=1e-6)  # one clock
    name = cell.locator(".bn-lane[data-track='vocals'] .bn-name")
    page.wait_for_function(
        "el => el.textContent === 'vocals · half as loud'", arg=name.element_handle()
    )  # each lane says which run it plays
    option = cell.locator(".bn-download option[value='vocals']").last
    assert option.inner_text() == "vocals · half as loud.wav"  # and so do its downloads
    cell.screenshot(path=SHOTS / "04_comparison_mix_of_runs.png")
    cell.locator(".bn-play").click()  # pause


SWAPS = """el => { const e = el.querySelector('.bn-player').bandscope.engine;
    return e.starts.filter(s => s.swap).map(s => [s.track, s.when, s.offset]); }"""


def test_the_mask_explorer_swaps_a_new_mask_in_while_it_plays(studio):
    import numpy as np

    page, _, (_, _, root, _) = studio
    _run_new_cell(
        page,
        "truth = bn.demo.load()[1]\n"
        "masks = bn.widgets.MaskExplorer(mix, truth, stem='bass', duration=8.0)\n"
        "masks",
    )
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    cell = cells.nth(cells.count() - 1).locator(".jp-OutputArea")  # this one, not the newest
    cell.locator(".bn-player[data-ready='1']").wait_for(timeout=60_000)
    cell.scroll_into_view_if_needed()
    handle = cell.element_handle()
    page.wait_for_function(PAINTED, arg=handle, timeout=60_000)
    lanes = cell.locator(".bn-lane").evaluate_all("ls => ls.map(l => l.dataset.track)")
    assert lanes == ["mix", "mask", "masked", "true stem"]
    assert cell.locator(".bn-mute").count() == 0 and cell.locator(".bn-hear").count() == 3
    cell.locator(".bn-play").click()
    page.wait_for_timeout(700)
    before = page.evaluate(STATE, handle)
    assert before["playing"] and len(before["starts"]) == 3
    assert len({(when, offset) for _, when, offset in before["starts"]}) == 1
    _run_new_cell(page, "masks.exponent.value = 3.0\nnp.save('masked.npy', masks.player.remix())")
    page.wait_for_function(f"el => ({SWAPS})(el).length === 1", arg=handle, timeout=20_000)
    after = page.evaluate(STATE, handle)
    ((track, when, offset),) = page.evaluate(SWAPS, handle)
    _, first_when, first_offset = before["starts"][0]
    assert track == 1 and after["playing"] and after["position"] > before["position"]
    assert after["starts"][:3] == before["starts"]  # the others played on, untouched
    assert offset - (when - first_when) == pytest.approx(first_offset, abs=1e-6)  # one clock
    cell.screenshot(path=SHOTS / "02_mask_explorer.png")
    expected = np.load(root / "notebooks" / "masked.npy")
    snr = _snr_db(page, handle, expected)
    assert snr >= 40, f"the browser's masked track differs from the kernel's: {snr:.1f} dB"
    cell.locator(".bn-lane[data-track='true stem'] .bn-hear").click()
    cell.locator(".bn-play").click()  # pause
    heard = _run_new_cell(page, "print(masks.player.listen, round(masks.score, 1))")
    assert heard.startswith("true stem ")


LAYOUT = """el => { const p = el.querySelector('.bn-player');
    const clipped = [...p.querySelectorAll('.bn-time, .bn-name, .bn-db, button, select')]
        .filter(n => n.offsetParent && n.scrollWidth > n.clientWidth + 1)
        .map(n => n.className + ':' + n.textContent);
    const canvases = [...p.querySelectorAll('canvas.bn-lane-canvas')].map(c => c.clientWidth);
    return {clipped, canvases, overflow: p.scrollWidth - p.clientWidth,
            right: p.getBoundingClientRect().right, viewport: window.innerWidth}; }"""


def test_dark_theme_and_a_1024_px_window_with_the_file_browser_open(studio):
    page, explorer, _ = studio
    page.get_by_role("menuitem", name="Settings", exact=True).click()
    page.get_by_text("Theme", exact=True).hover()
    page.get_by_text("JupyterLab Dark", exact=True).click()
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    page.wait_for_timeout(500)
    background = page.evaluate(
        "el => getComputedStyle(el.querySelector('.bn-player')).backgroundColor",
        explorer.element_handle(),
    )
    red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
    assert red + green + blue < 3 * 90, f"the player is not dark in the dark theme: {background}"
    explorer.screenshot(path=SHOTS / "01_player_dark.png")

    page.set_viewport_size({"width": 1024, "height": 1400})
    if not page.locator("#filebrowser").is_visible():
        page.get_by_role("tab", name="File Browser").click()
    assert page.locator("#filebrowser").is_visible()
    page.wait_for_timeout(800)  # the ResizeObserver redraws at the new width
    explorer.scroll_into_view_if_needed()
    layout = page.evaluate(LAYOUT, explorer.element_handle())
    explorer.screenshot(path=SHOTS / "01_player_1024px.png")
    page.screenshot(path=SHOTS / "01_quickstart_1024px.png")
    assert layout["clipped"] == [], layout
    assert layout["overflow"] <= 1 and layout["right"] <= layout["viewport"], layout
    assert min(layout["canvases"]) >= 250, layout
    page.wait_for_function(PAINTED, arg=explorer.element_handle(), timeout=10_000)


def _kernels(url: str, token: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/kernels?token={token}") as response:
        return json.loads(response.read())


def _offline_player_plays(page, container) -> float:
    """Play the offline copy's player for a second; return how far it got."""
    player = container.locator(".bn-player")
    player.wait_for(timeout=30_000)
    page.wait_for_function(
        "el => el.querySelector('.bn-player').dataset.ready === '1'",
        arg=container.element_handle(),
        timeout=30_000,
    )
    player.locator(".bn-play").click()
    page.wait_for_timeout(1200)
    position = float(player.get_attribute("data-position"))
    player.locator(".bn-play").click()
    return position


def test_the_saved_notebook_reopened_without_its_kernel_still_plays(studio):
    page, _, (url, token, _, browser) = studio
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "!document.querySelector('.jp-mod-current .jp-mod-dirty')", timeout=30_000
    )
    for kernel in _kernels(url, token):
        request = urllib.request.Request(
            f"{url}/api/kernels/{kernel['id']}?token={token}", method="DELETE"
        )
        urllib.request.urlopen(request).close()
    reopened = browser.new_page(viewport={"width": 1400, "height": 1600})
    try:
        reopened.goto(f"{url}/lab/tree/notebooks/01_quickstart.ipynb?token={token}")
        cell = reopened.locator(".jp-CodeCell").filter(has_text="bn.widgets.StemExplorer(")
        offline = cell.locator(".bandscope-offline")
        offline.wait_for(timeout=60_000)
        offline.scroll_into_view_if_needed()
        position = _offline_player_plays(reopened, offline)
        cell.screenshot(path=SHOTS / "01_reopened_player.png")
        assert position > 0.5, "the offline copy did not play"
        notebook = reopened.locator(".jp-Notebook")
        # the four of the notebook and the three earlier tests added (a comparison's: 3, a
        # mask explorer's: 3)
        assert notebook.locator(".bandscope-offline .bn-player").count() == 7
        assert notebook.locator(".bandscope-offline audio").count() == 1 + 4 + 5 + 1 + 5 + 3 + 3
    finally:
        reopened.close()


def test_the_nbconvert_export_plays_offline(studio, tmp_path):
    _, _, (_, _, root, browser) = studio
    saved = root / "notebooks" / "01_quickstart.ipynb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nbconvert",
            "--to",
            "html",
            "--output-dir",
            str(tmp_path),
            str(saved),
        ],
        check=True,
        capture_output=True,
    )
    html = tmp_path / "01_quickstart.html"
    context = browser.new_context(viewport={"width": 1300, "height": 1400}, offline=True)
    network = []
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("file:", "data:", "blob:"))
            else (network.append(route.request.url), route.abort())
        ),
    )
    try:
        exported = context.new_page()
        exported.goto(html.as_uri())
        players = exported.locator(".bandscope-offline")
        assert players.count() == 7  # with the three earlier tests added
        text = "\n".join(exported.locator(".jp-OutputArea").all_inner_texts())
        for widget in ("StemExplorer(", "StemPlayer(", "MaskExplorer(", "VBox("):
            assert widget not in text  # no raw reprs
        assert "model not found" not in text.lower()
        explorer_copy = players.nth(2)
        explorer_copy.scroll_into_view_if_needed()
        position = _offline_player_plays(exported, explorer_copy)
        explorer_copy.screenshot(path=SHOTS / "01_nbconvert_player.png")
        assert position > 0.5
        masks_copy = players.last  # the mask explorer's: its lanes, the mask a picture
        masks_copy.scroll_into_view_if_needed()
        assert _offline_player_plays(exported, masks_copy) > 0.5
        lanes = masks_copy.locator(".bn-lane").evaluate_all("ls => ls.map(l => l.dataset.track)")
        assert lanes == ["mix", "mask", "masked", "true stem"]
        masks_copy.screenshot(path=SHOTS / "02_nbconvert_mask_explorer.png")
    finally:
        context.close()
