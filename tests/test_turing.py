"""The Turing tests of stage 5: binomial intervals, the automatic judge's honesty, the game.

All hand-made data, no language model: fast.
"""

from __future__ import annotations

import json
import random
import warnings

import pandas as pd
import pytest

from twinlib.turing import (
    TuringGame,
    TuringItem,
    automatic_judge,
    binomial_ci,
    judgement_score,
    load_judgements,
    make_turing_items,
    style_vectors,
    turing_section,
    widget_state,
)

PHRASES = ["sounds mint", "no stress", "keen as", "legend", "sweet as", "haha", "yeah", "nah", "maybe later", "on my way"]
WORDS = "saturday works tomorrow climbing pizza film tess maya gym coffee beach train late early dinner".split()


def persona_replies(n: int, seed: int = 0) -> list[str]:
    """Short lower-case replies with signature phrases and the odd emoji, like the sample persona."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.sample(PHRASES, 2) + rng.sample(WORDS, rng.randint(1, 4))
        rng.shuffle(words)
        out.append(" ".join(words) + rng.choice(["", "", " 🌵", " 🙌"]))
    return out


def formal_replies(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"Dear colleague, {rng.choice(['the', 'our'])} quarterly report on {rng.choice(WORDS)} is attached. "
            f"Please review the figures by {rng.choice(['Monday', 'Friday'])}. Kind regards." for _ in range(n)]


# --------------------------------------------------------------------------- intervals


def test_wilson_interval_known_values():
    lo, hi = binomial_ci(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = binomial_ci(81, 100)
    assert lo == pytest.approx(0.7222, abs=1e-3) and hi == pytest.approx(0.8749, abs=1e-3)


def test_exact_interval_and_edges():
    lo, hi = binomial_ci(5, 10, method="exact")
    assert lo == pytest.approx(0.1871, abs=1e-4) and hi == pytest.approx(0.8129, abs=1e-4)
    assert binomial_ci(0, 10)[0] == 0.0 and binomial_ci(10, 10)[1] == 1.0
    assert binomial_ci(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        binomial_ci(11, 10)


# --------------------------------------------------------------------------- automatic judge


def test_style_vectors_shape():
    v = style_vectors(["Hello there.", "haha 🌵", ""])
    assert v.shape[0] == 3 and v[1, 3] == 1.0 and v[0, 4] == 0.0  # has_emoji, lowercase


def test_judge_real_vs_real_is_near_chance():
    """The person's own replies split in two halves cannot be told apart: about 50 %."""
    real = persona_replies(200, seed=3)
    accs = []
    for seed in range(3):
        r = automatic_judge(real[:100], real[100:], seed=seed)
        assert r.n == 200
        assert r.ci_low <= 0.5 <= r.ci_high, str(r)
        accs.append(r.accuracy)
    assert abs(sum(accs) / len(accs) - 0.5) < 0.08, accs


def test_judge_paired_copies_are_indistinguishable():
    """A 'model' that repeats the real replies word for word scores 50 %, not below (no anti-learning)."""
    real = persona_replies(80, seed=4)
    r = automatic_judge(real, list(real), paired=True)
    assert r.accuracy == pytest.approx(0.5, abs=0.05)


def test_judge_obviously_different_is_near_100():
    real = persona_replies(60, seed=5)
    r = automatic_judge(real, formal_replies(60), paired=True)
    assert r.accuracy >= 0.97 and r.ci_low > 0.9, str(r)
    assert not r.indistinguishable
    d = r.as_dict()
    assert set(d) == {"turing_judge_accuracy", "turing_judge_ci_low", "turing_judge_ci_high", "turing_judge_n"}


def test_judge_balances_classes_and_handles_tiny_inputs():
    r = automatic_judge(persona_replies(40), formal_replies(10))
    assert r.n == 20  # the larger class is subsampled
    r = automatic_judge(["a", "b"], ["c", "d"])
    assert r.n == 0 and r.accuracy != r.accuracy  # nan


# --------------------------------------------------------------------------- the game


def replies_frame(n: int = 6, model: str = "sft") -> pd.DataFrame:
    real = persona_replies(n, seed=7)
    fake = formal_replies(n, seed=8)
    return pd.DataFrame({
        "model": model,
        "prompt": [f"Are you free on day {i}?" for i in range(n)],
        "context": [json.dumps([{"sender": "<PERSON_1>", "text": f"hi {i}", "me": False}]) for i in range(n)],
        "real_reply": real,
        "reply": fake,
    })


def test_items_hold_both_replies_and_a_private_answer():
    df = replies_frame()
    items = make_turing_items(df, "sft", seed=0)
    assert len(items) == len(df)
    real = set(df["real_reply"])
    for it in items:
        assert len(it.replies) == 2
        assert it.replies[it.answer] in real and it.replies[1 - it.answer] not in real
        assert "answer" not in it.public()
    # both orders occur, and rebuilding gives the same rounds (stable ids and order)
    assert {it.answer for it in items} == {0, 1}
    again = make_turing_items(df, "sft", seed=0)
    assert [(i.id, i.replies) for i in again] == [(i.id, i.replies) for i in items]
    single = make_turing_items(df, "sft", seed=0, mode="single")
    assert all(len(i.replies) == 1 for i in single)
    with pytest.raises(ValueError, match="no replies of model"):
        make_turing_items(df, "ppo")


def _swapped(items: list[TuringItem]) -> list[TuringItem]:
    """The same rounds with the same replies shown, but the other one declared real."""
    return [TuringItem(i.id, i.model, i.context, i.prompt, i.replies, i.mode, 1 - i.answer) for i in items]


