"""Stage 5: how close is each model of a run to the person?

Every model the run produced (``base``, ``sft``, ``refined``, ``ppo``, ``dpo``) answers the same
held-out test conversations — conversations no model was trained on — and its replies are
compared with what the person really said:

==========================  =======================================================  ==========
metric                      what it measures                                         better
==========================  =======================================================  ==========
semantic_similarity         mean cosine of sentence embeddings, reply vs real        higher
                            (twinlib.embeddings: MiniLM for English, the
                            multilingual model for Chinese, Japanese, Korean)
chrf                        character n-gram F1 (sacrebleu chrF, beta 1, 0-100)      higher
perplexity                  perplexity of the person's real replies under the model  lower
mean_logprob                mean log-probability per token of the real replies       higher
context_sensitivity         how much likelier the real reply is after its own        higher
                            message than after another conversation's (nats/token)
style_distance              distance of style profiles (length, emoji, casing,       lower
                            punctuation, vocabulary, signature phrases), 0-1
turing_judge_accuracy       a classifier telling real from model replies, one reply  lower
                            at a time (50 % = indistinguishable)
context_judge_accuracy      given the message and both replies, which is the         lower
                            person's? (50 % = the replies fit as well as the real)
habit_accuracy              the sample persona's context habits shown (sample only)  higher
fidelity                    minus the energy score of two sampled replies against    higher
                            the real one on the *validation* split (a proper scoring
                            rule: rewards replying as the person does, as varied as
                            they are): the one score that picks the best model
==========================  =======================================================  ==========

Every metric comes with a 95 % interval (``<metric>_ci_low`` / ``<metric>_ci_high``): Wilson for
the judges' and habits' proportions, a bootstrap over the held-out items for everything else
(:mod:`twinlib.stats`). :func:`compare_models` gives each model's difference to ``sft`` and to
``base`` with paired-bootstrap intervals, and :func:`verdict` reads them.

:func:`evaluate_models` writes ``eval/replies.csv`` (``model,prompt,context,real_reply,reply``),
``eval/metrics.json`` (``{model: {metric: value}}``) and ``eval/reply_scores.csv`` (per-reply
similarity and chrF, same row order, for the best and worst examples). :func:`prompt_tests`
samples several replies per model to the same prompts, for reading side by side.
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import html
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from twinlib.generation import GenerationSettings, generate_replies, score_replies, settings_for
from twinlib.modeling import has_model, later_stage_profile
from twinlib.pairs import context_turns
from twinlib.rundir import RunDir

#: Every model a run can produce, from the untrained start to the most trained.
MODEL_ORDER = ("base", "sft", "refined", "ppo", "dpo")
#: The trained models, in the order a tie in fidelity is broken (the simpler model first).
TRAINED = ("sft", "refined", "dpo", "ppo")
#: The columns of ``eval/replies.csv``.
REPLY_COLUMNS = ["model", "prompt", "context", "real_reply", "reply"]
#: The file :func:`evaluate_models` writes the measured choice of the best model into.
SELECTION_FILE = "eval/selection.json"


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    direction: str  # "higher" or "lower" is better
    description: str


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("semantic_similarity", "semantic similarity", "higher",
               "mean cosine similarity of sentence embeddings of the model's reply and the real one (MiniLM for "
               "English, the multilingual model for Chinese, Japanese and Korean; twinlib.embeddings)"),
        Metric("chrf", "chrF", "higher", "character n-gram F-score of the replies against the real ones (sacrebleu, 0–100)"),
        Metric("perplexity", "perplexity", "lower", "perplexity of the person's real replies under the model"),
        Metric("mean_logprob", "mean log-prob", "higher", "mean log-probability per token of the person's real replies"),
        Metric("context_sensitivity", "context sensitivity", "higher",
               "mean log-prob gap (nats/token) of the real reply after its own message vs after another "
               "conversation's; 0 = the model ignores the message"),
        Metric("style_distance", "style distance", "lower",
               "distance between the style profiles (length, emoji, casing, punctuation, vocabulary, "
               "signature phrases) of the model's replies and the person's, 0 = same style"),
        Metric("turing_judge_accuracy", "Turing judge (reply only)", "lower",
               "cross-validated accuracy of a classifier telling the person's replies from the model's, one "
               "reply at a time; 50% = indistinguishable, 100% = always caught"),
        Metric("context_judge_accuracy", "Turing judge (with the message)", "lower",
               "given the message and both replies, how often a cross-validated judge picks the person's; "
               "50% = the twin's replies fit the messages as well as the person's"),
        Metric("habit_accuracy", "habit accuracy", "higher",
               "share of replies showing the context habit their message calls for (the sample personas only)"),
        Metric("fidelity", "validation fidelity", "higher",
               "minus the energy score of two sampled replies against the person's real one (embedding and character "
               "distances) on the validation split; 0 = a perfect copy. The score that picks the best model"),
    )
}
#: For each metric whether ``"higher"`` or ``"lower"`` is better.
DIRECTION: dict[str, str] = {name: m.direction for name, m in METRICS.items()}


def is_better(metric: str, a: float, b: float) -> bool:
    """True when value ``a`` of ``metric`` is strictly better than ``b``."""
    if DIRECTION[metric] == "higher":
        return a > b
    return a < b


def best_model(metrics_or_names, items: dict | None = None) -> str | None:
    """The twin to use: ``sft`` (the first trained model measured), replaced by a later stage
    (in the order sft, refined, dpo, ppo) only when that stage is *measurably* better on validation
    ``fidelity`` than the model kept so far: the 95% interval of the difference lies above 0.

    ``metrics`` is ``{model: {metric: value}}``. With ``items`` (``{model: per-message fidelity}``,
    as stage 5 writes to ``eval/fidelity_items.json``) the interval is a paired bootstrap over the
    same messages; otherwise it is built from the two models' own intervals (half-widths added in
    quadrature), and with no intervals at all the higher value wins. A stage that is not measurably
    better does not ship, as its verdict says.

    Given plain names (no measurement yet), ``sft``: the one model known to have learned from the
    person's own replies, never a later stage that has not been shown to beat it.
    """
    if isinstance(metrics_or_names, dict) and metrics_or_names and all(isinstance(v, dict) for v in metrics_or_names.values()):
        metrics = metrics_or_names
        scored = [m for m in TRAINED if m in metrics and isinstance(metrics[m].get("fidelity"), (int, float))
                  and math.isfinite(metrics[m]["fidelity"])]
        if scored:
            best = scored[0]
            for m in scored[1:]:
                if _measurably_better(metrics, items, m, best):
                    best = m
            return best
    names = set(metrics_or_names)
    return next((m for m in TRAINED if m in names), None)


def _measurably_better(metrics: dict, items: dict | None, new: str, old: str) -> bool:
    """Is ``new``'s validation fidelity above ``old``'s, the 95% interval of the difference above 0?"""
    from twinlib.stats import paired_diff_ci

    a, b = metrics[new]["fidelity"], metrics[old]["fidelity"]
    if items and new in items and old in items and len(items[new]) == len(items[old]) and len(items[new]):
        return paired_diff_ci(items[new], items[old])[1] > 0
    lows = [metrics[k].get("fidelity_ci_low") for k in (new, old)]
    highs = [metrics[k].get("fidelity_ci_high") for k in (new, old)]
    if any(not isinstance(x, (int, float)) for x in lows + highs):
        return a > b
    w = 0.5 * math.hypot(highs[0] - lows[0], highs[1] - lows[1])
    return a - b - w > 0


def run_best_model(run_dir) -> str | None:
    """The run's best model by measurement (``eval/selection.json``, written by stage 5), falling
    back to ``sft`` (then any trained model) before stage 5 has measured."""
    run = RunDir(run_dir)
    sel = run.root / SELECTION_FILE
    found = available_models(run.root)
    if sel.exists():
        try:
            best = json.loads(sel.read_text(encoding="utf-8")).get("best")
        except ValueError:
            best = None
        if best in found:
            return best
    return best_model([m for m in found if m != "base"])


# --------------------------------------------------------------------------- the run's models


def _recorded_base(run: RunDir) -> str | None:
    """The hub id / folder a LoRA run started from, as recorded by its later stages."""
    for name in MODEL_ORDER[1:]:
        ad = run.model(name) / "adapter_config.json"
        if ad.exists():
            base = json.loads(ad.read_text(encoding="utf-8")).get("base_model_name_or_path")
            if base:
                return base
    for name in MODEL_ORDER[1:]:
        tj = run.model(name) / "twin.json"
        if tj.exists():
            info = json.loads(tj.read_text(encoding="utf-8"))
            base = info.get("base_model") or (info.get("profile") or {}).get("base_model")
            if base and base != "tiny":
                return str(run.resolve(base)) if run.resolve(base).exists() else base  # relative: inside the run
    return None


def available_models(run_dir, models: Sequence[str] | None = None) -> dict[str, str]:
    """``{name: checkpoint}`` of the run's models, in :data:`MODEL_ORDER`.

    ``base`` is ``models/base`` when the run built one (the tiny profile's random-init model);
    for a hub model it is the checkpoint the fine-tuned models started from (as written in
    their ``adapter_config.json``). Asking for a model the run does not have is an error.
    """
    run = RunDir(run_dir)
    found: dict[str, str] = {}
    for name in MODEL_ORDER:
        p = run.model(name)
        if has_model(p):
            found[name] = str(p)
        elif name == "base":
            base = _recorded_base(run)
            if base:
                found[name] = base
    if models is not None:
        unknown = [m for m in models if m not in MODEL_ORDER]
        if unknown:
            raise ValueError(f"unknown model name(s) {unknown}; choose from {list(MODEL_ORDER)}")
        missing = [m for m in models if m not in found]
        if missing:
            raise FileNotFoundError(
                f"{run.models} has no {missing} model (found: {list(found) or 'none'}). Run the stage "
                "that trains it first, or leave it out of `models`."
            )
        found = {m: found[m] for m in MODEL_ORDER if m in models}
    return found


def held_out_pairs(run_dir, n_test: int | None = 60, seed: int = 0, split: str = "test") -> pd.DataFrame:
    """Up to ``n_test`` pairs of the held-out ``split`` of ``pairs.csv`` (a seeded sample, in file order).

    Falls back to the validation split (with a note) when the run has no test conversations.
    """
    run = RunDir(run_dir)
    path = run.require(run.pairs_csv, "notebook 01 (collect and build data)")
    pairs = pd.read_csv(path, keep_default_na=False, dtype={"split": str, "prompt": str, "response": str, "context": str})
    missing = [c for c in ("prompt", "response", "context", "split") if c not in pairs.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {missing}; it should have been written by notebook 01.")
    rows = pairs[(pairs["split"] == split) & (pairs["response"].str.strip() != "")]
    if rows.empty and split == "test":
        print(f"note: {path} has no test pairs; evaluating on the validation split instead.")
        rows = pairs[(pairs["split"] == "validation") & (pairs["response"].str.strip() != "")]
    if rows.empty:
        raise ValueError(f"{path} has no held-out ({split}) pairs to evaluate on: is the data set too small?")
    if n_test and len(rows) > n_test:
        rows = rows.sample(n=n_test, random_state=seed).sort_index()
    return rows.reset_index(drop=True)


def _person_phrases(run: RunDir, k: int = 20) -> list[str]:
    """The person's signature phrases from the training split (their replies vs what others wrote)."""
    from twinlib.style import signature_phrases

    try:
        pairs = pd.read_csv(run.pairs_csv, keep_default_na=False, usecols=["prompt", "response", "split"])
        train = pairs[pairs["split"] == "train"]
        return signature_phrases(train["response"].tolist(), train["prompt"].tolist(), k=k)
    except (ValueError, FileNotFoundError, KeyError):
        return []


def load_quietly(source: str):
    """:func:`twinlib.modeling.load_model` without transformers' per-file "Loading weights" bars."""
    from twinlib.modeling import load_model

    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        return load_model(source)
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return load_model(source)
    finally:
        if was:
            hf_logging.enable_progress_bar()


def release_memory() -> None:
    """Collect garbage and empty the CUDA cache: call after deleting your own references to a model."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


# --------------------------------------------------------------------------- metrics


def chrf_scores(replies: Sequence[str], real: Sequence[str]) -> tuple[float, np.ndarray]:
    """Corpus chrF and one sentence chrF per reply (sacrebleu, 0–100), with β = 1.

    sacrebleu's default β = 2 weighs recall twice as much as precision, which suits translations
    of known length but rewards rambling on short chat replies: measured on the sample run, an
    untrained model's 20 words of noise outscored fine-tuned 5-word replies. β = 1 (the F1 of
    character n-grams) weighs both equally.
    """
    from sacrebleu.metrics import CHRF

    chrf = CHRF(beta=1)
    replies = [r if isinstance(r, str) else "" for r in replies]
    real = [r if isinstance(r, str) else "" for r in real]
    corpus = float(chrf.corpus_score(replies, [real]).score)
    per = np.array([chrf.sentence_score(h, [r]).score for h, r in zip(replies, real)], dtype=float)
    return corpus, per


def chrf_ci(replies: Sequence[str], real: Sequence[str], n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Corpus chrF with a bootstrap interval over the items (sacrebleu's per-sentence statistics,
    summed per resample: the same score as :func:`chrf_scores`, fast enough to resample)."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF(beta=1)
    replies = [r if isinstance(r, str) else "" for r in replies]
    real = [r if isinstance(r, str) else "" for r in real]
    stats = np.asarray(chrf._extract_corpus_statistics(replies, [real]), dtype=float)
    value = float(chrf._compute_score_from_stats(list(stats.sum(axis=0))).score)
    rng = np.random.default_rng(seed)
    boots = [chrf._compute_score_from_stats(list(stats[rng.integers(0, len(stats), len(stats))].sum(axis=0))).score
             for _ in range(n_boot)]
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return value, float(lo), float(hi)


def style_gap(replies: Sequence[str], real: Sequence[str], phrases: Sequence[str] | None = None) -> float:
    """:func:`twinlib.style.style_distance` between the style profiles of ``replies`` and ``real``."""
    from twinlib.style import style_distance, style_features

    ph = list(phrases) if phrases else None
    return style_distance(style_features(list(replies), ph), style_features(list(real), ph))


def style_gap_ci(replies: Sequence[str], real: Sequence[str], phrases: Sequence[str] | None = None,
                 n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """:func:`style_gap` with a bootstrap interval (items resampled, replies and real together).

    The style profile is a mean of per-message values (length, emoji, casing, punctuation,
    phrases) except the type-token ratio, which is measured on all the text at once: each message
    is profiled once, resamples average those rows, and the type-token ratio keeps its full-sample
    value, so a thousand resamples cost milliseconds.
    """
    from twinlib.style import style_distance, style_features

    ph = list(phrases) if phrases else None
    reps = [r if isinstance(r, str) else "" for r in replies]
    rl = [r if isinstance(r, str) else "" for r in real]
    if len(reps) != len(rl) or not reps:
        raise ValueError(f"style_gap_ci needs one real reply per reply, got {len(reps)} replies and {len(rl)} real ones")
    full_a, full_b = style_features(reps, ph), style_features(rl, ph)
    value = style_distance(full_a, full_b)
    keys = [k for k in dict.fromkeys([*full_a, *full_b]) if k not in ("n", "type_token_ratio")]
    rows_a = np.array([[style_features([t], ph).get(k, 0.0) for k in keys] for t in reps], dtype=float)
    rows_b = np.array([[style_features([t], ph).get(k, 0.0) for k in keys] for t in rl], dtype=float)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(reps), len(reps))
        a = dict(zip(keys, rows_a[idx].mean(axis=0)), type_token_ratio=full_a["type_token_ratio"])
        b = dict(zip(keys, rows_b[idx].mean(axis=0)), type_token_ratio=full_b["type_token_ratio"])
        boots.append(style_distance(a, b))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return value, float(lo), float(hi)


def words_and_emoji(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Words and emoji per text (the two numbers that drift first when a reward is gamed)."""
    from twinlib.style import count_words, find_emoji

    texts = [t if isinstance(t, str) else "" for t in texts]
    return (np.array([count_words(t) for t in texts], dtype=float), np.array([len(find_emoji(t)) for t in texts], dtype=float))


