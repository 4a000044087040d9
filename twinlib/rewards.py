"""The reward model: a scorer of replies learnt from the person's rankings.

Stage 3 left ``rankings.jsonl``: for a message, ``k`` replies of the twin ranked by the person
(or by the automatic ranker). Every better/worse pair of one ranking is a *preference*
(:func:`twinlib.ranking.to_preferences`); the rank gap is its *margin*.

:func:`train_reward_model` trains TRL's ``RewardTrainer`` on those pairs: the twin with its
language-model head replaced by a one-number head (``AutoModelForSequenceClassification``,
``num_labels=1``) reads the whole conversation and the reply and outputs a score; the loss is
``−log σ(score(chosen) − score(rejected) − margin)`` (Bradley–Terry with a margin). Its quality
is the **held-out pairwise accuracy**: on rankings of messages it never saw, how often it
scores the better reply higher (0.5 is a coin). It is saved to ``models/reward``.

Reward functions have one interface, used by PPO (:mod:`twinlib.ppo`), the bench and the
evaluation: ``reward_fn(contexts, prompts, replies) -> list[float]``. :class:`RewardModelScorer`
wraps the trained model as one; any plain Python function with that signature works too.

The last section holds the small helpers stage 4 shares (where to start from, saving a model
folder atomically, never overwriting one silently); :mod:`twinlib.ppo` and :mod:`twinlib.dpo`
use them too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Sequence

from twinlib.modeling import SYSTEM_PROMPT, build_messages, has_model
from twinlib.rundir import RunDir

PREFERENCE_COLUMNS = ["prompt", "context", "chosen", "rejected", "margin"]


# --------------------------------------------------------------------------- preferences


def load_preferences(source):
    """Preferences as ``DataFrame[prompt, context, chosen, rejected, margin, ...]``.

    ``source`` is such a DataFrame already, a :class:`~twinlib.rundir.RunDir` or run folder
    (its ``rankings.jsonl``), a rankings file, a :class:`~twinlib.ranking.RankingStore` or a
    list of ranking records.
    """
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        missing = [c for c in PREFERENCE_COLUMNS if c not in source.columns]
        if missing:
            raise ValueError(f"preferences need the columns {PREFERENCE_COLUMNS}; missing {missing}")
        return source.reset_index(drop=True)
    from twinlib import ranking

    if isinstance(source, RunDir) or (isinstance(source, (str, Path)) and Path(source).is_dir()):
        run = source if isinstance(source, RunDir) else RunDir(source)
        run.require(run.rankings, "03_iterative_refinement.ipynb")
        source = ranking.RankingStore.for_run(run)
    return ranking.to_preferences(source)


def conversation_key(context, prompt) -> str:
    """The id of the conversation a preference belongs to (same for every round that ranked it)."""
    from twinlib.ranking import item_key

    return item_key(context, prompt)


def split_preferences(prefs, test_fraction: float = 0.2, seed: int = 0):
    """``(train, test)``: whole conversations go to one side, so the held-out accuracy is measured on
    messages the reward model never saw (pairs of one ranking are strongly correlated)."""
    import numpy as np

    keys = [conversation_key(c, p) for c, p in zip(prefs["context"], prefs["prompt"])]
    uniq = sorted(set(keys))
    rng = np.random.default_rng(seed)
    rng.shuffle(uniq)
    n_test = int(round(len(uniq) * test_fraction)) if len(uniq) > 1 else 0
    if test_fraction > 0 and len(uniq) > 1:
        n_test = max(1, min(n_test, len(uniq) - 1))
    test_keys = set(uniq[:n_test])
    is_test = np.array([k in test_keys for k in keys], dtype=bool)
    return prefs[~is_test].reset_index(drop=True), prefs[is_test].reset_index(drop=True)


def preferences_to_dataset(prefs, tokenizer=None, max_length: int | None = None, system: str | None = SYSTEM_PROMPT,
                           margin_scale: float | None = 1.0):
    """TRL's conversational preference format: ``prompt`` (the conversation so far, as
    :func:`twinlib.modeling.build_messages` lays it out), ``chosen``/``rejected`` (one assistant
    message each) and, unless ``margin_scale`` is None, ``margin = margin_scale × rank gap``.

    With a ``tokenizer`` and ``max_length`` the oldest context turns are dropped until the
    longer of the two conversations fits (:func:`twinlib.modeling.fit_messages`, as in SFT and
    generation) — TRL's RewardTrainer would otherwise drop such pairs — and templates without a
    system role get the system prompt folded into the first user turn.
    """
    from datasets import Dataset

    rows = []
    for p in prefs.itertuples(index=False):
        chosen, rejected = str(p.chosen), str(p.rejected)
        if tokenizer is not None:
            from twinlib.modeling import fit_messages

            longer = max(chosen, rejected, key=len)
            prompt = fit_messages(tokenizer, p.context, p.prompt, reply=longer, max_tokens=max_length, system=system)[:-1]
        else:
            prompt = build_messages(p.context, p.prompt, system=system)
        row = {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        if margin_scale is not None:
            row["margin"] = float(p.margin) * margin_scale
        rows.append(row)
    return Dataset.from_list(rows)


# --------------------------------------------------------------------------- scoring


class RewardModelScorer:
    """A reward function backed by a reward model folder (``models/reward``).

    ``scorer(contexts, prompts, replies) -> list[float]``: each reply is scored in its
    conversation, laid out exactly as in training (chat template over
    :func:`~twinlib.modeling.fit_messages`). Long conversations lose their oldest turns, as in
    training, so the reply is always read; ``max_length`` defaults to the training length.
    """

    def __init__(self, path, device: str | None = None, batch_size: int = 16, max_length: int | None = None,
                 system: str | None = SYSTEM_PROMPT):
        import torch
        from transformers import AutoModelForSequenceClassification

        from twinlib.modeling import load_tokenizer, pick_device, pick_dtype, resolve_model_source

        where, local = resolve_model_source(path)
        self.path = where
        self.device = device or pick_device()
        self.tokenizer = load_tokenizer(where)
        dtype = torch.float32 if self.device == "cpu" else pick_dtype(self.device)
        self.model = AutoModelForSequenceClassification.from_pretrained(where, dtype=dtype, local_files_only=local)
        self.model.to(self.device).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size = batch_size
        summary = Path(str(where)) / "reward.json"
        if max_length is None and summary.exists():  # the length it was trained with
            max_length = json.loads(summary.read_text(encoding="utf-8")).get("max_length")
        self.max_length = max_length or 512
        self.system = system
        self.__name__ = f"reward_model({Path(str(where)).name})"

    def encode(self, context, prompt: str, reply: str) -> list[int]:
        from twinlib.modeling import fit_messages

        msgs = fit_messages(self.tokenizer, context, prompt, reply=reply, max_tokens=self.max_length, system=self.system)
        ids = self.tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
        return list(ids)[-self.max_length :]

    def __call__(self, contexts: Sequence, prompts: Sequence[str], replies: Sequence[str]) -> list[float]:
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        out: list[float] = []
        rows = list(zip(contexts, prompts, replies))
        for i in range(0, len(rows), self.batch_size):
            enc = [self.encode(c, p, r) for c, p, r in rows[i : i + self.batch_size]]
            width = max(len(e) for e in enc)
            ids = torch.full((len(enc), width), pad, dtype=torch.long)
            att = torch.zeros((len(enc), width), dtype=torch.long)
            for j, e in enumerate(enc):  # right padding, as in training
                ids[j, : len(e)] = torch.tensor(e)
                att[j, : len(e)] = 1
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=att.to(self.device)).logits
            out.extend(float(x) for x in logits[:, 0].float().cpu())
        return out


def pairwise_accuracy(reward_fn, prefs) -> float | None:
    """Share of preference pairs where ``reward_fn`` scores the chosen reply above the rejected one
    (ties count half). ``None`` when there are no pairs."""
    if len(prefs) == 0:
        return None
    ctx, pr = list(prefs["context"]), list(prefs["prompt"])
    chosen = reward_fn(ctx, pr, [str(x) for x in prefs["chosen"]])
    rejected = reward_fn(ctx, pr, [str(x) for x in prefs["rejected"]])
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return wins / len(prefs)


def pairwise_outcomes(reward_fn, prefs) -> "np.ndarray":
    """Per pair: 1 when ``reward_fn`` scores the chosen reply higher, 0.5 on a tie, 0 otherwise."""
    import numpy as np

    if len(prefs) == 0:
        return np.zeros(0)
    ctx, pr = list(prefs["context"]), list(prefs["prompt"])
    chosen = reward_fn(ctx, pr, [str(x) for x in prefs["chosen"]])
    rejected = reward_fn(ctx, pr, [str(x) for x in prefs["rejected"]])
    return np.array([1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)])


def accuracy_ci(outcomes, prefs, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Pairwise accuracy with a 95% interval from a bootstrap over *messages*: the pairs of one
    ranking share a message and candidates, so resampling pairs alone would overstate the precision."""
    import numpy as np

    outcomes = np.asarray(outcomes, dtype=float)
    if len(outcomes) == 0:
        return float("nan"), float("nan"), float("nan")
    keys = np.array([conversation_key(c, p) for c, p in zip(prefs["context"], prefs["prompt"])], dtype=object)
    groups = [np.flatnonzero(keys == k) for k in dict.fromkeys(keys)]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
        boots.append(outcomes[idx].mean())
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return float(outcomes.mean()), float(lo), float(hi)


