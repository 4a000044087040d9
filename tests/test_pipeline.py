"""The whole pipeline on the sample persona (one papermill run per session, see conftest.pipeline_run).

Assertions are on what the run wrote — files, splits, metrics — never on printed text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_every_stage_finished(pipeline_run):
    state = json.loads((pipeline_run / "run_state.json").read_text())
    stages = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00"))
    assert {k: v["status"] for k, v in state["stages"].items()} == {s: "done" for s in stages}
    for s in stages:
        assert (pipeline_run / "notebooks" / s).exists()


def test_ran_without_network(pipeline_run):
    info = json.loads((pipeline_run / "offline.json").read_text())
    if not info["network_namespace"]:
        pytest.skip("this machine cannot create a network namespace (unshare -rn), so the offline run was not proven")
    assert info["network_namespace"] is True  # the whole pipeline ran with no interface but loopback


def test_stage1_pairs_and_splits(pipeline_run):
    pairs = pd.read_csv(pipeline_run / "pairs.csv", keep_default_na=False)
    assert list(pairs.columns) == ["conversation_id", "chat", "timestamp", "prompt_sender", "prompt", "response",
                                   "context", "split"]
    assert set(pairs["split"]) == {"train", "validation", "test"}
    by_conv = pairs.groupby("conversation_id")["split"].nunique()
    assert (by_conv == 1).all(), "a conversation straddles two splits"
    assert (pairs["split"] == "train").mean() > 0.6
    assert (pairs["prompt_sender"] != "<ME>").all()
    from datasets import load_from_disk

    ds = load_from_disk(str(pipeline_run / "dataset"))
    assert {k: len(v) for k, v in ds.items()} == pairs["split"].value_counts().to_dict()
    summary = json.loads((pipeline_run / "stage1.json").read_text())
    replaced = summary["anonymization"]["replaced"]
    for kind in ("PERSON", "PHONE", "EMAIL", "URL", "IBAN", "CARD", "IP"):
        assert replaced.get(kind, 0) > 0, kind
    msgs = pd.read_parquet(pipeline_run / "messages.parquet")
    assert set(msgs["sender"]) <= {"<ME>"} | {f"<PERSON_{i}>" for i in range(1, 50)} | {""}


# --------------------------------------------------------------------------- the twin answers in context


def _metrics(run):
    return json.loads((run / "eval" / "metrics.json").read_text(encoding="utf-8"))


def test_sft_learns_the_habits_and_answers_in_context(pipeline_run):
    """The default tiny profile, trained to convergence, shows the sample persona's context habits on
    held-out messages (the untrained base does not), finds the real reply likelier after its own
    message, and the reply-only Turing judge can no longer pick it out reliably."""
    m = _metrics(pipeline_run)
    sft, base = m["sft"], m["base"]
    trained = json.loads((pipeline_run / "models" / "sft" / "train_metrics.json").read_text())
    note = f"stage 2 stopped: {trained.get('stop_reason')} after {trained['steps']} steps"
    assert sft["habit_n"] >= 30
    assert sft["habit_accuracy"] >= 0.9, (sft["habit_accuracy"], sft["habit_by"], note)
    assert base["habit_accuracy"] <= 0.1
    assert sft["context_sensitivity_ci_low"] > 0, (sft["context_sensitivity"], note)
    assert abs(base["context_sensitivity"]) < 0.05
    assert sft["turing_judge_accuracy"] <= 0.70, note
    assert sft["context_judge_accuracy"] < base["context_judge_accuracy"]
    assert trained["stop_reason"] in ("planned epochs done", "time budget spent") or trained["stop_reason"].startswith("converged")


def test_best_model_is_the_measured_one(pipeline_run):
    """sft, unless a later stage is measurably better on validation fidelity (paired 95% interval of
    the per-message difference above 0); no later stage is measurably better than the one chosen."""
    from twinlib.stats import paired_diff_ci

    order = ["sft", "refined", "dpo", "ppo"]
    sel = json.loads((pipeline_run / "eval" / "selection.json").read_text())
    items = json.loads((pipeline_run / "eval" / "fidelity_items.json").read_text())
    best = sel["best"]
    assert best in order and "paired 95% interval" in sel["rule"]
    if best != "sft":
        assert paired_diff_ci(items[best], items["sft"])[1] > 0
    for later in order[order.index(best) + 1:]:
        if later in items:
            assert paired_diff_ci(items[later], items[best])[1] <= 0, later
    from twinlib.chat import pick_model

    assert pick_model(pipeline_run)[0] == sel["best"]  # chat (and the server) talk to it


def test_ppo_and_refinement_keep_their_best_validated_model(pipeline_run):
    ppo = json.loads((pipeline_run / "models" / "ppo" / "ppo.json").read_text())
    scores = {v["step"]: v["val_score"] for v in ppo["validation"]}
    assert 0 in scores and ppo["kept_update"] in scores
    assert ppo["kept_val_score"] == max(scores.values())
    log = json.loads((pipeline_run / "refine_log.json").read_text())
    kept = json.loads((pipeline_run / "models" / "refined" / "twin.json").read_text())["kept_round"]
    fid = {h["round"]: h["fidelity"] for h in log["rounds"]}
    assert fid[kept] == max(fid.values())
    dpo = json.loads((pipeline_run / "models" / "dpo" / "dpo.json").read_text())
    assert dpo["kept"] == ("trained" if dpo["val_trained"] > dpo["val_start"] else "start")


def test_every_stage_ends_with_a_computed_verdict(pipeline_run):
    """Stages 2-4 write their verdict, computed from held-out data (validation split) with an
    interval; notebook 05 compares every model with sft and base."""
    s2 = json.loads((pipeline_run / "stage2.json").read_text())
    assert s2["verdict"]["verdict"].startswith("sft is BETTER than base") and s2["verdict"]["ci_low"] > 0
    s3 = json.loads((pipeline_run / "stage3.json").read_text())
    assert "validation" in s3["verdict"]["verdict"]
    s4 = json.loads((pipeline_run / "stage4.json").read_text())
    assert set(s4["verdicts"]) == {"ppo", "dpo"} and all("validation fidelity" in v["verdict"] for v in s4["verdicts"].values())
    assert isinstance(s4["reward_trusted"], bool)
    assert "test_accuracy_ci_low" in s4["reward_model"] and "length_baseline_accuracy" in s4["reward_model"]
    m = _metrics(pipeline_run)
    for name, v in m.items():
        for key in ("fidelity", "chrf", "context_sensitivity", "context_judge_accuracy", "words_per_reply"):
            assert v[f"{key}_ci_low"] <= v[key] <= v[f"{key}_ci_high"], (name, key)


#: stderr a stage may print (each explained in the notebook); anything else fails the test below.
STDERR_ALLOWED = ()


def test_executed_notebooks_read_cleanly(pipeline_run):
    """No library progress widgets, load reports or unexplained warnings on stderr, and every figure
    rendered (no bare '<Figure size ...>' text)."""
    import nbformat

    allowed_widgets = ("chat_widget", "turing_section", "ref.widget")
    problems = []
    for path in sorted((pipeline_run / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "stream" and out.get("name") == "stderr":
                    text = "".join(out.get("text", ""))
                    if not any(a in text for a in STDERR_ALLOWED):
                        problems.append(f"{path.name} cell {i}: stderr {text[:160]!r}")
                data = out.get("data", {})
                if "<Figure size" in data.get("text/plain", "") and "image/png" not in data:
                    problems.append(f"{path.name} cell {i}: a figure shown as text")
                if "application/vnd.jupyter.widget-view+json" in data and not any(w in cell.source for w in allowed_widgets):
                    problems.append(f"{path.name} cell {i}: a widget output ({data.get('text/plain', '')[:60]!r})")
    assert not problems, "\n".join(problems)


def test_the_docs_figures_are_what_the_run_reports(pipeline_run):
    """Every figures block in README/docs names its run, and reports the rows this run gives."""
    from twinlib.docs_figures import update

    assert update(pipeline_run, check=True) == []


def test_a_moved_run_resumes(pipeline_run, tmp_path):
    """No absolute path into the run directory is recorded in its files: a run moved to another
    folder (or to Drive) is the same run; the runner resumes it and stage 5 re-runs there."""
    import shutil
    import subprocess
    import sys

    root = str(pipeline_run.resolve())
    for f in list(pipeline_run.rglob("*.json")) + list(pipeline_run.rglob("*.jsonl")):
        if "notebooks" not in f.parts:
            assert root not in f.read_text(encoding="utf-8"), f"{f} records an absolute path into the run"
    moved = tmp_path / "elsewhere" / "sample"
    shutil.copytree(pipeline_run, moved, ignore=shutil.ignore_patterns("notebooks"))
    from conftest import PIPELINE_TEST_PARAMS

    cmd = [sys.executable, "-m", "twinlib", "run", "--run-dir", str(moved), "--resume", "--quiet", "--only", "02", "03"]
    for k, v in PIPELINE_TEST_PARAMS.items():
        cmd += ["--param", f"{k}={json.dumps(v)}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("done earlier, skipped") == 2, proc.stdout
