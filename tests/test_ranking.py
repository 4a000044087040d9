"""Stage 3 ranking: the store, the session queue, the widget (driven without a browser), preferences."""

from __future__ import annotations

import json
import warnings

import pytest

from twinlib.ranking import (
    AutoRanker,
    Item,
    RankingError,
    RankingSession,
    RankingStore,
    RankingStoreMismatch,
    RankingStoreWarning,
    best_of_k,
    complete_ranks,
    load_items,
    order_to_ranks,
    parse_order,
    preference_dataset,
    resolve_ranker,
    save_items,
    scores_to_ranks,
    to_preferences,
)
from twinlib.ranking_widget import RankingWidget


def make_items(n=3, k=4, round=1):
    items = []
    for i in range(n):
        ctx = [{"sender": "<PERSON_1>", "text": f"earlier {i} <b>bold?</b>", "me": False}]
        items.append(Item.make(ctx, f"message {i}", [f"reply {i}.{j}" for j in range(k)],
                               model={"path": "models/sft", "version": "abc"}, round=round, reference=f"real {i}"))
    return items


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


# --------------------------------------------------------------------------- ranks


def test_rank_helpers():
    assert parse_order("3142", 4) == [2, 4, 1, 3]
    assert parse_order("3 1 4 2", 4) == [2, 4, 1, 3]
    assert parse_order("3>1>4>2", 4) == [2, 4, 1, 3]
    assert parse_order("3=1 4", 4) == [1, 3, 1, 2]  # dense: ties share a rank, the next group is next
    assert parse_order("2", 4) == [2, 1, 2, 2]
    with pytest.raises(RankingError):
        parse_order("5", 4)
    with pytest.raises(RankingError):
        parse_order("11", 4)
    with pytest.raises(RankingError):
        parse_order("abc", 4)
    assert order_to_ranks([2, [0, 3]], 4) == [2, 3, 1, 2]
    assert complete_ranks([2, None, 1, None]) == [2, 3, 1, 3]
    assert scores_to_ranks([0.9, 0.5, 0.9, 0.1]) == [1, 3, 1, 4]


# --------------------------------------------------------------------------- store and session


def test_session_submit_undo_resume(tmp_path):
    store_path = tmp_path / "rankings.jsonl"
    items = make_items(3)
    s = RankingSession(RankingStore(store_path), items)
    assert s.next_item().item_id == items[0].item_id
    assert s.progress().label == "0 / 3 ranked"
    s.submit([2, 1, 3, 3])
    rec = lines(store_path)[-1]  # on disk at once
    assert rec["ranks"] == [2, 1, 3, 3] and rec["status"] == "ranked" and rec["candidates"] == items[0].candidates
    assert rec["model"] == {"path": "models/sft", "version": "abc"} and rec["round"] == 1 and rec["ranker"] == "person"
    assert s.next_item().item_id == items[1].item_id
    s.none_of_these()
    assert s.progress().label == "1 / 3 ranked (1 none)"
    undone = s.undo()
    assert undone["status"] == "none" and s.next_item().item_id == items[1].item_id
    assert lines(store_path)[-1]["status"] == "undo"  # append-only: the undone line is still there
    assert len(lines(store_path)) == 3
    s.submit([1, 2, 3, 4])
    with pytest.raises(RankingError):
        s.submit([1, 2, 3])  # wrong length
    with pytest.raises(RankingError):
        s.submit([0, 1, 2, 3])
    # a new session over the same file (new kernel, reopened notebook) resumes at item 3
    s2 = RankingSession(RankingStore(store_path), make_items(3))
    assert s2.next_item().item_id == items[2].item_id
    assert s2.progress().done == 2
    s2.skip()
    assert s2.done and s2.progress().label == "2 / 3 ranked (1 skipped)"
    with pytest.raises(RankingError):
        s2.submit([1, 1, 1, 1])
    # every judgement that counts
    judged = RankingStore(store_path).judgements()
    assert [j["status"] for j in judged] == ["ranked", "ranked", "skipped"]


