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


# --------------------------------------------------------------------------- training


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
                       base_model: str | None = None, log=print) -> dict:
    """Train the reward model of a run and save it to ``models/reward`` (with ``reward.json``).

    ``preferences_or_records``: preferences or rankings in any form :func:`load_preferences`
    takes (default: the run's ``rankings.jsonl``). ``base_model_path``: the twin to start from
    (default: ``models/refined``, else ``models/sft``). The pairs are split by conversation;
    the held-out pairwise accuracy is reported (``test_accuracy``), next to the training one.
    ``margin_scale=None`` trains without margins. An existing ``models/reward`` is reused unless
    ``overwrite=True``.
    """
    import torch
    from trl import RewardConfig, RewardTrainer

    from twinlib.modeling import later_stage_profile, load_tokenizer, pick_device, trainer_precision_kwargs

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
    with atomic_model_dir(out, overwrite) as tmp:
        args = RewardConfig(
            output_dir=str(tmp / "_trainer"), num_train_epochs=epochs, max_steps=max_steps, learning_rate=lr,
            per_device_train_batch_size=bs, logging_steps=1, save_strategy="no", eval_strategy="no",
            max_length=prof.max_length, seed=seed, disable_dropout=True, dataset_num_proc=None,
            **trainer_precision_kwargs(device),
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=preferences_to_dataset(train_df, tok, prof.max_length, margin_scale=margin_scale),
                                processing_class=tok, peft_config=peft_config)
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
        summary = {
            "start_model": str(twin), "pairs": len(prefs), "train_pairs": len(train_df), "test_pairs": len(test_df),
            "train_messages": int(train_df["prompt"].nunique()), "test_messages": int(test_df["prompt"].nunique()),
            "train_accuracy": pairwise_accuracy(scorer, train_df), "test_accuracy": pairwise_accuracy(scorer, test_df),
            "margin_scale": margin_scale, "max_length": prof.max_length, "learning_rate": lr, "batch_size": bs, "epochs": epochs,
            "seconds": round(time.time() - t0, 1), "history": history,
            "rankers": sorted({str(r) for r in prefs["ranker"]}) if "ranker" in prefs.columns else None,
        }
        (tmp / "reward.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    acc = summary["test_accuracy"]
    log(f"reward model saved to {out}: pairwise accuracy {summary['train_accuracy']:.2f} on training pairs, "
        + (f"{acc:.2f} on {len(test_df)} held-out pairs (0.5 = coin flip)" if acc is not None else
           "no held-out pairs (too few ranked messages to hold any out)"))
    return summary


# --------------------------------------------------------------------------- stage-4 helpers


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
