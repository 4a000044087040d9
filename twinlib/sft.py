"""Stage 2: supervised fine-tuning of the twin on the person's own replies.

The recipe, in the order :func:`train_sft` runs it:

1. Load the pairs written by stage 1 (:func:`load_splits`).
2. Lay every pair out as a conversation with :func:`twinlib.modeling.fit_messages` (the one
   layout shared with generation: system prompt, earlier turns, the message being answered)
   and give it to TRL in its *conversational prompt-completion* format
   (:func:`to_sft_dataset`): the prompt is the conversation so far, the completion is the
   person's reply. TRL then computes the loss on the reply and its end-of-turn token only;
   the prompt and context tokens are masked (label ``-100``).
3. Train with TRL's ``SFTTrainer`` (:func:`sft_config`): validation loss at regular steps,
   the checkpoint with the best validation loss is kept and training stops early when it
   stops improving. Real checkpoints are trained with LoRA (peft); the adapter is merged so
   that ``models/sft`` is a plain checkpoint every later stage loads with
   :func:`twinlib.modeling.load_model` (the adapter alone is kept in ``models/sft/adapter``).
4. Save atomically: the model is written to a temporary folder and renamed to ``models/sft``
   only when complete. A trained model is never overwritten silently: re-running reuses it,
   and ``overwrite=True`` moves the old one aside to ``models/sft.bak-<time>``.

Files in ``models/sft``: the model and tokenizer, ``twin.json`` (what it is, the profile),
``train_metrics.json`` (losses, steps, timings), ``log_history.json`` (the Trainer's log) and
``loss_curve.png``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from twinlib.modeling import (
    SYSTEM_PROMPT,
    Profile,
    as_profile,
    count_parameters,
    cpu_threads,
    distributed_state,
    end_of_turn_ids,
    fit_messages,
    get_profile,
    has_model,
    load_model,
    lora_config,
    pick_device,
    pick_dtype,
    prepare_base_model,
    trainer_precision_kwargs,
    weights_in_sync,
)
from twinlib.rundir import RunDir, check_fingerprint, data_fingerprint

STAGE1 = "notebook 01 (01_collect_data.ipynb)"
METRICS_FILE = "train_metrics.json"
LOG_FILE = "log_history.json"
CURVE_FILE = "loss_curve.png"
PROMPT_TESTS_FILE = "sft_prompt_tests.csv"
CPU_EVAL_SAMPLES = 128  # validation examples per evaluation when a LoRA (real) model trains on a CPU


# --------------------------------------------------------------------------- data


def load_splits(run_dir) -> dict:
    """The stage-1 pairs as ``{"train", "validation", "test"}`` pandas DataFrames.

    Reads the Hugging Face dataset in ``run_dir/dataset`` or, failing that, ``pairs.csv``;
    fails with a message naming the notebook to run when neither exists.
    """
    import pandas as pd

    run = RunDir(run_dir)
    if run.dataset.exists():
        from datasets import load_from_disk

        dd = load_from_disk(str(run.dataset))
        splits = {name: dd[name].to_pandas() for name in dd}
    else:
        run.require(run.pairs_csv, STAGE1)
        df = pd.read_csv(run.pairs_csv, keep_default_na=False, dtype={"prompt": str, "response": str, "context": str})
        if "split" not in df.columns:
            raise ValueError(f"{run.pairs_csv} has no 'split' column: re-run {STAGE1} to split it.")
        splits = {name: g.reset_index(drop=True) for name, g in df.groupby("split")}
    for name in ("train", "validation", "test"):
        splits.setdefault(name, pd.DataFrame(columns=["prompt", "response", "context"]))
    if len(splits["train"]) == 0:
        raise ValueError(f"the training split of {run.root} is empty: stage 1 found no replies of yours to learn from.")
    return splits


def _rows(pairs) -> list[dict]:
    if hasattr(pairs, "to_dict") and hasattr(pairs, "columns"):  # pandas
        return pairs.to_dict("records")
    if hasattr(pairs, "to_list"):  # datasets.Dataset
        return pairs.to_list()
    return list(pairs)


def to_sft_dataset(pairs, tokenizer=None, max_length: int | None = None, system: str | None = SYSTEM_PROMPT):
    """Pairs (a DataFrame, a ``datasets.Dataset`` split or a list of dicts) in TRL's format.

    Each row becomes ``{"prompt": [system, ...turns, {"role": "user", ...}], "completion":
    [{"role": "assistant", "content": reply}]}``: TRL's *conversational prompt-completion*
    format, for which ``SFTTrainer`` masks the prompt out of the loss (``completion_only_loss``).
    With a ``tokenizer`` and ``max_length`` the oldest context turns are dropped until the
    templated conversation fits, as generation does, so no reply is cut for want of room.
    Rows with an empty reply are skipped.
    """
    from datasets import Dataset

    prompts, completions = [], []
    for row in _rows(pairs):
        reply = row.get("response")
        if not isinstance(reply, str) or not reply.strip():
            continue
        if tokenizer is not None:
            msgs = fit_messages(tokenizer, row.get("context"), row["prompt"], reply=reply, max_tokens=max_length, system=system)
        else:
            from twinlib.modeling import build_messages

            msgs = build_messages(row.get("context"), row["prompt"], reply=reply, system=system)
        prompts.append(msgs[:-1])
        completions.append(msgs[-1:])
    return Dataset.from_dict({"prompt": prompts, "completion": completions})


def prepare_base(run_dir, profile: str | Profile = "tiny", splits: dict | None = None, seed: int = 0) -> str:
    """The checkpoint stage 2 starts from: the profile's hub id/folder (checked to be loadable)
    or, for the tiny profile, the tiny model built in ``models/base`` from the training texts."""
    run = RunDir(run_dir)
    prof = as_profile(profile, run=run)
    if prof.base_model == "tiny" and not has_model(run.model("base")):
        train = (splits or load_splits(run))["train"]
        out = prepare_base_model(prof, list(train["prompt"]) + list(train["response"]), run.model("base"), seed=seed)
        meta = Path(out) / "twin.json"  # its tokenizer was trained on this data: record which
        info = json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}
        meta.write_text(json.dumps({**info, "data_fingerprint": data_fingerprint(run)}, indent=2, default=str))
        return out
    if prof.base_model == "tiny":
        check_fingerprint(run, run.model("base"), "notebook 02 (02_supervised_finetuning.ipynb)")
    return prepare_base_model(prof, [], run.model("base"), seed=seed)


def loss_mask_preview(tokenizer, row, max_length: int | None = None, system: str | None = SYSTEM_PROMPT):
    """How one pair is seen in training: the masked part (system prompt, context, the message
    answered: label ``-100``) and the trained part (the reply and its end-of-turn marker).

    Returns a two-row DataFrame ``part, tokens, text``; it tokenizes the way TRL does
    (prompt with the assistant turn opened vs the whole conversation).
    """
    import pandas as pd

    msgs = fit_messages(tokenizer, row.get("context"), row["prompt"], reply=row["response"], max_tokens=max_length, system=system)
    prompt = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(msgs, tokenize=False)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    f_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    n = 0
    while n < min(len(p_ids), len(f_ids)) and p_ids[n] == f_ids[n]:
        n += 1
    return pd.DataFrame({
        "part": ["masked: system prompt, context, message answered (label -100)", "trained on: your reply + end of turn"],
        "tokens": [n, len(f_ids) - n],
        "text": [tokenizer.decode(f_ids[:n]), tokenizer.decode(f_ids[n:])],
    })


# --------------------------------------------------------------------------- configuration


def plan_steps(profile: Profile, n_train: int, max_steps: int | None = None, processes: int = 1) -> int:
    """Optimizer steps of a run.

    ``max_steps`` (> 0) decides alone. Otherwise the profile's ``sft_epochs`` over ``n_train``
    examples, capped at its ``sft_max_steps`` when that is > 0 (so a big export does not make
    the CPU profile run for an hour). With several ``processes`` (GPUs under ``accelerate
    launch``) each step sees ``processes`` batches, so an epoch takes fewer steps.
    """
    if max_steps is not None and max_steps > 0:
        return int(max_steps)
    per_step = profile.sft_batch_size * profile.sft_grad_accum * max(1, processes)
    per_epoch = math.ceil(max(1, n_train) / per_step)
    steps = max(1, math.ceil(per_epoch * profile.sft_epochs))
    if profile.sft_max_steps and profile.sft_max_steps > 0:
        steps = min(steps, int(profile.sft_max_steps))
    return steps


def sft_config(
    profile: Profile,
    out_dir,
    n_train: int,
    max_steps: int | None = None,
    seed: int = 0,
    n_evals: int = 8,
    device: str | None = None,
    progress: bool = True,
    **overrides,
):
    """The ``trl.SFTConfig`` of a profile: hardware-aware precision, regular evaluation, best checkpoint.

    Evaluation and checkpointing happen ``n_evals`` times over the run; the checkpoint with the
    lowest validation loss is loaded at the end (``load_best_model_at_end``). Any keyword of
    ``SFTConfig`` can be overridden.
    """
    from trl import SFTConfig

    steps = plan_steps(profile, n_train, max_steps, processes=distributed_state().num_processes)
    every = max(1, math.ceil(steps / max(1, n_evals)))
    kw = dict(
        output_dir=str(out_dir),
        max_steps=steps,
        per_device_train_batch_size=profile.sft_batch_size,
        per_device_eval_batch_size=profile.sft_batch_size * 2,
        gradient_accumulation_steps=profile.sft_grad_accum,
        learning_rate=profile.sft_learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.01,
        max_length=profile.max_length,
        completion_only_loss=True,  # the loss covers the reply (and its end-of-turn) only
        eval_strategy="steps",
        eval_steps=every,
        save_strategy="steps",
        save_steps=every,
        save_total_limit=2,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=max(1, min(10, every // 2)),
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every weight (or LoRA adapter) is used: skip the extra DDP graph pass
        disable_tqdm=True,  # progress comes as plain lines (twinlib.progress), readable in any viewer
        include_num_input_tokens_seen="non_padding",
        **trainer_precision_kwargs(device),
    )
    # batches of similar length: about a third less padding to compute on chat-sized examples
    fields = SFTConfig.__dataclass_fields__
    if "train_sampling_strategy" in fields:
        kw["train_sampling_strategy"] = "group_by_length"
    elif "group_by_length" in fields:  # transformers < 5.3
        kw["group_by_length"] = True
    kw.update(overrides)
    return SFTConfig(**kw)


def trainer_arguments(profile: Profile, n_train: int, max_steps: int | None = None, device: str | None = None):
    """The settings stage 2 trains with, one row each, with what they do: what to read before
    pressing "run" (the same values :func:`sft_config` passes to TRL's ``SFTConfig``)."""
    import pandas as pd

    steps = plan_steps(profile, n_train, max_steps)
    per_step = profile.sft_batch_size * profile.sft_grad_accum
    prec = trainer_precision_kwargs(device)
    precision = "bf16" if prec.get("bf16") else "fp16" if prec.get("fp16") else "fp32"
    rows = [
        ("model", f"{profile.base_model}" + (" (LoRA, r=%d)" % profile.lora_r if profile.lora else " (all weights)"),
         "what is trained"),
        ("learning rate", f"{profile.sft_learning_rate:g}, cosine decay, 5% warm-up", "size of each step"),
        ("batch", f"{profile.sft_batch_size} pairs × {profile.sft_grad_accum} accumulation = {per_step} per step",
         "pairs averaged into one step"),
        ("length", f"at most {profile.sft_epochs:g} epochs = {steps} steps over {n_train} training pairs"
         + (f" (capped at {profile.sft_max_steps})" if profile.sft_max_steps and profile.sft_max_steps > 0 else ""),
         "planned steps"),
        ("stops early", f"after {profile.sft_patience} evaluations without a better validation loss"
         if profile.sft_patience else "never", "convergence"),
        ("time budget", f"{profile.sft_time_budget_min:g} min" if profile.sft_time_budget_min else "none",
         "the best checkpoint so far is kept when it runs out; if the planned steps will not fit, the "
         "learning-rate schedule is shortened to the steps that do"),
        ("evaluations", f"{profile.sft_evals} over the planned steps (every {max(1, math.ceil(steps / profile.sft_evals))})",
         "validation loss, checkpoint"),
        ("window", f"{profile.max_length} tokens (oldest turns dropped first)", "what the model sees of a conversation"),
        ("loss", "on the reply and its end-of-turn token only", "completion_only_loss"),
        ("precision", precision, "fp32 on a CPU, bf16/fp16 on a GPU"),
    ]
    return pd.DataFrame(rows, columns=["setting", "value", "what it does"]).set_index("setting")


# --------------------------------------------------------------------------- model folder


def read_metrics(model_dir) -> dict:
    """The ``train_metrics.json`` of a trained model folder (``{}`` when it has none)."""
    f = Path(model_dir) / METRICS_FILE
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else {}


def read_log_history(model_dir) -> list[dict]:
    """The Trainer's log history saved with a model (``[]`` when it has none)."""
    f = Path(model_dir) / LOG_FILE
    return json.loads(f.read_text(encoding="utf-8")) if f.exists() else []


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def _publish(tmp: Path, final: Path) -> Path | None:
    """Rename ``tmp`` to ``final``; an existing ``final`` is moved to ``final.bak-<time>`` first."""
    backup = None
    if final.exists():
        backup = final.with_name(f"{final.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while backup.exists():
            backup = final.with_name(f"{final.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            n += 1
        final.rename(backup)
    tmp.rename(final)
    return backup


# --------------------------------------------------------------------------- training


@contextmanager
def label_positions_only():
    """Score only the positions that have a label while training (TRL's fused LM head, compact).

    TRL's SFT loss runs the LM head through a chunked kernel. On Triton (CUDA) devices it
    projects only the positions whose label is not ``-100`` (the reply, with completion-only
    loss); elsewhere it projects every position, because under ``torch.compile`` or XLA a
    number of positions that changes from batch to batch would recompile. We run eagerly, so
    scoring the labelled positions only is safe everywhere, and on a CPU it halves the time of a
    step of the tiny model (the LM head over the whole vocabulary is most of its work and only
    about a fifth of the tokens are reply tokens; ``bench/sft_bench.py`` measures it). The loss is
    the same (``tests/test_sft.py`` checks it). A TRL without this switch is left as it is.
    """
    try:
        import trl.trainer.utils as trl_utils
    except ImportError:  # pragma: no cover
        yield
        return
    original = getattr(trl_utils, "_use_triton", None)
    if original is None:  # another TRL version: nothing to switch
        yield
        return
    trl_utils._use_triton = lambda device: True
    try:
        yield
    finally:
        trl_utils._use_triton = original


def time_budget_callback(minutes: float, fit_schedule: bool = True, every: int = 25):
    """A ``TrainerCallback`` that ends training once ``minutes`` of training have passed.

    With ``fit_schedule`` the learning-rate schedule is fitted to the budget: every ``every``
    steps, once 15% of the budget is spent, the callback measures the seconds per step so far
    (evaluations and saves included) and, when the planned steps would not fit in the minutes
    left, shortens the cosine schedule to the steps that do (``planned`` records it; refitted
    when the rate drops, never lengthened, so the learning rate never rises again). Training then ends at the
    fitted step with the learning rate annealed, instead of being cut at full rate: on the Chinese
    sample, 12 planned epochs converged after 11 within the budget, while on the English one the
    budget cut them at 9.8 epochs at a high rate and the model was worse than 8 annealed epochs
    (validation loss 1.03 against 0.96). The step that crosses the budget or the fitted end is
    evaluated and saved, so the best-checkpoint rule sees it; ``fired`` says afterwards whether
    the budget ended the run.
    """
    from transformers import TrainerCallback

    class TimeBudget(TrainerCallback):
        def __init__(self):
            self.seconds = float(minutes) * 60
            self.fired = False
            self.t0 = None
            self.planned = None  # the schedule's length in steps, once fitted
            self.plan = None  # the length it was planned with

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.monotonic()

        def _stop(self, args, control):
            self.fired = True
            control.should_training_stop = True
            control.should_evaluate = args.eval_strategy != "no"
            control.should_save = args.save_strategy != "no"

        def _fit(self, state, lr_scheduler, elapsed):
            from functools import partial

            lambdas = list(getattr(lr_scheduler, "lr_lambdas", None) or [])  # one per parameter group
            if not lambdas or not all(isinstance(f, partial) and "num_training_steps" in f.keywords for f in lambdas):
                return  # not a schedule we know how to refit
            if self.plan is None:
                self.plan = lambdas[0].keywords["num_training_steps"]
            step, total = state.global_step, lambdas[0].keywords["num_training_steps"]
            fits = min(self.plan, step + int((self.seconds - elapsed) / (elapsed / step)))
            # only ever shorter: a longer cosine would raise the learning rate again mid-anneal
            if step < fits < total * 0.98:
                lr_scheduler.lr_lambdas = [partial(f.func, **{**f.keywords, "num_training_steps": fits}) for f in lambdas]
                self.planned = state.max_steps = fits  # the progress line counts to the fitted end

        def on_step_end(self, args, state, control, lr_scheduler=None, **kw):
            if self.seconds <= 0 or self.t0 is None:
                return control
            # transformers 5 hands callbacks the scheduler; where a version does not, the trainer has it
            lr_scheduler = lr_scheduler or getattr(getattr(self, "trainer", None), "lr_scheduler", None)
            elapsed = time.monotonic() - self.t0
            if elapsed > self.seconds or (self.planned is not None and state.global_step >= self.planned):
                self._stop(args, control)
            elif (fit_schedule and lr_scheduler is not None and state.global_step % every == 0
                  and elapsed > 0.15 * self.seconds):  # a rate measured over the start's evaluation and warm-up
                self._fit(state, lr_scheduler, elapsed)
            return control

    return TimeBudget()


def pretrain_on_conversations(model, tokenizer, profile: Profile, train_ds, out_dir, minutes: float, seed: int = 0,
                              progress: bool = True):
    """Continued pre-training: ``minutes`` of next-token training on *whole* training conversations.

    The same examples as SFT, but the loss covers every token — the friends' turns, the messages
    answered and the replies — so the model first learns the language of the person's circle,
    then (in SFT) who says what. Only training-split conversations are read, so nothing of the
    validation or test split leaks in. Returns ``(model, summary)``.
    """
    trainer = build_trainer(model, tokenizer, profile, train_ds, None, out_dir, seed=seed, patience=None,
                            progress=progress, time_budget_min=minutes, completion_only_loss=False,
                            eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                            n_evals=1, eval_on_start=False)
    t0 = time.time()
    result = trainer.train()
    shutil.rmtree(out_dir, ignore_errors=True)
    return trainer.model, {"minutes": minutes, "steps": trainer.state.global_step, "train_loss": result.training_loss,
                           "seconds": round(time.time() - t0, 1)}


def stop_reason(steps: int, max_steps: int, budget_fired: bool, patience: int | None) -> str:
    """Why training ended, in words for the notebook."""
    if budget_fired:
        return "time budget spent"
    if steps < max_steps:
        return f"converged: the validation loss did not improve for {patience} evaluations in a row"
    return "planned epochs done"


def build_trainer(model, tokenizer, profile: Profile, train_ds, eval_ds, out_dir, max_steps=None, seed=0,
                  patience: int | None = 3, progress: bool = True, time_budget_min: float | None = None,
                  **config_overrides):
    """An ``SFTTrainer`` for ``model`` with :func:`sft_config`, LoRA when the profile asks for it,
    early stopping after ``patience`` evaluations without improvement (``None`` or 0: off) and,
    with ``time_budget_min`` > 0, a time budget (:func:`time_budget_callback`, in ``trainer.budget``)."""
    from transformers import EarlyStoppingCallback
    from trl import SFTTrainer

    config_overrides.setdefault("n_evals", profile.sft_evals)
    cfg = sft_config(profile, out_dir, n_train=len(train_ds), max_steps=max_steps, seed=seed,
                     progress=progress, **config_overrides)
    callbacks = [EarlyStoppingCallback(early_stopping_patience=patience)] if patience else []
    # several processes would each fit their own schedule and could stop a step apart (and hang in
    # an all-reduce): there only the hard stop applies
    budget = (time_budget_callback(time_budget_min, fit_schedule=distributed_state().num_processes == 1)
              if time_budget_min and time_budget_min > 0 else None)
    if budget is not None:
        callbacks.append(budget)
    trainer = SFTTrainer(
        model=model,
        args=cfg,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora_config(profile) if profile.lora else None,
        callbacks=callbacks,
    )
    trainer.budget = budget
    if budget is not None:
        budget.trainer = trainer  # for its learning-rate schedule, made when training starts
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it would print every log dict
    if progress:
        from twinlib.progress import trainer_callback

        trainer.add_callback(trainer_callback(progress if isinstance(progress, str) else "training"))
    return trainer


def train_sft(
    run_dir,
    profile: str | Profile = "tiny",
    base_model_path: str | None = None,
    overwrite: bool = False,
    max_steps: int | None = None,
    seed: int = 0,
    patience: int | None = None,
    max_eval_samples: int | None = None,
    progress: bool = True,
    time_budget_min: float | None = None,
    pretrain_min: float | None = None,
    **config_overrides,
) -> dict:
    """Fine-tune the twin on the run's training pairs and save it to ``models/sft``.

    ``profile`` is a preset name or a :class:`~twinlib.modeling.Profile`; ``base_model_path``
    the checkpoint to start from (default: the profile's, the tiny model being built in
    ``models/base`` on first use). ``max_steps`` (> 0) overrides the profile's length.

    Training runs until the validation loss stops improving (``patience`` evaluations in a row
    without a better one; default the profile's ``sft_patience``), the time budget is spent
    (``time_budget_min``; default the profile's ``sft_time_budget_min``) or the planned epochs
    are done, whichever comes first; the checkpoint with the best validation loss is the one
    saved. ``stop_reason`` in the metrics says which ended it.

    ``pretrain_min`` (default the profile's ``sft_pretrain_min``; 0 = off) first spends that many
    minutes on :func:`pretrain_on_conversations`: the language of the person's circle, every turn
    of the training conversations, before learning the person's replies.

    If ``models/sft`` already holds a model it is **reused** (its saved metrics are returned
    with ``"reused": True``) unless ``overwrite=True``, which trains again and moves the old
    model to ``models/sft.bak-<time>``. Returns the training metrics (also written to
    ``models/sft/train_metrics.json``).
    """
    import torch

    run = RunDir(run_dir)
    run.ensure()
    final = run.model("sft")
    if has_model(final) and not overwrite:
        check_fingerprint(run, final, "notebook 02 (02_supervised_finetuning.ipynb)")
        metrics = read_metrics(final)
        metrics.update(reused=True, model_dir=run.relative(final))
        wanted = as_profile(profile, run=run).name  # "auto" stands for what stage 2 used
        if metrics.get("profile") and metrics["profile"] != wanted:
            print(f"note: {final} was trained with profile {metrics['profile']!r}, not {wanted!r}; "
                  "it is reused as it is. Pass overwrite=True to train with the new settings.")
        return metrics
    if final.exists() and not has_model(final) and any(final.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{final} exists but holds no model. Move it away, or pass overwrite=True to replace it "
            "(it will be kept as a backup)."
        )

    # One process, or one per GPU under `accelerate launch`: the main process builds, writes and
    # publishes; the others train alongside it and wait.
    dist = distributed_state()
    prof = as_profile(profile, run=run)
    splits = load_splits(run)
    t0 = time.time()
    with dist.main_process_first():
        if not base_model_path:
            base_model_path = prepare_base(run, prof, splits, seed=seed)
    device = str(dist.device) if dist.num_processes > 1 else pick_device()
    kind = device.split(":")[0]
    # LoRA keeps the frozen base in the half precision that fits the GPU; full fine-tuning keeps fp32
    # master weights and lets mixed precision do the rest.
    dtype = pick_dtype(kind) if prof.lora else torch.float32
    model, tok = load_model(base_model_path, device=device, dtype=dtype)
    model.train()

    train_ds = to_sft_dataset(splits["train"], tok, prof.max_length)
    val_df = splits["validation"]
    if len(val_df) == 0:  # no validation split: hold out a slice of training for early stopping
        val_df = splits["train"].sample(n=max(1, len(splits["train"]) // 10), random_state=seed)
    if max_eval_samples is None:  # a real model on a CPU: each validation pass is costly, so a smaller sample
        max_eval_samples = CPU_EVAL_SAMPLES if kind == "cpu" and prof.lora else 512
    if max_eval_samples and len(val_df) > max_eval_samples:
        val_df = val_df.sample(n=max_eval_samples, random_state=seed)
    eval_ds = to_sft_dataset(val_df, tok, prof.max_length)

    # whatever the profile: torch's default thread count is the worst on a shared machine (restored below)
    threads = ExitStack()
    threads.enter_context(cpu_threads(prof, model, kind))
    patience = prof.sft_patience if patience is None else patience
    budget_min = prof.sft_time_budget_min if time_budget_min is None else time_budget_min

    # fixed names: every process must agree on them (a crashed run's leftovers are cleared first)
    tmp, ckpt = run.models / ".sft.tmp", run.models / ".sft.checkpoints"
    if dist.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(ckpt, ignore_errors=True)
    dist.wait_for_everyone()
    metrics: dict = {}
    try:
        pretrain = {}
        minutes = prof.sft_pretrain_min if pretrain_min is None else pretrain_min
        if minutes and minutes > 0:
            model, pretrain = pretrain_on_conversations(model, tok, prof, train_ds, ckpt.with_name(".sft.pretrain"),
                                                        minutes, seed=seed, progress=progress)
        config_overrides.setdefault("eval_on_start", True)  # the untrained model's loss: step 0 of the curve
        trainer = build_trainer(model, tok, prof, train_ds, eval_ds, ckpt, max_steps=max_steps, seed=seed,
                                patience=patience, progress="SFT" if progress else False, time_budget_min=budget_min,
                                **config_overrides)
        with label_positions_only():
            result = trainer.train()
        state = trainer.state
        log_history = list(state.log_history)
        evals = [r["eval_loss"] for r in log_history if "eval_loss" in r]
        best = state.best_metric if state.best_metric is not None else (min(evals) if evals else None)
        best_step = _best_step(state)
        trained, total = count_parameters(trainer.model)
        tokens_seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        runtime = result.metrics.get("train_runtime", 0.0)
        metrics = {
            "reused": False,
            "model_dir": run.relative(final),
            "base_model": run.relative(base_model_path),
            "profile": prof.name,
            "device": device,
            "processes": dist.num_processes,
            "weights_in_sync": None if sharded(trainer) else weights_in_sync(trainer.model),  # None: one process
            "lora": prof.lora,
            "merged_adapter": bool(prof.lora),
            "n_train": len(train_ds),
            "n_validation": len(eval_ds),
            "max_steps": trainer.args.max_steps,
            "steps": state.global_step,
            "epochs": round(float(state.epoch or 0), 3),
            "stopped_early": state.global_step < trainer.args.max_steps,
            "stop_reason": stop_reason(state.global_step, trainer.args.max_steps,
                                       bool(trainer.budget and trainer.budget.fired), patience),
            "time_budget_min": budget_min,
            "schedule_steps": trainer.budget.planned if trainer.budget and trainer.budget.planned else trainer.args.max_steps,
            "patience": patience,
            "eval_steps": trainer.args.eval_steps,
            "learning_rate": trainer.args.learning_rate,
            "batch_size": trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps * dist.num_processes,
            "best_step": best_step,
            "initial_eval_loss": evals[0] if evals else None,
            "eval_loss": best,
            "train_loss": result.training_loss,
            "train_runtime_s": round(runtime, 2),
            "total_runtime_s": round(time.time() - t0, 2),
            "tokens_seen": tokens_seen,
            "tokens_per_second": round(tokens_seen / max(runtime, 1e-9), 1),
            "pretrain": pretrain,
            "trainable_parameters": trained,
            "parameters": total,
            "seed": seed,
        }
        if sharded(trainer):  # FSDP / ZeRO-3: no process holds the whole model; the Trainer gathers it (all processes)
            trainer.save_model(str(tmp / "adapter" if prof.lora else tmp))
        if dist.is_main_process:
            tmp.mkdir(parents=True, exist_ok=True)
            model_out = trainer.model
            if sharded(trainer):  # read back what the Trainer gathered, onto the CPU
                model_out = _gathered_model(tmp, base_model_path, prof, dtype)
            elif prof.lora:
                model_out.save_pretrained(tmp / "adapter")
            if prof.lora:  # keep the adapter, save the merged model: later stages load a plain checkpoint
                model_out = model_out.merge_and_unload()
            model_out.generation_config.eos_token_id = end_of_turn_ids(tok)
            model_out.generation_config.pad_token_id = tok.pad_token_id
            model_out.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            _write_json(tmp / LOG_FILE, log_history)
            _write_json(tmp / "twin.json", {
                "kind": "sft", "base_model": run.relative(base_model_path), "lora": prof.lora, "merged_adapter": bool(prof.lora),
                "data_fingerprint": data_fingerprint(run),
                "system_prompt": SYSTEM_PROMPT, "profile": asdict(prof), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            })
            from twinlib.plots import plot_loss_curves

            plot_loss_curves(log_history, tmp / CURVE_FILE, best_step=best_step)
            _write_json(tmp / METRICS_FILE, metrics)
            backup = _publish(tmp, final)
            if backup is not None:
                metrics["previous_model"] = run.relative(backup)
                _write_json(final / METRICS_FILE, metrics)
    finally:
        threads.close()
        if dist.is_main_process:
            shutil.rmtree(ckpt, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)  # only left behind if something failed
    dist.wait_for_everyone()
    return metrics


def sharded(trainer) -> bool:
    """Whether the trainer shards the model's weights over its processes (FSDP, DeepSpeed ZeRO-3),
    so that no single process holds the whole model."""
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    if getattr(trainer, "is_deepspeed_enabled", False):
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

        return bool(is_deepspeed_zero3_enabled())
    return False


def _gathered_model(folder: Path, base_model_path, prof: Profile, dtype):
    """The model ``Trainer.save_model`` gathered into ``folder`` (its ``adapter`` on the base for LoRA), on the CPU."""
    if not prof.lora:
        return load_model(folder, device="cpu", dtype=dtype)[0]
    from peft import PeftModel

    base, _ = load_model(base_model_path, device="cpu", dtype=dtype)
    return PeftModel.from_pretrained(base, folder / "adapter")


def _best_step(state) -> int | None:
    ckpt = getattr(state, "best_model_checkpoint", None)
    if ckpt:
        try:
            return int(str(ckpt).rstrip("/").rsplit("-", 1)[-1])
        except ValueError:
            pass
    evals = [(r["eval_loss"], r["step"]) for r in state.log_history if "eval_loss" in r and r.get("step")]
    return min(evals)[1] if evals else None


# --------------------------------------------------------------------------- prompt tests


def prompt_tests(
    model_dir,
    pairs,
    n_prompts: int = 4,
    n: int = 5,
    seed: int = 0,
    extra_prompts: Sequence[str] = (),
    profile: str | Profile | None = None,
    model_and_tokenizer=None,
):
    """Sample ``n`` replies of the saved model to a few held-out prompts (plus ``extra_prompts``).

    Returns a DataFrame, one row per prompt: ``prompt``, ``real reply`` (empty for your own
    prompts) and ``reply 1`` … ``reply n``, sampled with the stage settings
    (:func:`twinlib.generation.settings_for`: ``no_repeat_ngram_size=2``, batched, left padding,
    stopping at the end-of-turn token).
    """
    import pandas as pd

    from twinlib.generation import generate_replies, settings_for

    prof = as_profile(profile, run=Path(model_dir).parent.parent) if profile is not None else None
    if isinstance(extra_prompts, str):  # a papermill `-p custom_prompts '["..."]'` arrives as a string
        try:
            parsed = json.loads(extra_prompts)
        except json.JSONDecodeError:
            parsed = None
        extra_prompts = parsed if isinstance(parsed, list) else [extra_prompts] if extra_prompts.strip() else []
    model, tok = model_and_tokenizer or load_model(model_dir)
    rows = _rows(pairs)
    picked = pd.DataFrame(rows).sample(n=min(n_prompts, len(rows)), random_state=seed).to_dict("records") if rows else []
    convs = [(r.get("context"), r["prompt"]) for r in picked] + [("[]", p) for p in extra_prompts]
    real = [r.get("response", "") for r in picked] + [""] * len(extra_prompts)
    settings = settings_for(prof) if prof else None
    replies = generate_replies(model, tok, convs, n=n, settings=settings, seed=seed,
                               max_prompt_tokens=prof.max_prompt_tokens if prof else 192)
    table = pd.DataFrame({"prompt": [p for _, p in convs], "real reply": real})
    for i in range(n):
        table[f"reply {i + 1}"] = [r[i] if i < len(r) else "" for r in replies]
    return table


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> dict:
    """``python -m twinlib.sft --run-dir runs/me --profile gpu``: stage 2 without the notebook.

    The same entry point runs on several GPUs with Hugging Face Accelerate (data parallel, one
    process per GPU): ``accelerate launch --multi_gpu --num_processes 4 -m twinlib.sft --run-dir
    runs/me --profile gpu``. Notebook 02 then finds and reuses the trained ``models/sft``.
    """
    import argparse

    ap = argparse.ArgumentParser(prog="python -m twinlib.sft", description=main.__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", required=True, help="the run directory written by notebook 01")
    ap.add_argument("--profile", default="tiny", help="tiny | t4 | gpu | auto (default: tiny)")
    ap.add_argument("--base-model", default="", help="a Hugging Face causal-LM id or local folder (default: the profile's)")
    ap.add_argument("--overwrite", action="store_true", help="train again even if models/sft exists (it is kept as a backup)")
    ap.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (default: the profile's length)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true", help="no progress lines")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a profile setting, e.g. --set sft_batch_size=4 (repeatable)")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            ap.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    prof = get_profile(args.profile, base_model=args.base_model or None, **overrides)
    metrics = train_sft(args.run_dir, prof, overwrite=args.overwrite, max_steps=args.max_steps if args.max_steps > 0 else None,
                        seed=args.seed, progress=not args.no_progress)
    if distributed_state().is_main_process:
        print(json.dumps(metrics, indent=2, default=str))
    return metrics


if __name__ == "__main__":
    main()
