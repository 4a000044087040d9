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
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from twinlib.browser import CHROMIUM_ARGS, LabError, find_chromium, jupyter_lab, run_first_cell_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
UI_TIMEOUT = 120_000  # ms for the kernel to start and the widget to render

NOTEBOOK_SOURCE = """
from twinlib.ranking import Item, RankingSession, RankingStore
from twinlib.ranking_widget import RankingWidget

items = [Item.make([{"sender": "<PERSON_1>", "text": f"hi {i}", "me": False}], f"message {i}",
                   [f"candidate {i}.{j}" for j in range(3)], model={"path": "none", "version": "test"}, round=1)
         for i in range(3)]
RankingWidget(RankingSession(RankingStore("rankings.jsonl"), items))
"""


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


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on localhost serving ``tmp_path/work`` with the ranking notebook; always stopped."""
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(NOTEBOOK_SOURCE.strip()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(work / "rank.ipynb"))
    try:
        with jupyter_lab(work, tmp_path, env={"TWIN_INTERACTIVE": "1"}) as server:
            yield {"url": server["url"]("rank.ipynb"), "work": work}
    except LabError as e:
        pytest.fail(str(e))


def test_rank_two_items_in_jupyterlab(chromium, lab):
    from playwright.sync_api import expect, sync_playwright

    store = lab["work"] / "rankings.jsonl"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT)
            page.goto(lab["url"], timeout=UI_TIMEOUT)
            run_first_cell_until(page, ".twin-ranking", timeout_ms=UI_TIMEOUT)
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
