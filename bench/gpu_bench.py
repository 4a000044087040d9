"""Benchmark: the ``gpu`` profile at real size on a CUDA GPU, with random weights (no download).

    python bench/gpu_bench.py [--size qwen2.5-1.5b] [--steps 20] [--ppo-steps 3] [--json out.json]
    python bench/gpu_bench.py --size smollm2-360m          # the t4 profile's model (on a T4: fp16)
    python bench/gpu_bench.py --cpu-smoke        # the same code shrunk to a toy model on a CPU (CI)

The model is Qwen2.5-1.5B-Instruct's configuration (``twinlib.toy_models``: 1.54 B parameters,
28 layers, a 151,936-token vocabulary) built locally with random weights, so its speed and memory
are the real checkpoint's; it trains on the sample persona's pairs with stage 2's trainer
(``twinlib.sft.build_trainer``: the profile's LoRA, batch, ``max_length``, bf16 and activation
checkpointing). Printed side by side, one column per configuration:

* **SFT**: tokens/s (non-padding tokens trained on per second, after ``--warmup`` steps), seconds
  per optimizer step, **MFU** (model FLOPs per second over the GPU's dense bf16 peak; the FLOPs
  are ``2 · linear weights · tokens`` + attention ``4 · layers · width · Σ length²`` + the LM head
  over the scored positions, forward, and the same again backward — LoRA computes the input
  gradients of every layer but no weight gradients of the frozen ones; recomputed activations are
  not counted), the same over a bf16 matmul measured in this run, and the peak GPU memory;
* configurations: the profile as it ships (``sdpa`` attention, padded batches, no Liger kernels,
  activation checkpointing on), then each fast path on or off: **eager** attention instead of
  SDPA, **flash_attention_2** (when the ``flash-attn`` package is installed), **padding-free**
  batches (TRL's ``padding_free``), **Liger** kernels (TRL's ``use_liger_kernel``, when
  ``liger-kernel`` is installed), activation checkpointing **off**, and all available fast
  paths together;
* **PPO** (``twinlib.ppo.PPOTrainer``, the profile's PPO settings, a fresh LoRA adapter on the
  model): rollout throughput (generated tokens/s) and update throughput (tokens/s through the
  clipped-loss epochs).

A configuration that cannot run here says why in its column (a missing package, no CUDA) instead
of failing the run. ``--cpu-smoke`` runs the same code with a toy-size Qwen2 folder, 3 steps per
configuration and one PPO update on a CPU, so CI keeps this script working
(``tests/test_real_architectures.py``); its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets, by a part of
#: the name torch reports. fp16 for GPUs without bf16 (T4, V100).
PEAK_TFLOPS = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 756.0,
    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "T4": 65.0, "V100": 125.0,
}

BASELINE = "as shipped"
CONFIGS = {
    BASELINE: {},
    "eager attention": {"attn": "eager"},
    "flash_attention_2": {"attn": "flash_attention_2"},
    "padding-free": {"padding_free": True},
    "Liger kernels": {"liger": True},
    "no checkpointing": {"checkpointing": False},
    "all fast paths": {"attn": "best", "padding_free": True, "liger": True},
}


# --------------------------------------------------------------------------- environment


def peak_tflops(name: str) -> float | None:
    for key, value in PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return value
    return None


def measured_matmul_tflops(device: str, dtype, seconds: float = 2.0) -> float:
    """TFLOP/s of a large matmul on ``device`` in ``dtype``: what the hardware gives this software."""
    import torch

    n = 8192 if device == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * count / (time.perf_counter() - t0) / 1e12


def unavailable(spec: dict, device: str) -> str | None:
    """Why a configuration cannot run here (None when it can)."""
    import importlib.util

    if spec.get("liger") and spec is not CONFIGS["all fast paths"]:
        if device != "cuda":
            return "needs a CUDA GPU (Triton kernels)"
        if importlib.util.find_spec("liger_kernel") is None:
            return "needs `pip install liger-kernel`"
    if spec.get("attn") == "flash_attention_2":
        if device != "cuda":
            return "needs a CUDA GPU"
        if importlib.util.find_spec("flash_attn") is None:
            return "needs the flash-attn package"
    return None


def resolve(spec: dict, device: str) -> dict:
    """``all fast paths``: every fast path that can run here."""
    import importlib.util

    if spec is not CONFIGS["all fast paths"]:
        return dict(spec)
    out = {"padding_free": True}
    if device == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        out["attn"] = "flash_attention_2"
    if device == "cuda" and importlib.util.find_spec("liger_kernel") is not None:
        out["liger"] = True
    return out


# --------------------------------------------------------------------------- FLOPs


def forward_flops(model, batches) -> float:
    """Forward matmul FLOPs of ``batches``: ``(sequence lengths, scored positions)`` per batch."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    linear = sum(m.weight.numel() for m in base.modules() if isinstance(m, torch.nn.Linear) and m is not head
                 and "lora_" not in type(m).__name__.lower())
    cfg = base.config
    layers, width = cfg.num_hidden_layers, cfg.hidden_size
    vocab = head.weight.shape[0]
    flops = 0.0
    for lengths, scored in batches:
        flops += 2 * sum(lengths) * linear
        flops += 4 * layers * width * sum(s * s for s in lengths)
        flops += 2 * vocab * width * scored
    return flops


