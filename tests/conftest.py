"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_exports() -> Path:
    """The folder of real sample exports (``../shared/fixtures/real-exports``; ``TWIN_FIXTURES`` overrides)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real-exports"
    root = Path(os.environ.get("TWIN_FIXTURES") or default)
    if not root.is_dir():
        pytest.skip(f"real export fixtures not found at {root}: they live beside the repo in ../shared (see README)")
    return root


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread: the fastest for the 1M-parameter tiny model, and fair on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """One stage-4 toy run (pairs.csv, models/sft, rankings.jsonl) per session; tests copy it."""
    from twinlib.ppo import build_toy_run

    base = tmp_path_factory.getbasetemp() / "stage4_toy_run"
    if not (base / "rankings.jsonl").exists():
        build_toy_run(base)
    return base


@pytest.fixture(scope="session")
def sample_stage1(tmp_path_factory) -> Path:
    """Stage 1 on the sample persona through twinlib (read, anonymize, pairs, splits), once per
    session; a pristine run directory that tests copy before they write into it."""
    from twinlib.data import find_exports, read_exports
    from twinlib.pairs import build_pairs, save_pairs, split_pairs
    from twinlib.privacy import ME, Anonymizer
    from twinlib.sample_data import PERSONA_NAME

    run = tmp_path_factory.mktemp("sample_stage1") / "run"
    messages = read_exports(find_exports([str(ROOT / "data" / "sample")]))
    anon = Anonymizer.from_messages(messages, me=PERSONA_NAME)
    save_pairs(split_pairs(build_pairs(anon.anonymize(messages), me=ME), seed=0), run)
    return run


# --------------------------------------------------------------------------- the whole pipeline, once

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_DIR = ROOT / "runs" / ".pytest-pipeline"   # make test runs nbval over its executed notebooks

# Small settings for the test run: every stage's real code path, fewer steps.
# The runner offers each notebook only the parameters it declares.
PIPELINE_TEST_PARAMS = {
    "export_paths": [str(ROOT / "data" / "sample")],
    "me": "Robin Vale",
    "profile": "tiny",
    # stage 2: the default profile, trained to convergence (the habit and context assertions need it),
    # without the time budget, so that a slower CI machine trains the same epochs (the budget and the
    # schedule it fits are tested in tests/test_sft.py)
    "time_budget_min": 0,
    # stage 3
    "rounds": 2,
    "prompts_per_round": 24,
    "auto_prompts_per_round": 48,
    # stage 4
    "ppo_steps": 8,
    "batch_size": 8,
    "reward_epochs": 1,
    "dpo_epochs": 1,
    "n_samples": 4,
    # stage 5
    "n_test": 120,
    "n_validation": 120,
    "verdict_messages": 64,
    "judge_messages": 200,
    "n_prompt_tests": 2,
}


def _offline_prefix() -> list[str]:
    """Run inside a new network namespace with only loopback (the kernel talks to papermill over it)."""
    import shutil
    import subprocess

    if os.environ.get("TWIN_TEST_ONLINE") or not shutil.which("unshare"):
        return []
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True)
    return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'] if probe.returncode == 0 else []


@pytest.fixture(scope="session")
def pipeline_run():
    """Notebooks 01→05 executed once with papermill on the sample persona (tiny profile, small settings),
    with no network at all where the machine allows a network namespace (``offline.json`` says which)."""
    import json
    import shutil
    import subprocess
    import sys
    import time

    if os.environ.get("TWIN_REUSE_PIPELINE") and (PIPELINE_DIR / "eval" / "metrics.json").exists():
        return PIPELINE_DIR  # local iteration on the tests only: reuse the last finished run
    if PIPELINE_DIR.exists():
        shutil.rmtree(PIPELINE_DIR)
    PIPELINE_DIR.mkdir(parents=True)
    prefix = _offline_prefix()
    cmd = prefix + [sys.executable, "-m", "twinlib", "run", "--run-dir", str(PIPELINE_DIR), "--quiet"]
    for k, v in PIPELINE_TEST_PARAMS.items():
        cmd += ["--param", f"{k}={json.dumps(v)}"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    (PIPELINE_DIR / "offline.json").write_text(json.dumps({"network_namespace": bool(prefix),
                                                           "seconds": round(time.time() - t0, 1)}))
    if proc.returncode != 0:
        pytest.fail(f"the pipeline failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return PIPELINE_DIR
