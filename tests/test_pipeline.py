"""The whole pipeline on the sample persona (one papermill run per session, see conftest.pipeline_run).

Assertions are on what the run wrote — files, splits, metrics — never on printed text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from twinlib.data import find_exports, read_exports

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


def _personal_values() -> list[re.Pattern]:
    """Names of everyone in the sample export and the personal data planted in it."""
    raw = read_exports(find_exports(ROOT / "data" / "sample"))
    names = {s for s in raw["sender"] if s}
    parts = {p for n in names for p in n.split() if len(p) >= 4}
    text = "\n".join(raw["text"])
    planted = set(re.findall(r"[\w.]+@example\.(?:com|org)", text))
    planted |= set(re.findall(r"\+44 ?7700 ?900 ?\d{3}", text))
    planted |= set(re.findall(r"\(555\) ?010-\d{4}", text))
    planted |= {"4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "192.0.2.14"}
    assert len(names) >= 5 and len(planted) >= 6, "the sample lost its planted personal data"
    pats = [re.compile(r"\b" + re.escape(n) + r"\b", re.IGNORECASE) for n in sorted(names | parts)]
    return pats + [re.compile(re.escape(v)) for v in sorted(planted)]


def test_no_personal_data_in_run_artifacts(pipeline_run):
    """Pairs, messages, rankings, candidates, replies, report, tokenizers: none holds a name or planted PII."""
    texts = {}
    for p in pipeline_run.rglob("*"):
        if not p.is_file() or "notebooks" in p.relative_to(pipeline_run).parts:
            continue  # executed notebooks carry the `me` parameter the user typed
        if p.suffix in (".csv", ".jsonl", ".json", ".md", ".html", ".txt"):
            texts[p] = p.read_text(encoding="utf-8", errors="replace")
        elif p.suffix == ".parquet":
            texts[p] = pd.read_parquet(p).astype(str).to_csv()
    scanned = {p.relative_to(pipeline_run).as_posix() for p in texts}
    for must in ("pairs.csv", "rankings.jsonl", "eval/replies.csv", "eval/report.md", "messages.parquet"):
        assert must in scanned, f"{must} was not written, so it was not scanned"
    leaks = [f"{p.relative_to(pipeline_run)}: {pat.pattern}" for p, t in texts.items() for pat in _personal_values()
             if pat.search(t)]
    assert not leaks, "personal data in the run's artifacts:\n" + "\n".join(leaks[:20])
