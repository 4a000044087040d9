"""Benchmark: supervised fine-tuning throughput of the tiny profile, our configuration vs TRL's defaults.

    python bench/sft_bench.py [--steps 30] [--run-dir runs/sample] [--threads 2] [--json out.json]

All runs train the same tiny model (built once, so all start from the same weights) on the
same conversations (the sample persona's stage-1 pairs, or ``--run-dir``'s) for the same number
of optimizer steps, each in its own Python process so that each peak memory (peak RSS) is its own:

* **ours**: ``twinlib.sft.sft_config(profile)``, i.e. ``trainer_precision_kwargs()`` (fp32, no
  activation checkpointing on CPU), batches grouped by length, the tiny profile's batch size and
  ``max_length``; evaluation and checkpoints are switched off here so that only training is timed;
* **ours+bf16+ckpt**: the same with only TRL's bf16 and gradient checkpointing put back, to show
  what those two cost on a CPU by themselves;
* **TRL defaults**: ``SFTConfig(output_dir, use_cpu=True, max_steps=N)``, nothing else: TRL then
  trains in bf16 with gradient checkpointing, batch 8, ``max_length=1024``.

``include_num_input_tokens_seen="non_padding"`` is set in all, for measuring only (it counts
the tokens trained on; it does not change training). tokens/s = those tokens / ``train()``'s
wall-clock time (imports, model loading and dataset tokenization excluded). The batch sizes
differ, so compare tokens/s, not steps/s. CPU seconds are printed too: on a shared machine they
vary less than wall-clock time.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


KINDS = ("ours", "ours+bf16+ckpt", "trl-defaults")
HEADERS = {"ours": "ours", "ours+bf16+ckpt": "ours+bf16+ckpt", "trl-defaults": "TRL defaults"}


def prepare(workdir: Path, run_dir: str | None) -> tuple[Path, Path]:
    """A stage-1 run directory (given, or built from the sample persona) and the tiny base model."""
    from twinlib.modeling import PROFILES, prepare_base_model
    from twinlib.sft import load_splits

    if run_dir:
        run = Path(run_dir)
    else:
        from twinlib.data import find_exports, read_exports
        from twinlib.pairs import build_pairs, save_pairs, split_pairs
        from twinlib.privacy import ME, Anonymizer
        from twinlib.sample_data import PERSONA_NAME, generate_sample

        sample = ROOT / "data" / "sample"
        if not any(sample.glob("*.txt")):
            sample = workdir / "sample"
            generate_sample(sample)
        messages = read_exports(find_exports([str(sample)]))
        anon = Anonymizer.from_messages(messages, me=PERSONA_NAME)
        pairs = split_pairs(build_pairs(anon.anonymize(messages), me=ME), seed=0)
        run = workdir / "run"
        save_pairs(pairs, run)
    train = load_splits(run)["train"]
    base = prepare_base_model(PROFILES["tiny"], list(train["prompt"]) + list(train["response"]), workdir / "base")
    return run, Path(base)


def child(kind: str, run: str, base: str, steps: int, threads: int, out_dir: str) -> dict:
    """One training run in this process; returns its measurements."""
    import torch

    torch.set_num_threads(threads)
    from trl import SFTConfig, SFTTrainer

    from twinlib.modeling import PROFILES, load_model
    from twinlib.sft import load_splits, sft_config, to_sft_dataset

    prof = PROFILES["tiny"]
    model, tok = load_model(base, device="cpu", dtype=torch.float32)
    model.train()
    train = to_sft_dataset(load_splits(run)["train"], tok, prof.max_length)
    if kind in ("ours", "ours+bf16+ckpt"):
        extra = {}
        if kind == "ours+bf16+ckpt":  # only TRL's two CPU-hostile defaults put back, to isolate them
            from twinlib.modeling import _checkpointing_key

            extra = {"bf16": True, _checkpointing_key(): True}
        cfg = sft_config(prof, out_dir, n_train=len(train), max_steps=steps, progress=False,
                         eval_strategy="no", save_strategy="no", load_best_model_at_end=False, **extra)
    else:
        cfg = SFTConfig(output_dir=out_dir, use_cpu=True, max_steps=steps,
                        include_num_input_tokens_seen="non_padding", disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=train, processing_class=tok)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    tokens = int(trainer.state.num_input_tokens_seen)
    return {
        "config": kind,
        "bf16": bool(cfg.bf16),
        "checkpointing": bool(cfg.gradient_checkpointing),
        "batch": cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps,
        "max_length": cfg.max_length,
        "steps": trainer.state.global_step,
        "tokens": tokens,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "s_per_step": round(wall / max(1, trainer.state.global_step), 3),
        "final_loss": round(result.training_loss, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_train_mb": round(rss_before, 1),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per run (default 30)")
    ap.add_argument("--run-dir", default=None, help="a stage-1 run directory (default: build one from the sample persona)")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads per run")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--base", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.run_dir, args.base, args.steps, args.threads, args.out)))
        return

    with tempfile.TemporaryDirectory(prefix="sft_bench_") as tmp:
        work = Path(tmp)
        run, base = prepare(work, args.run_dir)
        rows = []
        for kind in KINDS:
            cmd = [sys.executable, __file__, "--child", kind, "--run-dir", str(run), "--base", str(base),
                   "--steps", str(args.steps), "--threads", str(args.threads), "--out", str(work / kind)]
            env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{kind} run failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(line[-1][7:]))
            print(f"{kind}: done in {rows[-1]['wall_s']} s", file=sys.stderr)

    keys = ["bf16", "checkpointing", "batch", "max_length", "steps", "tokens", "wall_s", "cpu_s",
            "tokens_per_s", "s_per_step", "final_loss", "rss_before_train_mb", "peak_rss_mb"]
    width = max(len(k) for k in keys)
    print(f"\nSFT of the tiny profile, {args.steps} steps, {args.threads} torch thread(s), "
          f"{os.cpu_count()} CPU core(s)\n")
    print(f"{'':{width}}" + "".join(f"  {HEADERS[k]:>15}" for k in KINDS))
    for k in keys:
        print(f"{k:{width}}" + "".join(f"  {str(r[k]):>15}" for r in rows))
    ours, trl = rows[0], rows[-1]
    speed = ours["tokens_per_s"] / max(trl["tokens_per_s"], 1e-9)
    cpu_speed = (ours["tokens"] / ours["cpu_s"]) / max(trl["tokens"] / trl["cpu_s"], 1e-9)
    print(f"\nours trains {speed:.1f}× as many tokens per wall-clock second as TRL's defaults here "
          f"({cpu_speed:.1f}× per CPU second).")
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "threads": args.threads, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