def fidelity_scores(first: Sequence[str], second: Sequence[str], real: Sequence[str]) -> np.ndarray:
    """Per message: how well the twin's *distribution* of replies matches the person's real reply.

    ``first[i]`` and ``second[i]`` are two replies sampled independently for message ``i``,
    ``real[i]`` the person's. The score is minus the *energy score* (Gneiting & Raftery 2007),
    ``½·d(y₁, r) + ½·d(y₂, r) − ½·d(y₁, y₂)``, averaged over two distances: sentence embeddings
    (Euclidean, on unit vectors) and characters (1 − chrF/100). It is a proper scoring rule: it
    is best, in expectation, for a twin that replies the way the person does, as varied as they
    are. Closeness to the real reply alone is not: it rewards a twin that always gives the
    safest reply (measured on the sample persona, sampling colder raised it from 0.42 to 0.43
    while the Turing judges caught the twin more often, 0.51 → 0.58). 0 is a perfect copy of
    the person's replies; lower is worse.
    """
    from twinlib.embeddings import embed

    a = [r if isinstance(r, str) else "" for r in first]
    b = [r if isinstance(r, str) else "" for r in second]
    rl = [r if isinstance(r, str) else "" for r in real]
    if not (len(a) == len(b) == len(rl)):
        raise ValueError(f"need two replies and a real reply per message, got {len(a)}, {len(b)}, {len(rl)}")
    ea, eb, er = embed(a), embed(b), embed(rl)
    dist = lambda x, y: np.linalg.norm(x - y, axis=1)  # noqa: E731
    emb = 0.5 * dist(ea, er) + 0.5 * dist(eb, er) - 0.5 * dist(ea, eb)
    chars = lambda x, y: 1.0 - chrf_scores(x, y)[1] / 100.0  # noqa: E731
    chr_ = 0.5 * chars(a, rl) + 0.5 * chars(b, rl) - 0.5 * chars(a, b)
    return -(0.5 * emb + 0.5 * chr_)