def length_baseline(train_prefs, test_prefs) -> tuple[str, "np.ndarray"]:
    """The trivial baseline a reward model must beat: "the longer reply is better" or "the shorter
    one is" (whichever is right more often on the training pairs), scored on ``test_prefs``.
    Returns ``(rule, outcomes)``."""
    import numpy as np

    from twinlib.style import count_words  # Chinese has no spaces: characters count

    def sign(prefs):
        c = np.array([count_words(str(x)) for x in prefs["chosen"]])
        r = np.array([count_words(str(x)) for x in prefs["rejected"]])
        return np.sign(c - r)

    train_sign = sign(train_prefs) if len(train_prefs) else np.zeros(0)
    longer_wins = (train_sign > 0).sum() >= (train_sign < 0).sum()
    s = sign(test_prefs) if len(test_prefs) else np.zeros(0)
    s = s if longer_wins else -s
    return ("longer wins" if longer_wins else "shorter wins"), np.where(s > 0, 1.0, np.where(s < 0, 0.0, 0.5))


def trust_verdict(summary: dict) -> tuple[bool, str]:
    """Can PPO trust this reward model? ``(trusted, sentence)``.

    Trusted when its held-out accuracy's 95% interval lies above 0.5 *and* above the length
    baseline's accuracy: otherwise PPO would optimise a coin flip or reply length.
    """
    acc, lo = summary.get("test_accuracy"), summary.get("test_accuracy_ci_low")
    base = summary.get("length_baseline_accuracy")
    if acc is None or lo is None or not math.isfinite(lo):
        return False, "The reward model has no held-out pairs to be checked on: rank more messages in stage 3."
    if lo <= 0.5:
        return False, (f"The reward model is AT CHANCE: held-out accuracy {acc:.2f} (95% CI {lo:.2f}–"
                       f"{summary['test_accuracy_ci_high']:.2f}) includes 0.5. PPO against it learns noise, not you.")
    if base is not None and lo <= base:
        return False, (f"The reward model is NO BETTER THAN REPLY LENGTH: held-out accuracy {acc:.2f} (95% CI {lo:.2f}–"
                       f"{summary['test_accuracy_ci_high']:.2f}) against {base:.2f} for '{summary.get('length_baseline_rule')}'.")
    return True, (f"The reward model beats chance and reply length: held-out accuracy {acc:.2f} (95% CI {lo:.2f}–"
                  f"{summary['test_accuracy_ci_high']:.2f}) against {base:.2f} for '{summary.get('length_baseline_rule')}'.")


