"""Stage 5 evaluation: metrics on hand-made data (fast), and a whole run through notebook 05 (slow).

The slow part asserts on what the run wrote (``eval/metrics.json``, ``eval/replies.csv``, the
report), never on printed text. It uses the session fixture ``pipeline_run`` (the full pipeline,
from ``tests/conftest.py``) when there is one; otherwise it builds a small run itself: synthetic
persona pairs, the tiny base model and a short SFT.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twinlib.evaluation import (
    DIRECTION,
    METRICS,
    MODEL_ORDER,
    REPLY_COLUMNS,
    available_models,
    best_and_worst,
    best_model,
    compare_to_base,
    held_out_pairs,
    is_better,
    load_results,
    metrics_table,
    prompt_tests_html,
    reply_metrics,
    write_results,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "05_evaluation.ipynb"
REQUIRED = ("semantic_similarity", "chrf", "perplexity", "mean_logprob", "style_distance", "turing_judge_accuracy")

# --------------------------------------------------------------------------- hand-made data

TOPICS = [
    (["Are you free on {day}?", "Want to go climbing on {day}?", "Shall we meet up {day}?"],
     ["yeah {day} works for me 🌵", "keen as, {day} it is", "{day} sounds mint haha", "no stress, {day} is good 🙌"]),
    (["Did you see {film}?", "Have you watched {film} yet?", "What did you think of {film}?"],
     ["haha {film} was a legend", "not yet, keen as though", "{film} sounds mint 🌵", "yeah loved it haha"]),
    (["Where should we eat tonight?", "Fancy {food} tonight?", "Dinner at {place}?"],
     ["{food} at {place}? sweet as", "haha yes {food} 🙌", "keen as for {food}", "{place} sounds mint"]),
    (["Running a bit late, sorry!", "I'll be there in ten minutes.", "Traffic is terrible today."],
     ["no stress haha", "all good, no stress 🌵", "sweet as, see you soon", "haha legend, no rush"]),
    (["How was your weekend?", "How did the trip to {place} go?", "Good day at work?"],
     ["pretty mint haha, you?", "{place} was a legend 🙌", "long day but sweet as", "haha chill one, you?"]),
]
SLOTS = {"day": ["saturday", "sunday", "friday", "tomorrow", "monday"],
         "film": ["the long tide", "orbit nine", "paper lanterns", "the quiet hill"],
         "food": ["dumplings", "pizza", "ramen", "tacos"],
         "place": ["harbour st", "the old mill", "kelso", "brightwater"]}


def _fill(template: str, slots: dict) -> str:
    for k, v in slots.items():
        template = template.replace("{" + k + "}", v)
    return template


def persona_pairs(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """``pairs.csv`` rows of a persona who answers in lower case with signature phrases and emoji."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompts, replies = rng.choice(TOPICS)
        slots = {k: rng.choice(v) for k, v in SLOTS.items()}
        prompt = _fill(rng.choice(prompts), {k: v.title() for k, v in slots.items()})
        ctx = [{"sender": "<PERSON_1>", "text": "Hey Robin!", "me": False}] if rng.random() < 0.5 else []
        conv = i // 4
        split = "test" if conv % 10 == 0 else ("validation" if conv % 10 == 1 else "train")
        rows.append({"conversation_id": conv, "chat": "chat_1", "timestamp": f"2024-03-{1 + i % 28:02d}T12:00:00",
                     "prompt_sender": "<PERSON_1>", "prompt": prompt, "response": _fill(rng.choice(replies), slots),
                     "context": json.dumps(ctx), "split": split})
    return pd.DataFrame(rows)


def noise(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    alphabet = "QXZJKVW#%&*@0123456789áß"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(8, 30))) for _ in range(n)]


# --------------------------------------------------------------------------- metrics (fast)


