"""Pairs from messages: turns, conversations, context, splits and the files in the run directory."""

import json

import datasets
import pandas as pd
import pytest

from twinlib.pairs import PAIR_COLUMNS, build_pairs, context_turns, load_pairs, save_pairs, split_pairs

T0 = pd.Timestamp("2024-03-01 09:00")


def frame(rows, chat="chat_1"):
    """rows: (minute, sender, text) or (minute, sender, text, kind)."""
    out = []
    for r in rows:
        minute, sender, text, kind = r if len(r) == 4 else (*r, "text")
        out.append(dict(chat=chat, timestamp=T0 + pd.Timedelta(minutes=minute), sender=sender, text=text, kind=kind))
    return pd.DataFrame(out)


def test_consecutive_mode_pairs_neighbours_regardless_of_sender():
    df = frame([(0, "<PERSON_1>", "A"), (1, "<PERSON_1>", "B"), (2, "<ME>", "C"),
                (3, "<PERSON_2>", "", "media"), (4, "<ME>", "D"), (5, "<ME>", "E")])
    p = build_pairs(df, mode="consecutive")
    assert list(p.columns) == PAIR_COLUMNS
    assert list(zip(p["prompt"], p["response"])) == [("A", "B"), ("C", "D")]
    assert list(p["prompt_sender"]) == ["<PERSON_1>", "<ME>"]
    assert set(p["context"]) == {"[]"} and set(p["conversation_id"]) == {"chat_1:1"}


def test_merge_window_keeps_line_breaks_and_splits_beyond_it():
    df = frame([(0, "<PERSON_1>", "hey"), (2, "<PERSON_1>", "you free\ntonight?"), (6, "<PERSON_1>", "still 4 min"),
                (20, "<PERSON_1>", "hello??"), (21, "<ME>", "yes!"), (22, "<ME>", "sorry")])
    p = build_pairs(df, merge_window_minutes=5)
    assert len(p) == 1
    assert p.loc[0, "prompt"] == "hello??"
    assert p.loc[0, "response"] == "yes!\nsorry"
    assert context_turns(p.loc[0]) == [
        {"sender": "<PERSON_1>", "text": "hey\nyou free\ntonight?\nstill 4 min", "me": False}]
    assert p.loc[0, "timestamp"] == T0 + pd.Timedelta(minutes=21)


def test_gap_starts_a_new_conversation():
    df = frame([(0, "<PERSON_1>", "morning"), (1, "<ME>", "morning!"),
                (200, "<PERSON_1>", "lunch?"), (201, "<ME>", "sure")])
    p = build_pairs(df, conversation_gap_minutes=60)
    assert list(p["conversation_id"]) == ["chat_1:1", "chat_1:2"]
    assert list(p["context"]) == ["[]", "[]"]  # context never reaches into the earlier conversation
    assert build_pairs(df, conversation_gap_minutes=300)["conversation_id"].nunique() == 1


def test_media_breaks_the_turn_but_not_the_conversation():
    df = frame([(0, "<PERSON_1>", "look"), (0.5, "<PERSON_1>", "", "media"), (1, "<PERSON_1>", "at this"),
                (2, "<ME>", "wow"), (3, "<ME>", "", "deleted"), (3.5, "<ME>", "cute")])
    p = build_pairs(df)
    assert list(p["prompt"]) == ["at this"]            # not merged across the photo
    assert list(p["response"]) == ["wow"]              # "cute" is a turn of its own, after a break
    assert context_turns(p.iloc[0]) == [{"sender": "<PERSON_1>", "text": "look", "me": False}]
    assert "media" not in p.to_string()


def test_pairs_only_where_me_answers_someone_else():
    df = frame([(0, "<ME>", "anyone up?"), (10, "<PERSON_1>", "me"), (20, "<PERSON_2>", "me too"),
                (30, "<ME>", "great"), (40, "<PERSON_1>", "so?"), (41, "<PERSON_1>", "", "sticker")])
    p = build_pairs(df, merge_window_minutes=5)
    assert list(zip(p["prompt_sender"], p["prompt"], p["response"])) == [("<PERSON_2>", "me too", "great")]


def test_context_length_and_order():
    rows = []
    for i in range(6):
        rows += [(10 * i, "<PERSON_1>", f"q{i}"), (10 * i + 1, "<ME>", f"a{i}")]
    df = frame(rows)
    p = build_pairs(df, context_turns=3)
    assert list(p["response"]) == [f"a{i}" for i in range(6)]
    assert [len(context_turns(c)) for c in p["context"]] == [0, 2, 3, 3, 3, 3]
    last = context_turns(p["context"].iloc[-1])
    assert [t["text"] for t in last] == ["a3", "q4", "a4"]
    assert [t["me"] for t in last] == [True, False, True]
    assert context_turns(build_pairs(df, context_turns=0)["context"].iloc[-1]) == []