# --------------------------------------------------------------------------- training


class JudgeReward:
    """The course's final test as a reward: the automatic Turing judge's log-odds that a reply is
    the person's, given the message it answers.

    The judge is trained on the *training* split only: the person's real replies against replies
    the twin (``twin_path``) samples for the same messages, with the context-aware judge's
    features (:func:`twinlib.turing._message_reply_features`: the reply's character n-grams and
    style, how it fits the message). A reply the judge takes for the person's scores high. It
    needs no rankings at all — and it learns only what tells the twin's replies from the
    person's *today*, so it is worth checking against the rankings (:func:`pairwise_outcomes`).
    """

    def __init__(self, run_dir, twin_path, profile="auto", n: int = 400, seed: int = 0):
        import numpy as np
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        from twinlib.generation import generate_replies, settings_for
        from twinlib.modeling import later_stage_profile, load_model
        from twinlib.ppo import train_prompts
        from twinlib.turing import _message_reply_features

        self._sparse = sparse
        run = RunDir(run_dir)
        prof = later_stage_profile(profile, run)
        rows = train_prompts(run, split="train", limit=n, seed=seed)
        model, tok = load_model(twin_path)
        twin = [r[0] for r in generate_replies(model, tok, list(zip(rows["context"], rows["prompt"])), n=1,
                                                settings=settings_for(prof, num_return_sequences=1), seed=seed,
                                                max_prompt_tokens=prof.max_prompt_tokens)]
        del model
        real = rows["response"].astype(str).tolist()
        msgs = rows["prompt"].astype(str).tolist() * 2
        texts = real + twin
        self.tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False, sublinear_tf=True).fit(texts)
        dense, cross = _message_reply_features(msgs, texts)
        self.scaler = StandardScaler().fit(dense)
        x = self._features(msgs, texts, dense, cross)
        y = np.r_[np.ones(len(real)), np.zeros(len(twin))]
        self.clf = LogisticRegression(C=1.0, solver="liblinear", random_state=seed).fit(x, y)
        self.train_accuracy = float((self.clf.predict(x) == y).mean())
        self.n = len(real)
        self.__name__ = "turing_judge"

    def _features(self, msgs, texts, dense=None, cross=None):
        from twinlib.turing import _message_reply_features

        if dense is None:
            dense, cross = _message_reply_features(msgs, texts)
        return self._sparse.hstack([self.tfidf.transform(texts), self._sparse.csr_matrix(self.scaler.transform(dense)),
                                    cross]).tocsr()

    def __call__(self, contexts, prompts, replies) -> list[float]:
        x = self._features([str(p) for p in prompts], [str(r) for r in replies])
        return [float(v) for v in self.clf.decision_function(x)]


