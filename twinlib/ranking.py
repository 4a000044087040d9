"""Ranking the twin's candidate replies: the store, the queue, the automatic ranker, preferences.

Stage 3 shows the person ``k`` replies the twin sampled for one message and asks which sound
most like them. Every judgement is a line in ``rankings.jsonl`` in the run directory:

* :class:`RankingStore` appends one JSON record per judgement and ``fsync``\\ s it at once, so a
  crashed kernel or a closed browser loses nothing. The file is append-only: undo appends an
  ``undo`` record instead of rewriting. Loading keeps every complete record and warns (file and
  line number) about a damaged one, such as a half-written last line.
* :class:`RankingSession` is the queue the widget (:mod:`twinlib.ranking_widget`) drives:
  :meth:`~RankingSession.next_item`, :meth:`~RankingSession.submit`,
  :meth:`~RankingSession.none_of_these`, :meth:`~RankingSession.skip`,
  :meth:`~RankingSession.undo`, :meth:`~RankingSession.progress`. Re-creating it over the same
  store resumes at the first item without a judgement.
* :class:`AutoRanker` stands in for the person in papermill runs and CI: it ranks candidates
  by how close each comes to the person's real reply: sentence-embedding similarity
  (:mod:`twinlib.embeddings`: MiniLM for English, the multilingual model for Chinese, Japanese and
  Korean), chrF and a form typical for the person.
  Its records say ``"ranker": "auto"``: they are *simulated* rankings.
* :func:`to_preferences`, :func:`best_of_k` and :func:`preference_dataset` turn rankings into
  training signal: every better/worse pair (the rank gap as a margin) for the reward model and
  DPO of stage 4, and the top candidate of each ranking for best-of-k fine-tuning.

A record::

    {"id": "9f1c…", "item_id": "r1:3b2a…", "time": "2024-05-01T10:00:00+00:00",
     "run": {"name": "sample", "data": "<sha of pairs.csv>"},
     "model": {"path": "models/sft", "version": "<hash>"}, "round": 1, "ranker": "person",
     "context": [{"sender": "<PERSON_1>", "text": "…", "me": false}], "prompt": "…",
     "candidates": ["…", "…", "…", "…"], "ranks": [2, 1, 3, 3],
     "status": "ranked", "undo_of": null}

``ranks`` holds one integer per candidate, 1 = best, ties allowed; it is ``null`` for the
statuses ``none`` ("none of these sound like me"), ``skipped`` and ``undo``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from twinlib.pairs import context_turns
from twinlib.rundir import RunDir, data_fingerprint

STATUSES = ("ranked", "none", "skipped", "undo")
JUDGEMENTS = ("ranked", "none", "skipped")
RANKERS = ("widget", "file", "auto")


class RankingStoreWarning(UserWarning):
    """A line of ``rankings.jsonl`` could not be read (it was skipped, the rest was kept)."""


class RankingStoreMismatch(RuntimeError):
    """The rankings file was made on another run's data: stores are never mixed silently."""


class RankingError(ValueError):
    """A judgement that cannot be recorded (wrong number of ranks, nothing left to rank...)."""


# --------------------------------------------------------------------------- items


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def item_key(context, prompt: str) -> str:
    """A short stable id of one conversation (its earlier turns and the message answered)."""
    blob = json.dumps([context_turns(context), str(prompt)], ensure_ascii=False, sort_keys=True)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]


@dataclass
class Item:
    """One thing to rank: a conversation and the ``k`` replies the twin sampled for it.

    ``reference`` is the person's real reply when known; it is never shown in the widget, the
    automatic ranker compares candidates with it. ``model`` says which model sampled the
    candidates (see :func:`model_info`).
    """

    item_id: str
    context: list
    prompt: str
    candidates: list[str]
    model: dict = field(default_factory=dict)
    round: int | None = None
    reference: str | None = None

    @classmethod
    def make(cls, context, prompt, candidates, model=None, round=None, reference=None) -> "Item":
        key = item_key(context, prompt)
        iid = f"r{round}:{key}" if round is not None else key
        return cls(iid, context_turns(context), str(prompt), [str(c) for c in candidates], dict(model or {}), round, reference)

    def to_dict(self) -> dict:
        return {"item_id": self.item_id, "context": self.context, "prompt": self.prompt,
                "candidates": self.candidates, "model": self.model, "round": self.round,
                "reference": self.reference}

    @classmethod
    def from_dict(cls, d: dict) -> "Item":
        return cls(d["item_id"], context_turns(d.get("context")), d["prompt"], list(d["candidates"]),
                   dict(d.get("model") or {}), d.get("round"), d.get("reference"))