def test_crash_mid_write_keeps_complete_judgements(tmp_path):
    store_path = tmp_path / "rankings.jsonl"
    s = RankingSession(RankingStore(store_path), make_items(3))
    s.submit([1, 2, 3, 4])
    s.submit([4, 3, 2, 1])
    # the kernel dies while writing the third judgement: half a line, no newline
    full = json.dumps({"id": "x", "item_id": "r1:zz", "status": "ranked", "ranks": [1, 2, 3, 4], "prompt": "p"})
    with open(store_path, "a", encoding="utf-8") as f:
        f.write(full[: len(full) // 2])
    with pytest.warns(RankingStoreWarning, match=r"rankings\.jsonl.*line 3"):
        store = RankingStore(store_path)
        recs = store.load()
    assert [r["ranks"] for r in recs] == [[1, 2, 3, 4], [4, 3, 2, 1]]
    assert store.damaged and store.damaged[0][0] == 3
    # resuming after the crash: continue at the third item, and the next write is readable
    s2 = RankingSession(store, make_items(3))
    assert s2.next_item().prompt == "message 2"
    s2.submit([1, 1, 2, 2])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        again = RankingStore(store_path)
        assert len(again.judgements()) == 3
    assert any(issubclass(x.category, RankingStoreWarning) for x in w)  # still reports the damaged line


def test_store_refuses_other_runs(tmp_path):
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    for d, text in ((run_a, "x"), (run_b, "y")):
        d.mkdir()
        (d / "pairs.csv").write_text(f"prompt,response\n{text},{text}\n")
    s = RankingSession(RankingStore.for_run(run_a), make_items(1))
    s.submit([1, 2, 3, 4])
    assert lines(run_a / "rankings.jsonl")[0]["run"]["name"] == "a"
    (run_b / "rankings.jsonl").write_bytes((run_a / "rankings.jsonl").read_bytes())
    with pytest.raises(RankingStoreMismatch, match="another run"):
        RankingStore.for_run(run_b).load()
    assert len(RankingStore.for_run(run_b, allow_other_runs=True).judgements()) == 1


def test_items_roundtrip(tmp_path):
    items = make_items(2)
    save_items(tmp_path / "q.jsonl", items)
    assert load_items(tmp_path / "q.jsonl") == items


# --------------------------------------------------------------------------- widget, no browser


def test_widget_click_through_undo_and_resume(tmp_path):
    store_path = tmp_path / "rankings.jsonl"
    items = make_items(3)
    done = []
    w = RankingWidget(RankingSession(RankingStore(store_path), items), on_complete=lambda s: done.append(s))
    assert w.progress_label.value == "0 / 3 ranked" and w.progress_bar.max == 3
    assert "&lt;b&gt;bold?&lt;/b&gt;" in w.conversation.value  # escaped, never rendered as HTML
    assert "message 0" in w.conversation.value
    # item 1: rank buttons, candidate 3 best, 1 second, the rest unranked (tied last)
    w.rank_buttons[2].value = "1"
    w.rank_buttons[0].value = "2"
    w.submit_button.click()
    assert lines(store_path)[-1]["ranks"] == [2, 3, 1, 3]
    assert w.progress_label.value == "1 / 3 ranked" and w.progress_bar.value == 1
    assert "message 1" in w.conversation.value
    assert all(t.value is None for t in w.rank_buttons)  # cleared for the next item
    # item 2: click order 4, 2, 1
    for i in (3, 1, 0):
        w.pick_buttons[i].click()
    assert w.ranks() == [3, 2, None, 1]
    w.submit_button.click()
    assert lines(store_path)[-1]["ranks"] == [3, 2, 4, 1]
    # undo brings item 2 back
    w.undo_button.click()
    assert "message 1" in w.conversation.value and w.progress_label.value == "1 / 3 ranked"
    # submitting nothing is refused with a message, nothing written
    n = len(lines(store_path))
    w.submit_button.click()
    assert len(lines(store_path)) == n and "at least" in w.message.value
    # keyboard: typed order + Enter
    w.order_box.value = "2=1 4"
    assert lines(store_path)[-1]["ranks"] == [1, 1, 3, 2] and w.order_box.value == ""
    w.order_box.value = "zz"
    assert "type candidate numbers" in w.message.value
    # re-create the widget (closed browser, new kernel): resumes at item 3
    w2 = RankingWidget(RankingSession(RankingStore(store_path), make_items(3)), on_complete=lambda s: done.append(s))
    assert "message 2" in w2.conversation.value and w2.progress_label.value == "2 / 3 ranked"
    w2.none_button.click()
    assert lines(store_path)[-1]["status"] == "none"
    assert "All 3 done" in w2.conversation.value and w2.submit_button.disabled and not w2.undo_button.disabled
    assert len(done) == 1
    w2.undo_button.click()
    assert not w2.submit_button.disabled
    w2.skip_button.click()
    assert len(done) == 2
    judged = RankingStore(store_path).judgements()
    assert [j["status"] for j in judged] == ["ranked", "ranked", "skipped"]


# --------------------------------------------------------------------------- training signal


def _records(tmp_path):
    s = RankingSession(RankingStore(tmp_path / "r.jsonl"), make_items(3))
    s.submit([2, 1, 3, 3])
    s.none_of_these()
    s.submit([1, 1, 2, 4])
    return RankingStore(tmp_path / "r.jsonl")


def test_preferences_and_best_of_k(tmp_path):
    store = _records(tmp_path)
    prefs = to_preferences(store)
    first = prefs[prefs["prompt"] == "message 0"]
    # ranks [2,1,3,3]: 1>0, 1>2, 1>3, 0>2, 0>3 ; the tie 2=3 gives no pair
    assert len(first) == 5
    row = first[(first.chosen == "reply 0.1") & (first.rejected == "reply 0.3")].iloc[0]
    assert row.margin == 2.0
    assert json.loads(row.context)[0]["text"].startswith("earlier 0")
    third = prefs[prefs["prompt"] == "message 2"]
    assert len(third) == 5 and set(third.margin) == {1.0, 2.0, 3.0}
    assert set(prefs.columns) >= {"prompt", "context", "chosen", "rejected", "margin"}
    with_none = to_preferences(store, none_vs_reference=True)
    assert len(with_none) == len(prefs) + 4
    bok = best_of_k(store)
    assert list(bok.response) == ["reply 0.1", "reply 2.0"]  # "none" gives nothing; a tie takes the first
    assert list(best_of_k(store, ties="all").response) == ["reply 0.1", "reply 2.0", "reply 2.1"]
    ds = preference_dataset(store)
    assert len(ds) == len(prefs)
    ex = ds[0]
    assert ex["prompt"][0]["role"] == "system" and ex["prompt"][-1]["content"].endswith("message 0")
    assert ex["chosen"][0]["role"] == "assistant" and isinstance(ex["margin"], float)


# --------------------------------------------------------------------------- automatic ranker and modes


def test_auto_ranker_prefers_the_reply_closest_to_the_real_one(tmp_path):
    """The simulated person ranks by closeness to what they really replied, in meaning, wording and
    form; it does not reward a caricature (an emoji wall, the shortest reply) over the real thing."""
    from twinlib.ranking import Typicality

    person = ["haha yeah sounds mint 🌵", "keen as, no stress", "legend haha", "sweet as see you there 🙌",
              "haha no stress at all", "yeah keen as 🌵", "saturday works for me", "on my way now"]
    ranker = AutoRanker(person, typicality=Typicality(person))
    cands = ["I shall arrive at noon. Thank you.", "yeah saturday works", "", "🌵 🌵 🌵 🌵 🌵 🌵", "haha"]
    ranks, scores = ranker.rank(cands, reference="yeah saturday works for me 🌵")
    assert ranks[1] == 1 and ranks[2] == 5 and scores[2] == 0.0
    assert scores[1] > scores[3] and scores[1] > scores[4]  # no prize for caricature
    typ = Typicality(person)
    assert typ.score("yeah keen as") > typ.score("I shall arrive at noon. Thank you.")
    assert typ.score("keen as 🌵") > typ.score("🌵 🌵 🌵 🌵 🌵 🌵 🌵")
    items = make_items(2)
    items[0].candidates = cands[:4]
    s = RankingSession(RankingStore(tmp_path / "r.jsonl"), items, ranker="auto")
    assert ranker.rank_session(s) == 2 and s.done
    rec = RankingStore(tmp_path / "r.jsonl").judgements()[0]
    assert rec["ranker"] == "auto" and rec["simulated"] is True and len(rec["scores"]) == 4


def test_resolve_ranker_never_waits(monkeypatch):
    from twinlib.ranking import is_interactive

    assert is_interactive() is False  # plain pytest: no kernel, nobody to click
    monkeypatch.setenv("TWIN_INTERACTIVE", "1")
    assert is_interactive() is True
    assert resolve_ranker("widget", interactive=False)[0] == "file"
    assert "not interactive" in resolve_ranker("widget", interactive=False)[1]
    assert resolve_ranker("widget", interactive=True)[0] == "widget"
    assert "SIMULATED" in resolve_ranker("auto")[1]
    with pytest.raises(ValueError):
        resolve_ranker("mouse")
