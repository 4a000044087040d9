"""The reward model (twinlib.rewards): preferences, the split, scoring, training, saving."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from twinlib.modeling import PROFILES

from twinlib.rewards import (
    atomic_model_dir,
    existing_model,
    pairwise_accuracy,
    preferences_to_dataset,
    resolve_start_model,
    split_preferences,
)
from twinlib.rundir import RunDir


def _prefs(n_messages=10, pairs_per_message=3):
    rows = []
    for m in range(n_messages):
        ctx = json.dumps([{"sender": "<PERSON_1>", "text": f"earlier {m}", "me": False}])
        for k in range(pairs_per_message):
            rows.append({"prompt": f"message {m}", "context": ctx, "chosen": f"good {m}.{k}",
                         "rejected": f"bad {m}.{k}", "margin": float(k + 1)})
    return pd.DataFrame(rows)


def test_split_keeps_whole_conversations_apart():
    prefs = _prefs(10, 3)
    train, test = split_preferences(prefs, test_fraction=0.2, seed=0)
    assert len(train) + len(test) == len(prefs)
    assert test["prompt"].nunique() == 2 and len(test) == 6
    assert not set(train["prompt"]) & set(test["prompt"])
    again, _ = split_preferences(prefs, test_fraction=0.2, seed=0)
    assert again.equals(train)                      # deterministic
    only, none = split_preferences(_prefs(1, 3), test_fraction=0.2)
    assert len(only) == 3 and len(none) == 0        # one message: nothing can be held out


def test_preferences_to_dataset_is_trl_conversational_format():
    ds = preferences_to_dataset(_prefs(2, 2), margin_scale=0.5)
    row = ds[3]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][-1]["content"] == "earlier 1\n\nmessage 1"     # consecutive user turns joined
    assert row["chosen"] == [{"role": "assistant", "content": "good 1.1"}]
    assert row["rejected"] == [{"role": "assistant", "content": "bad 1.1"}]
    assert row["margin"] == pytest.approx(1.0)
    assert "margin" not in preferences_to_dataset(_prefs(1, 1), margin_scale=None).column_names


def test_pairwise_accuracy_with_a_plain_function():
    prefs = _prefs(2, 2)

    def says_good(contexts, prompts, replies):
        return [1.0 if r.startswith("good") else 0.0 for r in replies]

    assert pairwise_accuracy(says_good, prefs) == 1.0
    assert pairwise_accuracy(lambda c, p, r: [0.0] * len(r), prefs) == 0.5      # ties count half
    assert pairwise_accuracy(says_good, prefs.iloc[:0]) is None


def test_resolve_start_model_falls_back_to_sft(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(FileNotFoundError, match="02_supervised_finetuning|03_iterative"):
        resolve_start_model(run, "refined", log=lambda *_: None)
    (run.model("sft")).mkdir(parents=True)
    (run.model("sft") / "config.json").write_text("{}")
    said = []
    assert resolve_start_model(run, "refined", log=said.append) == run.model("sft")
    assert "starting from models/sft" in said[0]
    (run.model("refined")).mkdir(parents=True)
    (run.model("refined") / "adapter_config.json").write_text("{}")
    assert resolve_start_model(run, "refined") == run.model("refined")


def test_atomic_model_dir_never_leaves_half_a_model(tmp_path):
    out = tmp_path / "models" / "reward"
    with pytest.raises(RuntimeError):
        with atomic_model_dir(out) as tmp:
            (tmp / "config.json").write_text("{}")
            raise RuntimeError("training crashed")
    assert not out.exists() and not list((tmp_path / "models").iterdir())
    with atomic_model_dir(out) as tmp:
        (tmp / "config.json").write_text('{"v": 1}')
    assert json.loads((out / "config.json").read_text()) == {"v": 1}
    with pytest.raises(FileExistsError):
        with atomic_model_dir(out):
            pass
    with atomic_model_dir(out, overwrite=True) as tmp:
        (tmp / "config.json").write_text('{"v": 2}')
    assert json.loads((out / "config.json").read_text()) == {"v": 2}
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["reward"]
    assert existing_model(out, "reward.json", overwrite=False, log=lambda *_: None) == {"reused": True}
    assert existing_model(out, "reward.json", overwrite=True) is None


def test_scorer_reads_replies_exactly_as_reward_trainer_tokenizes_them(toy_run):
    """The scorer must see the same tokens the reward model was trained on."""
    from trl.data_utils import _tokenize

    from twinlib.modeling import SYSTEM_PROMPT, load_tokenizer
    from twinlib.rewards import RewardModelScorer, load_preferences

    prefs = load_preferences(RunDir(toy_run)).iloc[:5]
    tok = load_tokenizer(toy_run / "models" / "sft")
    ds = preferences_to_dataset(prefs, tok, 256)
    scorer = RewardModelScorer.__new__(RewardModelScorer)       # the encoding only, no model needed
    scorer.tokenizer, scorer.max_length, scorer.system = tok, 256, SYSTEM_PROMPT
    for row, p in zip(ds, prefs.itertuples()):
        trl_ids = _tokenize(tok, row["prompt"] + row["chosen"])["input_ids"]
        assert scorer.encode(p.context, p.prompt, p.chosen) == list(trl_ids)


@pytest.mark.slow
def test_train_reward_model_on_rankings(toy_run, tmp_path):
    """The toy rankings prefer replies that say "pizza": a reward model learns it and is saved,
    reported with its held-out accuracy, and reused rather than overwritten."""
    from twinlib.rewards import RewardModelScorer, train_reward_model

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    said = []
    summary = train_reward_model(run, "tiny", epochs=3, log=said.append)
    out = run / "models" / "reward"
    assert (out / "config.json").exists() and (out / "reward.json").exists()
    assert not list((run / "models").glob(".reward*"))
    assert summary["test_pairs"] > 0 and summary["train_pairs"] > summary["test_pairs"]
    assert summary["test_accuracy"] >= 0.7 and summary["train_accuracy"] >= 0.8
    assert "held-out" in said[-1]
    scorer = RewardModelScorer(out, device="cpu")
    assert scorer.max_length == PROFILES["tiny"].max_length  # the length it was trained with
    s = scorer(["[]", "[]"], ["are you hungry?"] * 2, ["we could get pizza", "ok ok see you soon"])
    assert s[0] > s[1]
    again = train_reward_model(run, "tiny", log=lambda *_: None)
    assert again["reused"] is True and again["test_accuracy"] == summary["test_accuracy"]