def test_direction_covers_every_metric_of_the_issue():
    assert set(REQUIRED) <= set(DIRECTION)
    assert DIRECTION["perplexity"] == "lower" and DIRECTION["semantic_similarity"] == "higher"
    assert DIRECTION["turing_judge_accuracy"] == "lower" and DIRECTION["style_distance"] == "lower"
    assert is_better("chrf", 20, 10) and is_better("perplexity", 2, 600) and not is_better("mean_logprob", -3, -1)
    # before any measurement: sft (the model that learned from the person's own replies), never a later stage
    assert best_model(["base", "sft", "dpo"]) == "sft" and best_model(["base"]) is None
    # measured, no intervals: the higher validation fidelity; a tie goes to the simpler model
    assert best_model({"base": {"fidelity": 0.9}, "sft": {"fidelity": 0.30}, "ppo": {"fidelity": 0.35}}) == "ppo"
    assert best_model({"sft": {"fidelity": 0.30}, "refined": {"fidelity": 0.30}}) == "sft"
    assert best_model({"sft": {"fidelity": None}, "dpo": {"fidelity": 0.1}}) == "dpo"


def test_a_later_stage_ships_only_when_measurably_better():
    """sft stays the twin unless a later stage's validation fidelity is better with a 95% interval above 0:
    paired over the same messages when the per-message values are given, else from the two intervals."""
    import numpy as np

    rng = np.random.default_rng(0)
    sft = rng.normal(-0.45, 0.1, 200)
    noise = rng.normal(0, 0.05, 200)
    hair = sft + 0.001 + noise - noise.mean()       # the Chinese run's case: better by a hair on average
    clear = sft + 0.05 + rng.normal(0, 0.02, 200)   # better on nearly every message
    items = {"sft": sft, "refined": hair, "ppo": clear}
    metrics = {m: {"fidelity": float(v.mean())} for m, v in items.items()}
    assert metrics["refined"]["fidelity"] > metrics["sft"]["fidelity"]
    assert best_model({m: metrics[m] for m in ("sft", "refined")}, items=items) == "sft"
    assert best_model(metrics, items=items) == "ppo"
    # later stages are compared with the model kept so far, not only with sft
    worse_than_ppo = {**items, "dpo": clear - 0.01}
    assert best_model({m: {"fidelity": float(v.mean())} for m, v in worse_than_ppo.items()}, items=worse_than_ppo) == "ppo"
    # without per-message values: from the intervals
    with_ci = {"sft": {"fidelity": -0.408, "fidelity_ci_low": -0.44, "fidelity_ci_high": -0.37},
               "ppo": {"fidelity": -0.407, "fidelity_ci_low": -0.44, "fidelity_ci_high": -0.37}}
    assert best_model(with_ci) == "sft"
    with_ci["ppo"].update(fidelity=-0.30, fidelity_ci_low=-0.32, fidelity_ci_high=-0.28)
    assert best_model(with_ci) == "ppo"


def test_reply_metrics_perfect_copy_and_noise():
    real = persona_pairs(80, seed=1)["response"].tolist()
    scores = [{"logprob": -2.0 * (i % 3 + 1), "tokens": i % 3 + 1, "mean_logprob": -2.0} for i in range(len(real))]
    same, per = reply_metrics(list(real), real, scores, seed=0)
    assert same["semantic_similarity"] == pytest.approx(1.0, abs=1e-3)
    assert same["chrf"] == pytest.approx(100.0)
    assert same["style_distance"] == pytest.approx(0.0)
    assert same["turing_judge_accuracy"] == pytest.approx(0.5, abs=0.05)  # a perfect copy cannot be told apart
    assert same["mean_logprob"] == pytest.approx(-2.0) and same["perplexity"] == pytest.approx(math.exp(2.0))
    assert list(per.columns) == ["semantic_similarity", "chrf", "real_mean_logprob"] and len(per) == len(real)
    for name in ("semantic_similarity", "chrf", "style_distance", "turing_judge_accuracy", "words_per_reply"):
        assert same[f"{name}_ci_low"] <= same[name] <= same[f"{name}_ci_high"], name
    assert same["words_per_reply"] == pytest.approx(same["real_words_per_reply"])

    bad, _ = reply_metrics(noise(len(real)), real, None, seed=0)
    for name in ("semantic_similarity", "chrf", "style_distance", "turing_judge_accuracy"):
        assert is_better(name, same[name], bad[name]), name
    assert bad["turing_judge_accuracy"] > 0.95
    assert math.isnan(bad["perplexity"])  # no scores given
    with pytest.raises(ValueError):
        reply_metrics(["a"], ["a", "b"])