def batch_shape(batch) -> tuple[list[int], int]:
    """Sequence lengths (padding excluded) and labelled positions of a collated batch, padded or padding-free."""
    labels = batch["labels"]
    scored = int((labels[:, 1:] != -100).sum())
    if "attention_mask" in batch and batch["attention_mask"] is not None:
        return [int(x) for x in batch["attention_mask"].sum(1)], scored
    pos = batch["position_ids"].reshape(-1).tolist()  # padding-free: one row, positions restart per sequence
    starts = [i for i, p in enumerate(pos) if p == 0] + [len(pos)]
    return [b - a for a, b in zip(starts, starts[1:])], scored


# --------------------------------------------------------------------------- SFT


def run_sft(name: str, spec: dict, folder: Path, run: Path, prof, args, device: str, peaks: dict) -> dict:
    import torch
    from transformers import TrainerCallback

    from twinlib.modeling import count_parameters, load_model, pick_dtype, trainer_precision_kwargs
    from twinlib.sft import build_trainer, label_positions_only, load_splits, to_sft_dataset

    why = unavailable(spec, device)
    if why:
        return {"config": name, "skipped": why}
    spec = resolve(spec, device)
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, tok = load_model(folder, device=device, dtype=pick_dtype(device))
    attn = spec.get("attn", "sdpa")
    if attn != getattr(model.config, "_attn_implementation", None):
        model.set_attn_implementation(attn)
    model.train()
    per_step = prof.sft_batch_size * prof.sft_grad_accum
    ds = to_sft_dataset(load_splits(run)["train"].head(per_step * (args.steps + 1)), tok, prof.max_length)
    extra = dict(trainer_precision_kwargs(device, checkpointing=spec.get("checkpointing")))
    if spec.get("padding_free"):
        extra.update(padding_free=True, max_length=None)  # examples are already fitted to max_length (fit_messages)
    if spec.get("liger"):
        extra["use_liger_kernel"] = True
    trainer = build_trainer(model, tok, prof, ds, None, Path(args.work) / "sft", max_steps=args.steps, patience=None,
                            progress=False, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                            eval_on_start=False, logging_steps=1, **extra)
    batches, marks = [], []

    collate = trainer.data_collator

    def recording(features):
        batch = collate(features)
        batches.append(batch_shape(batch))
        return batch

    trainer.data_collator = recording

    class Clock(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), len(batches)))

    trainer.add_callback(Clock())
    t0 = time.perf_counter()
    with label_positions_only():
        trainer.train()
    warm = min(args.warmup, max(0, len(marks) - 2))
    (t_a, b_a), (t_b, b_b) = marks[warm - 1] if warm else (t0, 0), marks[-1]
    timed = batches[b_a:b_b]
    seconds = t_b - t_a
    tokens = sum(sum(lengths) for lengths, _ in timed)
    flops = forward_flops(trainer.model, timed) * (2 if prof.lora else 3)
    achieved = flops / seconds / 1e12
    out = {
        "config": name, "attention": attn, "padding_free": bool(spec.get("padding_free")), "liger": bool(spec.get("liger")),
        "checkpointing": bool(extra.get("activation_checkpointing", extra.get("gradient_checkpointing", False))),
        "steps_timed": len(marks) - warm, "tokens_per_s": round(tokens / seconds, 1),
        "s_per_step": round(seconds / max(1, len(marks) - warm), 3),
        "pairs_per_s": round(sum(len(lengths) for lengths, _ in timed) / seconds, 1),
        "achieved_tflops": round(achieved, 3),
        "mfu": round(achieved / peaks["spec"], 4) if peaks.get("spec") else None,
        "share_of_measured_matmul": round(achieved / peaks["measured"], 4),
        "train_loss": round(float(trainer.state.log_history[-1].get("train_loss", float("nan"))), 3),
        "parameters": count_parameters(trainer.model)[1],
    }
    out.update(memory(device))
    del trainer, model
    gc.collect()
    return out


