"""Benchmark: how fast stage 2 trains the tiny profile, today's configuration and each change after it.

    python bench/sft_bench.py [--pairs 960] [--json out.json]

Every configuration trains on the same conversations (the sample persona's stage-1 training
pairs) for the same number of pairs, in its own Python process, on one torch thread (the tiny
profile's), and prints, side by side:

* **tokens/s**: the tokens trained on (padding excluded) per second of ``train()``;
* **pairs/s**: training pairs per second — the figure that counts when the layout changes the
  number of tokens a pair takes;
* **GFLOP/s** achieved: the model's matrix-multiply FLOPs (forward + backward, 3 × the forward's
  ``2 · tokens · weights`` for every linear layer, the attention's ``QKᵀ`` and ``AV``, and the LM
  head over the positions it scores) per second, and its share of this machine's **matmul
  peak** — torch's own single-thread ``mm`` at 128 × 512 × 4096, measured in the same run.

The configurations, each one step further than the one before:

1. **before** — the tiny profile as it was before issue 11: GPT-2, 4 layers, dropout 0.1, a system
   prompt in every example, TRL's fused LM head scoring every position on a CPU;
2. **+ labelled positions** — :func:`twinlib.sft.label_positions_only`: the LM head scores only the
   reply tokens that carry a label;
3. **+ no system prompt** — the tiny template leaves the system prompt out (a fifth of the tokens);
4. **+ no dropout** — GPT-2 without dropout (its random masks were a tenth of the time);
5. **ours** — the tiny profile now: a 2-layer Llama-style model (rotary positions, RMSNorm, SwiGLU)
   with a 64-token window;
6. **ours + torch.compile** — the same with ``torch_compile=True`` (TorchInductor generating C++ for
   the CPU); its wall time includes compiling, as a stage-2 run would pay it.

Speed is only half of it: ``bench/sft_bench.py`` measures throughput; what each configuration
*learns* in a fixed time is measured by the tests and ``docs/stage2.md``.
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

def _template_before() -> str:
    """The tiny chat template before issue 11: today's ChatML with the system prompt rendered."""
    from twinlib.modeling import NO_SYSTEM_MARKER, TINY_CHAT_TEMPLATE

    before = TINY_CHAT_TEMPLATE.replace(NO_SYSTEM_MARKER, "").replace(" if message['role'] != 'system'", "")
    assert before != TINY_CHAT_TEMPLATE and "!= 'system'" not in before, "the tiny template changed: update the bench"
    return before


BEFORE = {"tiny_arch": "gpt2", "tiny_layers": 4, "max_length": 256, "max_prompt_tokens": 192}
CONFIGS = {
    "before": dict(profile=BEFORE, system=True, compact=False, dropout=0.1),
    "+ labelled positions": dict(profile=BEFORE, system=True, compact=True, dropout=0.1),
    "+ no system prompt": dict(profile=BEFORE, system=False, compact=True, dropout=0.1),
    "+ no dropout": dict(profile=BEFORE, system=False, compact=True, dropout=0.0),
    "ours": dict(profile={}, system=False, compact=True, dropout=None),
    "ours + torch.compile": dict(profile={}, system=False, compact=True, dropout=None, compile=True),
}


def prepare(workdir: Path) -> Path:
    """A stage-1 run directory built from the sample persona."""
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
    run = workdir / "run"
    save_pairs(split_pairs(build_pairs(anon.anonymize(messages), me=ME), seed=0), run)
    return run


def prepare_with_model(work: Path, arch: str = "llama", size: str = "toy", device: str = "cpu") -> tuple[Path, Path]:
    """:func:`prepare`, and a random-weight ``arch`` model folder of ``size``
    (:func:`twinlib.toy_models.build_model_folder`) whose tokenizer is trained on the run's pairs."""
    from twinlib.sft import load_splits
    from twinlib.toy_models import build_model_folder

    run = prepare(work)
    train = load_splits(run)["train"]
    texts = list(train["prompt"]) + list(train["response"])
    folder = build_model_folder(work / f"{size}-{arch}", arch, size, texts=texts, device=device)
    return run, folder


def matmul_peak(seconds: float = 2.0) -> float:
    """GFLOP/s of torch's ``mm`` on this thread count, at the shape of the tiny model's layers."""
    import torch

    a, b = torch.randn(4096, 128), torch.randn(128, 512)
    for _ in range(5):
        a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 4096 * 128 * 512 * n / (time.perf_counter() - t0) / 1e9


def train_flops(model, batches, compact: bool) -> float:
    """Matmul FLOPs of training on ``batches`` (lists of (input_ids, labels) rows), forward + backward."""
    import torch

    linear = sum(m.weight.numel() for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Linear) and m is not model.get_output_embeddings())
    if type(model).__name__.startswith("GPT2"):  # GPT-2's Conv1D layers are linear layers too
        from transformers.pytorch_utils import Conv1D

        linear += sum(m.weight.numel() for m in model.modules() if isinstance(m, Conv1D))
    cfg = model.config
    layers, width = cfg.num_hidden_layers, cfg.hidden_size
    vocab = model.get_output_embeddings().weight.shape[0]
    flops = 0.0
    for lengths, labelled in batches:
        tokens = sum(lengths)
        longest = max(lengths)
        flops += 2 * tokens * linear                                       # every linear layer
        flops += 2 * 2 * layers * width * longest * longest * len(lengths)  # QKᵀ and AV on the padded batch
        flops += 2 * vocab * width * (labelled if compact else longest * len(lengths))
    return 3 * flops  # backward ≈ 2 × forward