def test_write_and_load_results_round_trip(tmp_path):
    df = pd.DataFrame({
        "model": ["base", "base", "sft", "sft"],
        "prompt": ["hi?", "ok?"] * 2,
        "context": ["[]", ""] * 2,
        "real_reply": ["yeah 🌵", "no stress"] * 2,
        "reply": ["x\ry\r\nz", "", "yeah 🌵", "no stress, mate"],
        "semantic_similarity": [0.1, 0.0, 1.0, 0.8],
        "chrf": [1.0, 0.0, 100.0, 70.0],
    })
    metrics = {"base": {"chrf": 1.0, "perplexity": float("nan")}, "sft": {"chrf": 80.0, "perplexity": np.float64(2.5)}}
    paths = write_results(tmp_path, df, metrics)
    raw = pd.read_csv(paths["replies"], keep_default_na=False)
    assert list(raw.columns) == REPLY_COLUMNS and len(raw) == 4  # a bare \r does not split a row
    assert raw["reply"].tolist() == df["reply"].tolist()
    back, m = load_results(tmp_path)
    assert back["semantic_similarity"].tolist() == df["semantic_similarity"].tolist()
    assert m["base"]["perplexity"] is None and m["sft"]["perplexity"] == 2.5  # valid JSON, no NaN
    best, worst = best_and_worst(back, "sft", k=1)
    assert best["reply"][0] == "yeah 🌵" and worst["reply"][0] == "no stress, mate"


def test_tables_compare_in_the_right_direction():
    metrics = {
        "base": {"semantic_similarity": 0.1, "chrf": 10.0, "perplexity": 900.0, "mean_logprob": -6.8,
                 "style_distance": 0.4, "turing_judge_accuracy": 0.99, "n": 10},
        "sft": {"semantic_similarity": 0.3, "chrf": 20.0, "perplexity": 3.0, "mean_logprob": -1.1,
                "style_distance": 0.1, "turing_judge_accuracy": 0.97, "n": 10},
        "ppo": {"semantic_similarity": 0.05, "chrf": 25.0, "perplexity": 4.0, "mean_logprob": -1.4,
                "style_distance": 0.2, "turing_judge_accuracy": 0.999, "n": 10},
    }
    t = metrics_table(metrics)
    assert list(t.index) == ["base", "sft", "ppo"] and list(t.columns) == [m for m in METRICS if m in metrics["sft"]]
    cmp = compare_to_base(metrics)
    assert cmp.loc["sft"].all()
    assert not cmp.loc["ppo", "semantic_similarity"] and not cmp.loc["ppo", "turing_judge_accuracy"]
    assert cmp.loc["ppo", "perplexity"]


def test_context_judge_reads_the_message():
    """Replies that fit their own message pass; the same replies given to other messages are caught,
    although one at a time they look exactly like the person's (the reply-only judge is at chance)."""
    from twinlib.turing import automatic_judge, context_judge

    pairs = persona_pairs(160, seed=3)
    msgs, real = pairs["prompt"].tolist(), pairs["response"].tolist()
    rng = random.Random(0)
    # the person's own replies, each answering a message of another topic: right words, wrong message
    topic = {p: i for i, (prompts, _) in enumerate(TOPICS) for p in prompts}
    by_topic = {}
    for m, r in zip(msgs, real):
        by_topic.setdefault(_topic_of(m), []).append(r)
    shuffled = [rng.choice([r for t, rs in by_topic.items() if t != _topic_of(m) for r in rs]) for m in msgs]
    caught = context_judge(msgs, real, shuffled, seed=0)
    assert caught.accuracy > 0.8 and caught.ci_low > 0.5, caught
    assert automatic_judge(real, shuffled, seed=0).accuracy < 0.7  # one reply at a time they look right
    same = context_judge(msgs, real, list(real), seed=0)
    assert same.accuracy == 0.5 and len(same.per_item) == len(real)
    assert math.isnan(context_judge(msgs[:3], real[:3], real[:3]).accuracy)
    with pytest.raises(ValueError):
        context_judge(msgs, real, real[:-1])
    del topic