def other_conversation(conversation_ids: Sequence, seed: int = 0) -> np.ndarray:
    """For each item the index of an item from *another* conversation (a seeded derangement).

    With a single conversation there is no other one: every item then points at a different
    item of it (or at itself when there is only one)."""
    conv = np.asarray([str(c) for c in conversation_ids], dtype=object)
    n = len(conv)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    out = np.empty(n, dtype=int)
    for i in range(n):
        for j in np.r_[order[i:], order[:i]]:
            if conv[j] != conv[i]:
                out[i] = j
                break
        else:
            out[i] = (i + 1) % n if n > 1 else i
    return out


def context_sensitivity(model, tokenizer, contexts: Sequence, prompts: Sequence[str], real: Sequence[str],
                        conversation_ids: Sequence | None = None, max_length: int = 256, seed: int = 0,
                        own_scores: Sequence[dict] | None = None) -> np.ndarray:
    """Per item: mean log-prob per token of the person's real reply after its own message and
    context, minus after the message and context of another conversation (nats per token).

    0 means the model finds the reply as likely after any message: it ignores what it answers.
    ``own_scores`` (from :func:`twinlib.generation.score_replies` on the own conversations) saves
    scoring them twice.
    """
    ids = conversation_ids if conversation_ids is not None else list(range(len(prompts)))
    other = other_conversation(ids, seed=seed)
    own = own_scores or score_replies(model, tokenizer, list(zip(contexts, prompts, real)), max_length=max_length)
    swapped = score_replies(model, tokenizer, [(contexts[j], prompts[j], r) for j, r in zip(other, real)],
                            max_length=max_length, batch_size=64)
    return np.array([a["mean_logprob"] - b["mean_logprob"] for a, b in zip(own, swapped)], dtype=float)