def memory(device: str) -> dict:
    import torch

    if device == "cuda":
        return {"peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                "peak_reserved_gb": round(torch.cuda.max_memory_reserved() / 2**30, 2)}
    return {"peak_memory_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "peak_reserved_gb": None}  # CPU: the process's peak RSS so far


# --------------------------------------------------------------------------- PPO


def run_ppo_bench(folder: Path, run: Path, prof, args, device: str) -> dict:
    import torch

    from twinlib.ppo import PPOTrainer, load_policy, ppo_config_for, train_prompts
    from twinlib.rundir import RunDir

    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    policy, tok = load_policy(folder, prof, device=device)  # merged model + a fresh LoRA adapter, as stage 4
    cfg = ppo_config_for(prof, steps=args.ppo_steps, batch_size=args.ppo_batch, seed=0)
    prompts = train_prompts(RunDir(run), limit=256)

    def longer_is_better(contexts, prompts, replies):  # a reward that needs no reward model
        return [min(len(r), 200) / 100 for r in replies]

    trainer = PPOTrainer(policy, tok, prompts, longer_is_better, cfg)
    rollout, clock = trainer.rollout, {"rollout_s": 0.0, "generated": 0, "sequence_tokens": 0}

    def timed_rollout(conversations):
        t = time.perf_counter()
        batch = rollout(conversations)
        if device == "cuda":
            torch.cuda.synchronize()
        clock["rollout_s"] += time.perf_counter() - t
        clock["generated"] += int(batch["mask"].sum())
        clock["sequence_tokens"] += int(batch["attention_mask"].sum())
        return batch

    trainer.rollout = timed_rollout
    t0 = time.perf_counter()
    logs = trainer.train(progress=False)
    total = time.perf_counter() - t0
    update_s = total - clock["rollout_s"]
    epochs_tokens = clock["sequence_tokens"] * cfg.ppo_epochs
    out = {
        "updates": len(logs), "replies_per_update": cfg.batch_size, "max_new_tokens": cfg.max_new_tokens,
        "rollout_tokens_per_s": round(clock["generated"] / clock["rollout_s"], 1),
        "rollout_s_per_update": round(clock["rollout_s"] / len(logs), 2),
        "update_tokens_per_s": round(epochs_tokens / update_s, 1),
        "update_s_per_update": round(update_s / len(logs), 2),
    }
    out.update(memory(device))
    del trainer, policy
    gc.collect()
    return out


# --------------------------------------------------------------------------- main


def prepare(work: Path, args, device: str) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "bench"))
    from sft_bench import prepare_with_model

    return prepare_with_model(work, args.arch, args.size, device=device)