class MixedReward:
    """The sum of several reward functions, each standardized by its mean and spread on the
    person's real training replies (so none dominates by its scale alone)."""

    def __init__(self, run_dir, rewards: Sequence, n: int = 200, seed: int = 0):
        import numpy as np

        from twinlib.ppo import train_prompts

        rows = train_prompts(RunDir(run_dir), split="train", limit=n, seed=seed)
        args = (list(rows["context"]), list(rows["prompt"]), [str(r) for r in rows["response"]])
        self.rewards = list(rewards)
        self.scale = []
        for fn in self.rewards:
            v = np.asarray(fn(*args), dtype=float)
            self.scale.append((float(v.mean()), float(max(v.std(), 1e-6))))
        self.__name__ = "+".join(getattr(f, "__name__", "reward") for f in self.rewards)

    def __call__(self, contexts, prompts, replies) -> list[float]:
        total = None
        for fn, (m, sd) in zip(self.rewards, self.scale):
            v = [(x - m) / sd for x in fn(contexts, prompts, replies)]
            total = v if total is None else [a + b for a, b in zip(total, v)]
        return total


def compare_rewards(rewards: dict, run_dir, seed: int = 0):
    """Held-out pairwise accuracy of several reward functions on the *same* held-out preference
    pairs (the reward model's test split), with 95% intervals, next to the length baseline: the
    side-by-side table of stage 4."""
    import pandas as pd

    prefs = load_preferences(run_dir)
    train_df, test_df = split_preferences(prefs, 0.2, seed)
    rows = []
    for name, fn in rewards.items():
        acc = accuracy_ci(pairwise_outcomes(fn, test_df), test_df, seed=seed)
        rows.append({"reward": name, "held-out accuracy": acc[0], "ci_low": acc[1], "ci_high": acc[2]})
    rule, base = length_baseline(train_df, test_df)
    acc = accuracy_ci(base, test_df, seed=seed)
    rows.append({"reward": f"baseline: {rule}", "held-out accuracy": acc[0], "ci_low": acc[1], "ci_high": acc[2]})
    out = pd.DataFrame(rows).set_index("reward")
    out["pairs"] = len(test_df)
    return out.round(3)


def init_reward_model(twin_path, dtype=None):
    """The twin with a one-number head: ``AutoModelForSequenceClassification(num_labels=1)``.

    A full checkpoint loads directly (the score head starts random). A LoRA twin (adapter
    folder) is merged first and its weights copied into a classifier built on the same base.
    """
    from transformers import AutoModelForSequenceClassification

    from twinlib.modeling import load_model, resolve_model_source

    where, local = resolve_model_source(twin_path)
    adapter = Path(where) / "adapter_config.json"
    if not adapter.exists():
        return AutoModelForSequenceClassification.from_pretrained(where, num_labels=1, dtype=dtype, local_files_only=local)
    base = json.loads(adapter.read_text(encoding="utf-8"))["base_model_name_or_path"]
    base_where, base_local = resolve_model_source(base)
    causal, _ = load_model(where, device="cpu", dtype=dtype, merge_adapter=True)
    model = AutoModelForSequenceClassification.from_pretrained(base_where, num_labels=1, dtype=dtype, local_files_only=base_local)
    missing, _unexpected = model.load_state_dict(causal.state_dict(), strict=False)
    head = {n for n, _ in model.named_parameters() if not any(n.startswith(p) for p in _backbone_prefixes(model))}
    if set(missing) - head:
        raise RuntimeError(f"could not copy the twin's weights into the reward model: missing {sorted(set(missing) - head)[:5]}")
    del causal
    return model