def _with_ci(out: dict, name: str, value, lo, hi) -> None:
    out[name] = float(value) if value is not None else float("nan")
    out[f"{name}_ci_low"] = float(lo) if lo is not None else float("nan")
    out[f"{name}_ci_high"] = float(hi) if hi is not None else float("nan")


def reply_metrics(
    replies: Sequence[str],
    real: Sequence[str],
    real_scores: Sequence[dict] | None = None,
    phrases: Sequence[str] | None = None,
    seed: int = 0,
    judge_folds: int = 5,
    messages: Sequence[str] | None = None,
    n_boot: int = 1000,
) -> tuple[dict, pd.DataFrame]:
    """All metrics of one model from its ``replies`` and the person's ``real`` replies (same order).

    ``real_scores`` are :func:`twinlib.generation.score_replies` results of the real replies
    under the model (for perplexity and mean log-prob; ``nan`` without them); ``messages`` the
    messages answered (for the context-aware judge; left out without them). Every metric gets
    ``_ci_low``/``_ci_high``. Returns the metric dict and a per-reply frame (``semantic_similarity``,
    ``chrf``, ``real_mean_logprob``, ``context_judge``).
    """
    from twinlib.embeddings import cosine
    from twinlib.stats import bootstrap_ci, mean_ci
    from twinlib.turing import automatic_judge, context_judge

    replies = [r if isinstance(r, str) else "" for r in replies]
    real = [r if isinstance(r, str) else "" for r in real]
    if len(replies) != len(real) or not real:
        raise ValueError(f"need as many replies as real replies (and some), got {len(replies)} and {len(real)}")
    sims = np.asarray(cosine(replies, real), dtype=float)
    _, sent_chrf = chrf_scores(replies, real)
    out: dict = {}
    _with_ci(out, "semantic_similarity", *mean_ci(sims, n_boot=n_boot, seed=seed))
    _with_ci(out, "chrf", *chrf_ci(replies, real, n_boot=n_boot, seed=seed))
    per = pd.DataFrame({"semantic_similarity": sims, "chrf": sent_chrf})
    if real_scores is not None:
        lp = np.array([s["logprob"] for s in real_scores], dtype=float)
        toks = np.array([s["tokens"] for s in real_scores], dtype=float)
        ratio = lambda a, b: a.sum() / max(b.sum(), 1.0)  # noqa: E731 — token-weighted mean log-prob
        mean_lp, lo, hi = bootstrap_ci(ratio, lp, toks, n_boot=n_boot, seed=seed)
        _with_ci(out, "mean_logprob", mean_lp, lo, hi)
        ppl = lambda x: float(math.exp(min(-x, 700.0)))  # noqa: E731
        _with_ci(out, "perplexity", ppl(mean_lp), ppl(hi), ppl(lo))
        per["real_mean_logprob"] = [s["mean_logprob"] for s in real_scores]
    else:
        for name in ("perplexity", "mean_logprob"):
            _with_ci(out, name, None, None, None)
    _with_ci(out, "style_distance", *style_gap_ci(replies, real, phrases, seed=seed))
    judge = automatic_judge(real, replies, folds=judge_folds, seed=seed, paired=True)
    out.update(judge.as_dict())
    out["turing_judge_accuracy_ci_low"], out["turing_judge_accuracy_ci_high"] = judge.ci_low, judge.ci_high
    if messages is not None:
        cj = context_judge(messages, real, replies, folds=judge_folds, seed=seed)
        out.update(cj.as_dict())
        out["context_judge_accuracy_ci_low"], out["context_judge_accuracy_ci_high"] = cj.ci_low, cj.ci_high
        per["context_judge"] = cj.per_item
    words, emoji = words_and_emoji(replies)
    real_words, real_emoji = words_and_emoji(real)
    _with_ci(out, "words_per_reply", *mean_ci(words, n_boot=n_boot, seed=seed))
    _with_ci(out, "emoji_per_reply", *mean_ci(emoji, n_boot=n_boot, seed=seed))
    out["real_words_per_reply"] = float(real_words.mean())
    out["real_emoji_per_reply"] = float(real_emoji.mean())
    out["n"] = len(real)
    out["mean_reply_words"] = out["words_per_reply"]
    out["empty_reply_rate"] = float(np.mean([not r.strip() for r in replies]))
    return out, per


