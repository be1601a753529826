"""The quick-start notebook in a real JupyterLab, driven in headless Chromium with Playwright.

JupyterLab serves a copy of notebooks/ on 127.0.0.1 with a token; the test runs every cell from
the Run menu and checks what a user sees: the explorer's spectrogram canvases, one player per
stem plus the mix and the remix, and the remix re-rendered after a gain slider is dragged.
Screenshots go to build/screenshots/. Outside CI the test skips when Chromium or Playwright is
missing; in CI (``CI`` set) it fails instead.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
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
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _unavailable(why: str):
    if os.environ.get("CI"):
        pytest.fail(f"The JupyterLab browser test cannot run in CI: {why}")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over a copy of notebooks/; yields its base URL and token."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    (root / "settings").mkdir()
    (root / "settings" / "overrides.json").write_text(json.dumps(LAB_SETTINGS))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        BANDSCOPE_OFFLINE="1",
        BANDSCOPE_CACHE_DIR=str(root / "cache"),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        MPLBACKEND="Agg",
    )
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.app_settings_dir={root / 'settings'}",
        f"--LabApp.user_settings_dir={root / 'user-settings'}",
        f"--LabApp.workspaces_dir={root / 'workspaces'}",
    ]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url, token, root
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _wait_all_cells_ran(page, timeout_s: float = 300) -> list[str]:
    """Wait until every code cell shows an execution count; return the prompts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prompts = page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
        if prompts and all(p.strip() not in ("[ ]:", "[*]:", "") for p in prompts):
            return prompts
        time.sleep(1)
    pytest.fail(f"Not every cell ran within {timeout_s} s: {prompts}")


PAINTED = """el => [...el.querySelectorAll('canvas')].some(c => {
    if (c.width < 300) return false;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let colours = new Set();
    for (let i = 0; i < d.length && colours.size < 50; i += 4 * 97) {
        colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    }
    return colours.size >= 50;  // a spectrogram, not a blank or flat canvas
})"""


def _drag_left(page, slider, pixels: float = 80) -> str:
    """Drag a slider's handle left like a user (retrying while outputs still move the layout);
    return its readout."""
    handle = slider.locator(".noUi-handle")
    readout = ""
    for _ in range(5):
        handle.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x - pixels, y, steps=8)
        page.mouse.up()
        readout = slider.locator(".widget-readout").inner_text().replace("\u2212", "-")
        if float(readout) != 0:
            break
    return readout


def test_quickstart_runs_in_jupyterlab_and_the_mixer_drives_the_remix(lab):
    from playwright.sync_api import sync_playwright

    url, token, root = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.goto(f"{url}/lab/tree/notebooks/01_quickstart.ipynb?token={token}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text("Run All Cells", exact=True).click()
            _wait_all_cells_ran(page)
            page.screenshot(path=SHOTS / "01_quickstart.png")
            errors = page.locator(".jp-OutputArea-output[data-mime-type*='error']")
            assert errors.count() == 0, errors.all_inner_texts()

            cell = page.locator(".jp-CodeCell").filter(has_text="bn.widgets.StemExplorer(")
            explorer = cell.locator(".jp-OutputArea-output").first
            explorer.scroll_into_view_if_needed()
            explorer.locator("canvas").first.wait_for(timeout=60_000)
            page.wait_for_function(PAINTED, arg=explorer.element_handle(), timeout=60_000)

            players = explorer.locator("audio")
            sources = [a.get_attribute("src") or "" for a in players.all()]
            assert len(sources) == 6  # mix, four stems, remix
            assert all(s.startswith("data:audio/ogg;base64,") and len(s) > 1000 for s in sources)
            explorer.screenshot(path=SHOTS / "01_explorer.png")

            remix = players.last
            before = remix.get_attribute("src")
            slider = explorer.locator(".widget-slider").filter(has_text="drums")
            readout = _drag_left(page, slider)
            assert float(readout) < 0, f"the drums gain did not move: {readout}"
            deadline = time.monotonic() + 60  # the player's HTML is replaced, so poll
            while remix.get_attribute("src") == before and time.monotonic() < deadline:
                time.sleep(0.5)
            after = remix.get_attribute("src")
            assert after.startswith("data:audio/ogg;base64,") and after != before
            explorer.screenshot(path=SHOTS / "01_explorer_drums_down.png")
        finally:
            browser.close()
    assert (root / "build" / "quickstart-stems").is_dir()  # the save cell ran in the kernel