def _backbone_prefixes(model) -> list[str]:
    return [model.base_model_prefix + "."] if getattr(model, "base_model_prefix", "") else []


def train_reward_model(run_dir, profile="tiny", preferences_or_records=None, base_model_path=None,
                       overwrite: bool = False, epochs: float = 3.0, max_steps: int = -1,
                       learning_rate: float | None = None, batch_size: int | None = None,
                       margin_scale: float | None = 1.0, test_fraction: float = 0.2, seed: int = 0,
                       base_model: str | None = None, log=print, max_pairs: int | None = None) -> dict:
    """Train the reward model of a run and save it to ``models/reward`` (with ``reward.json``).

    ``preferences_or_records``: preferences or rankings in any form :func:`load_preferences`
    takes (default: the run's ``rankings.jsonl``). ``base_model_path``: the twin to start from
    (default: ``models/refined``, else ``models/sft``). The pairs are split by conversation;
    the held-out pairwise accuracy is reported (``test_accuracy``), next to the training one.
    ``margin_scale=None`` trains without margins. ``max_pairs`` caps the training pairs (a seeded
    sample: k candidates give k(k−1)/2 pairs per ranking, many of them near-duplicates). An existing
    ``models/reward`` is reused unless ``overwrite=True``.
    """
    import torch
    from trl import RewardConfig, RewardTrainer

    from twinlib.modeling import cpu_threads, later_stage_profile, load_tokenizer, pick_device, trainer_precision_kwargs

    run = RunDir(run_dir)
    prof = later_stage_profile(profile, run, base_model)
    out = run.model("reward")
    done = existing_model(out, "reward.json", overwrite, log)
    if done is not None:
        return done
    twin = Path(base_model_path) if base_model_path else resolve_start_model(run, "refined", log)
    prefs = load_preferences(run if preferences_or_records is None else preferences_or_records)
    if len(prefs) == 0:
        raise ValueError("no preference pairs: rank some candidates in stage 3 (03_iterative_refinement.ipynb) first; "
                         "a ranking needs at least two candidates with different ranks.")
    train_df, test_df = split_preferences(prefs, test_fraction, seed)
    if max_pairs and len(train_df) > max_pairs:
        train_df = train_df.sample(n=max_pairs, random_state=seed).reset_index(drop=True)
    log(f"reward model: {len(prefs)} preference pairs → {len(train_df)} for training, {len(test_df)} held out "
        f"({train_df['prompt'].nunique()} / {test_df['prompt'].nunique()} messages)")
    device = pick_device()
    lr = learning_rate or (1e-4 if prof.lora else 1e-3)
    bs = batch_size or (8 if prof.lora else 16)
    tok = load_tokenizer(twin)
    tok.padding_side = "right"
    dtype = torch.float32 if device == "cpu" or not prof.lora else None
    model = init_reward_model(twin, dtype=dtype)
    peft_config = None
    if prof.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=prof.lora_r, lora_alpha=prof.lora_alpha, lora_dropout=prof.lora_dropout,
                                 target_modules="all-linear", task_type="SEQ_CLS")
    t0 = time.time()
    with atomic_model_dir(out, overwrite) as tmp, cpu_threads(prof, model, device):
        args = RewardConfig(
            output_dir=str(tmp / "_trainer"), num_train_epochs=epochs, max_steps=max_steps, learning_rate=lr,
            per_device_train_batch_size=bs, logging_steps=1, disable_tqdm=True, save_strategy="no", eval_strategy="no",
            max_length=prof.max_length, seed=seed, disable_dropout=True, dataset_num_proc=None,
            **trainer_precision_kwargs(device),
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=preferences_to_dataset(train_df, tok, prof.max_length, margin_scale=margin_scale),
                                processing_class=tok, peft_config=peft_config)
        quiet_trainer(trainer, "reward model")
        trainer.train()
        trained = trainer.model
        if prof.lora:
            trained = trained.merge_and_unload()
        trained.save_pretrained(tmp)
        tok.padding_side = "left"
        tok.save_pretrained(tmp)
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        history = [h for h in trainer.state.log_history if "loss" in h]
        del trainer, trained, model
        scorer = RewardModelScorer(tmp, device=device, max_length=prof.max_length)
        test_out = pairwise_outcomes(scorer, test_df)
        acc, acc_lo, acc_hi = accuracy_ci(test_out, test_df, seed=seed)
        rule, base_out = length_baseline(train_df, test_df)
        base_acc = accuracy_ci(base_out, test_df, seed=seed) if len(base_out) else (None, None, None)
        summary = {
            "start_model": run.relative(twin), "pairs": len(prefs), "train_pairs": len(train_df), "test_pairs": len(test_df),
            "train_messages": int(train_df["prompt"].nunique()), "test_messages": int(test_df["prompt"].nunique()),
            "train_accuracy": pairwise_accuracy(scorer, train_df),
            "test_accuracy": acc if len(test_out) else None, "test_accuracy_ci_low": acc_lo, "test_accuracy_ci_high": acc_hi,
            "length_baseline_rule": rule, "length_baseline_accuracy": base_acc[0],
            "length_baseline_ci_low": base_acc[1], "length_baseline_ci_high": base_acc[2],
            "margin_scale": margin_scale, "max_length": prof.max_length, "learning_rate": lr, "batch_size": bs, "epochs": epochs,
            "seconds": round(time.time() - t0, 1), "history": history,
            "rankers": sorted({str(r) for r in prefs["ranker"]}) if "ranker" in prefs.columns else None,
        }
        summary["trusted"], summary["verdict"] = trust_verdict(summary)
        (tmp / "reward.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    log(f"reward model saved to {run.relative(out)}: pairwise accuracy {summary['train_accuracy']:.2f} on its "
        f"{len(train_df)} training pairs (the held-out accuracy is what counts: trust_verdict)")
    return summary


