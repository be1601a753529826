"""A private JupyterLab server for browser tests and benchmarks (127.0.0.1, a random token)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class LabError(RuntimeError):
    """JupyterLab did not start."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def lab_server(root: Path, settings: dict, *, timeout_s: float = 120) -> Iterator[tuple[str, str]]:
    """Serve ``root`` with JupyterLab (its own config, settings and runtime folders under
    ``root``, offline, a private bandscope cache); yield ``(url, token)``; stop it afterwards."""
    (root / "settings").mkdir(exist_ok=True)
    (root / "settings" / "overrides.json").write_text(json.dumps(settings))
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
    url = f"http://127.0.0.1:{port}"
    with open(root / "lab.log", "w") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    tail = (root / "lab.log").read_text()[-3000:]
                    raise LabError(f"JupyterLab did not start:\n{tail}")
                try:
                    urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            yield url, token
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
