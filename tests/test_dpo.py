"""DPO beside PPO (twinlib.dpo): same preferences, same split, same start, loadable output."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.mark.slow
def test_train_dpo_on_rankings(toy_run, tmp_path):
    import torch

    from twinlib.dpo import train_dpo
    from twinlib.generation import score_replies
    from twinlib.modeling import load_model

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    said = []
    summary = train_dpo(run, "tiny", epochs=3, log=said.append)
    out = run / "models" / "dpo"
    for name in ("config.json", "dpo.json", "twin.json", "tokenizer.json"):
        assert (out / name).exists(), name
    assert not list((run / "models").glob(".dpo*"))
    assert summary["test_pairs"] > 0 and summary["test_accuracy"] is not None
    assert summary["train_accuracy"] >= 0.8
    assert "models/refined does not exist" in said[0]        # the fallback to sft is said out loud
    # the twin now finds a reply that mentions pizza likelier, relative to one that does not
    rows = [("[]", "are you hungry?", "we could get pizza"), ("[]", "are you hungry?", "ok ok see you soon")]
    before_model, tok = load_model(run / "models" / "sft", device="cpu", dtype=torch.float32)
    after_model, _ = load_model(out, device="cpu", dtype=torch.float32)
    b = [r["logprob"] for r in score_replies(before_model, tok, rows)]
    a = [r["logprob"] for r in score_replies(after_model, tok, rows)]
    assert a[0] - a[1] > b[0] - b[1]
    again = train_dpo(run, "tiny", log=lambda *_: None)
    assert again["reused"] is True
    assert json.loads((out / "dpo.json").read_text())["beta"] == 0.1