# --------------------------------------------------------------------------- evaluation


def _habit_rows(run: RunDir, split: str = "test") -> pd.DataFrame:
    """Every pair of ``split`` whose message calls for one of the sample personas' habits."""
    from twinlib.sample_data import habit_of

    pairs = pd.read_csv(run.pairs_csv, keep_default_na=False, dtype=str)
    rows = pairs[(pairs["split"] == split) & (pairs["response"].str.strip() != "")]
    return rows[[habit_of(p) is not None for p in rows["prompt"]]].reset_index(drop=True)


def evaluate_models(
    run_dir,
    models: Sequence[str] | None = None,
    n_test: int | None = 200,
    seed: int = 0,
    settings: GenerationSettings | None = None,
    judge_folds: int = 5,
    progress: bool = True,
    write: bool = True,
    profile="auto",
    n_validation: int | None = 200,
) -> tuple[pd.DataFrame, dict]:
    """Evaluate every model of the run on held-out conversations; write the results to ``eval/``.

    Each model (default: all of :data:`MODEL_ORDER` the run has) samples one reply per held-out
    test message (``settings``: the stage's sampling settings, ``no_repeat_ngram_size=2``); the
    real replies are scored under it after their own message and after another conversation's
    (context sensitivity); :func:`reply_metrics` compares. The test split's habit messages (the
    sample personas) are all answered for ``habit_accuracy``. On ``n_validation`` messages of the
    *validation* split the model's ``fidelity`` is measured, and the model with the best one is
    written to ``eval/selection.json`` as the run's best (:func:`run_best_model`).

    Returns ``(replies_df, metrics)``: the frame has the :data:`REPLY_COLUMNS` plus per-reply
    ``semantic_similarity`` and ``chrf``; ``metrics`` is ``{model: {metric: value}}``.
    """
    from twinlib.sample_data import persona_habit_accuracy
    from twinlib.stats import mean_ci

    run = RunDir(run_dir).ensure()
    sources = available_models(run.root, models)
    if not sources:
        raise FileNotFoundError(f"{run.models} holds no model to evaluate: run notebooks 02–04 first.")
    pairs = held_out_pairs(run.root, n_test=n_test, seed=seed)
    try:
        val = held_out_pairs(run.root, n_test=n_validation, seed=seed, split="validation")
    except ValueError:  # no validation pairs: the best model is then chosen on the test pairs
        val = pairs
    habits = _habit_rows(run)
    phrases = _person_phrases(run)
    conversations = list(zip(pairs["context"], pairs["prompt"]))
    real = pairs["response"].tolist()
    conv_ids = pairs["conversation_id"].tolist() if "conversation_id" in pairs else list(range(len(pairs)))
    frames, metrics, timings, fidelity = [], {}, {}, {}
    names = list(sources)
    from twinlib.progress import Progress

    bar = Progress("evaluating models", len(names), every=0, enabled=progress)
    prof = later_stage_profile(profile, run)  # every model is asked the same way
    mpt = prof.max_prompt_tokens
    settings_used = settings or settings_for(prof, num_return_sequences=1)

    def sample(model, tok, convs, n=1):
        out = generate_replies(model, tok, convs, n=n, settings=dataclasses.replace(settings_used, num_return_sequences=n),
                               seed=seed, max_prompt_tokens=mpt, batch_size=64)
        return [r[0] if r else "" for r in out] if n == 1 else [(r + ["", ""])[:2] for r in out]

    for done, name in enumerate(names, 1):
        t0 = time.time()
        model, tok = load_quietly(sources[name])
        replies = sample(model, tok, conversations)
        scores = score_replies(model, tok, [(c, p, r) for (c, p), r in zip(conversations, real)], max_length=mpt + 64,
                               batch_size=64)
        gaps = context_sensitivity(model, tok, pairs["context"].tolist(), pairs["prompt"].tolist(), real, conv_ids,
                                   max_length=mpt + 64, seed=seed, own_scores=scores)
        habit_replies = sample(model, tok, list(zip(habits["context"], habits["prompt"]))) if len(habits) else []
        val_replies = sample(model, tok, list(zip(val["context"], val["prompt"])), n=2)
        del model, tok
        release_memory()
        m, per = reply_metrics(replies, real, scores, phrases=phrases, seed=seed, judge_folds=judge_folds,
                               messages=pairs["prompt"].tolist())
        _with_ci(m, "context_sensitivity", *mean_ci(gaps, seed=seed))
        per["context_gap"] = gaps
        if len(habits):
            h = persona_habit_accuracy(habits["prompt"].tolist(), habit_replies)
            _with_ci(m, "habit_accuracy", h["accuracy"], h["ci_low"], h["ci_high"])
            m["habit_n"] = h["n"]
            m["habit_by"] = {k: v["accuracy"] for k, v in h["by_habit"].items()}
        fid = fidelity_scores([r[0] for r in val_replies], [r[1] for r in val_replies], val["response"].tolist())
        fidelity[name] = fid
        _with_ci(m, "fidelity", *mean_ci(fid, seed=seed))
        m["fidelity_n"] = len(fid)
        metrics[name] = m
        df = pd.DataFrame({"model": name, "prompt": pairs["prompt"], "context": pairs["context"],
                           "real_reply": real, "reply": replies})
        frames.append(pd.concat([df, per], axis=1))
        timings[name] = round(time.time() - t0, 1)
        bar.update(done, f"{name}: fidelity {m['fidelity']:.3f}, chrF {m['chrf']:.1f}")
    replies_df = pd.concat(frames, ignore_index=True)
    if write:
        write_results(run.root, replies_df, metrics, extra={
            "models": {k: run.relative(v) for k, v in sources.items()}, "n_test": len(pairs),
            "n_validation": len(val), "n_habit": len(habits), "seed": seed, "settings": settings_used.as_kwargs(),
            "signature_phrases": phrases, "seconds": timings, "direction": DIRECTION,
        })
        best = best_model(metrics, items=fidelity)
        run.write_json(SELECTION_FILE, {
            "best": best, "score": "fidelity: minus the energy score of two sampled replies against the real one "
                                   "(embedding and character distances), validation split",
            "rule": "sft, replaced by a later stage (refined, dpo, ppo) only when its paired 95% interval of "
                    "validation fidelity against the model kept so far lies above 0",
            "fidelity": {k: [metrics[k]["fidelity"], metrics[k]["fidelity_ci_low"], metrics[k]["fidelity_ci_high"]]
                         for k in metrics},
            "n_validation": len(val),
        })
        per_item = {k: v.tolist() for k, v in fidelity.items()}
        run.write_json("eval/fidelity_items.json", per_item)
    return replies_df, metrics


