"""DPO beside PPO: the same preferences, no reward model, no sampling.

Direct Preference Optimization (Rafailov et al., 2023) trains the twin straight on the
better/worse pairs of the rankings: it raises ``log π(chosen) − log π_ref(chosen)`` above
``log π(rejected) − log π_ref(rejected)`` (scaled by ``beta``), which is what PPO against a
Bradley–Terry reward model with a KL penalty converges to in theory — without a reward model
or any sampling. TRL's ``DPOTrainer`` does the work.

:func:`train_dpo` starts from the same twin as PPO and uses the same preferences and the same
conversation split as the reward model (:func:`twinlib.rewards.split_preferences`), and saves
to ``models/dpo`` in the same layout as ``models/ppo``, so stage 5 compares the two on equal
terms. The held-out "accuracy" it reports is DPO's implicit reward accuracy: how often the
trained twin prefers the better reply of a held-out pair more than the reference does.

For a LoRA twin the SFT adapter is merged and a fresh adapter trained, so the reference
(adapter disabled) is the twin before DPO, exactly as in PPO (:func:`twinlib.ppo.load_policy`).
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from pathlib import Path

from twinlib.rewards import (
    atomic_model_dir,
    existing_model,
    load_preferences,
    preferences_to_dataset,
    resolve_start_model,
    split_preferences,
)
from twinlib.rundir import RunDir


def train_dpo(run_dir, profile="tiny", preferences_or_records=None, start_model_path=None, overwrite: bool = False,
              beta: float = 0.1, epochs: float = 3.0, max_steps: int = -1, learning_rate: float | None = None,
              batch_size: int | None = None, test_fraction: float = 0.2, seed: int = 0, start_from: str = "refined",
              base_model: str | None = None, log=print, max_pairs: int | None = None, validate: bool = True,
              n_validation: int = 64) -> dict:
    """Train the twin with DPO on the run's preferences and save it to ``models/dpo`` (with ``dpo.json``).

    ``preferences_or_records``: anything :func:`twinlib.rewards.load_preferences` takes (default:
    the run's ``rankings.jsonl``). ``start_model_path``: the twin to start from (default:
    ``models/<start_from>``, ``refined`` falling back to ``sft``). An existing ``models/dpo`` is
    reused unless ``overwrite=True``.

    With ``validate`` (the default) DPO ships only when it helps, as PPO and refinement do: the
    trained policy and its start answer ``n_validation`` validation messages
    (:func:`twinlib.ppo.fidelity_validator`), and unless the trained one validates better,
    ``models/dpo`` holds the start's weights (``kept`` in ``dpo.json`` says which).
    """
    import torch
    from trl import DPOConfig, DPOTrainer

    from twinlib.modeling import cpu_threads, later_stage_profile, pick_device, trainer_precision_kwargs
    from twinlib.ppo import fidelity_validator, load_policy, save_policy
    run = RunDir(run_dir)
    prof = later_stage_profile(profile, run, base_model)
    out = run.model("dpo")
    done = existing_model(out, "dpo.json", overwrite, log)
    if done is not None:
        return done
    start = Path(start_model_path) if start_model_path else resolve_start_model(run, start_from, log)
    prefs = load_preferences(run if preferences_or_records is None else preferences_or_records)
    if len(prefs) == 0:
        raise ValueError("no preference pairs for DPO: rank some candidates in stage 3 first.")
    train_df, test_df = split_preferences(prefs, test_fraction, seed)
    if max_pairs and len(train_df) > max_pairs:  # a seeded sample: many pairs of one ranking are near-duplicates
        train_df = train_df.sample(n=max_pairs, random_state=seed).reset_index(drop=True)
    device = pick_device()
    lr = learning_rate or (5e-5 if prof.lora else 5e-4)
    bs = batch_size or (4 if prof.lora else 16)
    model, tok = load_policy(start, prof, device=device)  # LoRA: merged twin + fresh adapter
    ref_model = None
    if not prof.lora:
        ref_model = copy.deepcopy(model).eval()
        ref_model.requires_grad_(False)
    model.train()
    t0 = time.time()
    with atomic_model_dir(out, overwrite) as tmp, cpu_threads(prof, model, device):
        args = DPOConfig(
            output_dir=str(tmp / "_trainer"), num_train_epochs=epochs, max_steps=max_steps, learning_rate=lr,
            per_device_train_batch_size=bs, per_device_eval_batch_size=bs, logging_steps=1, disable_tqdm=True, save_strategy="no",
            eval_strategy="no", beta=beta, max_length=prof.max_length, seed=seed, **trainer_precision_kwargs(device),
        )
        train_ds = preferences_to_dataset(train_df, tok, prof.max_length, margin_scale=None)
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_ds, processing_class=tok)
        from twinlib.rewards import quiet_trainer
        from twinlib.sft import label_positions_only

        quiet_trainer(trainer, "DPO")

        with label_positions_only():  # score the replies' tokens only (see twinlib.sft)
            trainer.train()
        history = [h for h in trainer.state.log_history if "loss" in h]
        held_out = {}
        if len(test_df):
            held_out = trainer.evaluate(eval_dataset=preferences_to_dataset(test_df, tok, prof.max_length, margin_scale=None))
        policy = trainer.model
        policy.eval()
        tok.padding_side = "left"
        val = {}
        if validate:
            validator = fidelity_validator(run, prof, tok, n=n_validation, seed=seed)
            # the reference is the start; LoRA has none: a fresh adapter on the start leaves it as it was
            start_policy = ref_model if ref_model is not None else load_policy(start, prof, device=device)[0]
            val = {"val_start": validator(start_policy.eval()), "val_trained": validator(policy)}
            if val["val_trained"] <= val["val_start"]:
                policy = start_policy
        kept = "start" if val and policy is not trainer.model else "trained"
        save_policy(policy, tok, tmp, source=start)
        shutil.rmtree(tmp / "_trainer", ignore_errors=True)
        summary = {
            "start_model": run.relative(start), "pairs": len(prefs), "train_pairs": len(train_df), "test_pairs": len(test_df),
            "beta": beta, "learning_rate": lr, "batch_size": bs, "epochs": epochs,
            "train_accuracy": _last_epoch_mean(history, "rewards/accuracies", epochs),
            "test_accuracy": held_out.get("eval_rewards/accuracies") if held_out else None,
            "test_margin": held_out.get("eval_rewards/margins") if held_out else None,
            "seconds": round(time.time() - t0, 1), "history": history, "kept": kept, **val,
        }
        (tmp / "dpo.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        del trainer, ref_model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    acc = summary["test_accuracy"]
    train_acc = summary["train_accuracy"]
    log(f"DPO: {len(train_df)} pairs, {summary['seconds']:.0f} s; implicit-reward accuracy "
        + (f"{train_acc:.2f} on training pairs (last epoch)" if train_acc is not None else "n/a on training pairs")
        + (f", {acc:.2f} on {len(test_df)} held-out pairs" if acc is not None else "") + f"; saved to {out}")
    if summary["kept"] == "start":
        log(f"DPO validated no better than its start (validation fidelity {summary['val_trained']:.3f} vs "
            f"{summary['val_start']:.3f}): models/dpo holds the start's weights.")
    return summary


def _last_epoch_mean(history: list[dict], key: str, epochs: float):
    """Mean of a per-step training metric over (about) the last epoch."""
    vals = [h[key] for h in history if isinstance(h.get(key), (int, float))]
    if not vals:
        return None
    tail = vals[-max(1, int(len(vals) / max(epochs, 1.0))):]
    return float(sum(tail) / len(tail))