def _without_revealed(states: list[dict]) -> list[dict]:
    def revealed(d):
        v = str(d.get("value", ""))
        return v.startswith(("✅", "❌")) or " right (" in v

    return [d for d in states if not revealed(d)]


def test_widget_never_holds_the_label_before_the_guess(tmp_path):
    items = make_turing_items(replies_frame(), "sft", seed=0)
    g1 = TuringGame(items, tmp_path / "a.jsonl")
    g2 = TuringGame(_swapped(items), tmp_path / "b.jsonl")
    w1, w2 = g1.widget(), g2.widget()
    # everything the browser would receive is the same whichever reply is real
    assert widget_state(w1) == widget_state(w2)
    state = json.dumps(widget_state(w1), ensure_ascii=False)
    assert items[0].replies[0] in state and items[0].replies[1] in state  # the round is shown...
    assert "answer" not in state and "correct" not in state  # ...without its answer
    assert all("answer" not in it for it in g1.items)
    assert not (tmp_path / "a.jsonl").exists()  # nothing stored before a guess
    # after one guess the next round is again independent of its label
    g1._buttons[0].click()
    g2._buttons[0].click()
    s1, s2 = widget_state(w1), widget_state(w2)
    # the feedback and score lines differ (they reveal round 1); everything about round 2 does not
    assert _without_revealed(s1) == _without_revealed(s2)
    assert len(_without_revealed(s1)) == len(s1) - 2


def test_guess_is_stored_scored_and_resumed(tmp_path):
    store = tmp_path / "eval" / "judgements.jsonl"
    items = make_turing_items(replies_frame(), "sft", seed=0)
    game = TuringGame(items, store)
    first = game.current()
    rec = game.guess("A")
    assert rec["item_id"] == first["id"] and rec["correct"] == (rec["answer"] == 0)
    rec2 = game.guess(1)
    assert game.score()["n"] == 2
    with pytest.raises(ValueError):
        game.guess("maybe")
    # the file holds the judgements; a new game over the same store resumes after them
    lines = [json.loads(x) for x in store.read_text(encoding="utf-8").splitlines()]
    assert [x["item_id"] for x in lines] == [rec["item_id"], rec2["item_id"]]
    again = TuringGame(make_turing_items(replies_frame(), "sft", seed=0), store)
    assert len(again.pending()) == len(items) - 2
    assert again.current()["id"] not in {rec["item_id"], rec2["item_id"]}
    sc = again.score()
    assert sc["n"] == 2 and sc["correct"] == rec["correct"] + rec2["correct"]
    assert 0 <= sc["ci_low"] <= sc["accuracy"] <= sc["ci_high"] <= 1
    # another judge starts fresh on the same file
    assert len(TuringGame(items, store, judge="friend").pending()) == len(items)


def test_always_right_judge_scores_100(tmp_path):
    items = make_turing_items(replies_frame(8), "sft", seed=1)
    answers = {it.id: it.answer for it in items}
    game = TuringGame(items, tmp_path / "j.jsonl")
    while game.current() is not None:
        game.guess(answers[game.current()["id"]])
    sc = game.score()
    assert sc["accuracy"] == 1.0 and sc["n"] == 8 and sc["ci_high"] == 1.0 and sc["ci_low"] > 0.6


def test_widget_click_reveals_and_advances(tmp_path):
    store = tmp_path / "j.jsonl"
    game = TuringGame(make_turing_items(replies_frame(3), "sft", seed=0, mode="single"), store)
    box = game.widget()
    header, _convo, _replies, buttons, feedback, score = box.children
    assert "Round 1 of 3" in header.value and feedback.value == ""
    assert buttons.children[0].description == "the real person"
    for _ in range(3):
        buttons.children[1].click()
        assert feedback.value.startswith(("✅", "❌"))
    assert "All 3 rounds judged" in header.value
    assert "3 right" in score.value or "/3 right" in score.value
    assert len(load_judgements(store)) == 3
    buttons.children[0].click()  # nothing left: ignored
    assert len(load_judgements(store)) == 3


def test_damaged_line_is_skipped_with_a_warning(tmp_path):
    store = tmp_path / "j.jsonl"
    items = make_turing_items(replies_frame(4), "sft", seed=0)
    TuringGame(items, store).guess(0)
    with open(store, "a", encoding="utf-8") as f:
        f.write('{"kind": "turing", "item_id": "x", "corr')  # a crash mid-write
    with pytest.warns(UserWarning, match="damaged"):
        game = TuringGame(items, store)
    assert game.score()["n"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        game.guess(1)
        assert len(load_judgements(store)) == 2


def test_turing_section_modes(tmp_path, capsys):
    from twinlib.evaluation import write_results

    run = tmp_path / "run"
    write_results(run, replies_frame(5), {"sft": {"chrf": 1.0}})
    w, sc = turing_section(run, mode="skip")
    assert w is None and sc is None and "skipped" in capsys.readouterr().out
    w, sc = turing_section(run, mode="file")
    assert w is None and sc is None and "no judgements" in capsys.readouterr().out
    w, sc = turing_section(run, mode="widget")  # replies read from eval/replies.csv, model picked
    assert w is not None and sc["n"] == 0
    game_store = run / "eval" / "judgements.jsonl"
    w.children[3].children[0].click()
    assert game_store.exists()
    capsys.readouterr()
    w, sc = turing_section(run, mode="file")
    assert w is None and sc["n"] == 1 and "Saved human judgements" in capsys.readouterr().out
    with pytest.raises(ValueError):
        turing_section(run, mode="play")


def test_judgement_score_empty():
    sc = judgement_score([])
    assert sc["n"] == 0 and sc["accuracy"] != sc["accuracy"]
