"""Benchmark: stage 2 of a real architecture on a CPU, alone and beside another CPU-bound job.

    python bench/contention_bench.py [--steps 20] [--max-seconds 60] [--hogs N] [--json out.json]

A user's laptop is a shared machine: a browser, an IDE, a test suite. This runs stage 2's trainer
(``twinlib.sft.build_trainer``, the ``t4`` profile with LoRA) on a toy-size Llama folder
(``twinlib.toy_models``, random weights, a SmolLM2-style chat template) on the sample persona's
pairs, four times, each in its own process:

* **before**: torch's default thread count (one per core), as the ``t4``/``gpu`` profiles ran on
  a CPU before; **ours**: the threads ``twinlib.modeling.pick_cpu_threads`` picks (what
  ``train_sft`` and every model loaded on a CPU now use);
* each **alone** and **beside** a CPU-bound job: ``--hogs`` processes (default: one per core)
  that keep every core busy for the whole measurement.

It prints the median seconds per optimizer step of each, and for each configuration the ratio
beside / alone. A fair share of the cores explains about 2× (half the machine); more than that is
threads waiting on each other. Each measurement stops after ``--steps`` steps or ``--max-seconds``,
whichever comes first. The "alone" figures are only as alone as the machine is: the busy cores
measured just before each run are printed with it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("before", "ours")


def prepare(work: Path) -> tuple[Path, Path]:
    """A stage-1 run directory of the sample persona and a toy-size Llama folder whose tokenizer
    is trained on its pairs."""
    sys.path.insert(0, str(ROOT / "bench"))
    from sft_bench import prepare_with_model

    return prepare_with_model(work, "llama", "toy")


def child(mode: str, run: str, folder: str, steps: int, max_seconds: float, out_dir: str) -> dict:
    import torch
    from transformers import TrainerCallback

    from twinlib.modeling import busy_cores, count_parameters, get_profile, load_model, pick_cpu_threads
    from twinlib.sft import build_trainer, label_positions_only, load_splits, to_sft_dataset

    default_threads = torch.get_num_threads()
    prof = get_profile("t4", base_model=folder)
    model, tok = load_model(folder, device="cpu", dtype=torch.float32)
    # load_model picks threads for a CPU itself; "before" puts torch's default back
    threads = pick_cpu_threads(prof, count_parameters(model)[1]) if mode == "ours" else default_threads
    torch.set_num_threads(threads)
    model.train()
    ds = to_sft_dataset(load_splits(run)["train"].head(steps * prof.sft_batch_size * prof.sft_grad_accum * 2), tok,
                        prof.max_length)
    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t_begin = time.perf_counter()

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t)
            if time.perf_counter() - self.t_begin > max_seconds:
                control.should_training_stop = True
            return control

    trainer = build_trainer(model, tok, prof, ds, None, out_dir, max_steps=steps, patience=None, progress=False,
                            eval_strategy="no", save_strategy="no", load_best_model_at_end=False, eval_on_start=False)
    trainer.add_callback(StepTimer())
    busy = busy_cores()
    with label_positions_only():
        trainer.train()
    kept = sorted(times[1:] or times)  # the first step also builds the optimizer
    return {"mode": mode, "threads": threads, "steps": len(times), "median_step_s": round(kept[len(kept) // 2], 3),
            "mean_step_s": round(sum(kept) / len(kept), 3), "busy_cores_before": round(busy, 2),
            "parameters": count_parameters(model)[1]}


def _hog(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def measure(mode: str, run: Path, folder: Path, args, work: Path, hogs: int) -> dict:
    stop = mp.Event()
    procs = [mp.Process(target=_hog, args=(stop,), daemon=True) for _ in range(hogs)]
    for p in procs:
        p.start()
    try:
        if hogs:
            time.sleep(1.0)  # let the hogs take their cores
        cmd = [sys.executable, __file__, "--child", mode, "--run-dir", str(run), "--folder", str(folder),
               "--steps", str(args.steps), "--max-seconds", str(args.max_seconds), "--out", str(work / f"out-{mode}")]
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        env.pop("OMP_NUM_THREADS", None)  # torch's own default, as a user's run has
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        stop.set()
        for p in procs:
            p.join(timeout=5)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not line:
        sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(line[-1][7:]), "hogs": hogs}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per measurement (default 20)")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop a measurement after this long (default 60)")
    ap.add_argument("--hogs", type=int, default=os.cpu_count() or 1,
                    help="busy processes of the other job (default: one per core)")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.run_dir, args.folder, args.steps, args.max_seconds, args.out)))
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="contention_bench_") as tmp:
        work = Path(tmp)
        run, folder = prepare(work)
        for mode in MODES:
            for hogs in (0, args.hogs):
                rows.append(measure(mode, run, folder, args, work, hogs))
                r = rows[-1]
                print(f"{mode}, {'beside ' + str(hogs) + ' busy processes' if hogs else 'alone'}: "
                      f"{r['median_step_s']} s per step ({r['steps']} steps, {r['threads']} threads)", file=sys.stderr)
    print(f"\nStage 2 (t4 profile, LoRA) of a toy-size Llama folder ({rows[0]['parameters']:,} parameters) on "
          f"{os.cpu_count()} CPU core(s): median seconds per optimizer step\n")
    print(f"{'':26}{'threads':>8}{'alone':>10}{'beside':>10}{'beside/alone':>14}   busy cores before (alone, beside)")
    summary = {}
    for mode in MODES:
        alone, beside = [r for r in rows if r["mode"] == mode]
        ratio = beside["median_step_s"] / alone["median_step_s"]
        summary[mode] = round(ratio, 2)
        label = "before (torch default)" if mode == "before" else "ours (pick_cpu_threads)"
        print(f"{label:26}{alone['threads']:>8}{alone['median_step_s']:>10}{beside['median_step_s']:>10}{ratio:>13.1f}×"
              f"   {alone['busy_cores_before']}, {beside['busy_cores_before']}")
    print(f"\nbeside {args.hogs} busy processes: before {summary['before']}× its time per step alone, ours "
          f"{summary['ours']}×; ours beside the other job vs before beside it: "
          f"{rows[1]['median_step_s'] / rows[3]['median_step_s']:.1f}× faster.")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "ratio_beside_over_alone": summary}, indent=2))


if __name__ == "__main__":
    main()