# --------------------------------------------------------------------------- stage-4 helpers


def quiet_trainer(trainer, label: str) -> None:
    """A TRL trainer of stage 4 reports progress as plain lines (:mod:`twinlib.progress`), not as a
    tqdm widget or a printed dict per logged step."""
    from transformers.trainer_callback import PrinterCallback

    from twinlib.progress import trainer_callback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(trainer_callback(label))


def resolve_start_model(run, start_from: str = "refined", log=print) -> Path:
    """The model a stage-4 step starts from: ``models/<start_from>`` of the run, or a folder.

    ``refined`` falls back to ``sft`` (saying so) when stage 3 did not write a refined model.
    """
    cand = Path(start_from)
    if cand.is_dir() and has_model(cand):
        return cand
    path = run.model(start_from)
    if has_model(path):
        return path
    if start_from == "refined" and has_model(run.model("sft")):
        log(f"{path} does not exist (stage 3 wrote no refined model): starting from models/sft instead.")
        return run.model("sft")
    raise FileNotFoundError(
        f"{path} is missing. It is written by "
        f"{'02_supervised_finetuning.ipynb' if start_from == 'sft' else '03_iterative_refinement.ipynb'}; run that "
        f"notebook on {run.root} first, or set start_from to 'sft', 'refined' or a model folder."
    )


def existing_model(out: Path, summary_name: str, overwrite: bool, log=print) -> dict | None:
    """An existing model folder is reused (its summary returned) unless ``overwrite``: models are
    never replaced silently."""
    out = Path(out)
    if overwrite or not has_model(out):
        return None
    summary_file = out / summary_name
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.exists() else {}
    summary["reused"] = True
    log(f"{out} already exists: reusing it (set overwrite=True to train it again).")
    return summary


@contextlib.contextmanager
def atomic_model_dir(out, overwrite: bool = False):
    """Write a model folder atomically: yield a temporary folder beside ``out``, move it into place
    when the block succeeds, delete it when it fails. An existing ``out`` is only replaced with
    ``overwrite=True``."""
    out = Path(out)
    if has_model(out) and not overwrite:
        raise FileExistsError(f"{out} already holds a model; pass overwrite=True to replace it.")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.replace(old)
    tmp.replace(out)
    shutil.rmtree(old, ignore_errors=True)
