"""A real-browser check of the ranking widget: JupyterLab (headless, localhost) + Chromium via Playwright.

The test writes a tiny notebook that shows a :class:`~twinlib.ranking_widget.RankingWidget`
over a fresh ``rankings.jsonl`` (pre-made candidates, no model), opens it in JupyterLab with
Chromium, runs it, ranks two items by clicking (rank buttons for the first, click-order for the
second), submits, and reads both judgements back from the file.

Needs Debian's ``chromium`` (``scripts/install_browser.sh``; ``CHROMIUM=/path`` overrides):
Playwright's own browser download needs the internet, so it is never used. Skipped, with the
reason, only when no Chromium can be found or installed.
"""

from __future__ import annotations

import json
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

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90  # s for JupyterLab to answer
UI_TIMEOUT = 120_000  # ms for the kernel to start and the widget to render

NOTEBOOK_SOURCE = """
from twinlib.ranking import Item, RankingSession, RankingStore
from twinlib.ranking_widget import RankingWidget

items = [Item.make([{"sender": "<PERSON_1>", "text": f"hi {i}", "me": False}], f"message {i}",
                   [f"candidate {i}.{j}" for j in range(3)], model={"path": "none", "version": "test"}, round=1)
         for i in range(3)]
RankingWidget(RankingSession(RankingStore("rankings.jsonl"), items))
"""


def find_chromium() -> str | None:
    cand = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    if Path(cand).exists():
        return cand
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = find_chromium()
    if exe is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        try:  # root in CI: install Debian's chromium (idempotent, bounded)
            subprocess.run(["bash", str(ROOT / "scripts" / "install_browser.sh")], check=False, timeout=600,
                           capture_output=True)
        except subprocess.TimeoutExpired:
            pass
        exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium found and it could not be installed: run `sudo scripts/install_browser.sh` "
                    "(Debian package 'chromium') or set CHROMIUM=/path/to/chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the 'playwright' Python package is not installed (pip install -e .[test])")
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on localhost serving ``tmp_path/work``; always stopped afterwards."""
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(NOTEBOOK_SOURCE.strip()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(work / "rank.ipynb"))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"), TWIN_INTERACTIVE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    jupyter = Path(sys.executable).with_name("jupyter")
    cmd = [str(jupyter) if jupyter.exists() else "jupyter", "lab", "--no-browser", f"--port={port}",
           f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={work}",
           "--ServerApp.port_retries=0", "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log = open(tmp_path / "lab.log", "wb")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT}s:\n{(tmp_path / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"url": f"{base}/lab/tree/rank.ipynb?token={token}", "work": work, "base": base, "token": token}
    finally:
        try:  # a clean shutdown also stops the kernel
            req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
            proc.wait(timeout=15)
        except Exception:  # noqa: BLE001
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def test_rank_two_items_in_jupyterlab(chromium, lab):
    from playwright.sync_api import expect, sync_playwright

    store = lab["work"] / "rankings.jsonl"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT)
            page.goto(lab["url"], timeout=UI_TIMEOUT)
            cell = page.locator(".jp-Notebook .jp-Cell").first
            expect(cell).to_be_visible()
            # wait for the kernel, then run the cell (Shift+Enter in the cell's editor)
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                                ".jp-Toolbar-kernelStatus:has-text('Idle')").first).to_be_attached(timeout=UI_TIMEOUT)
            # the kernel may report idle before its connection is ready: run the cell again until
            # the widget shows (running it twice only re-creates the same widget over the same store)
            widget = page.locator(".twin-ranking")
            for _attempt in range(6):
                cell.locator(".jp-InputArea-editor").click()
                page.keyboard.press("Control+Enter")
                try:
                    expect(widget).to_be_visible(timeout=20_000)
                    break
                except AssertionError:
                    continue
            expect(widget).to_be_visible(timeout=UI_TIMEOUT)
            label = page.locator(".twin-progress-label")
            expect(label).to_have_text("0 / 3 ranked")
            expect(page.locator(".twin-conversation")).to_contain_text("message 0")

            # item 1: rank buttons — candidate 2 best, candidate 1 second, candidate 3 left (last)
            page.locator(".twin-ranks-1").get_by_role("button", name="1", exact=True).click()
            page.locator(".twin-ranks-0").get_by_role("button", name="2", exact=True).click()
            page.locator("button.twin-submit").click()
            expect(label).to_have_text("1 / 3 ranked")
            expect(page.locator(".twin-conversation")).to_contain_text("message 1")

            # item 2: click order — candidate 3 first, then candidate 1
            page.locator("button.twin-pick-2").click()
            page.locator("button.twin-pick-0").click()
            page.locator("button.twin-submit").click()
            expect(label).to_have_text("2 / 3 ranked")
        finally:
            browser.close()

    deadline = time.time() + 10
    while time.time() < deadline and (not store.exists() or len(store.read_text().splitlines()) < 2):
        time.sleep(0.2)
    records = [json.loads(x) for x in store.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert [r["prompt"] for r in records] == ["message 0", "message 1"]
    assert records[0]["ranks"] == [2, 1, 3]
    assert records[1]["ranks"] == [2, 3, 1]
    assert all(r["status"] == "ranked" and r["ranker"] == "person" for r in records)
    assert records[0]["candidates"] == ["candidate 0.0", "candidate 0.1", "candidate 0.2"]