def child(name: str, run: str, pairs: int, out_dir: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from trl import SFTTrainer

    from twinlib.modeling import PROFILES, build_tiny_model, load_model
    from twinlib.sft import label_positions_only, load_splits, sft_config, to_sft_dataset

    spec = CONFIGS[name]
    prof = PROFILES["tiny"].with_overrides(**spec["profile"])
    train_df = load_splits(run)["train"]
    base = Path(out_dir) / "base"
    build_tiny_model(list(train_df["prompt"]) + list(train_df["response"]), base, profile=prof)
    model, tok = load_model(base, device="cpu", dtype=torch.float32)
    if spec["system"]:
        tok.chat_template = _template_before()
    if spec["dropout"] is not None:
        for mod in model.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = spec["dropout"]
    model.train()
    ds = to_sft_dataset(train_df, tok, prof.max_length)
    steps = max(1, pairs // prof.sft_batch_size)
    cfg = sft_config(prof, out_dir, n_train=len(ds), max_steps=steps, progress=False, eval_strategy="no",
                     save_strategy="no", load_best_model_at_end=False, logging_steps=10**6,
                     torch_compile=spec.get("compile", False))
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok)
    seen = []

    def record(batch):  # lengths and labelled positions of every batch, for the FLOP count
        mask = batch["attention_mask"] if "attention_mask" in batch else torch.ones_like(batch["input_ids"])
        seen.append(([int(x) for x in mask.sum(1)], int((batch["labels"][:, 1:] != -100).sum())))
        return batch

    collate = trainer.data_collator
    trainer.data_collator = lambda feats: record(collate(feats))
    peak = matmul_peak()
    cpu0, t0 = time.process_time(), time.perf_counter()
    if spec["compact"]:
        with label_positions_only():
            trainer.train()
    else:
        trainer.train()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    tokens = int(trainer.state.num_input_tokens_seen)
    done = trainer.state.global_step * prof.sft_batch_size
    flops = train_flops(model, seen, spec["compact"])
    return {
        "config": name, "arch": prof.tiny_arch, "layers": prof.tiny_layers, "parameters": sum(p.numel() for p in model.parameters()),
        "pairs": done, "tokens": tokens, "tokens_per_pair": round(tokens / max(done, 1), 1), "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2), "tokens_per_s": round(tokens / wall, 1), "pairs_per_s": round(done / wall, 1),
        "gflop_per_s": round(flops / wall / 1e9, 2), "matmul_peak_gflop_per_s": round(peak, 1),
        "share_of_peak": round(flops / wall / 1e9 / peak, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=960, help="training pairs per configuration (default 960: 60 steps of 16)")
    ap.add_argument("--only", nargs="*", default=None, help="configurations to run (default: all)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.run_dir, args.pairs, args.out)))
        return
    names = args.only or list(CONFIGS)
    with tempfile.TemporaryDirectory(prefix="sft_bench_") as tmp:
        work = Path(tmp)
        run = prepare(work)
        rows = []
        for name in names:
            cmd = [sys.executable, __file__, "--child", name, "--run-dir", str(run), "--pairs", str(args.pairs),
                   "--out", str(work / name.replace(" ", "_").replace("+", "p"))]
            env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(line[-1][7:]))
            print(f"{name}: {rows[-1]['wall_s']} s", file=sys.stderr)
    keys = ["arch", "layers", "parameters", "pairs", "tokens_per_pair", "wall_s", "cpu_s", "tokens_per_s", "pairs_per_s",
            "gflop_per_s", "matmul_peak_gflop_per_s", "share_of_peak", "peak_rss_mb"]
    width = max(len(k) for k in keys)
    print(f"\nStage 2 (SFT) of the tiny profile: {args.pairs} training pairs per configuration, 1 torch thread, "
          f"{os.cpu_count()} CPU core(s)\n")
    print(f"{'':{width}}" + "".join(f"  {r['config']:>20}" for r in rows))
    for k in keys:
        print(f"{k:{width}}" + "".join(f"  {str(r[k]):>20}" for r in rows))
    by = {r["config"]: r for r in rows}
    if "before" in by and "ours" in by:
        b, o = by["before"], by["ours"]
        print(f"\nours vs before: {o['tokens_per_s'] / b['tokens_per_s']:.1f}× the tokens per second, "
              f"{o['pairs_per_s'] / b['pairs_per_s']:.1f}× the training pairs per second.")
    if "ours" in by and "ours + torch.compile" in by:
        c = by["ours + torch.compile"]
        print(f"torch.compile vs ours: {c['pairs_per_s'] / by['ours']['pairs_per_s']:.2f}× the training pairs per second "
              f"(compilation included).")
    if args.json:
        Path(args.json).write_text(json.dumps({"pairs": args.pairs, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