def stage_verdict(run_dir, new: str, old: str, n: int | None = 200, seed: int = 0, profile="auto",
                  split: str = "validation") -> dict:
    """Did a stage beat the model it started from? The closing cell of every stage notebook.

    ``new`` and ``old`` are model names of the run (or folders). Both answer the same ``n``
    messages of the *validation* split (never the test split, which stays for stage 5) twice
    with the stage settings. Returns ``{"verdict": sentence, "table": DataFrame, ...}``: the
    paired difference in ``fidelity`` (:func:`fidelity_scores`) with its 95% interval, words
    and emoji per reply of both next to the person's real replies there, and the sample
    personas' habit accuracy where their messages occur.
    """
    from twinlib.sample_data import persona_habit_accuracy
    from twinlib.stats import fmt_ci, mean_ci, paired_diff_ci

    run = RunDir(run_dir)
    rows = held_out_pairs(run.root, n_test=n, seed=seed, split=split)
    prof = later_stage_profile(profile, run)
    convs = list(zip(rows["context"], rows["prompt"]))
    real = rows["response"].tolist()
    settings = settings_for(prof, num_return_sequences=2)
    found = available_models(run.root)
    samples, fid = {}, {}
    for name in (old, new):
        model, tok = load_quietly(found.get(name, name))
        out = generate_replies(model, tok, convs, n=2, settings=settings, seed=seed + 4242, max_prompt_tokens=prof.max_prompt_tokens)
        del model, tok
        release_memory()
        samples[name] = [(r + ["", ""])[:2] for r in out]
        fid[name] = fidelity_scores([r[0] for r in samples[name]], [r[1] for r in samples[name]], real)
    d, lo, hi = paired_diff_ci(fid[new], fid[old], seed=seed)
    table = {}
    person_w, person_e = words_and_emoji(real)
    for name in (old, new):
        first = [r[0] for r in samples[name]]
        w, e = words_and_emoji(first)
        h = persona_habit_accuracy(rows["prompt"].tolist(), first)
        table[name] = {"fidelity": fmt_ci(*mean_ci(fid[name], seed=seed), digits=3),
                       "words per reply": fmt_ci(*mean_ci(w, seed=seed)), "emoji per reply": fmt_ci(*mean_ci(e, seed=seed)),
                       "habit accuracy": fmt_ci(h["accuracy"], h["ci_low"], h["ci_high"]) if h["n"] else "–"}
    table["the person"] = {"fidelity": "0 (a copy)", "words per reply": f"{person_w.mean():.2f}",
                           "emoji per reply": f"{person_e.mean():.2f}", "habit accuracy": "1.00"}
    if samples[new] == samples[old]:  # the same replies: the same model (and the same fidelity)
        head, better = f"{new} is the same model as {old} (the stage kept its start: nothing validated better)", None
    elif lo > 0:
        head, better = f"{new} is BETTER than {old}", True
    elif hi < 0:
        head, better = f"{new} is WORSE than {old}", False
    else:
        head, better = f"{new} is not measurably different from {old}", None
    sentence = (f"{head}: validation fidelity {d:+.3f} [{lo:+.3f}, {hi:+.3f}] (paired 95% interval, {len(rows)} "
                f"validation messages, two replies each).")
    return {"verdict": sentence, "better": better, "difference": d, "ci_low": lo, "ci_high": hi, "n": len(rows),
            "table": pd.DataFrame(table).T, "new": new, "old": old}


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


def write_results(run_dir, replies_df: pd.DataFrame, metrics: dict, extra: dict | None = None) -> dict[str, Path]:
    """Write ``eval/replies.csv``, ``eval/metrics.json``, ``eval/reply_scores.csv`` (and ``eval/config.json``)."""
    run = RunDir(run_dir).ensure()
    paths = {"replies": run.eval / "replies.csv", "metrics": run.eval / "metrics.json",
             "scores": run.eval / "reply_scores.csv"}
    # every field quoted: model output may hold bare carriage returns, which unquoted CSV splits into rows
    replies_df[REPLY_COLUMNS].to_csv(paths["replies"], index=False, quoting=csv.QUOTE_ALL)
    score_cols = ["model"] + [c for c in ("semantic_similarity", "chrf", "real_mean_logprob", "context_gap", "context_judge")
                              if c in replies_df]
    replies_df[score_cols].to_csv(paths["scores"], index=False)
    clean = {m: {k: _clean(v) for k, v in d.items()} for m, d in metrics.items()}
    run.write_json("eval/metrics.json", clean)
    if extra is not None:
        paths["config"] = run.write_json("eval/config.json", extra)
    return paths


def load_results(run_dir) -> tuple[pd.DataFrame, dict]:
    """``(replies_df, metrics)`` as written by :func:`evaluate_models` (per-reply scores joined back)."""
    run = RunDir(run_dir)
    rp = run.require(run.eval / "replies.csv", "notebook 05 (evaluation)")
    df = pd.read_csv(rp, keep_default_na=False)
    sp = run.eval / "reply_scores.csv"
    if sp.exists():
        scores = pd.read_csv(sp)
        if len(scores) == len(df) and (scores["model"].astype(str).values == df["model"].astype(str).values).all():
            df = pd.concat([df, scores.drop(columns=["model"])], axis=1)
    metrics = json.loads((run.eval / "metrics.json").read_text(encoding="utf-8"))
    return df, metrics