def test_chats_are_separate_and_min_response_chars():
    df = pd.concat([frame([(0, "<PERSON_1>", "x?"), (1, "<ME>", "k")], chat="chat_1"),
                    frame([(0.5, "<PERSON_2>", "y?"), (2, "<ME>", "yes indeed")], chat="chat_2")])
    p = build_pairs(df)
    assert list(p["chat"]) == ["chat_1", "chat_2"] and list(p["conversation_id"]) == ["chat_1:1", "chat_2:1"]
    assert list(build_pairs(df, min_response_chars=2)["response"]) == ["yes indeed"]


def test_no_pairs_gives_an_empty_table():
    for df in (frame([(0, "<PERSON_1>", "hi"), (1, "<ME>", "", "media")]), frame([(0, "<ME>", "hello?")])):
        p = build_pairs(df)
        assert p.empty and list(p.columns) == PAIR_COLUMNS


def test_me_must_be_a_sender():
    with pytest.raises(ValueError, match="me='Anna' wrote none"):
        build_pairs(frame([(0, "<PERSON_1>", "hi"), (1, "<ME>", "yo")]), me="Anna")
    with pytest.raises(ValueError, match="unknown mode"):
        build_pairs(frame([(0, "<ME>", "yo")]), mode="pairs")


def many_conversations(n):
    rows = []
    for c in range(n):
        rows += [(c * 600, "<PERSON_1>", f"q{c}"), (c * 600 + 1, "<ME>", f"a{c}"),
                 (c * 600 + 2, "<PERSON_1>", f"r{c}"), (c * 600 + 3, "<ME>", f"b{c}")]
    return build_pairs(frame(rows))


def test_split_by_whole_conversations_and_deterministic():
    pairs = many_conversations(30)
    assert pairs["conversation_id"].nunique() == 30
    s = split_pairs(pairs, val_frac=0.1, test_frac=0.2, seed=3)
    assert s.groupby("conversation_id")["split"].nunique().max() == 1
    per_split = s.groupby("split")["conversation_id"].nunique().to_dict()
    assert per_split == {"train": 21, "validation": 3, "test": 6}
    again = split_pairs(pairs.sample(frac=1, random_state=0), val_frac=0.1, test_frac=0.2, seed=3)
    assert again.set_index(["conversation_id", "response"])["split"].sort_index().equals(
        s.set_index(["conversation_id", "response"])["split"].sort_index())
    other = split_pairs(pairs, val_frac=0.1, test_frac=0.2, seed=4)
    assert not other["split"].equals(s["split"])


@pytest.mark.parametrize("n, expected", [(1, {"train": 1}), (2, {"train": 2}),
                                         (3, {"train": 1, "validation": 1, "test": 1})])
def test_split_with_few_conversations(n, expected):
    s = split_pairs(many_conversations(n))
    assert s.groupby("split")["conversation_id"].nunique().to_dict() == expected


def test_split_fraction_errors():
    with pytest.raises(ValueError, match="sum to less than 1"):
        split_pairs(many_conversations(3), val_frac=0.5, test_frac=0.5)


def test_save_and_load_round_trip(tmp_path):
    pairs = split_pairs(many_conversations(5))
    pairs.loc[0, "response"] = 'NA, "quoted", emoji 👨‍👩‍👧\nsecond line'
    counts = save_pairs(pairs, tmp_path)
    assert counts == pairs["split"].value_counts().reindex(["train", "validation", "test"], fill_value=0).to_dict()
    back = load_pairs(tmp_path)
    assert list(back.columns) == PAIR_COLUMNS + ["split"]
    assert back["response"].tolist() == pairs["response"].tolist()
    assert back["timestamp"].tolist() == pairs["timestamp"].tolist()
    assert [context_turns(c) for c in back["context"]] == [json.loads(c) for c in pairs["context"]]
    ds = datasets.load_from_disk(str(tmp_path / "dataset"))
    assert set(ds) == {"train", "validation", "test"}
    assert {n: ds[n].num_rows for n in ds} == counts
    assert all(f.dtype == "string" for f in ds["train"].features.values())
    assert ds["train"][0]["timestamp"] == pd.Timestamp(ds["train"][0]["timestamp"]).isoformat()
    save_pairs(pairs.assign(split="train"), tmp_path)  # overwriting an earlier run's files works
    assert datasets.load_from_disk(str(tmp_path / "dataset"))["test"].num_rows == 0


def test_save_needs_split_and_load_needs_file(tmp_path):
    with pytest.raises(ValueError, match="split_pairs"):
        save_pairs(many_conversations(2), tmp_path)
    with pytest.raises(FileNotFoundError, match="pairs.csv"):
        load_pairs(tmp_path / "nothing")


def test_context_turns_accepts_json_row_and_list():
    turns = [{"sender": "<PERSON_1>", "text": "hi", "me": False}]
    assert context_turns(json.dumps(turns)) == turns
    assert context_turns({"context": json.dumps(turns)}) == turns
    assert context_turns(turns) == turns
    assert context_turns("") == []
    with pytest.raises(ValueError, match="not a JSON list"):
        context_turns('{"a": 1}')
