"""Nothing lost: a kernel killed in the middle of a stage, then the run resumed.

Stage 3 is run with papermill through ``python -m twinlib run`` on a copy of the test pipeline's
stages 1–2; once its first round of rankings is on disk, the runner, papermill and the kernel are
killed with SIGKILL (no clean-up code runs). The run is then resumed with ``--resume``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PIPELINE_TEST_PARAMS, ROOT

pytestmark = pytest.mark.slow


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _complete_lines(path: Path) -> list[bytes]:
    data = path.read_bytes() if path.exists() else b""
    return data.split(b"\n")[:-1]  # a last line without its newline was cut mid-write


def _kill_tree(proc: subprocess.Popen) -> None:
    import psutil

    parent = psutil.Process(proc.pid)
    family = parent.children(recursive=True) + [parent]  # the kernel runs in a session of its own
    for p in family:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def _stage3_command(run: Path) -> list[str]:
    cmd = [sys.executable, "-m", "twinlib", "run", "--run-dir", str(run), "--resume", "--only", "03", "--quiet"]
    for k, v in PIPELINE_TEST_PARAMS.items():
        cmd += ["--param", f"{k}={json.dumps(v)}"]
    return cmd


def test_a_kernel_killed_mid_stage_loses_nothing(pipeline_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("messages.parquet", "pairs.csv"):
        shutil.copy2(pipeline_run / name, run / name)
    shutil.copytree(pipeline_run / "dataset", run / "dataset")
    for model in ("base", "sft"):
        shutil.copytree(pipeline_run / "models" / model, run / "models" / model)
    state = json.loads((pipeline_run / "run_state.json").read_text())
    state["stages"] = {k: v for k, v in state["stages"].items() if k[:2] in ("01", "02")}
    (run / "run_state.json").write_text(json.dumps(state))
    sft_weights = _sha(run / "models" / "sft" / "model.safetensors")
    per_round = PIPELINE_TEST_PARAMS["auto_prompts_per_round"]  # the simulated ranker's count (no widget here)
    rankings = run / "rankings.jsonl"

    proc = subprocess.Popen(_stage3_command(run), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    try:
        while len(_complete_lines(rankings)) < per_round:
            if proc.poll() is not None:
                pytest.fail(f"stage 3 ended (exit {proc.returncode}) before it could be killed:\n"
                            f"{proc.stderr.read().decode()[-3000:]}")
            if time.time() > deadline:
                pytest.fail("stage 3 wrote no round of rankings within 300 s")
            time.sleep(0.2)
    finally:
        _kill_tree(proc)
    before = _complete_lines(rankings)
    assert not (run / "models" / "refined").exists(), "killed too late: stage 3 had finished"
    state = json.loads((run / "run_state.json").read_text())
    assert state["stages"].get("03_iterative_refinement.ipynb", {}).get("status") != "done"

    # resume: the same command; stage 3 runs again from what is on disk
    t0 = time.time()
    done = subprocess.run(_stage3_command(run), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    print(f"killed after {len(before)} rankings; resumed stage 3 in {time.time() - t0:.0f} s")

    after = _complete_lines(rankings)
    assert after[:len(before)] == before, "judgements written before the kill were changed or lost"
    records = [json.loads(line) for line in after if line.strip()]
    ranked = [r for r in records if r.get("status") == "ranked"]
    items = [r["item_id"] for r in ranked]
    assert len(items) == len(set(items)), "items judged before the kill were judged again"
    assert len(ranked) == PIPELINE_TEST_PARAMS["rounds"] * per_round
    assert {json.loads(b)["item_id"] for b in before} <= set(items)
    assert _sha(run / "models" / "sft" / "model.safetensors") == sft_weights, "the stage-2 model changed"
    assert (run / "models" / "refined" / "model.safetensors").exists()
    state = json.loads((run / "run_state.json").read_text())
    assert state["stages"]["03_iterative_refinement.ipynb"]["status"] == "done"