# --------------------------------------------------------------------------- tables


def metrics_table(metrics: dict, metrics_only: bool = True, with_ci: bool = False) -> pd.DataFrame:
    """Models × metrics (rows in :data:`MODEL_ORDER`; the :data:`METRICS` columns first).

    ``with_ci=True`` gives strings ``"value [low, high]"`` instead of numbers.
    """
    from twinlib.stats import fmt_ci

    df = pd.DataFrame(metrics).T
    order = [m for m in MODEL_ORDER if m in df.index] + [m for m in df.index if m not in MODEL_ORDER]
    cols = [c for c in METRICS if c in df.columns]
    if not metrics_only:
        cols += [c for c in df.columns if c not in cols and not c.endswith(("_ci_low", "_ci_high"))
                 and not isinstance(df[c].dropna().iloc[0] if df[c].notna().any() else 0, dict)]
    if not with_ci:
        return df.loc[order, cols].apply(pd.to_numeric, errors="coerce")
    digits = {"chrf": 1, "perplexity": 1}
    out = pd.DataFrame(index=order)
    for c in cols:
        out[c] = [fmt_ci(_num(metrics[m].get(c)), _num(metrics[m].get(f"{c}_ci_low")), _num(metrics[m].get(f"{c}_ci_high")),
                         digits.get(c, 2)) for m in order]
    return out


def _num(v):
    return float(v) if isinstance(v, (int, float)) and v is not None else None


#: The per-item arrays behind each metric that :func:`compare_models` can pair across models.
PAIRED = {"chrf": "chrf", "semantic_similarity": "semantic_similarity", "context_sensitivity": "context_gap",
          "context_judge_accuracy": "context_judge"}


