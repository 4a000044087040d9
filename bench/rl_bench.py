"""Our PPO (twinlib.ppo) next to TRL's RLOOTrainer: same model, same reward, same sample budget.

    python bench/rl_bench.py                 # 15 updates × 16 sampled replies each, on CPU or GPU
    python bench/rl_bench.py --steps 30 --json bench_rl.json

The model is the tiny toy twin (:func:`twinlib.ppo.build_toy_twin`: the built-in tiny model
briefly trained on a made-up chat in which about one reply in eight mentions pizza); the reward
is +1 when a reply contains "pizza" (:func:`twinlib.ppo.contains_word_reward`). Each method
samples ``steps × batch_size`` replies in training: PPO ``batch_size`` prompts × 1 reply per
update, RLOO ``batch_size / num_generations`` prompts × ``num_generations`` replies per step
(its leave-one-out baseline needs several replies per prompt). Both use the same learning rate
and KL coefficient, sample with temperature 1, no top-k/top-p. PPO takes 4 epochs of 2 minibatches
per batch; RLOO (TRL defaults) one gradient step per batch, and "rloo4" reuses each batch 4 times
(`num_iterations=4`), closer to PPO's epochs. KL is reported per reply token for both.

Each method runs in its own subprocess, so wall time and peak memory are its own: peak memory
is the process's maximum resident set (it includes the libraries each imports: TRL for RLOO)
and, on a GPU, ``torch.cuda.max_memory_allocated``. "Reward reached" is the mean reward of
fresh samples (4 per message, same seed) to 32 messages not used in training, before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _held_out():
    from twinlib.ppo import toy_conversations

    return [(c, p) for c, p, _ in toy_conversations(32, seed=101)]


def _train_convs():
    from twinlib.ppo import toy_conversations

    return [(c, p) for c, p, _ in toy_conversations(256, seed=7)]


def _peak_memory_mb() -> dict:
    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def run_ours(model_dir: str, args) -> dict:
    import torch

    from twinlib.modeling import load_model
    from twinlib.ppo import PPOConfig, PPOTrainer, contains_word_reward, mean_reward

    model, tok = load_model(model_dir, dtype=torch.float32)
    reward = contains_word_reward(args.word)
    before = mean_reward(model, tok, _held_out(), reward, n=4, max_new_tokens=args.max_new_tokens, seed=1)
    cfg = PPOConfig(steps=args.steps, batch_size=args.batch_size, minibatch_size=args.batch_size // 2, ppo_epochs=4,
                    learning_rate=args.lr, kl_coef=args.kl_coef, max_new_tokens=args.max_new_tokens, seed=args.seed)
    t0 = time.time()
    trainer = PPOTrainer(model, tok, _train_convs(), reward, cfg)
    logs = trainer.train(progress=False)
    wall = time.time() - t0
    after = mean_reward(trainer.policy, tok, _held_out(), reward, n=4, max_new_tokens=args.max_new_tokens, seed=1)
    return {"method": "twinlib PPO", "reward_before": before, "reward_after": after,
            "train_reward_last3": sum(e["mean_reward"] for e in logs[-3:]) / 3,
            "kl_last3": sum(e["kl"] / max(e["reply_tokens"], 1) for e in logs[-3:]) / 3, "wall_s": round(wall, 1),
            "completions": args.steps * args.batch_size, "curve": [round(e["mean_reward"], 3) for e in logs],
            **_peak_memory_mb()}


def run_rloo(model_dir: str, args, iterations: int = 1) -> dict:
    import torch
    from datasets import Dataset
    from trl import RLOOConfig, RLOOTrainer

    from twinlib.modeling import build_messages, load_model, pick_device, trainer_precision_kwargs
    from twinlib.ppo import contains_word_reward, mean_reward

    model, tok = load_model(model_dir, dtype=torch.float32)
    reward = contains_word_reward(args.word)
    before = mean_reward(model, tok, _held_out(), reward, n=4, max_new_tokens=args.max_new_tokens, seed=1)
    per_step_prompts = args.batch_size // args.num_generations
    convs = _train_convs()[: args.steps * per_step_prompts]
    ds = Dataset.from_list([{"prompt": build_messages(c, p)} for c, p in convs])
    curve = []

    def word_reward(prompts, completions, **kw):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        scores = reward(None, None, texts)
        curve.append(sum(scores) / len(scores))
        return scores

    word_reward.__name__ = f"contains_{args.word}"
    precision = trainer_precision_kwargs(pick_device())
    precision["gradient_checkpointing"] = False
    precision.pop("activation_checkpointing", None)
    out_dir = tempfile.TemporaryDirectory(prefix="rloo_")
    cfg = RLOOConfig(
        output_dir=out_dir.name, per_device_train_batch_size=args.batch_size, num_generations=args.num_generations,
        max_completion_length=args.max_new_tokens, max_steps=args.steps * iterations, num_iterations=iterations,
        learning_rate=args.lr, beta=args.kl_coef,
        temperature=1.0, top_p=1.0, top_k=0, logging_steps=1, save_strategy="no", seed=args.seed,
        lr_scheduler_type="constant", warmup_steps=0, shuffle_dataset=False, disable_dropout=True, **precision,
    )
    model.train()
    t0 = time.time()
    trainer = RLOOTrainer(model=model, reward_funcs=word_reward, args=cfg, train_dataset=ds, processing_class=tok)
    trainer.train()
    wall = time.time() - t0
    policy = trainer.model.eval()
    after = mean_reward(policy, tok, _held_out(), reward, n=4, max_new_tokens=args.max_new_tokens, seed=1)
    kls = [h["kl"] for h in trainer.state.log_history if "kl" in h]
    out_dir.cleanup()
    name = "TRL RLOOTrainer" + (f" μ={iterations}" if iterations > 1 else "")
    return {"method": name, "reward_before": before, "reward_after": after,
            "train_reward_last3": sum(curve[-3:]) / max(len(curve[-3:]), 1),
            "kl_last3": (sum(kls[-3:]) / len(kls[-3:])) if kls else None, "wall_s": round(wall, 1),
            "completions": args.steps * args.batch_size, "curve": [round(c, 3) for c in curve], **_peak_memory_mb()}


def child(args) -> int:
    import torch

    from twinlib.notebook import seed_everything

    seed_everything(args.seed)
    torch.manual_seed(args.seed)
    if args.method == "ours":
        res = run_ours(args.model, args)
    else:  # rloo: TRL's defaults (one gradient step per batch); rloo4: each batch reused 4 times, like PPO's epochs
        res = run_rloo(args.model, args, iterations=4 if args.method == "rloo4" else 1)
    Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=15, help="updates (PPO) / optimizer steps (RLOO)")
    ap.add_argument("--batch-size", type=int, default=16, help="replies sampled per update")
    ap.add_argument("--num-generations", type=int, default=4, help="RLOO: replies per prompt")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--kl-coef", type=float, default=0.05)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--word", default="pizza")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="where to build the toy model (default: a temporary folder)")
    ap.add_argument("--methods", nargs="+", default=["ours", "rloo", "rloo4"], choices=["ours", "rloo", "rloo4"],
                    help="rloo4: RLOO with num_iterations=4 (each batch reused 4 times, as PPO's 4 epochs)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.method:
        return child(args)

    from twinlib.ppo import build_toy_twin

    work = Path(args.workdir or tempfile.mkdtemp(prefix="rl_bench_"))
    model_dir = build_toy_twin(work / "toy_twin", seed=args.seed)
    results = []
    passthrough = ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--num-generations",
                   str(args.num_generations), "--lr", str(args.lr), "--kl-coef", str(args.kl_coef),
                   "--max-new-tokens", str(args.max_new_tokens), "--word", args.word, "--seed", str(args.seed)]
    for method in args.methods:
        out = work / f"{method}.json"
        cmd = [sys.executable, __file__, "--method", method, "--model", str(model_dir), "--out", str(out), *passthrough]
        print(f"running {method} …", flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-6000:], sep="\n")
            raise SystemExit(f"{method} failed (exit {proc.returncode})")
        results.append(json.loads(out.read_text()))
    print()
    print(f"reward: +1 when the reply contains {args.word!r}; {args.steps} steps × {args.batch_size} sampled replies "
          f"= {args.steps * args.batch_size} completions per method; lr {args.lr}, KL coef {args.kl_coef}")
    header = f"{'method':<22}{'reward before':>14}{'reward after':>13}{'train (last 3)':>15}{'KL/token':>10}{'wall s':>8}{'peak RSS MB':>12}"
    has_gpu = any("peak_gpu_mb" in r for r in results)
    print(header + (f"{'peak GPU MB':>12}" if has_gpu else ""))
    for r in results:
        kl = f"{r['kl_last3']:.3f}" if r.get("kl_last3") is not None else "-"
        line = (f"{r['method']:<22}{r['reward_before']:>14.3f}{r['reward_after']:>13.3f}{r['train_reward_last3']:>15.3f}"
                f"{kl:>10}{r['wall_s']:>8.1f}{r['peak_rss_mb']:>12.0f}")
        if has_gpu:
            line += f"{r.get('peak_gpu_mb', float('nan')):>12.0f}"
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