def _topic_of(message: str) -> int:
    for i, (prompts, _) in enumerate(TOPICS):
        for p in prompts:
            head = p.split("{")[0]
            if head and message.startswith(head):
                return i
    return -1


def test_other_conversation_never_picks_the_same_one():
    from twinlib.evaluation import other_conversation

    conv = ["a", "a", "b", "b", "b", "c"]
    other = other_conversation(conv, seed=0)
    assert all(conv[j] != conv[i] for i, j in enumerate(other))
    assert list(other_conversation(conv, seed=0)) == list(other)  # seeded
    assert list(other_conversation(["x", "x"], seed=0)) == [1, 0]  # one conversation: another item of it


def test_compare_models_and_verdict():
    """Paired intervals on per-item values; 'better' only when the interval excludes 0."""
    from twinlib.evaluation import compare_models, comparison_table, verdict

    rng = np.random.default_rng(0)
    n = 120
    base = rng.uniform(0, 20, n)
    rows = []
    for name, chrf in (("base", base), ("sft", base + 15 + rng.normal(0, 3, n)), ("ppo", base + 15 + rng.normal(0, 3, n))):
        rows.append(pd.DataFrame({"model": name, "chrf": chrf, "semantic_similarity": chrf / 100}))
    df = pd.concat(rows, ignore_index=True)
    metrics = {m: {"chrf": float(df.loc[df.model == m, "chrf"].mean()),
                   "semantic_similarity": float(df.loc[df.model == m, "semantic_similarity"].mean()),
                   "fidelity": f, "fidelity_ci_low": f - 0.01, "fidelity_ci_high": f + 0.01}
               for m, f in (("base", 0.10), ("sft", 0.30), ("ppo", 0.305))}
    cmp = compare_models(df, metrics)
    row = lambda m, ref, k: cmp[(cmp.model == m) & (cmp.against == ref) & (cmp.metric == k)].iloc[0]  # noqa: E731
    assert row("sft", "base", "chrf")["verdict"] == "better" and row("sft", "base", "fidelity")["verdict"] == "better"
    assert row("ppo", "sft", "chrf")["verdict"] == "no clear difference"
    assert row("ppo", "sft", "fidelity")["verdict"] == "no clear difference"  # 0.005 apart, intervals ±0.01
    assert row("base", "sft", "chrf")["verdict"] == "worse"
    assert "not measurably different" in verdict(cmp, "ppo", "sft")
    assert verdict(cmp, "sft", "base").startswith("sft is better than base")
    assert "WORSE" in verdict(cmp, "base", "sft")
    table = comparison_table(cmp, "sft")
    assert list(table.index) == ["base", "ppo"] and "↑" not in table.loc["ppo", "chrf"]


def _fake_model_dir(p: Path, twin: dict | None = None, adapter: dict | None = None) -> None:
    p.mkdir(parents=True)
    if adapter is not None:
        (p / "adapter_config.json").write_text(json.dumps(adapter))
    else:
        (p / "config.json").write_text("{}")
    if twin is not None:
        (p / "twin.json").write_text(json.dumps(twin))


