"""Several processes: stage 2 (SFT) and stage 4 (PPO) under ``torchrun --nproc_per_node 2`` on a CPU
(gloo), the way they run on several GPUs, keep single-process semantics: every training example is
seen once per epoch (the same tokens as one process over the same epoch), every process ends with
the same weights, and one model is saved.

``accelerate launch --cpu --num_processes 2`` starts a single process (accelerate's CPU launcher
runs one; several CPU processes need ``torchrun`` or MPI), so the tests use torchrun.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN = 96  # one epoch: 3 steps of 16 pairs on each of 2 processes, or 6 steps on one


def torchrun(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed under torchrun (exit {proc.returncode}):\n"
                    f"{proc.stdout[-2000:]}\n{proc.stderr[-8000:]}")
    return proc


@pytest.fixture(scope="module")
def small_run(sample_stage1, tmp_path_factory) -> Path:
    """The sample persona's stage 1 cut to 96 training and 32 validation pairs (pairs.csv only)."""
    import pandas as pd

    run = tmp_path_factory.mktemp("multiprocess") / "run"
    run.mkdir()
    df = pd.read_csv(sample_stage1 / "pairs.csv", keep_default_na=False)
    df = df[df["response"].astype(str).str.strip() != ""]
    parts = [df[df["split"] == "train"].head(N_TRAIN), df[df["split"] == "validation"].head(32),
             df[df["split"] == "test"].head(16)]
    pd.concat(parts).to_csv(run / "pairs.csv", index=False)
    return run


@pytest.mark.slow
def test_sft_with_two_processes_keeps_single_process_semantics(small_run, tmp_path, one_thread):
    from twinlib.sft import read_metrics, train_sft

    two = tmp_path / "two"
    shutil.copytree(small_run, two)
    torchrun(["-m", "twinlib.sft", "--run-dir", str(two), "--profile", "tiny", "--max-steps", "3", "--no-progress",
              "--set", "sft_evals=1", "--set", "sft_patience=0"])
    m2 = read_metrics(two / "models" / "sft")
    assert m2["processes"] == 2
    assert m2["steps"] == 3 and m2["batch_size"] == 32          # 16 pairs per process and step
    assert m2["epochs"] == pytest.approx(1.0)                   # 3 steps × 32 pairs = the 96 training pairs
    assert m2["weights_in_sync"] is True                        # DDP: both processes hold the same weights
    models = sorted(p.name for p in (two / "models").iterdir())
    assert models == ["base", "sft"], models                    # one saved model, no temporary folders left
    assert (two / "models" / "sft" / "config.json").exists()

    # the same epoch in one process (same base model, so the same tokenizer): the same tokens seen
    one = tmp_path / "one"
    shutil.copytree(small_run, one)
    shutil.copytree(two / "models" / "base", one / "models" / "base")
    m1 = train_sft(one, "tiny", max_steps=6, patience=0, progress=False, n_evals=1)
    assert m1["processes"] == 1 and m1["weights_in_sync"] is None
    assert m1["epochs"] == pytest.approx(1.0)
    assert m2["tokens_seen"] == m1["tokens_seen"] > 0, (m2["tokens_seen"], m1["tokens_seen"])


@pytest.mark.slow
def test_ppo_with_two_processes_keeps_single_process_semantics(toy_run, tmp_path):
    from twinlib.rewards import train_reward_model

    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    train_reward_model(run, "tiny", max_steps=4, log=lambda *_: None)
    torchrun(["-m", "twinlib.ppo", "--run-dir", str(run), "--profile", "tiny", "--start-from", "sft", "--steps", "2",
              "--batch-size", "4", "--no-progress"])
    summary = json.loads((run / "models" / "ppo" / "ppo.json").read_text())
    assert summary["processes"] == 2
    assert summary["replies_per_update"] == 8                   # 4 sampled replies on each process per update
    assert summary["steps"] == 2 and summary["weights_in_sync"] is True
    logs = json.loads((run / "models" / "ppo" / "ppo_log.json").read_text())
    assert [e["step"] for e in logs] == [1, 2]                  # one log, written once, not once per process
    assert (run / "models" / "ppo" / "config.json").exists()
    assert (run / "models" / "ppo" / "value_head.pt").exists()
    leftovers = [p.name for p in (run / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers                           # one saved model, no temporary folders