def compare_models(replies_df: pd.DataFrame, metrics: dict, against: Sequence[str] = ("sft", "base"),
                   n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each model's difference to the models in ``against``, with 95% intervals.

    Long frame ``model, against, metric, difference, ci_low, ci_high, verdict``. Metrics with a
    per-item value (sentence chrF, similarity, context gap, the context judge's pick) get a
    paired bootstrap over the same held-out items; the others (fidelity, style distance, the
    reply-only judge, habit accuracy, words and emoji per reply) the difference of the two
    values with an interval from both intervals (their half-widths added in quadrature), a
    conservative stand-in where items cannot be paired. ``verdict`` is ``better``, ``worse`` or
    ``no clear difference`` (the interval holds 0), in the metric's own direction.
    """
    from twinlib.stats import paired_diff_ci

    rows = []
    for ref in against:
        if ref not in metrics:
            continue
        for m in metrics:
            if m == ref:
                continue
            for metric in list(METRICS) + ["words_per_reply", "emoji_per_reply"]:
                a, b = _num(metrics[m].get(metric)), _num(metrics[ref].get(metric))
                if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
                    continue
                col = PAIRED.get(metric)
                if col is not None and col in replies_df.columns:
                    x = replies_df.loc[replies_df["model"] == m, col].to_numpy(dtype=float)
                    y = replies_df.loc[replies_df["model"] == ref, col].to_numpy(dtype=float)
                    if len(x) == len(y) and len(x):
                        d, lo, hi = paired_diff_ci(x, y, n_boot=n_boot, seed=seed)
                        if metric == "chrf":  # per-sentence interval, centred on the corpus difference
                            lo, hi = (a - b) + (lo - d), (a - b) + (hi - d)
                            d = a - b
                        rows.append(_cmp_row(m, ref, metric, d, lo, hi))
                        continue
                half = lambda k, v: (_num(metrics[k].get(f"{metric}_ci_high")) or v) - (_num(metrics[k].get(f"{metric}_ci_low")) or v)  # noqa: E731
                w = 0.5 * math.hypot(half(m, a), half(ref, b))
                rows.append(_cmp_row(m, ref, metric, a - b, a - b - w, a - b + w))
    return pd.DataFrame(rows, columns=["model", "against", "metric", "difference", "ci_low", "ci_high", "verdict"])


def _cmp_row(model, ref, metric, d, lo, hi) -> dict:
    direction = DIRECTION.get(metric)
    if lo <= 0 <= hi or direction is None:
        verdict = "no clear difference" if direction is not None else ("higher" if lo > 0 else "lower" if hi < 0 else "no clear difference")
    else:
        up = lo > 0
        verdict = "better" if (up == (direction == "higher")) else "worse"
    return {"model": model, "against": ref, "metric": metric, "difference": float(d), "ci_low": float(lo),
            "ci_high": float(hi), "verdict": verdict}


def comparison_table(cmp: pd.DataFrame, against: str = "sft", digits: int = 3) -> pd.DataFrame:
    """Models × metrics of :func:`compare_models` against one model, as ``"+0.012 [−0.004, +0.03] ↑"``
    strings (↑ better, ↓ worse, ≈ no clear difference)."""
    sub = cmp[cmp["against"] == against]
    if sub.empty:
        return pd.DataFrame()
    mark = {"better": "↑", "worse": "↓", "no clear difference": "≈", "higher": "+", "lower": "−"}
    sub = sub.assign(text=[f"{d:+.{digits}g} [{lo:+.{digits}g}, {hi:+.{digits}g}] {mark.get(v, '')}"
                           for d, lo, hi, v in zip(sub["difference"], sub["ci_low"], sub["ci_high"], sub["verdict"])])
    wide = sub.pivot(index="model", columns="metric", values="text")
    order = [m for m in MODEL_ORDER if m in wide.index]
    cols = [c for c in list(METRICS) + ["words_per_reply", "emoji_per_reply"] if c in wide.columns]
    return wide.loc[order, cols]


def verdict(cmp: pd.DataFrame, model: str, against: str = "sft",
            key_metrics: Sequence[str] = ("fidelity", "chrf", "context_judge_accuracy", "style_distance")) -> str:
    """One sentence: did ``model`` beat ``against`` on held-out data, metric by metric?"""
    sub = cmp[(cmp["model"] == model) & (cmp["against"] == against) & cmp["metric"].isin(key_metrics)]
    if sub.empty:
        return f"{model} could not be compared with {against} (one of them was not evaluated)."
    better = sub.loc[sub["verdict"] == "better", "metric"].tolist()
    worse = sub.loc[sub["verdict"] == "worse", "metric"].tolist()
    label = lambda ms: ", ".join(METRICS[m].label for m in ms)  # noqa: E731
    if worse and not better:
        head = f"{model} is WORSE than {against}"
    elif better and not worse:
        head = f"{model} is better than {against}"
    elif better and worse:
        head = f"{model} is mixed against {against}"
    else:
        head = f"{model} is not measurably different from {against}"
    parts = [f"better on {label(better)}" if better else "", f"worse on {label(worse)}" if worse else ""]
    return head + (": " + "; ".join(p for p in parts if p) if any(parts) else "") + " (95% intervals, held-out data)."


def compare_to_base(metrics: dict, base: str = "base") -> pd.DataFrame:
    """For each trained model and metric: is it closer to the person than ``base``? (bool frame)"""
    if base not in metrics:
        raise ValueError(f"no {base!r} model in the metrics to compare with (have {list(metrics)})")
    rows = {}
    for m in metrics:
        if m == base:
            continue
        rows[m] = {k: is_better(k, metrics[m][k], metrics[base][k])
                   for k in METRICS if _num(metrics[m].get(k)) is not None and _num(metrics[base].get(k)) is not None}
    return pd.DataFrame(rows).T


def best_and_worst(replies_df: pd.DataFrame, model: str, k: int = 3, by: str = "semantic_similarity") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``k`` replies of ``model`` closest to and farthest from what the person said (by ``by``)."""
    if by not in replies_df.columns:
        raise ValueError(f"the replies table has no {by!r} column: use evaluate_models()' frame or load_results()")
    rows = replies_df[replies_df["model"] == model].sort_values(by, ascending=False)
    cols = ["prompt", "real_reply", "reply", by]
    return rows.head(k)[cols].reset_index(drop=True), rows.tail(k)[cols].iloc[::-1].reset_index(drop=True)


# --------------------------------------------------------------------------- prompt tests


def prompt_tests(
    run_dir,
    models: Sequence[str] | None = None,
    n_prompts: int = 4,
    n: int = 5,
    seed: int = 0,
    prompts: Sequence | None = None,
    settings: GenerationSettings | None = None,
    write: bool = True,
    profile="auto",
) -> pd.DataFrame:
    """``n`` sampled replies of every model to the same prompts (``no_repeat_ngram_size=2``).

    ``prompts``: strings or ``(context, prompt)`` tuples; default ``n_prompts`` held-out test
    conversations. Returns a long frame ``model, prompt_id, context, prompt, sample, reply``
    (written to ``eval/prompt_tests.csv``); :func:`prompt_tests_html` lays it out side by side.
    """
    run = RunDir(run_dir).ensure()
    sources = available_models(run.root, models)
    if prompts is None:
        pairs = held_out_pairs(run.root, n_test=n_prompts, seed=seed + 1)
        convs = list(zip(pairs["context"], pairs["prompt"]))
    else:
        convs = [("", p) if isinstance(p, str) else (p[0] or "", p[1]) for p in prompts]
    rows = []
    prof = later_stage_profile(profile, run)
    used = settings or settings_for(prof, num_return_sequences=n)
    for name, src in sources.items():
        model, tok = load_quietly(src)
        outs = generate_replies(model, tok, convs, n=n, settings=used, seed=seed, max_prompt_tokens=prof.max_prompt_tokens)
        del model, tok
        release_memory()
        for i, ((ctx, p), reps) in enumerate(zip(convs, outs)):
            for j, r in enumerate(reps):
                rows.append({"model": name, "prompt_id": i, "context": ctx, "prompt": p, "sample": j + 1, "reply": r})
    df = pd.DataFrame(rows, columns=["model", "prompt_id", "context", "prompt", "sample", "reply"])
    if write:
        df.to_csv(run.eval / "prompt_tests.csv", index=False, quoting=csv.QUOTE_NONNUMERIC)
    return df


def _context_lines(context: str, k: int = 3) -> list[str]:
    try:
        turns = context_turns(context)
    except ValueError:  # json.JSONDecodeError is a ValueError
        return []
    return [("me" if t.get("me") else str(t.get("sender", "them"))) + ": " + str(t.get("text", "")) for t in turns[-k:]]


def prompt_tests_html(df: pd.DataFrame) -> str:
    """One HTML table: a row per prompt, a column per model, each cell the sampled replies."""
    models = [m for m in MODEL_ORDER if m in set(df["model"])] + sorted(set(df["model"]) - set(MODEL_ORDER))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in models)
    body = []
    for pid, g in df.groupby("prompt_id", sort=True):
        first = g.iloc[0]
        ctx = "".join(f"<div style='color:#777'>{html.escape(line)}</div>" for line in _context_lines(first["context"]))
        cell0 = f"<td style='vertical-align:top;max-width:260px'>{ctx}<b>{html.escape(str(first['prompt']))}</b></td>"
        cells = []
        for m in models:
            reps = g[g["model"] == m].sort_values("sample")["reply"].tolist()
            items = "".join(f"<li>{html.escape(str(r)) or '<i>(empty)</i>'}</li>" for r in reps)
            cells.append(f"<td style='vertical-align:top;text-align:left'><ol style='margin:0;padding-left:18px'>{items}</ol></td>")
        body.append(f"<tr>{cell0}{''.join(cells)}</tr>")
    return (f"<table style='border-collapse:collapse;font-size:90%'><thead><tr><th>conversation</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def prompt_tests_table(df: pd.DataFrame) -> pd.DataFrame:
    """The prompt tests as a wide frame: a row per prompt, a column per model, replies joined by new lines."""
    wide = (df.sort_values("sample").groupby(["prompt_id", "prompt", "model"])["reply"]
            .agg(lambda s: "\n".join(f"{i}. {r}" for i, r in enumerate(s, 1))).unstack("model"))
    return wide[[m for m in MODEL_ORDER if m in wide.columns]]
