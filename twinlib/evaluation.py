"""Stage 5: how close is each model of a run to the person?

Every model the run produced (``base``, ``sft``, ``refined``, ``ppo``, ``dpo``) answers the same
held-out test conversations — conversations no model was trained on — and its replies are
compared with what the person really said:

========================  =========================================================  ==========
metric                    what it measures                                           better
========================  =========================================================  ==========
semantic_similarity       mean cosine of MiniLM sentence embeddings, reply vs real   higher
chrf                      character n-gram F1 (sacrebleu chrF, beta 1, 0-100)        higher
perplexity                perplexity of the person's real replies under the model    lower
mean_logprob              mean log-probability per token of the real replies         higher
style_distance            distance of style profiles (length, emoji, casing,         lower
                          punctuation, vocabulary, signature phrases), 0-1
turing_judge_accuracy     cross-validated accuracy of a classifier telling real      lower
                          from model replies (50 % = indistinguishable)
========================  =========================================================  ==========

:func:`evaluate_models` writes ``eval/replies.csv`` (``model,prompt,context,real_reply,reply``),
``eval/metrics.json`` (``{model: {metric: value}}``) and ``eval/reply_scores.csv`` (per-reply
similarity and chrF, same row order, for the best and worst examples). :func:`prompt_tests`
samples several replies per model to the same prompts, for reading side by side.
"""

from __future__ import annotations

import csv
import gc
import html
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from twinlib.generation import GenerationSettings, generate_replies, score_replies, settings_for
from twinlib.modeling import has_model, later_stage_profile
from twinlib.pairs import context_turns
from twinlib.rundir import RunDir

#: Every model a run can produce, from the untrained start to the most trained.
MODEL_ORDER = ("base", "sft", "refined", "ppo", "dpo")
#: Which trained model stands for "the twin" when one is needed (chat, the Turing game).
BEST_ORDER = ("ppo", "dpo", "refined", "sft")
#: The columns of ``eval/replies.csv``.
REPLY_COLUMNS = ["model", "prompt", "context", "real_reply", "reply"]


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
               "mean cosine similarity of MiniLM sentence embeddings of the model's reply and the real one"),
        Metric("chrf", "chrF", "higher", "character n-gram F-score of the replies against the real ones (sacrebleu, 0–100)"),
        Metric("perplexity", "perplexity", "lower", "perplexity of the person's real replies under the model"),
        Metric("mean_logprob", "mean log-prob", "higher", "mean log-probability per token of the person's real replies"),
        Metric("style_distance", "style distance", "lower",
               "distance between the style profiles (length, emoji, casing, punctuation, vocabulary, "
               "signature phrases) of the model's replies and the person's, 0 = same style"),
        Metric("turing_judge_accuracy", "Turing judge accuracy", "lower",
               "cross-validated accuracy of a classifier telling the person's replies from the model's; "
               "50% = indistinguishable, 100% = always caught"),
    )
}
#: For each metric whether ``"higher"`` or ``"lower"`` is better.
DIRECTION: dict[str, str] = {name: m.direction for name, m in METRICS.items()}


def is_better(metric: str, a: float, b: float) -> bool:
    """True when value ``a`` of ``metric`` is strictly better than ``b``."""
    if DIRECTION[metric] == "higher":
        return a > b
    return a < b


def best_model(names: Iterable[str]) -> str | None:
    """The most trained of ``names`` (ppo > dpo > refined > sft), or ``None``."""
    names = set(names)
    return next((m for m in BEST_ORDER if m in names), None)


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
                return base
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


def style_gap(replies: Sequence[str], real: Sequence[str], phrases: Sequence[str] | None = None) -> float:
    """:func:`twinlib.style.style_distance` between the style profiles of ``replies`` and ``real``."""
    from twinlib.style import style_distance, style_features

    ph = list(phrases) if phrases else None
    return style_distance(style_features(list(replies), ph), style_features(list(real), ph))


def reply_metrics(
    replies: Sequence[str],
    real: Sequence[str],
    real_scores: Sequence[dict] | None = None,
    phrases: Sequence[str] | None = None,
    seed: int = 0,
    judge_folds: int = 5,
) -> tuple[dict, pd.DataFrame]:
    """All metrics of one model from its ``replies`` and the person's ``real`` replies (same order).

    ``real_scores`` are :func:`twinlib.generation.score_replies` results of the real replies
    under the model (for perplexity and mean log-prob; ``nan`` without them). Returns the
    metric dict and a per-reply frame (``semantic_similarity``, ``chrf``, ``real_mean_logprob``).
    """
    from twinlib.embeddings import cosine
    from twinlib.turing import automatic_judge

    replies = [r if isinstance(r, str) else "" for r in replies]
    real = [r if isinstance(r, str) else "" for r in real]
    if len(replies) != len(real) or not real:
        raise ValueError(f"need as many replies as real replies (and some), got {len(replies)} and {len(real)}")
    sims = np.asarray(cosine(replies, real), dtype=float)
    corpus_chrf, sent_chrf = chrf_scores(replies, real)
    out = {
        "semantic_similarity": float(sims.mean()),
        "chrf": corpus_chrf,
    }
    per = pd.DataFrame({"semantic_similarity": sims, "chrf": sent_chrf})
    if real_scores is not None:
        lp = sum(s["logprob"] for s in real_scores)
        toks = sum(s["tokens"] for s in real_scores)
        mean_lp = lp / max(toks, 1)
        out["perplexity"] = float(math.exp(min(-mean_lp, 700.0)))
        out["mean_logprob"] = float(mean_lp)
        per["real_mean_logprob"] = [s["mean_logprob"] for s in real_scores]
    else:
        out["perplexity"] = out["mean_logprob"] = float("nan")
    out["style_distance"] = style_gap(replies, real, phrases)
    judge = automatic_judge(real, replies, folds=judge_folds, seed=seed, paired=True)
    out.update(judge.as_dict())
    out["n"] = len(real)
    out["mean_reply_words"] = float(np.mean([len(r.split()) for r in replies]))
    out["empty_reply_rate"] = float(np.mean([not r.strip() for r in replies]))
    return out, per


