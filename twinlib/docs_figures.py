"""Figures in the README and ``docs/`` written from a run's files, so they cannot drift.

    python -m twinlib.docs_figures runs/sample [--check]

Markdown files hold blocks between ``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->``.
This module rewrites each block from the run directory's files (``run_state.json``,
``models/sft/train_metrics.json``, ``stage3.json``, ``stage4.json``, ``eval/metrics.json``,
``eval/replies.csv``), with a first line naming the run, the date and the machine. ``--check``
changes nothing and fails when a block is missing its provenance line or no longer has the rows
and columns the run would give (the tests run it against the test pipeline's run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

from twinlib.rundir import RunDir

ROOT = Path(__file__).resolve().parent.parent
FILES = ("README.md", "docs/stage2.md", "docs/stage3.md", "docs/stage4.md", "docs/stage5.md")
BLOCK = re.compile(r"(<!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.S)
PROVENANCE = re.compile(r"^<sub>Measured on run `[^`]+`, (\d{4}-\d{2}-\d{2}), .+?; written by `python -m twinlib\.docs_figures`\.</sub>$", re.M)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu})"


def _read(run: RunDir, name: str):
    p = run.root / name
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _ci(m: dict, key: str, digits: int = 2) -> str:
    from twinlib.stats import fmt_ci

    return fmt_ci(m.get(key), m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high"), digits)


def block_stage_times(run: RunDir) -> str:
    state = _read(run, "run_state.json") or {"stages": {}}
    rows = [[name.split("_", 1)[0], f"{v.get('seconds', float('nan')):.0f} s"] for name, v in state["stages"].items()
            if v.get("status") == "done"]
    total = sum(v.get("seconds", 0) for v in state["stages"].values() if v.get("status") == "done")
    return _table(["stage", "time"], rows + [["all", f"{total:.0f} s"]])


def block_sft(run: RunDir) -> str:
    from twinlib.sft import read_metrics

    m = read_metrics(run.model("sft"))
    rows = [["steps", f"{m['steps']} of {m['max_steps']} planned ({m['epochs']:g} epochs)"],
            ["stopped because", m.get("stop_reason", "–")],
            ["kept", f"step {m['best_step']}: validation loss {m['eval_loss']:.3f} (from {m['initial_eval_loss']:.3f})"],
            ["training time", f"{m['train_runtime_s']:.0f} s, {m['tokens_per_second']:.0f} tokens/s"]]
    return _table(["stage 2", ""], rows)


KEY_METRICS = (("fidelity", "validation fidelity ↑", 3), ("chrf", "chrF ↑", 1), ("semantic_similarity", "similarity ↑", 2),
               ("context_sensitivity", "context sensitivity ↑", 2), ("turing_judge_accuracy", "judge, reply only ↓", 2),
               ("context_judge_accuracy", "judge, with message ↓", 2), ("habit_accuracy", "habits ↑", 2),
               ("style_distance", "style distance ↓", 3), ("words_per_reply", "words/reply", 1), ("emoji_per_reply", "emoji/reply", 2))


def block_metrics(run: RunDir) -> str:
    metrics = _read(run, "eval/metrics.json")
    first = next(iter(metrics.values()))
    rows = [[m] + [_ci(v, k, d) for k, _, d in KEY_METRICS] for m, v in metrics.items()]
    rows.append(["the person"] + ["" for _ in KEY_METRICS[:-2]]
                + [f"{first['real_words_per_reply']:.1f}", f"{first['real_emoji_per_reply']:.2f}"])
    return _table(["model"] + [label for _, label, _ in KEY_METRICS], rows)


def block_comparison(run: RunDir) -> str:
    from twinlib.evaluation import compare_models, comparison_table, load_results

    df, metrics = load_results(run.root)
    cmp = compare_models(df, metrics, against=("sft",))
    ct = comparison_table(cmp, "sft")
    keep = [k for k, _, _ in KEY_METRICS if k in ct.columns]
    labels = {k: label for k, label, _ in KEY_METRICS}
    return _table(["against sft"] + [labels[k] for k in keep], [[m] + [ct.loc[m, k] for k in keep] for m in ct.index])


def block_feedback(run: RunDir) -> str:
    s3, s4 = _read(run, "stage3.json") or {}, _read(run, "stage4.json") or {}
    rm = s4.get("reward_model", {})
    ppo = s4.get("ppo", {})
    rows = [["refinement", (s3.get("verdict") or {}).get("verdict", "–")],
            ["reward model", f"held-out accuracy {_ci(rm, 'test_accuracy')} on {rm.get('test_pairs')} pairs; "
                             f"'{rm.get('length_baseline_rule')}' {rm.get('length_baseline_accuracy', float('nan')):.2f}; "
                             + ("trusted" if rm.get("trusted") else "NOT trusted")],
            ["PPO", f"kept update {ppo.get('kept_update')} of {ppo.get('steps')} (validation fidelity "
                    f"{(ppo.get('kept_val_score') or float('nan')):.3f}, start {(ppo.get('start_val_score') or float('nan')):.3f})"]]
    for name, v in (s4.get("verdicts") or {}).items():
        rows.append([f"{name} vs its start", v.get("verdict", "–")])
    return _table(["stages 3–4", "measured"], rows)


BLOCKS = {"stage-times": block_stage_times, "sft": block_sft, "metrics": block_metrics,
          "comparison": block_comparison, "feedback": block_feedback}


def render(run: RunDir, name: str) -> str:
    head = (f"<sub>Measured on run `{run.root.resolve().name}`, {time.strftime('%Y-%m-%d')}, {machine()}; written by "
            f"`python -m twinlib.docs_figures`.</sub>")
    return head + "\n\n" + BLOCKS[name](run) + "\n"


def _shape(body: str) -> list[tuple[str, int]]:
    """What a block reports, numbers aside: each table row's first cell and its number of cells."""
    rows = [ln for ln in body.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    return [(ln.split("|")[1].strip(), ln.count("|")) for ln in rows]


def update(run_dir, files=FILES, check: bool = False) -> list[str]:
    """Rewrite (or, with ``check``, compare) every figures block of ``files``; returns the problems."""
    run = RunDir(run_dir)
    problems = []
    rendered: dict[str, str] = {}  # a block that stands in several files is made once
    for rel in files:
        path = ROOT / rel
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")

        def repl(m):
            name = m.group("name")
            if name not in BLOCKS:
                problems.append(f"{rel}: unknown figures block {name!r} (known: {sorted(BLOCKS)})")
                return m.group(0)
            if name not in rendered:
                rendered[name] = render(run, name)
            new = rendered[name]
            if check:
                if not PROVENANCE.search(m.group("body")):
                    problems.append(f"{rel}: figures block {name!r} does not say which run it comes from")
                if _shape(m.group("body")) != _shape(new):
                    problems.append(f"{rel}: figures block {name!r} no longer matches what the run reports "
                                    f"(rows {[r for r, _ in _shape(m.group('body'))]} vs {[r for r, _ in _shape(new)]}); "
                                    f"regenerate it: python -m twinlib.docs_figures runs/sample")
                return m.group(0)
            return m.group(1) + new + m.group(4)

        out = BLOCK.sub(repl, text)
        if not check and out != text:
            path.write_text(out, encoding="utf-8")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", help="a finished run, e.g. runs/sample (make pipeline)")
    ap.add_argument("--check", action="store_true", help="change nothing; fail when a block is stale in shape or unmarked")
    args = ap.parse_args(argv)
    problems = update(args.run_dir, check=args.check)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
