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
    summary = train_dpo(run, "tiny", epochs=3, log=said.append, validate=False)  # the learning, not the guard
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


def test_dpo_that_validates_worse_ships_its_start(toy_run, tmp_path, monkeypatch):
    """The shipping guard: when the trained policy validates no better than its start, models/dpo
    holds the start's weights, and dpo.json says so."""
    import torch

    import twinlib.ppo
    from twinlib.dpo import train_dpo
    from twinlib.modeling import load_model

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    start, _ = load_model(run / "models" / "sft", device="cpu", dtype=torch.float32)
    start_state = {k: v.clone() for k, v in start.state_dict().items()}

    def favours_the_start(run_, prof, tok, n=64, seed=0):  # scores a policy by closeness to the start's weights
        def validate(policy):
            return -sum(float((p.detach().float().cpu() - start_state[k]).abs().sum())
                        for k, p in policy.state_dict().items() if k in start_state)
        return validate

    monkeypatch.setattr(twinlib.ppo, "fidelity_validator", favours_the_start)
    said = []
    summary = train_dpo(run, "tiny", max_steps=4, learning_rate=1e-2, log=said.append)
    assert summary["kept"] == "start" and summary["val_trained"] < summary["val_start"] == 0
    saved, _ = load_model(run / "models" / "dpo", device="cpu", dtype=torch.float32)
    for k, v in saved.state_dict().items():
        assert torch.equal(v, start_state[k]), k
    assert any("holds the start's weights" in line for line in said)
