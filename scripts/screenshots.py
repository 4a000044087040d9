"""The README's pictures, from a finished run: its plots, and the ranking and Turing widgets
screenshotted in a real browser (JupyterLab on localhost + Debian's Chromium via Playwright).

    .venv/bin/python scripts/screenshots.py [--run runs/sample] [--out docs/img]

The widgets are shown over copies of the run's files in a scratch folder: the run's own
rankings and judgements are never touched. Emoji need a colour emoji font
(Debian: ``apt-get install fonts-noto-color-emoji``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twinlib.browser import CHROMIUM_ARGS, find_chromium, jupyter_lab, run_first_cell_until  # noqa: E402

RANKING_CELL = """
from twinlib.ranking import RankingSession, RankingStore, load_items
from twinlib.ranking_widget import RankingWidget

items = load_items("candidates.jsonl")[:6]
RankingWidget(RankingSession(RankingStore("rankings.jsonl"), items))
"""

TURING_CELL = """
import pandas as pd
from twinlib.turing import TuringGame, make_turing_items

replies = pd.read_csv("replies.csv", keep_default_na=False)
TuringGame(make_turing_items(replies, "sft", seed=3, n=10), "judgements.jsonl").widget()
"""

PLOTS = {  # run file -> picture name
    "figures/messages_per_month.png": "messages_per_month.png",
    "figures/reply_lengths.png": "reply_lengths.png",
    "models/sft/loss_curve.png": "sft_loss_curve.png",
    "figures/refinement_rounds.png": "refinement_rounds.png",
    "figures/ppo_curves.png": "ppo_curves.png",
    "eval/metrics.png": "eval_metrics.png",
}


def _notebook(path: Path, source: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source.strip()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def widget_screenshots(run: Path, out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    rounds = sorted((run / "refine").glob("round_*_candidates.jsonl"))
    if not rounds or not (run / "eval" / "replies.csv").exists():
        raise SystemExit(f"{run} has no stage-3 candidates or stage-5 replies: run the pipeline first (make pipeline)")
    shots = []
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch) / "work"
        work.mkdir()
        shutil.copy(rounds[-1], work / "candidates.jsonl")
        shutil.copy(run / "eval" / "replies.csv", work / "replies.csv")
        _notebook(work / "rank.ipynb", RANKING_CELL)
        _notebook(work / "turing.ipynb", TURING_CELL)
        with jupyter_lab(work, Path(scratch), env={"TWIN_INTERACTIVE": "1"}) as lab, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
                page.set_default_timeout(120_000)
                page.goto(lab["url"]("rank.ipynb"))
                widget = run_first_cell_until(page, ".twin-ranking")
                # one item ranked, the next one half-way: rank 1 and rank 2 given by clicking
                page.locator(".twin-ranks-1").get_by_role("button", name="1", exact=True).click()
                page.locator(".twin-ranks-0").get_by_role("button", name="2", exact=True).click()
                page.locator("button.twin-submit").click()
                expect(page.locator(".twin-progress-label")).to_contain_text("1 /")
                page.locator("button.twin-pick-2").click()
                page.wait_for_timeout(500)
                shots.append(out / "ranking_widget.png")
                widget.screenshot(path=str(shots[-1]))

                page.goto(lab["url"]("turing.ipynb"))
                widget = run_first_cell_until(page, ".twin-turing")
                widget.locator("button:visible").first.click()  # one guess: the feedback and the score show
                page.wait_for_timeout(500)
                shots.append(out / "turing_widget.png")
                widget.screenshot(path=str(shots[-1]))
            finally:
                browser.close()
    return shots


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/sample", help="a finished run directory (make pipeline writes runs/sample)")
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args(argv)
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for src, name in PLOTS.items():
        if (run / src).exists():
            shutil.copy(run / src, out / name)
            print(f"{out / name}  (from {src})")
        else:
            print(f"skipped {name}: {run / src} does not exist")
    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium: run `sudo scripts/install_browser.sh` or set CHROMIUM=/path/to/chromium")
    for shot in widget_screenshots(run.resolve(), out.resolve(), chromium):
        print(shot)


if __name__ == "__main__":
    main()
