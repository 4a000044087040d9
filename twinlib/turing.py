"""Turing tests: can anyone tell the twin's replies from the person's real ones?

Two judges, one question:

* **the automatic judge** (:func:`automatic_judge`): a classifier (TF-IDF character n-grams +
  per-reply style features → logistic regression) trained to tell the person's real replies from
  a model's, scored by stratified k-fold cross-validation on balanced classes. Its accuracy comes
  with a binomial confidence interval (:func:`binomial_ci`). **50 % means indistinguishable**;
  100 % means the twin gives itself away every time.
* **a human judge** (:class:`TuringGame`): an ipywidgets game that shows a conversation and two
  replies (or one) and asks which is the real person. Judgements are appended to
  ``eval/judgements.jsonl`` (resumable); the answer of an item never reaches the widget (nor the
  browser) before the guess: the game keeps it in a private dict and reveals it only afterwards.

The game's logic is plain methods (:meth:`TuringGame.guess`, :meth:`TuringGame.score`) so tests
drive it without a browser; the widget is a thin shell around them.
"""

from __future__ import annotations

import hashlib
import html
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from twinlib.pairs import context_turns

from twinlib.stats import binomial_ci  # noqa: E402,F401  (re-exported: the judge's interval)


# --------------------------------------------------------------------------- automatic judge

STYLE_VECTOR_NAMES = (
    "log_words", "log_chars", "emoji", "has_emoji", "lowercase", "final_punct", "final_period",
    "question", "exclamation", "upper_share", "digit_share", "punct_share", "type_token_ratio",
)


def style_vectors(texts: Sequence[str]) -> np.ndarray:
    """Per-reply style numbers (length, emoji, casing, punctuation, vocabulary), one row per text.

    The columns are :data:`STYLE_VECTOR_NAMES`; they complement the character n-grams of the
    automatic judge with what n-grams see badly (length, a missing final full stop).
    """
    from twinlib.style import count_words, ends_with_punct, find_emoji, is_lowercase, tokenize

    rows = []
    for t in texts:
        t = t if isinstance(t, str) else ""
        n_chars = max(len(t), 1)
        toks = tokenize(t)
        emoji = find_emoji(t)
        rows.append([
            math.log1p(count_words(t)),
            math.log1p(len(t)),
            float(len(emoji)),
            float(bool(emoji)),
            float(is_lowercase(t)),
            float(ends_with_punct(t)),
            float(ends_with_punct(t, ".")),
            float("?" in t),
            float("!" in t),
            sum(c.isupper() for c in t) / n_chars,
            sum(c.isdigit() for c in t) / n_chars,
            sum((not c.isalnum()) and (not c.isspace()) for c in t) / n_chars,
            len(set(toks)) / len(toks) if toks else 0.0,
        ])
    return np.asarray(rows, dtype=float).reshape(len(rows), len(STYLE_VECTOR_NAMES))


def _style_matrix(texts) -> np.ndarray:
    return style_vectors(list(texts))


def judge_pipeline(seed: int = 0):
    """The automatic judge's scikit-learn pipeline (unfitted): char n-grams + style → logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from sklearn.feature_extraction.text import TfidfVectorizer

    features = FeatureUnion([
        ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False, sublinear_tf=True, min_df=1)),
        ("style", make_pipeline(FunctionTransformer(_style_matrix), StandardScaler())),
    ])
    return make_pipeline(features, LogisticRegression(C=1.0, solver="liblinear", random_state=seed))


@dataclass
class JudgeResult:
    """The automatic judge's verdict: cross-validated accuracy and its binomial confidence interval."""

    accuracy: float
    ci_low: float
    ci_high: float
    n: int              # predictions scored (both classes together)
    correct: int
    folds: int
    confidence: float = 0.95

    @property
    def indistinguishable(self) -> bool:
        """True when 50 % (chance) lies inside the confidence interval."""
        return self.ci_low <= 0.5 <= self.ci_high

    def as_dict(self) -> dict:
        return {
            "turing_judge_accuracy": self.accuracy,
            "turing_judge_ci_low": self.ci_low,
            "turing_judge_ci_high": self.ci_high,
            "turing_judge_n": self.n,
        }

    @classmethod
    def from_dict(cls, metrics: dict, folds: int = 0) -> "JudgeResult":
        """The verdict back from a model's metrics (the keys :meth:`as_dict` writes)."""
        n = int(metrics["turing_judge_n"])
        acc = float(metrics["turing_judge_accuracy"])
        return cls(accuracy=acc, ci_low=float(metrics["turing_judge_ci_low"]),
                   ci_high=float(metrics["turing_judge_ci_high"]), n=n, correct=round(acc * n), folds=folds)

    def __str__(self) -> str:
        return (f"judge accuracy {self.accuracy:.0%} (95% CI {self.ci_low:.0%}–{self.ci_high:.0%}, "
                f"n={self.n}{f', {self.folds}-fold CV' if self.folds else ''}; 50% = indistinguishable)")