def table(rows: list[dict], keys: list[str], label: str = "config") -> str:
    width = max(len(k) for k in keys) + 2
    col = max(18, max(len(r[label]) for r in rows) + 2)
    lines = [f"{'':{width}}" + "".join(f"{r[label]:>{col}}" for r in rows)]
    for k in keys:
        lines.append(f"{k:{width}}" + "".join(f"{str(r.get(k, '–') if r.get(k) is not None else '–'):>{col}}" for r in rows))
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="toy size on a CPU, a few steps: keeps this script working in CI")
    ap.add_argument("--size", default=None, help="a twinlib.toy_models size (default qwen2.5-1.5b; toy with --cpu-smoke)")
    ap.add_argument("--profile", default=None, help="the profile to train with (default: gpu for Qwen sizes, t4 for SmolLM2)")
    ap.add_argument("--steps", type=int, default=None, help="SFT steps per configuration (default 20; 3 with --cpu-smoke)")
    ap.add_argument("--warmup", type=int, default=None, help="steps left out of the timing (default 3; 1 with --cpu-smoke)")
    ap.add_argument("--ppo-steps", type=int, default=None, help="PPO updates (default 3; 1 with --cpu-smoke)")
    ap.add_argument("--ppo-batch", type=int, default=None, help="replies per PPO update (default 32; 4 with --cpu-smoke)")
    ap.add_argument("--only", nargs="*", default=None, help=f"SFT configurations to run (default: all of {list(CONFIGS)})")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, when not in the table")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    import torch

    from twinlib.modeling import get_profile

    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        sys.exit("gpu_bench.py needs a CUDA GPU; run it with --cpu-smoke to check the script on a CPU.")
    device = "cpu" if smoke else "cuda"
    from twinlib.toy_models import REAL_CONFIGS

    args.size = args.size or ("toy" if smoke else "qwen2.5-1.5b")
    args.arch = REAL_CONFIGS[args.size][0] if args.size in REAL_CONFIGS else "qwen2"
    args.profile = args.profile or ("t4" if args.arch == "llama" else "gpu")
    args.steps = args.steps or (3 if smoke else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if smoke else 3)
    args.ppo_steps = args.ppo_steps or (1 if smoke else 3)
    args.ppo_batch = args.ppo_batch or (4 if smoke else 32)
    if smoke:
        torch.set_num_threads(1)
    names = args.only or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configurations {unknown}; choose from {list(CONFIGS)}")
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (smoke run)"
    with tempfile.TemporaryDirectory(prefix="gpu_bench_") as tmp:
        args.work = tmp
        t0 = time.perf_counter()
        run, folder = prepare(Path(tmp), args, device)
        overrides = {"max_length": 128, "max_prompt_tokens": 96, "max_new_tokens": 8, "sft_batch_size": 4} if smoke else {}
        prof = get_profile(args.profile, base_model=str(folder), **overrides)
        dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else (
            torch.float16 if device == "cuda" else torch.float32)
        peaks = {"spec": args.peak_tflops or (peak_tflops(gpu) if device == "cuda" else None),
                 "measured": measured_matmul_tflops(device, dtype, seconds=2.0 if device == "cuda" else 0.5)}
        print(f"model: {json.loads((folder / 'random_weights.json').read_text())['layout_of']} "
              f"({json.loads((folder / 'random_weights.json').read_text())['parameters']:,} parameters, random weights); "
              f"device: {gpu}; bf16 peak {peaks['spec'] or 'unknown'} TFLOP/s (data sheet), "
              f"{peaks['measured']:.3g} TFLOP/s measured matmul", file=sys.stderr)
        rows = []
        for name in names:
            try:
                rows.append(run_sft(name, CONFIGS[name], folder, run, prof, args, device, peaks))
            except Exception as err:  # noqa: BLE001 — one fast path failing must not cost the others' figures
                rows.append({"config": name, "skipped": f"failed: {type(err).__name__}: {str(err)[:300]}"})
                gc.collect()
                if device == "cuda":
                    torch.cuda.empty_cache()
            r = rows[-1]
            print(f"SFT {name}: " + (f"skipped ({r['skipped']})" if "skipped" in r else
                                       f"{r['tokens_per_s']} tokens/s, {r['peak_memory_gb']} GB"), file=sys.stderr)
        ppo = run_ppo_bench(folder, run, prof, args, device)
        seconds = time.perf_counter() - t0
    ran = [r for r in rows if "skipped" not in r]
    base = next((r for r in ran if r["config"] == BASELINE), ran[0] if ran else None)
    for r in ran:
        r["speed_vs_shipped"] = f"{r['tokens_per_s'] / base['tokens_per_s']:.2f}×" if base else None
    print(f"\nStage 2 (SFT) of the {args.profile} profile: {gpu}; {args.arch} {args.size} with random weights, LoRA r={prof.lora_r}, "
          f"batch {prof.sft_batch_size} × {prof.sft_grad_accum}, max_length {prof.max_length}; {args.steps} steps per "
          f"configuration, the first {args.warmup} not timed\n")
    keys = ["tokens_per_s", "speed_vs_shipped", "s_per_step", "pairs_per_s", "achieved_tflops", "mfu",
            "share_of_measured_matmul", "peak_memory_gb", "peak_reserved_gb", "attention", "padding_free", "liger",
            "checkpointing", "train_loss"]
    print(table(ran, keys))
    for r in rows:
        if "skipped" in r:
            print(f"  {r['config']}: not run here, {r['skipped']}")
    print(f"\nStage 4 (PPO), {ppo['updates']} update(s) of {ppo['replies_per_update']} replies × {ppo['max_new_tokens']} "
          f"new tokens: rollout {ppo['rollout_tokens_per_s']} generated tokens/s ({ppo['rollout_s_per_update']} s per "
          f"update), update {ppo['update_tokens_per_s']} tokens/s through the loss ({ppo['update_s_per_update']} s per "
          f"update), peak memory {ppo['peak_memory_gb']} GB")
    if smoke:
        print("\n--cpu-smoke: a toy model on a CPU checks that this script works; these figures say nothing about a GPU.")
    result = {"device": gpu, "size": args.size, "profile": args.profile, "peaks_tflops": peaks, "sft": rows, "ppo": ppo, "seconds": round(seconds, 1)}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
