"""JupyterLab on localhost and Debian's Chromium, for the real-browser test of the widgets and the
README's screenshots (``scripts/screenshots.py``).

Playwright's own browser download needs the internet, so it is never used: ``chromium`` comes
from the system (``scripts/install_browser.sh``; ``CHROMIUM=/path`` overrides).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90  # s for JupyterLab to answer
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]


def stop_process_group(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server started in its own session (``start_new_session=True``) and everything it
    started: SIGTERM to the group, SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class LabError(RuntimeError):
    """JupyterLab did not start (the message holds the end of its log)."""


def find_chromium() -> str | None:
    cand = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    if Path(cand).exists():
        return cand
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(work: Path, scratch: Path, env: dict | None = None):
    """A JupyterLab server on 127.0.0.1 serving ``work`` (config and runtime files in ``scratch``),
    always stopped afterwards. Yields ``{"base", "token", "url"(notebook) -> callable}``."""
    work, scratch = Path(work), Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    full_env = dict(os.environ)
    full_env.update(JUPYTER_CONFIG_DIR=str(scratch / "config"), JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
                    JUPYTERLAB_WORKSPACES_DIR=str(scratch / "workspaces"),
                    PYTHONPATH=str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", ""))
    full_env.update(env or {})
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser", f"--port={port}",
           f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={work}",
           "--ServerApp.port_retries=0", "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log_path = scratch / "lab.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=work, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise LabError(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise LabError(f"JupyterLab did not answer within {START_TIMEOUT}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"base": base, "token": token, "url": lambda nb: f"{base}/lab/tree/{nb}?token={token}"}
    finally:
        try:  # a clean shutdown also stops the kernel
            req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            proc.wait(timeout=15)
        except Exception:  # noqa: BLE001
            pass
        stop_process_group(proc, timeout=10)
        log.close()


def run_first_cell_until(page, selector: str, timeout_ms: int = 120_000, attempts: int = 6):
    """Wait for the kernel, then run the notebook's first cell until ``selector`` shows (the kernel
    may report idle before its connection is ready; running the cell again is harmless)."""
    from playwright.sync_api import expect

    cell = page.locator(".jp-Notebook:visible .jp-Cell").first  # the notebook in front
    expect(cell).to_be_visible()
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                        ".jp-Toolbar-kernelStatus:has-text('Idle')").first).to_be_attached(timeout=timeout_ms)
    target = page.locator(selector)
    for _attempt in range(attempts):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        try:
            expect(target).to_be_visible(timeout=20_000)
            break
        except AssertionError:
            continue
    expect(target).to_be_visible(timeout=timeout_ms)
    return target