def test_available_models_and_the_base_of_hub_runs(tmp_path):
    _fake_model_dir(tmp_path / "models" / "sft", twin={"kind": "sft", "base_model": "HuggingFaceTB/SmolLM2-360M-Instruct"})
    _fake_model_dir(tmp_path / "models" / "dpo")
    _fake_model_dir(tmp_path / "models" / "reward")  # not a model that answers: never evaluated
    found = available_models(tmp_path)
    assert list(found) == ["base", "sft", "dpo"]
    assert found["base"] == "HuggingFaceTB/SmolLM2-360M-Instruct"
    assert list(available_models(tmp_path, ["dpo", "base"])) == ["base", "dpo"]
    with pytest.raises(FileNotFoundError, match="ppo"):
        available_models(tmp_path, ["ppo"])
    with pytest.raises(ValueError):
        available_models(tmp_path, ["gpt"])
    lora = tmp_path / "lora"
    _fake_model_dir(lora / "models" / "sft", adapter={"base_model_name_or_path": "Qwen/Qwen2.5-0.5B-Instruct"})
    assert available_models(lora)["base"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert available_models(tmp_path / "empty") == {}


def test_held_out_pairs(tmp_path, capsys):
    pairs = persona_pairs(200)
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    test = held_out_pairs(tmp_path, n_test=10, seed=0)
    assert len(test) == 10 and set(test["split"]) == {"test"}
    assert held_out_pairs(tmp_path, n_test=10, seed=0).equals(test)  # seeded
    assert len(held_out_pairs(tmp_path, n_test=None)) == (pairs["split"] == "test").sum()
    pairs[pairs["split"] != "test"].to_csv(tmp_path / "pairs.csv", index=False)
    assert set(held_out_pairs(tmp_path, n_test=5)["split"]) == {"validation"}
    assert "no test pairs" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="notebook 01"):
        held_out_pairs(tmp_path / "nowhere")


def test_prompt_tests_html_escapes_and_lays_out_side_by_side():
    df = pd.DataFrame({"model": ["sft", "base", "sft"], "prompt_id": [0, 0, 0], "context": ["[]"] * 3,
                       "prompt": ["<hi>"] * 3, "sample": [1, 1, 2], "reply": ["a <b>", "zz", "c"]})
    out = prompt_tests_html(df)
    assert out.index("<th>base</th>") < out.index("<th>sft</th>")
    assert "&lt;hi&gt;" in out and "a &lt;b&gt;" in out and "<b>" not in out.replace("<b>&lt;hi&gt;</b>", "")


def test_report_from_hand_made_results(tmp_path):
    from twinlib.report import write_report

    real = persona_pairs(40, seed=2)["response"].tolist()
    frames, metrics = [], {}
    for name, replies in (("base", noise(len(real))), ("sft", [r.replace("haha", "hahaha") for r in real])):
        m, per = reply_metrics(replies, real, [{"logprob": -1.0, "tokens": 1, "mean_logprob": -1.0}] * len(real))
        metrics[name] = m
        frames.append(pd.concat([pd.DataFrame({"model": name, "prompt": "hi?", "context": "[]",
                                               "real_reply": real, "reply": replies}), per], axis=1))
    write_results(tmp_path, pd.concat(frames, ignore_index=True), metrics, extra={"n_test": len(real)})
    md = write_report(tmp_path)
    text = md.read_text(encoding="utf-8")
    assert "| base |" in text and "| sft |" in text and "Best and worst" in text
    for name in REQUIRED:
        assert (tmp_path / "eval" / f"metric_{name}.png").exists()
        assert f"metric_{name}.png" in text
    page = (tmp_path / "eval" / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(REQUIRED)
    assert "http://" not in page and "https://" not in page  # no network assets


# --------------------------------------------------------------------------- a whole run (slow)


def _build_small_run(root: Path) -> Path:
    """Synthetic persona pairs, the tiny base model and a short SFT: a run notebook 05 can evaluate."""
    from twinlib.rundir import RunDir
    from twinlib.sft import train_sft

    run = RunDir(root).ensure()
    persona_pairs(600).to_csv(run.pairs_csv, index=False)
    train_sft(run, "tiny", max_steps=80, progress=False, eval_steps=40, save_steps=40)
    return run.root


def _run_notebook(run_dir: Path, **params) -> Path:
    import papermill as pm

    out = Path(run_dir) / "notebooks" / NOTEBOOK.name
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"run_dir": str(run_dir), **params},
                        cwd=str(ROOT), kernel_name="python3", progress_bar=False, log_output=False)
    return out