# --------------------------------------------------------------------------- evaluation


def evaluate_models(
    run_dir,
    models: Sequence[str] | None = None,
    n_test: int | None = 60,
    seed: int = 0,
    settings: GenerationSettings | None = None,
    judge_folds: int = 5,
    progress: bool = True,
    write: bool = True,
    profile="auto",
) -> tuple[pd.DataFrame, dict]:
    """Evaluate every model of the run on held-out conversations; write the results to ``eval/``.

    Each model (default: all of :data:`MODEL_ORDER` the run has) samples one reply per held-out
    prompt (``settings``: the stage's sampling settings, ``no_repeat_ngram_size=2``); the real
    replies are scored under it; then :func:`reply_metrics` compares. Returns ``(replies_df,
    metrics)``: the frame has the :data:`REPLY_COLUMNS` plus per-reply ``semantic_similarity`` and
    ``chrf``; ``metrics`` is ``{model: {metric: value}}``.
    """
    run = RunDir(run_dir).ensure()
    sources = available_models(run.root, models)
    if not sources:
        raise FileNotFoundError(f"{run.models} holds no model to evaluate: run notebooks 02–04 first.")
    pairs = held_out_pairs(run.root, n_test=n_test, seed=seed)
    phrases = _person_phrases(run)
    conversations = list(zip(pairs["context"], pairs["prompt"]))
    real = pairs["response"].tolist()
    frames, metrics, timings = [], {}, {}
    names = list(sources)
    it = names
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(names, desc="evaluating models", unit="model")
    prof = later_stage_profile(profile, run)  # every model is asked the same way
    mpt = prof.max_prompt_tokens
    settings_used = settings or settings_for(prof, num_return_sequences=1)
    for name in it:
        t0 = time.time()
        model, tok = load_quietly(sources[name])
        replies = [r[0] if r else "" for r in generate_replies(
            model, tok, conversations, n=1, settings=settings_used, seed=seed, max_prompt_tokens=mpt)]
        scores = score_replies(model, tok, [(c, p, r) for (c, p), r in zip(conversations, real)],
                               max_length=mpt + 64)
        del model, tok
        release_memory()
        m, per = reply_metrics(replies, real, scores, phrases=phrases, seed=seed, judge_folds=judge_folds)
        metrics[name] = m
        df = pd.DataFrame({"model": name, "prompt": pairs["prompt"], "context": pairs["context"],
                           "real_reply": real, "reply": replies})
        frames.append(pd.concat([df, per], axis=1))
        timings[name] = round(time.time() - t0, 1)
    replies_df = pd.concat(frames, ignore_index=True)
    if write:
        write_results(run.root, replies_df, metrics, extra={
            "models": sources, "n_test": len(pairs), "seed": seed, "settings": settings_used.as_kwargs(),
            "signature_phrases": phrases, "seconds": timings, "direction": DIRECTION,
        })
    return replies_df, metrics


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
    score_cols = ["model"] + [c for c in ("semantic_similarity", "chrf", "real_mean_logprob") if c in replies_df]
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


def metrics_table(metrics: dict, metrics_only: bool = True) -> pd.DataFrame:
    """Models × metrics (rows in :data:`MODEL_ORDER`; the :data:`METRICS` columns first)."""
    df = pd.DataFrame(metrics).T
    order = [m for m in MODEL_ORDER if m in df.index] + [m for m in df.index if m not in MODEL_ORDER]
    cols = [c for c in METRICS if c in df.columns]
    if not metrics_only:
        cols += [c for c in df.columns if c not in cols]
    return df.loc[order, cols].astype(float)


def compare_to_base(metrics: dict, base: str = "base") -> pd.DataFrame:
    """For each trained model and metric: is it closer to the person than ``base``? (bool frame)"""
    if base not in metrics:
        raise ValueError(f"no {base!r} model in the metrics to compare with (have {list(metrics)})")
    rows = {}
    for m in metrics:
        if m == base:
            continue
        rows[m] = {k: is_better(k, metrics[m][k], metrics[base][k])
                   for k in METRICS if metrics[m].get(k) is not None and metrics[base].get(k) is not None}
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