def automatic_judge(
    real: Sequence[str],
    other: Sequence[str],
    folds: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    paired: bool = False,
) -> JudgeResult:
    """How well a classifier tells ``real`` replies (the person's) from ``other`` ones (a model's).

    The larger class is subsampled so both have the same size (chance is exactly 50 %), then
    every reply is predicted by a model trained on the other folds of a stratified k-fold split
    (``folds`` is lowered when a class is small). The accuracy over all held-out predictions gets
    a Wilson interval. With fewer than 4 replies per class the result is ``nan``.

    ``paired=True`` says ``other[i]`` answers the same message as ``real[i]`` (the evaluation's
    case): each pair then stays in one fold, so a model that repeats the real reply word for word
    scores 50 % (it cannot be told apart) rather than being "caught" because its twin text sat in
    the training folds with the other label.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    real = ["" if not isinstance(t, str) else t for t in real]
    other = ["" if not isinstance(t, str) else t for t in other]
    if paired and len(real) != len(other):
        raise ValueError(f"paired=True needs as many replies as real replies, got {len(other)} and {len(real)}")
    m = min(len(real), len(other))
    if m < 4:
        nan = float("nan")
        return JudgeResult(nan, nan, nan, 0, 0, 0, confidence)
    rng = np.random.default_rng(seed)
    if paired:
        idx = sorted(rng.choice(len(real), m, replace=False))
        real_s, other_s = [real[i] for i in idx], [other[i] for i in idx]
    else:
        real_s = [real[i] for i in sorted(rng.choice(len(real), m, replace=False))]
        other_s = [other[i] for i in sorted(rng.choice(len(other), m, replace=False))]
    texts = np.array(real_s + other_s, dtype=object)
    y = np.array([1] * m + [0] * m)
    k = max(2, min(folds, m))
    if paired:
        groups = np.concatenate([np.arange(m), np.arange(m)])
        cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        pred = cross_val_predict(judge_pipeline(seed), texts, y, groups=groups, cv=cv)
    else:
        cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        pred = cross_val_predict(judge_pipeline(seed), texts, y, cv=cv)
    correct = int((pred == y).sum())
    n = int(len(y))
    lo, hi = binomial_ci(correct, n, confidence)
    return JudgeResult(correct / n, lo, hi, n, correct, k, confidence)


# --------------------------------------------------------------------------- context-aware judge


def _message_reply_features(messages: Sequence[str], replies: Sequence[str]):
    """What a judge who reads the message sees in a reply: the reply's own character n-grams and
    style, how close it is to the message (embedding cosine, shared words, words copied from the
    message's question), and hashed (message word, reply word) pairs, which let it learn that a
    "... or ...?" message is answered with one of its options, or "night!" with a sign-off."""
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer

    from twinlib.embeddings import embed
    from twinlib.style import tokenize

    msgs = [m if isinstance(m, str) else "" for m in messages]
    reps = [r if isinstance(r, str) else "" for r in replies]
    em, er = embed(msgs), embed(reps)
    cos = (em * er).sum(axis=1)
    rows, crosses = [], []
    for m, r in zip(msgs, reps):
        mt, rt = tokenize(m), tokenize(r)
        ms, rs = set(mt), set(rt)
        shared = len(ms & rs)
        last = set(tokenize(m.splitlines()[-1])) if m.strip() else set()
        rows.append([shared / max(len(rs), 1), float(shared > 0), len(last & rs) / max(len(rs), 1)])
        crosses.append(" ".join(f"{a}__{b}" for a in list(ms)[:40] for b in list(rs)[:20]))
    dense = np.column_stack([cos, np.asarray(rows, dtype=float), style_vectors(reps)])
    cross = HashingVectorizer(n_features=2**14, token_pattern=r"\S+", alternate_sign=False, norm="l2").transform(crosses)
    return dense, cross


@dataclass
class PairJudgeResult(JudgeResult):
    """The context-aware judge's verdict, with one 0 / 0.5 / 1 per item (1: the real reply picked)."""

    per_item: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def as_dict(self) -> dict:
        return {"context_judge_accuracy": self.accuracy, "context_judge_ci_low": self.ci_low,
                "context_judge_ci_high": self.ci_high, "context_judge_n": self.n}


def context_judge(messages: Sequence[str], real: Sequence[str], replies: Sequence[str], folds: int = 5,
                  seed: int = 0, confidence: float = 0.95) -> PairJudgeResult:
    """Given the message and two replies, which one is the person's? A judge that reads the message.

    The reply-only judge (:func:`automatic_judge`) sees one reply at a time and cannot tell a
    reply that fits *this* message from one that fits another. This judge sees, per held-out
    item ``i``, the message ``messages[i]``, the person's real reply ``real[i]`` and the model's
    ``replies[i]``, and picks one: a logistic regression on the difference of the two replies'
    features (:func:`_message_reply_features`: reply n-grams and style, closeness to the message,
    (message word, reply word) pairs), trained on the other folds' items. Accuracy over the items
    (an identical pair counts as half right) with a Wilson interval: **50% means the twin's replies
    fit the messages as the person's do; 100% means they never do.** Fewer than 8 items give ``nan``.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    real = ["" if not isinstance(t, str) else t for t in real]
    replies = ["" if not isinstance(t, str) else t for t in replies]
    n = len(real)
    if not (len(messages) == n == len(replies)):
        raise ValueError(f"need one message, real reply and reply per item, got {len(messages)}, {n}, {len(replies)}")
    if n < 8:
        nan = float("nan")
        return PairJudgeResult(nan, nan, nan, 0, 0, 0, confidence, per_item=np.full(n, np.nan))
    d_real, c_real = _message_reply_features(messages, real)
    d_twin, c_twin = _message_reply_features(messages, replies)
    per = np.full(n, 0.5)
    same = np.array([a.strip() == b.strip() for a, b in zip(real, replies)])
    k = max(2, min(folds, n // 4))
    for train_idx, test_idx in KFold(n_splits=k, shuffle=True, random_state=seed).split(np.arange(n)):
        tf = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False, sublinear_tf=True)
        tf.fit([real[i] for i in train_idx] + [replies[i] for i in train_idx])
        scaler = StandardScaler().fit(np.vstack([d_real[train_idx], d_twin[train_idx]]))

        def feats(idx, dense, cross, texts):
            return sparse.hstack([tf.transform([texts[i] for i in idx]), sparse.csr_matrix(scaler.transform(dense[idx])),
                                  cross[idx]]).tocsr()

        a = feats(train_idx, d_real, c_real, real)
        b = feats(train_idx, d_twin, c_twin, replies)
        x = sparse.vstack([a - b, b - a])
        y = np.r_[np.ones(len(train_idx)), np.zeros(len(train_idx))]
        clf = LogisticRegression(C=1.0, solver="liblinear", fit_intercept=False, random_state=seed).fit(x, y)
        margin = clf.decision_function(feats(test_idx, d_real, c_real, real) - feats(test_idx, d_twin, c_twin, replies))
        per[test_idx] = np.where(margin > 0, 1.0, np.where(margin < 0, 0.0, 0.5))
    per[same] = 0.5
    correct = float(per.sum())
    lo, hi = binomial_ci(int(round(correct)), n, confidence)
    return PairJudgeResult(correct / n, lo, hi, n, int(round(correct)), k, confidence, per_item=per)


# --------------------------------------------------------------------------- game items


@dataclass(frozen=True)
class TuringItem:
    """One round of the game.

    ``replies`` holds two replies in random order (``mode="pair"``) or one (``mode="single"``).
    ``answer`` is the secret: in pair mode the index (0 or 1) of the real reply, in single mode
    ``1`` when the reply shown is the person's and ``0`` when it is the twin's. It is never part of
    :meth:`public`, which is all the widget ever sees.
    """

    id: str
    model: str
    context: str
    prompt: str
    replies: tuple
    mode: str = "pair"
    answer: int = field(default=0, repr=False, compare=False)

    def public(self) -> dict:
        """What a judge may see before guessing (no answer in it)."""
        return {"id": self.id, "model": self.model, "context": self.context, "prompt": self.prompt,
                "replies": list(self.replies), "mode": self.mode}


def _item_id(model: str, context: str, prompt: str, real: str, fake: str) -> str:
    h = hashlib.sha256("\x1f".join([model, str(context), str(prompt), str(real), str(fake)]).encode("utf-8"))
    return h.hexdigest()[:16]


def make_turing_items(replies_df, model: str, seed: int = 0, n: int | None = None, mode: str = "pair") -> list[TuringItem]:
    """Game rounds from ``eval/replies.csv`` rows of one ``model``.

    Each item shows the conversation (``context`` + ``prompt``) and, in ``"pair"`` mode, the
    person's real reply and the model's in a random order; in ``"single"`` mode just one of them
    (the real one half of the time). Ids are stable hashes of the content and the order comes from
    ``seed`` and the id, so rebuilding the items later gives the same rounds (the game resumes).
    Rows where the model's reply equals the real one are skipped: there is nothing to tell apart.
    """
    if mode not in ("pair", "single"):
        raise ValueError(f"mode must be 'pair' or 'single', got {mode!r}")
    rows = replies_df[replies_df["model"] == model]
    if rows.empty:
        known = sorted(set(replies_df["model"])) if len(replies_df) else []
        raise ValueError(f"no replies of model {model!r} to play with; the replies table has {known}")
    items = []
    for r in rows.itertuples(index=False):
        real, fake = str(r.real_reply), ("" if not isinstance(r.reply, str) else r.reply)
        if real.strip() == fake.strip():
            continue
        ctx = "" if not isinstance(r.context, str) else r.context
        iid = _item_id(model, ctx, r.prompt, real, fake)
        coin = random.Random(f"{seed}:{iid}").random() < 0.5
        if mode == "pair":
            replies, answer = ((real, fake), 0) if coin else ((fake, real), 1)
        else:
            replies, answer = ((real,), 1) if coin else ((fake,), 0)
        items.append(TuringItem(iid, model, ctx, str(r.prompt), replies, mode, answer))
    random.Random(seed).shuffle(items)
    return items[:n] if n else items


# --------------------------------------------------------------------------- judgement store


def _open_store(path):
    """The append-only JSONL store of stage 3 (:class:`twinlib.ranking.RankingStore`) at ``path``.

    It appends and fsyncs one line per judgement, keeps every complete record when a line is
    damaged (with a warning naming the line) and supports undo records. Turing judgements are
    stored with ``"kind": "turing"`` and ``"status": "ranked"`` (a judgement that counts).
    """
    from twinlib.ranking import RankingStore

    return RankingStore(path)


def _turing_records(store) -> list[dict]:
    return [r for r in store.judgements(include_skipped=False) if r.get("kind") == "turing" and "correct" in r]


def load_judgements(path, model: str | None = None, judge: str | None = None) -> list[dict]:
    """The Turing judgements stored at ``path`` (optionally of one model / one judge)."""
    recs = _turing_records(_open_store(path))
    if model is not None:
        recs = [r for r in recs if r.get("model") == model]
    if judge is not None:
        recs = [r for r in recs if r.get("judge") == judge]
    return recs


def judgement_score(judgements: Iterable[dict], confidence: float = 0.95) -> dict:
    """``{n, correct, accuracy, ci_low, ci_high}`` of stored judgements (accuracy ``nan`` when none)."""
    js = list(judgements)
    n = len(js)
    k = sum(bool(j["correct"]) for j in js)
    lo, hi = binomial_ci(k, n, confidence)
    return {"n": n, "correct": k, "accuracy": k / n if n else float("nan"), "ci_low": lo, "ci_high": hi}


def score_text(score: dict) -> str:
    """A one-line reading of :func:`judgement_score` for people."""
    if not score["n"]:
        return "No guesses yet."
    return (f"{score['correct']}/{score['n']} right ({score['accuracy']:.0%}, 95% CI "
            f"{score['ci_low']:.0%}–{score['ci_high']:.0%}). 50% means the twin cannot be told apart.")


# --------------------------------------------------------------------------- the game


class TuringGame:
    """A resumable Turing test over ``items``, judgements appended to ``store_path``.

    The answers live in a private dict of this object; :attr:`items` and the widget only ever
    hold :meth:`TuringItem.public` data. Items already judged by ``judge`` (by id) are skipped,
    so closing the notebook and coming back continues where you stopped.
    """

    def __init__(self, items: Sequence[TuringItem], store_path, judge: str = "you"):
        self._answers = {it.id: int(it.answer) for it in items}
        self._items = [it.public() for it in items]
        self.judge = judge
        self.store_path = Path(store_path)
        self._store = _open_store(self.store_path)
        self._done = {r.get("item_id") for r in self.judgements()}
        self._widget = None

    # ---- logic
    @property
    def items(self) -> list[dict]:
        """All rounds, public data only."""
        return [dict(it) for it in self._items]

    def judgements(self) -> list[dict]:
        """Stored judgements by this judge for these items."""
        ids = set(self._answers)
        return [r for r in _turing_records(self._store) if r.get("judge") == self.judge and r.get("item_id") in ids]

    def pending(self) -> list[dict]:
        return [dict(it) for it in self._items if it["id"] not in self._done]

    def current(self) -> dict | None:
        """The next round to judge (public data), or ``None`` when all are done."""
        p = self.pending()
        return p[0] if p else None

    @staticmethod
    def _normalize(item: dict, choice) -> int:
        if item["mode"] == "pair":
            if isinstance(choice, str):
                if choice.upper() not in ("A", "B"):
                    raise ValueError(f"guess 'A' or 'B' (the reply you think is real), got {choice!r}")
                return "AB".index(choice.upper())
            if int(choice) not in (0, 1):
                raise ValueError(f"guess 0 or 1 (the reply you think is real), got {choice!r}")
            return int(choice)
        if isinstance(choice, str):
            c = choice.lower()
            if c not in ("real", "twin"):
                raise ValueError(f"guess 'real' or 'twin', got {choice!r}")
            return int(c == "real")
        return int(bool(choice))

    def guess(self, choice, item_id: str | None = None) -> dict:
        """Judge the current round (or ``item_id``); store and return the judgement with the answer.

        Pair mode: ``choice`` is the reply you think is real (``0``/``1`` or ``"A"``/``"B"``).
        Single mode: ``"real"``/``True`` or ``"twin"``/``False``.
        """
        item = self.current() if item_id is None else next((i for i in self._items if i["id"] == item_id), None)
        if item is None:
            raise ValueError("no round left to judge" if item_id is None else f"unknown item {item_id!r}")
        if item["id"] in self._done:
            raise ValueError(f"item {item['id']} was judged already")
        g = self._normalize(item, choice)
        answer = self._answers[item["id"]]
        rec = {
            "kind": "turing", "status": "ranked", "item_id": item["id"], "model": item["model"],
            "mode": item["mode"], "judge": self.judge, "guess": g, "answer": answer, "correct": g == answer,
        }
        rec = self._store.append(rec)
        self._done.add(item["id"])
        return rec

    def score(self) -> dict:
        """``{n, correct, accuracy, ci_low, ci_high}`` over this judge's stored judgements."""
        return judgement_score(self.judgements())

    # ---- widget
    @staticmethod
    def _conversation_html(item: dict) -> str:
        turns = []
        try:
            ctx = context_turns(item["context"])
        except ValueError:  # json.JSONDecodeError is a ValueError
            ctx = []
        for t in ctx[-6:]:
            who = "the person" if t.get("me") else html.escape(str(t.get("sender", "them")))
            turns.append(f"<div style='margin:2px 0'><b>{who}:</b> {html.escape(str(t.get('text', '')))}</div>")
        turns.append(f"<div style='margin:2px 0'><b>them:</b> {html.escape(item['prompt'])}</div>")
        return "<div style='padding:6px;border-left:3px solid #888'>" + "".join(turns) + "</div>"

    def _reply_html(self, item: dict) -> str:
        box = "<div style='padding:6px;margin:4px 0;border:1px solid #ccc;border-radius:6px'>{}</div>"
        if item["mode"] == "pair":
            return "".join(box.format(f"<b>Reply {'AB'[i]}</b>: {html.escape(r)}") for i, r in enumerate(item["replies"]))
        return box.format(f"<b>Reply</b>: {html.escape(item['replies'][0])}")

    def widget(self):
        """An ipywidgets game: read the conversation, click who wrote the reply, see the score."""
        import ipywidgets as w

        header, convo, replies = w.HTML(), w.HTML(), w.HTML()
        feedback, score = w.HTML(), w.HTML()
        b1, b2 = w.Button(button_style="info"), w.Button(button_style="info")
        layout = w.VBox([header, convo, replies, w.HBox([b1, b2]), feedback, score])
        layout.add_class("twin-turing")

        def show():
            item = self.current()
            total, left = len(self._items), len(self.pending())
            score.value = f"<i>{html.escape(score_text(self.score()))}</i>"
            if item is None:
                header.value = f"<h4>All {total} rounds judged.</h4>"
                convo.value = replies.value = ""
                b1.layout.display = b2.layout.display = "none"
                return
            header.value = f"<h4>Round {total - left + 1} of {total}: who is the real person?</h4>"
            convo.value = self._conversation_html(item)
            replies.value = self._reply_html(item)
            if item["mode"] == "pair":
                b1.description, b2.description = "A is the real person", "B is the real person"
            else:
                b1.description, b2.description = "the real person", "the twin"

        def on_click(btn):
            item = self.current()
            if item is None:
                return
            choice = (0 if btn is b1 else 1) if item["mode"] == "pair" else (btn is b1)
            rec = self.guess(choice)
            if item["mode"] == "pair":
                truth = f"reply {'AB'[rec['answer']]} was the real person"
            else:
                truth = "it was the real person" if rec["answer"] else f"it was the twin ({item['model']})"
            mark = "✅ Right" if rec["correct"] else "❌ Wrong"
            feedback.value = f"{mark}: {truth}."
            show()

        b1.on_click(on_click)
        b2.on_click(on_click)
        show()
        self._widget = layout
        self._buttons = (b1, b2)
        return layout


def widget_state(widget) -> list[dict]:
    """Every piece of state the widget tree would sync to the browser (for leak tests)."""
    seen, out, stack = set(), [], [widget]
    while stack:
        wdg = stack.pop()
        if id(wdg) in seen:
            continue
        seen.add(id(wdg))
        st = wdg.get_state()
        out.append({k: v for k, v in st.items() if k not in ("children", "layout", "style", "_dom_classes")})
        for key in ("children",):
            stack.extend(getattr(wdg, key, ()) or ())
        for key in ("layout", "style"):
            sub = getattr(wdg, key, None)
            if sub is not None and hasattr(sub, "get_state"):
                out.append({k: v for k, v in sub.get_state().items()})
    return out


def turing_section(run_dir, replies_df=None, model: str | None = None, mode: str = "skip", n: int = 20,
                   seed: int = 0, judge: str = "you", pair: bool = True):
    """The notebook's Turing section for the parameter ``turing`` = ``"skip"`` | ``"file"`` | ``"widget"``.

    ``"widget"`` returns the game's widget (display it; nothing waits for clicks, so papermill runs
    go on); ``"file"`` prints the score of saved judgements; ``"skip"`` prints why the game is not
    shown and how to play it. Returns ``(widget_or_None, score_dict_or_None)``.
    """
    from twinlib.rundir import RunDir

    run = RunDir(run_dir)
    if mode not in ("skip", "file", "widget"):
        raise ValueError(f"turing must be 'skip', 'file' or 'widget', got {mode!r}")
    saved = load_judgements(run.judgements, model=model)
    if mode == "skip":
        msg = ("Turing game skipped (turing='skip', the default for papermill runs that nobody watches). "
               "Open this notebook in Jupyter and set turing='widget' to play; your guesses are saved to "
               f"{run.judgements} and a later run with turing='file' reports them.")
        if saved:
            msg += f"\nSaved judgements so far: {score_text(judgement_score(saved))}"
        print(msg)
        return None, (judgement_score(saved) if saved else None)
    if mode == "file":
        if not saved:
            print(f"turing='file' but {run.judgements} holds no judgements yet: play the game once with turing='widget'.")
            return None, None
        sc = judgement_score(saved)
        print(f"Saved human judgements ({run.judgements}): {score_text(sc)}")
        return None, sc
    if replies_df is None:
        import pandas as pd

        replies_df = pd.read_csv(run.eval / "replies.csv", keep_default_na=False)
    if model is None:
        from twinlib.evaluation import best_model

        model = best_model(set(replies_df["model"]))
        if model is None:
            raise ValueError("no fine-tuned model's replies to play the game with")
    items = make_turing_items(replies_df, model, seed=seed, n=n, mode="pair" if pair else "single")
    game = TuringGame(items, run.judgements, judge=judge)
    return game.widget(), game.score()
