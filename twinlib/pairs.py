"""Turn the message table into (prompt, response) training pairs, split by conversation.

Mode ``"turns"`` (the default) follows what careful chat-to-dataset projects do: per chat, in time
order, a sender's consecutive text messages written within ``merge_window_minutes`` of each other
are one *turn* (joined with a line break); a quiet gap longer than ``conversation_gap_minutes``
starts a new *conversation*; media, system notices, deleted messages and calls end the current
turn and never appear in a prompt or context. Wherever a turn by the person follows a turn by
someone else in the same conversation, that is a pair: the other turn is the prompt, the
person's turn the response, and up to ``context_turns`` earlier turns of the conversation are the
context. Mode ``"consecutive"`` is the simplest seed form: text messages A, B, C, D of a chat
give (A, B) and (C, D), whoever wrote them.

:func:`split_pairs` assigns whole conversations to train, validation and test, so that no
conversation straddles the split; :func:`save_pairs` writes ``pairs.csv`` and the Hugging Face
dataset into the run directory (layout: ``docs/CONTRACTS.md``).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from twinlib.rundir import RunDir

PAIR_COLUMNS = ["conversation_id", "chat", "timestamp", "prompt_sender", "prompt", "response", "context"]
SPLITS = ("train", "validation", "test")
MODES = ("turns", "consecutive")


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "timestamp" else object) for c in PAIR_COLUMNS})


def _prepare(messages: pd.DataFrame) -> pd.DataFrame:
    """Messages in chat order (first appearance), then time order, with clean dtypes."""
    missing = [c for c in ("chat", "timestamp", "sender", "text", "kind") if c not in messages.columns]
    if missing:
        raise ValueError(f"the message table has no {missing} column(s); expected chat, timestamp, sender, text, kind.")
    df = messages[["chat", "timestamp", "sender", "text", "kind"]].copy()
    for c in ("chat", "sender", "text", "kind"):
        df[c] = df[c].fillna("").astype(str)
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    df["_chat_no"] = pd.factorize(df["chat"])[0]
    df["_row"] = np.arange(len(df))
    return df.sort_values(["_chat_no", "timestamp", "_row"], kind="stable").reset_index(drop=True)


def _consecutive(df: pd.DataFrame, min_response_chars: int) -> pd.DataFrame:
    text = df[(df["kind"] == "text") & (df["text"].str.strip() != "")].reset_index(drop=True)
    position = text.groupby("_chat_no").cumcount().to_numpy()
    first = np.flatnonzero(position % 2 == 0)
    # the partner of an even position is the next row, when it is in the same chat
    first = first[(first + 1 < len(text))]
    first = first[text["_chat_no"].to_numpy()[first + 1] == text["_chat_no"].to_numpy()[first]]
    a, b = text.iloc[first].reset_index(drop=True), text.iloc[first + 1].reset_index(drop=True)
    pairs = pd.DataFrame({
        "conversation_id": a["chat"] + ":1",
        "chat": a["chat"],
        "timestamp": b["timestamp"],
        "prompt_sender": a["sender"],
        "prompt": a["text"],
        "response": b["text"],
        "context": "[]",
    })
    return pairs[pairs["response"].str.strip().str.len() >= min_response_chars].reset_index(drop=True)


def _turns(df: pd.DataFrame, merge_window: pd.Timedelta, gap: pd.Timedelta) -> pd.DataFrame:
    """Merge messages into turns; returns one row per turn with its conversation."""
    is_text = df["kind"] == "text"
    df = df[~is_text | (df["text"].str.strip() != "")]   # an empty text is nothing, not a break
    is_text = df["kind"] == "text"
    same_chat = df["_chat_no"].eq(df["_chat_no"].shift())
    delta = df["timestamp"] - df["timestamp"].shift()
    new_conversation = ~same_chat | (delta > gap)
    conversation = new_conversation.astype(int).groupby(df["_chat_no"]).cumsum()
    new_turn = (new_conversation
                | df["sender"].ne(df["sender"].shift())
                | ~is_text.shift(fill_value=False)
                | (delta > merge_window))
    turn = new_turn.cumsum()[is_text].to_numpy()
    text = df[is_text].assign(_conversation=conversation[is_text])
    if text.empty:
        return pd.DataFrame(columns=["chat", "_conversation", "sender", "timestamp", "text", "conversation_id"])
    # the text rows of a turn are adjacent: cut at the first row of each turn
    starts = np.flatnonzero(np.r_[True, turn[1:] != turn[:-1]])
    ends = np.r_[starts[1:], len(turn)]
    values = text["text"].to_numpy()
    turns = text.iloc[starts][["chat", "_conversation", "sender", "timestamp"]].reset_index(drop=True)
    turns["text"] = [values[a] if b - a == 1 else "\n".join(values[a:b]) for a, b in zip(starts, ends)]
    turns["conversation_id"] = turns["chat"] + ":" + turns["_conversation"].astype(str)
    return turns


def build_pairs(messages: pd.DataFrame, me: str = "<ME>", mode: str = "turns", merge_window_minutes: float = 5,
                conversation_gap_minutes: float = 60, context_turns: int = 4,
                min_response_chars: int = 1) -> pd.DataFrame:
    """Build (prompt, response) pairs from the message table; see the module doc for the modes.

    Returns the columns of :data:`PAIR_COLUMNS`: ``conversation_id`` is ``"<chat>:<n>"`` (n counts
    the chat's conversations from 1; always 1 in mode ``"consecutive"``), ``timestamp`` is when the
    response began, ``context`` a JSON list of the earlier turns, oldest first, as
    ``{"sender", "text", "me"}``. Responses shorter than ``min_response_chars`` (after stripping
    spaces) are dropped. ``me`` (the person's sender name, ``<ME>`` after anonymization) must be a
    sender in mode ``"turns"``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}.")
    if context_turns < 0 or merge_window_minutes < 0 or conversation_gap_minutes < 0:
        raise ValueError("context_turns, merge_window_minutes and conversation_gap_minutes must be >= 0.")
    df = _prepare(messages)
    if df.empty:
        return _empty_pairs()
    if mode == "consecutive":
        return _consecutive(df, min_response_chars)
    if not (df["sender"] == me).any():
        senders = ", ".join(repr(s) for s in pd.unique(df["sender"])[:8])
        raise ValueError(f"me={me!r} wrote none of these messages (senders: {senders}). Pass the person's "
                         "sender name as me=... (\"<ME>\" after anonymization).")
    turns = _turns(df, pd.Timedelta(minutes=merge_window_minutes), pd.Timedelta(minutes=conversation_gap_minutes))
    conv = turns["conversation_id"].to_numpy()
    sender = turns["sender"].to_numpy()
    idx = np.flatnonzero((sender == me))
    idx = idx[idx > 0]
    idx = idx[(conv[idx - 1] == conv[idx]) & (sender[idx - 1] != me)]
    if len(idx) == 0:
        return _empty_pairs()
    # first turn of each turn's conversation, to bound the context
    conv_start = turns.groupby("conversation_id", sort=False).cumcount().to_numpy()
    conv_start = np.arange(len(turns)) - conv_start
    texts = turns["text"].to_numpy()
    contexts = []
    for i in idx:
        lo = max(conv_start[i], i - 1 - context_turns)
        contexts.append(json.dumps(
            [{"sender": sender[j], "text": texts[j], "me": bool(sender[j] == me)} for j in range(lo, i - 1)],
            ensure_ascii=False))
    pairs = pd.DataFrame({
        "conversation_id": conv[idx],
        "chat": turns["chat"].to_numpy()[idx],
        "timestamp": turns["timestamp"].to_numpy()[idx],
        "prompt_sender": sender[idx - 1],
        "prompt": texts[idx - 1],
        "response": texts[idx],
        "context": contexts,
    })
    return pairs[pairs["response"].str.strip().str.len() >= min_response_chars].reset_index(drop=True)


def split_pairs(pairs: pd.DataFrame, val_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0) -> pd.DataFrame:
    """Return a copy of ``pairs`` with a ``split`` column, assigning whole conversations.

    Conversations are shuffled with ``seed`` (the result depends only on the set of conversation
    ids, not on row order). Train always gets at least one conversation; with three or more,
    validation and test get at least one each (when their fraction is above zero).
    """
    if val_frac < 0 or test_frac < 0 or val_frac + test_frac >= 1:
        raise ValueError(f"val_frac={val_frac} and test_frac={test_frac} must be >= 0 and sum to less than 1.")
    out = pairs.copy()
    conversations = np.array(sorted(pd.unique(out["conversation_id"].astype(str))), dtype=object)
    n = len(conversations)
    n_val, n_test = round(n * val_frac), round(n * test_frac)
    if n >= 3:
        n_val = max(n_val, 1) if val_frac > 0 else 0
        n_test = max(n_test, 1) if test_frac > 0 else 0
    while n and n_val + n_test >= n:   # keep one for training
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    order = conversations[np.random.default_rng(seed).permutation(n)]
    split = {c: "test" for c in order[:n_test]}
    split.update({c: "validation" for c in order[n_test:n_test + n_val]})
    split.update({c: "train" for c in order[n_test + n_val:]})
    out["split"] = out["conversation_id"].astype(str).map(split)
    return out


def save_pairs(pairs: pd.DataFrame, run_dir) -> dict:
    """Write ``pairs.csv`` and the ``dataset`` folder (a ``DatasetDict`` train/validation/test) into
    ``run_dir``; return the number of pairs per split. ``pairs`` needs a ``split`` column
    (:func:`split_pairs`)."""
    import datasets

    if "split" not in pairs.columns:
        raise ValueError("pairs have no 'split' column: call split_pairs(pairs) before save_pairs.")
    bad = set(pairs["split"]) - set(SPLITS)
    if bad:
        raise ValueError(f"unknown split values {sorted(map(str, bad))}; use {SPLITS}.")
    rd = RunDir(run_dir)
    rd.root.mkdir(parents=True, exist_ok=True)
    columns = PAIR_COLUMNS + ["split"]
    table = pairs[columns].copy()
    table["timestamp"] = pd.to_datetime(table["timestamp"]).map(lambda t: t.isoformat() if pd.notna(t) else "")
    for c in columns:
        table[c] = table[c].fillna("").astype(str)
    table.to_csv(rd.pairs_csv, index=False, encoding="utf-8")
    features = datasets.Features({c: datasets.Value("string") for c in columns})
    dataset = datasets.DatasetDict({
        name: datasets.Dataset.from_pandas(table[table["split"] == name].reset_index(drop=True),
                                           features=features, preserve_index=False)
        for name in SPLITS
    })
    if rd.dataset.exists():  # save_to_disk does not clear what an earlier run left there
        shutil.rmtree(rd.dataset)
    # one shard per split: an empty split saved with zero shards cannot be loaded back
    dataset.save_to_disk(str(rd.dataset), num_shards={name: 1 for name in SPLITS})
    return {name: int((table["split"] == name).sum()) for name in SPLITS}


def load_pairs(run_dir) -> pd.DataFrame:
    """Read ``pairs.csv`` back: text columns as written (``context`` stays a JSON string),
    ``timestamp`` as datetimes."""
    rd = RunDir(run_dir)
    path = rd.require(rd.pairs_csv, "01_collect_data.ipynb (save_pairs)")
    pairs = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    pairs["timestamp"] = pd.to_datetime(pairs["timestamp"])
    return pairs


def context_turns(row_or_json) -> list[dict]:
    """The context of a pair as a list of ``{"sender", "text", "me"}``, oldest first.

    Accepts the JSON string, a pair row (anything with a ``"context"`` item) or an already
    parsed list.
    """
    value = row_or_json
    if isinstance(value, (dict, pd.Series)):
        value = value["context"]
    if isinstance(value, (list, tuple)):
        return list(value)
    if not isinstance(value, str) or not value.strip():   # a missing context (None, NaN, "")
        return []
    turns = json.loads(value)
    if not isinstance(turns, list):
        raise ValueError(f"context is not a JSON list: {str(value)[:80]!r}")
    return turns