@pytest.fixture(scope="module")
def evaluated_run(request, tmp_path_factory):
    """A run directory with notebook 05 executed: the full pipeline when available, else a small run."""
    try:
        provided = request.getfixturevalue("pipeline_run")
        run = Path(provided)
    except pytest.FixtureLookupError:
        run = _build_small_run(tmp_path_factory.mktemp("evalrun"))
    if not (run / "eval" / "metrics.json").exists():
        _run_notebook(run, n_test=40, n_prompt_tests=2, turing="skip")
    return run


@pytest.mark.slow
def test_run_outputs(evaluated_run):
    run = evaluated_run
    metrics = json.loads((run / "eval" / "metrics.json").read_text(encoding="utf-8"))
    present = [m for m in MODEL_ORDER if (run / "models" / m / "config.json").exists()
               or (run / "models" / m / "adapter_config.json").exists()]
    assert present and set(present) <= set(metrics) <= set(MODEL_ORDER)
    for name, m in metrics.items():
        for key in REQUIRED:
            assert isinstance(m.get(key), (int, float)), (name, key)
        assert m["turing_judge_ci_low"] <= m["turing_judge_accuracy"] <= m["turing_judge_ci_high"]
    replies = pd.read_csv(run / "eval" / "replies.csv", keep_default_na=False)
    assert list(replies.columns) == REPLY_COLUMNS
    counts = replies["model"].value_counts()
    assert set(counts.index) == set(metrics) and counts.nunique() == 1  # one row per model and prompt
    assert set(replies["model"]) <= set(MODEL_ORDER)
    pairs = pd.read_csv(run / "pairs.csv", keep_default_na=False)
    assert set(replies["real_reply"]) <= set(pairs.loc[pairs["split"].isin(["test", "validation"]), "response"])
    for f in ("report.md", "report.html", "prompt_tests.csv", "metric_turing_judge_accuracy.png"):
        assert (run / "eval" / f).exists(), f
    tests = pd.read_csv(run / "eval" / "prompt_tests.csv", keep_default_na=False)
    assert (tests.groupby(["model", "prompt_id"]).size() == 5).all()  # five replies per model and prompt
    assert not (run / "eval" / "judgements.jsonl").exists()  # turing="skip" never waits nor writes


@pytest.mark.slow
def test_finetuned_models_are_closer_to_the_person_than_base(evaluated_run):
    metrics = json.loads((evaluated_run / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert "base" in metrics, "the run has no base model to compare with"
    trained = [m for m in MODEL_ORDER[1:] if m in metrics]
    assert trained
    worse = [(m, k, metrics[m][k], metrics["base"][k]) for m in trained for k in REQUIRED
             if not is_better(k, metrics[m][k], metrics["base"][k])]
    assert not worse, f"not closer than base: {worse}"


@pytest.mark.slow
def test_notebook_rerun_with_saved_judgements(evaluated_run, tmp_path):
    """turing='file' reports judgements saved earlier, and the report shows the human score."""
    from twinlib.evaluation import load_results
    from twinlib.report import write_report
    from twinlib.turing import TuringGame, make_turing_items, turing_section

    run = tmp_path / "copy"
    shutil.copytree(evaluated_run / "eval", run / "eval")
    replies, metrics = load_results(run)
    items = make_turing_items(replies, best_model(metrics) or "base", seed=0, n=4)
    game = TuringGame(items, run / "eval" / "judgements.jsonl")
    for _ in items:
        game.guess(0)
    _, score = turing_section(run, mode="file")
    assert score["n"] == len(items)
    assert "Human Turing test" in write_report(run).read_text(encoding="utf-8")
    assert f"/{len(items)} right" in (run / "eval" / "report.md").read_text(encoding="utf-8")