def save_items(path, items: Sequence[Item]) -> Path:
    """Write a queue of items as JSON Lines (atomically), so a resumed session shows the same candidates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for it in items:
            f.write(json.dumps(it.to_dict(), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


def load_items(path) -> list[Item]:
    """Read a queue written by :func:`save_items`."""
    with open(path, encoding="utf-8") as f:
        return [Item.from_dict(json.loads(line)) for line in f if line.strip()]


def model_info(path, root=None) -> dict:
    """``{"path", "version"}`` of a saved model: the version is a hash of its config and weight files.

    The hash covers ``config.json``/``adapter_config.json`` and the names, sizes and
    modification times of the weight files, so it changes whenever the model is retrained and
    costs nothing for multi-GB checkpoints. ``path`` is stored relative to ``root`` (the run
    directory) when it lies inside it.
    """
    p = Path(path)
    h = hashlib.sha1()
    if p.is_dir():
        for name in ("config.json", "adapter_config.json"):
            if (p / name).exists():
                h.update((p / name).read_bytes())
        for w in sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")):
            st = w.stat()
            h.update(f"{w.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    else:  # a hub id
        h.update(str(path).encode())
    shown = str(path)
    if root is not None:
        try:
            shown = str(p.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return {"path": shown, "version": h.hexdigest()[:12]}


# --------------------------------------------------------------------------- ranks


def validate_ranks(ranks, k: int) -> list[int]:
    """Check one rank per candidate, each an integer from 1 (best) to ``k``; ties allowed."""
    if ranks is None:
        raise RankingError("no ranks given")
    ranks = list(ranks)
    if len(ranks) != k:
        raise RankingError(f"expected {k} ranks (one per candidate), got {len(ranks)}: {ranks}")
    out = []
    for r in ranks:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) and not (isinstance(r, float) and r.is_integer()):
            raise RankingError(f"ranks must be whole numbers 1..{k}, got {r!r}")
        r = int(r)
        if not 1 <= r <= k:
            raise RankingError(f"ranks must be between 1 (best) and {k}, got {r}")
        out.append(r)
    return out


def complete_ranks(partial: Sequence[int | None], k: int | None = None) -> list[int]:
    """Fill unranked candidates (``None``) with one shared rank after the worst given one.

    ``[2, None, 1, None] -> [2, 3, 1, 3]``: ranking only the best ones is enough.
    """
    partial = list(partial)
    k = k or len(partial)
    given = [int(r) for r in partial if r is not None]
    if not given:
        raise RankingError("rank at least one candidate (or choose 'none of these' / 'skip')")
    fill = min(max(given) + 1, k)
    return validate_ranks([fill if r is None else int(r) for r in partial], k)


def order_to_ranks(order: Sequence[Sequence[int] | int], k: int) -> list[int]:
    """Ranks from a best-first order of candidate indices (0-based); a group (list) is a tie.

    ``order_to_ranks([2, [0, 3]], 4) -> [2, 3, 1, 3]``: candidate 2 first, 0 and 3 tied second,
    1 (not mentioned) last. Unmentioned candidates share the rank after the last group.
    """
    ranks: list[int | None] = [None] * k
    rank = 1
    for group in order:
        group = [group] if isinstance(group, (int, np.integer)) else list(group)
        for i in group:
            if not 0 <= int(i) < k:
                raise RankingError(f"candidate {int(i) + 1} does not exist (there are {k})")
            if ranks[int(i)] is not None:
                raise RankingError(f"candidate {int(i) + 1} appears twice in the order")
            ranks[int(i)] = rank
        rank += 1
    return complete_ranks(ranks, k)


_ORDER_RE = re.compile(r"^[0-9=\s,>]+$")


def parse_order(text: str, k: int) -> list[int]:
    """Ranks from a typed order, best first, candidates numbered from 1: the keyboard shortcut.

    ``"3142"`` or ``"3 1 4 2"`` or ``"3>1>4>2"``: 3 best, 2 worst. ``"3=1 4"``: 3 and 1 tied
    first, 4 next, 2 (unmentioned) last. Digits only, so up to 9 candidates.
    """
    text = (text or "").strip()
    if not text or not _ORDER_RE.match(text):
        raise RankingError(f"type candidate numbers best first, e.g. '{''.join(str(i) for i in range(k, 0, -1))}' "
                           f"or '2=1 3' for a tie; got {text!r}")
    groups: list[list[int]] = []
    tie = False
    for ch in text:
        if ch.isdigit():
            idx = int(ch) - 1
            if tie and groups:
                groups[-1].append(idx)
            else:
                groups.append([idx])
            tie = False
        elif ch == "=":
            if not groups:
                raise RankingError("'=' ties a candidate with the one before it; start with a number")
            tie = True
    return order_to_ranks(groups, k)


def scores_to_ranks(scores: Sequence[float], decimals: int = 6) -> list[int]:
    """Competition ranks of scores, higher is better, equal (rounded) scores tie: ``[.9, .5, .9] -> [1, 3, 1]``."""
    s = np.round(np.asarray(scores, dtype=float), decimals)
    return [int((s > v).sum()) + 1 for v in s]


# --------------------------------------------------------------------------- store


class RankingStore:
    """The append-only ``rankings.jsonl`` of one run directory.

    ``RankingStore.for_run(run)`` is the run's own store; ``RankingStore(path)`` a loose one (for
    tests or a widget without a run). Every :meth:`append` writes one line, flushes and fsyncs
    before returning. :meth:`load` reads every complete record; damaged lines are reported in
    :attr:`damaged` and with a :class:`RankingStoreWarning` naming the file and the line.

    A store bound to a run records ``{"name", "data"}`` (the run folder's name and a hash of its
    ``pairs.csv``) in every record and refuses to load records made on other data
    (:class:`RankingStoreMismatch`) unless ``allow_other_runs=True``.
    """

    def __init__(self, path, run_info: dict | None = None, allow_other_runs: bool = False):
        self.path = Path(path)
        self.run_info = dict(run_info) if run_info else None
        self.allow_other_runs = allow_other_runs
        self.damaged: list[tuple[int, str]] = []
        self._records: list[dict] | None = None

    @classmethod
    def for_run(cls, run, allow_other_runs: bool = False) -> "RankingStore":
        run = RunDir(run)
        return cls(run.rankings, {"name": run.root.resolve().name, "data": data_fingerprint(run)}, allow_other_runs)

    # ---- reading
    def load(self, warn: bool = True) -> list[dict]:
        """Every complete record in file order (undo records included); see :meth:`judgements`."""
        records: list[dict] = []
        self.damaged = []
        if self.path.exists():
            raw = self.path.read_bytes()
            for n, line in enumerate(raw.split(b"\n"), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line.decode("utf-8"))
                    if not isinstance(rec, dict) or "id" not in rec or rec.get("status") not in STATUSES:
                        raise ValueError("not a ranking record (needs 'id' and a known 'status')")
                except (ValueError, UnicodeDecodeError) as e:
                    snippet = line[:60].decode("utf-8", "replace")
                    self.damaged.append((n, f"{type(e).__name__}: {e}; starts {snippet!r}"))
                    continue
                records.append(rec)
        if warn and self.damaged:
            lines = ", ".join(str(n) for n, _ in self.damaged)
            warnings.warn(
                f"{self.path}: skipped {len(self.damaged)} damaged line(s) (line {lines}; {self.damaged[0][1]}). "
                f"Every complete judgement ({len(records)} record(s)) was kept. A half-written last line comes "
                "from a crash while saving; the judgement on it is lost and can simply be made again.",
                RankingStoreWarning,
                stacklevel=2,
            )
        self._check_runs(records)
        self._records = records
        return list(records)

    def _check_runs(self, records: list[dict]) -> None:
        if self.allow_other_runs or not self.run_info or not self.run_info.get("data"):
            return
        mine = self.run_info["data"]
        other = [r for r in records if (r.get("run") or {}).get("data") not in (None, mine)]
        if other:
            names = sorted({str((r.get("run") or {}).get("name")) for r in other})
            raise RankingStoreMismatch(
                f"{self.path} holds {len(other)} ranking(s) made on another run's data (run {', '.join(names)}; "
                f"this run's pairs.csv has fingerprint {mine}). Rankings are only meaningful for the data they "
                "were made on, so they are not mixed silently. Move the file away (or use a fresh run "
                "directory), or open it with allow_other_runs=True if you really mean to reuse them."
            )

    @property
    def records(self) -> list[dict]:
        if self._records is None:
            self.load()
        return list(self._records)

    def judgements(self, include_skipped: bool = True) -> list[dict]:
        """The records that still count, in order: undone ones and undo records removed."""
        recs = self.records
        undone = {r.get("undo_of") for r in recs if r["status"] == "undo"}
        keep = ("ranked", "none", "skipped") if include_skipped else ("ranked", "none")
        return [r for r in recs if r["status"] in keep and r["id"] not in undone]

    def latest(self) -> dict[str, dict]:
        """The current judgement of each item (the last one that was not undone)."""
        out: dict[str, dict] = {}
        for r in self.judgements():
            out[r["item_id"]] = r
        return out

    # ---- writing
    def append(self, record: dict) -> dict:
        """Append one record, flush and fsync before returning (nothing is lost in a crash)."""
        rec = dict(record)
        if rec.get("status") not in STATUSES:
            raise RankingError(f"unknown status {rec.get('status')!r}; one of {STATUSES}")
        rec.setdefault("id", uuid.uuid4().hex)
        rec.setdefault("time", _now())
        if self.run_info:
            rec.setdefault("run", self.run_info)
        line = json.dumps(rec, ensure_ascii=False, default=_json_default) + "\n"
        if self._records is None:
            self.load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            # a crash mid-write leaves a line without its newline: start on a fresh line so the
            # damaged line stays one (skipped) line and this record stays readable
            if f.tell() > 0 and not _ends_with_newline(self.path):
                f.write(b"\n")
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        self._records.append(rec)
        return rec

    def undo(self, item_ids: Iterable[str] | None = None) -> dict | None:
        """Undo the last judgement (optionally the last among ``item_ids``) by appending an undo record.

        Returns the undone record, or ``None`` when there is nothing to undo.
        """
        allowed = set(item_ids) if item_ids is not None else None
        for rec in reversed(self.judgements()):
            if allowed is None or rec["item_id"] in allowed:
                self.append({"item_id": rec["item_id"], "status": "undo", "undo_of": rec["id"], "ranks": None})
                return rec
        return None


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def load_rankings(path_or_store) -> list[dict]:
    """The judgements that count in a store, a ``rankings.jsonl`` path or a list of records."""
    if isinstance(path_or_store, RankingStore):
        return path_or_store.judgements()
    if isinstance(path_or_store, (str, os.PathLike)):
        return RankingStore(path_or_store).judgements()
    recs = list(path_or_store)
    undone = {r.get("undo_of") for r in recs if r.get("status") == "undo"}
    return [r for r in recs if r.get("status") in JUDGEMENTS and r.get("id") not in undone]


# --------------------------------------------------------------------------- session


@dataclass
class Progress:
    done: int
    total: int
    ranked: int
    none: int
    skipped: int

    @property
    def label(self) -> str:
        extra = []
        if self.none:
            extra.append(f"{self.none} none")
        if self.skipped:
            extra.append(f"{self.skipped} skipped")
        return f"{self.ranked} / {self.total} ranked" + (f" ({', '.join(extra)})" if extra else "")

    def __str__(self) -> str:
        return self.label


class RankingSession:
    """A queue of :class:`Item`\\ s over a :class:`RankingStore`; what the widget calls.

    The current item is the first one in queue order without a judgement in the store, so a
    session re-created after a crash (or in a new kernel) continues where the person stopped.
    ``ranker`` is recorded with every judgement (``"person"`` for the widget, ``"auto"`` for the
    simulated ranker).
    """

    def __init__(self, store: RankingStore, items: Sequence[Item], ranker: str = "person", extra: dict | None = None):
        ids = [it.item_id for it in items]
        if len(set(ids)) != len(ids):
            raise RankingError("two items share an item_id; each conversation may appear once per round")
        self.store = store
        self.items = list(items)
        self.ranker = ranker
        self.extra = dict(extra or {})
        self._ids = set(ids)

    # ---- state
    def _latest(self) -> dict[str, dict]:
        """Current judgements of this queue's items — of these very candidates (a judgement of
        other candidates for the same conversation, e.g. sampled again after retraining, does not count)."""
        cands = {it.item_id: it.candidates for it in self.items}
        return {k: v for k, v in self.store.latest().items() if k in cands and v.get("candidates") == cands[k]}

    def next_item(self) -> Item | None:
        """The first item without a judgement, or ``None`` when all are done."""
        latest = self._latest()
        for it in self.items:
            if it.item_id not in latest:
                return it
        return None

    @property
    def done(self) -> bool:
        return self.next_item() is None

    def progress(self) -> Progress:
        latest = self._latest()
        st = [r["status"] for r in latest.values()]
        return Progress(done=len(latest), total=len(self.items), ranked=st.count("ranked"),
                        none=st.count("none"), skipped=st.count("skipped"))

    def judgements(self) -> list[dict]:
        """The current judgement of every item that has one, in queue order."""
        latest = self._latest()
        return [latest[it.item_id] for it in self.items if it.item_id in latest]

    # ---- actions
    def _record(self, status: str, ranks=None, item: Item | None = None, **more) -> dict:
        item = item or self.next_item()
        if item is None:
            raise RankingError("every item is already judged; nothing left to rank")
        rec = {
            "item_id": item.item_id,
            "model": item.model,
            "round": item.round,
            "ranker": self.ranker,
            "context": item.context,
            "prompt": item.prompt,
            "candidates": item.candidates,
            "ranks": ranks,
            "status": status,
            "undo_of": None,
        }
        if item.reference is not None:
            rec["reference"] = item.reference
        rec.update(self.extra)
        rec.update(more)
        return self.store.append(rec)

    def submit(self, ranks, item: Item | None = None, **more) -> dict:
        """Record ranks for the current item: one per candidate, 1 = best, ties allowed.

        ``None`` entries are unranked candidates and share the rank after the worst given one.
        """
        item = item or self.next_item()
        if item is None:
            raise RankingError("every item is already judged; nothing left to rank")
        ranks = list(ranks)
        ranks = complete_ranks(ranks, len(item.candidates)) if any(r is None for r in ranks) else validate_ranks(ranks, len(item.candidates))
        return self._record("ranked", ranks, item=item, **more)

    def none_of_these(self) -> dict:
        """"None of these sound like me": no ranking, but a signal that all candidates missed."""
        return self._record("none")

    def skip(self) -> dict:
        """Move on without judging (the item counts as handled; undo brings it back)."""
        return self._record("skipped")

    def undo(self) -> dict | None:
        """Undo the last judgement in this queue; that item becomes the current one again."""
        return self.store.undo(self._ids)


# --------------------------------------------------------------------------- training signal


def _ctx_json(context) -> str:
    return json.dumps(context_turns(context), ensure_ascii=False)


PREFERENCE_COLUMNS = ["prompt", "context", "chosen", "rejected", "margin", "item_id", "round", "ranker", "model_version"]


def to_preferences(records, rankers: Sequence[str] | None = None, none_vs_reference: bool = False) -> pd.DataFrame:
    """Every better/worse pair of every ranking: ``DataFrame[prompt, context, chosen, rejected, margin, ...]``.

    ``margin`` is the rank gap (``worse rank - better rank`` ≥ 1). Tied and identical
    candidates give no pair. ``records`` is a store, a path or a list of records (undone ones
    are dropped). ``rankers`` keeps only judgements made by those rankers (e.g. ``["person"]``).
    With ``none_vs_reference=True`` a "none of these" judgement whose record holds the
    person's real reply adds (real reply > candidate) pairs with margin 1.
    """
    rows = []
    for r in load_rankings(records):
        if rankers is not None and r.get("ranker") not in rankers:
            continue
        base = {"prompt": r["prompt"], "context": _ctx_json(r.get("context")), "item_id": r.get("item_id"),
                "round": r.get("round"), "ranker": r.get("ranker"), "model_version": (r.get("model") or {}).get("version")}
        cands = r.get("candidates") or []
        if r["status"] == "ranked" and r.get("ranks"):
            ranks = r["ranks"]
            for i, ci in enumerate(cands):
                for j, cj in enumerate(cands):
                    if ranks[i] < ranks[j] and ci.strip() != cj.strip():
                        rows.append({**base, "chosen": ci, "rejected": cj, "margin": float(ranks[j] - ranks[i])})
        elif r["status"] == "none" and none_vs_reference and r.get("reference"):
            for c in cands:
                if c.strip() != r["reference"].strip():
                    rows.append({**base, "chosen": r["reference"], "rejected": c, "margin": 1.0})
    return pd.DataFrame(rows, columns=PREFERENCE_COLUMNS)


def best_of_k(records, rankers: Sequence[str] | None = None, ties: str = "first") -> pd.DataFrame:
    """The top-ranked candidate of each ranking: ``DataFrame[context, prompt, response, ...]``.

    The examples of best-of-k (rejection-sampling) fine-tuning. "None of these" and skipped
    items give nothing; so does an empty best candidate. ``ties="all"`` keeps every distinct
    candidate tied for first place instead of the first one.
    """
    rows = []
    for r in load_rankings(records):
        if r["status"] != "ranked" or not r.get("ranks"):
            continue
        if rankers is not None and r.get("ranker") not in rankers:
            continue
        best = min(r["ranks"])
        tops = [c for c, rk in zip(r["candidates"], r["ranks"]) if rk == best and c.strip()]
        if ties == "first":
            tops = tops[:1]
        seen = set()
        for c in tops:
            if c in seen:
                continue
            seen.add(c)
            rows.append({"context": _ctx_json(r.get("context")), "prompt": r["prompt"], "response": c,
                         "item_id": r.get("item_id"), "round": r.get("round"), "ranker": r.get("ranker")})
    return pd.DataFrame(rows, columns=["context", "prompt", "response", "item_id", "round", "ranker"])


def preference_dataset(records, tokenizer=None, system: str | None = None, **kw):
    """Rankings as a ``datasets.Dataset`` in TRL's preference format, for RewardTrainer and DPOTrainer.

    Without a tokenizer: the *conversational* format, ``{"prompt": build_messages(context, prompt),
    "chosen": [{"role": "assistant", "content": …}], "rejected": […], "margin": float}``. With a
    tokenizer: the *standard* format, the prompt rendered by its chat template (assistant turn
    opened) and chosen/rejected as plain text ending with the end-of-turn token. ``kw`` goes to
    :func:`to_preferences`.
    """
    from datasets import Dataset

    from twinlib.modeling import SYSTEM_PROMPT, build_messages, prompt_text

    system = SYSTEM_PROMPT if system is None else system
    prefs = to_preferences(records, **kw)
    rows = []
    for p in prefs.itertuples(index=False):
        if tokenizer is None:
            rows.append({
                "prompt": build_messages(p.context, p.prompt, system=system),
                "chosen": [{"role": "assistant", "content": p.chosen}],
                "rejected": [{"role": "assistant", "content": p.rejected}],
                "margin": float(p.margin),
            })
        else:
            end = "<|im_end|>" if "<|im_end|>" in tokenizer.get_vocab() else (tokenizer.eos_token or "")
            rows.append({
                "prompt": prompt_text(tokenizer, p.context, p.prompt, system=system),
                "chosen": p.chosen + end,
                "rejected": p.rejected + end,
                "margin": float(p.margin),
            })
    if not rows:
        return Dataset.from_dict({"prompt": [], "chosen": [], "rejected": [], "margin": []})
    return Dataset.from_list(rows)


# --------------------------------------------------------------------------- automatic ranker


class Typicality:
    """How typical a reply's form is *for this person*: length, emoji, casing, final punctuation,
    question and exclamation marks, each scored by how often the person's own replies look like
    that (1 = the person's most common form, 0 = a form they never use).

    Fitted on the person's replies only: a reply is not rewarded for being *unlike* the people
    they talk to (that rewards caricature — the shortest reply, an emoji wall), only for being
    like the person. Length uses a Gaussian on log words; the others the empirical rates.
    """

    def __init__(self, person_replies: Sequence[str]):
        from twinlib.style import count_words, ends_with_punct, find_emoji, is_lowercase

        texts = [t for t in person_replies if isinstance(t, str) and t.strip()]
        if not texts:
            raise ValueError("Typicality needs some of the person's replies")
        self._feats = lambda t: (min(len(find_emoji(t)), 3), bool(is_lowercase(t)), bool(ends_with_punct(t)),
                                 "?" in t, "!" in t)
        lw = np.array([math.log1p(count_words(t)) for t in texts])
        self.log_words = (float(lw.mean()), float(max(lw.std(), 0.25)))
        self._count_words = count_words
        feats = [self._feats(t) for t in texts]
        self.rates: list[dict] = []
        for j in range(5):  # per feature: share of each value, relative to the most common value
            counts: dict = {}
            for f in feats:
                counts[f[j]] = counts.get(f[j], 0) + 1
            top = max(counts.values())
            self.rates.append({k: v / top for k, v in counts.items()})

    def score(self, text: str) -> float:
        text = text if isinstance(text, str) else ""
        mu, sd = self.log_words
        parts = [math.exp(-0.5 * ((math.log1p(self._count_words(text)) - mu) / sd) ** 2)]
        parts += [rates.get(v, 0.0) for rates, v in zip(self.rates, self._feats(text))]
        return float(np.mean(parts))

    def score_many(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.score(t) for t in texts], dtype=float)


class AutoRanker:
    """A SIMULATED person: ranks the twin's candidates the way the person would, by how close each
    comes to what the person really replied to that message.

    For a training-split message the person's real reply is known, so each candidate gets

    ``score = 0.4 · meaning + 0.4 · wording + 0.2 · form``

    * **meaning**: cosine of sentence embeddings of the candidate and the real reply
      (:mod:`twinlib.embeddings`, offline);
    * **wording**: chrF (β = 1) of the candidate against the real reply, / 100 — characters, so
      it works for any script, Chinese included;
    * **form**: :class:`Typicality` — length, emoji and punctuation as typical *for this person*.

    Without a real reply (a message the person never answered) ``meaning`` becomes the mean cosine
    to the person's 5 most similar replies and ``wording`` is left out. Empty candidates score 0.
    It stands in for the person in papermill runs and CI and is recorded with ``"ranker": "auto"``;
    the widget is the real thing.
    """

    name = "auto"

    def __init__(self, person_replies: Sequence[str], typicality: Typicality | None = None, w_meaning: float = 0.4,
                 w_wording: float = 0.4, w_form: float = 0.2, bank_size: int = 400, n_nearest: int = 5, seed: int = 0):
        replies = [r for r in person_replies if isinstance(r, str) and r.strip()]
        if len(replies) > bank_size:
            rng = np.random.default_rng(seed)
            replies = [replies[i] for i in sorted(rng.choice(len(replies), bank_size, replace=False))]
        self.bank = replies
        self.typicality = typicality
        self.weights = {"meaning": w_meaning, "wording": w_wording, "form": w_form}
        self.n_nearest = n_nearest
        self._bank_emb = None

    @classmethod
    def from_pairs(cls, pairs: pd.DataFrame, **kw) -> "AutoRanker":
        """Fit on pairs (use the training split): the person's own replies only."""
        person = [t for t in pairs["response"].astype(str) if t.strip()]
        return cls(person, typicality=Typicality(person) if person else None, **kw)

    def _bank(self):
        from twinlib.embeddings import embed

        if self._bank_emb is None:
            self._bank_emb = embed(self.bank) if self.bank else np.zeros((0, 384), dtype=np.float32)
        return self._bank_emb

    def components(self, candidates: Sequence[str], references: Sequence[str | None] | None = None) -> dict[str, np.ndarray]:
        """Per-candidate parts of the score: ``meaning``, ``wording``, ``form`` (NaN where unknown)."""
        from sacrebleu.metrics import CHRF

        from twinlib.embeddings import embed

        cands = [str(c) for c in candidates]
        n = len(cands)
        refs = list(references) if references is not None else [None] * n
        emb = embed(cands)
        out = {k: np.full(n, np.nan) for k in ("meaning", "wording", "form")}
        have = [i for i, r in enumerate(refs) if isinstance(r, str) and r.strip()]
        if have:  # each distinct reference embedded once (an item's k candidates share theirs)
            distinct = list(dict.fromkeys(refs[i] for i in have))
            ref_emb = embed(distinct)[[distinct.index(refs[i]) for i in have]]
            out["meaning"][have] = (emb[have] * ref_emb).sum(axis=1)
            chrf = CHRF(beta=1)
            out["wording"][have] = [chrf.sentence_score(cands[i], [refs[i]]).score / 100.0 for i in have]
        missing = [i for i in range(n) if i not in set(have)]
        bank = self._bank()
        if missing and len(bank):
            sims = emb[missing] @ bank.T
            m = min(self.n_nearest, sims.shape[1])
            out["meaning"][missing] = np.sort(sims, axis=1)[:, -m:].mean(axis=1)
        if self.typicality is not None:
            out["form"] = self.typicality.score_many(cands)
        return out

    def score(self, candidates: Sequence[str], references: Sequence[str | None] | str | None = None) -> np.ndarray:
        """One score per candidate (higher = closer to the person). ``references`` is one real reply or one per candidate."""
        cands = list(candidates)
        if isinstance(references, str) or references is None:
            references = [references] * len(cands)
        return self.combine(self.components(cands, references), cands)

    def combine(self, parts: dict[str, np.ndarray], candidates: Sequence[str]) -> np.ndarray:
        """The weighted score from :meth:`components` (weights of unknown parts spread over the others)."""
        cands = list(candidates)
        total = np.zeros(len(cands))
        wsum = np.zeros(len(cands))
        for name, w in self.weights.items():
            v = parts[name]
            ok = ~np.isnan(v)
            total[ok] += w * v[ok]
            wsum[ok] += w
        scores = np.where(wsum > 0, total / np.maximum(wsum, 1e-12), 0.0)
        scores[[not c.strip() for c in cands]] = 0.0
        return scores

    def rank(self, candidates: Sequence[str], reference: str | None = None) -> tuple[list[int], list[float]]:
        """``(ranks, scores)`` for one item's candidates."""
        s = self.score(candidates, reference)
        return scores_to_ranks(s), [float(x) for x in s]

    def rank_session(self, session: RankingSession) -> int:
        """Rank every open item of a session (one batched embedding); returns how many were ranked."""
        latest = session._latest()
        open_items = [it for it in session.items if it.item_id not in latest]
        if not open_items:
            return 0
        flat = [c for it in open_items for c in it.candidates]
        refs = [it.reference for it in open_items for _ in it.candidates]
        scores = self.score(flat, refs)
        pos = 0
        for it in open_items:
            s = scores[pos : pos + len(it.candidates)]
            pos += len(it.candidates)
            session.submit(scores_to_ranks(s), item=it, scores=[round(float(x), 4) for x in s], simulated=True)
        return len(open_items)


# --------------------------------------------------------------------------- where are we running


def is_interactive() -> bool:
    """True when a person can click widgets: an IPython kernel that papermill/nbclient/pytest did not start.

    ``TWIN_INTERACTIVE=1`` or ``0`` overrides the guess. A papermill run is never interactive,
    so a notebook asked for ``ranker="widget"`` there falls back instead of waiting for clicks.
    """
    env = os.environ.get("TWIN_INTERACTIVE")
    if env in ("0", "1"):
        return env == "1"
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:
        return False
    if ip is None or not hasattr(ip, "kernel"):
        return False
    try:
        import psutil

        # the programs (not their arguments: a path may well contain "pytest") that started this kernel
        names = {Path(a).name.lower() for p in psutil.Process().parents()[:3] for a in p.cmdline()[:3]}
    except Exception:  # noqa: BLE001 — no psutil or no permission: assume a person
        return True
    batch = ("papermill", "nbclient", "nbconvert", "jupyter-nbconvert", "jupyter-execute", "pytest", "py.test")
    return not any(n in batch for n in names)


def resolve_ranker(ranker: str, interactive: bool | None = None) -> tuple[str, str]:
    """The ranker a run actually uses and a sentence saying so, for the notebook to print.

    ``widget`` stays ``widget`` in an interactive kernel; in a papermill run (nobody can click)
    it becomes ``file``: saved rankings in ``rankings.jsonl`` are reused and the automatic
    ranker fills in whatever has none.
    """
    if ranker not in RANKERS:
        raise ValueError(f"ranker must be one of {RANKERS}, got {ranker!r}")
    interactive = is_interactive() if interactive is None else interactive
    if ranker == "widget" and interactive:
        return "widget", "You rank: the widget below shows the twin's candidates one message at a time."
    if ranker == "widget":
        return "file", ("This run is not interactive (papermill/CI): nobody can click, so the widget is not shown. "
                        "Saved rankings from rankings.jsonl are used where they exist; the rest are SIMULATED by "
                        "the automatic ranker.")
    if ranker == "file":
        return "file", ("Rankings come from the saved rankings.jsonl; rounds without saved rankings are SIMULATED by "
                        "the automatic ranker.")
    return "auto", ("Rankings are SIMULATED: the automatic ranker stands in for you (similarity to your real replies "
                    "+ your style). Use ranker='widget' to rank yourself.")
