"""Stage 3 refinement rounds on the sample persona with the tiny model.

* notebook 03 under papermill with the ``auto`` ranker: every round is measured on validation
  messages and the best validated round is kept, and the run holds ``models/refined``,
  ``refine_log.json``, simulated rankings and the plot (asserted on the files, never on printed text);
* the same notebook asked for ``ranker="widget"`` under papermill does not wait: it falls back
  to the saved rankings and says so in the log;
* the widget path of :class:`twinlib.refine.Refinement` driven by clicks, with a resume after
  the widget is re-created mid-round.

The run directory comes from the session fixture ``pipeline_run`` when the suite has one (its
stage 1 and 2 outputs are copied), else it is built here: stage 1 with the project's readers,
anonymizer and pair builder on ``data/sample``, then a short stage 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from twinlib.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_iterative_refinement.ipynb"
SFT_STEPS = 60

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every test here trains or samples the tiny model."""


def build_stage12(stage1: Path, run_dir: Path, sft_steps: int = SFT_STEPS) -> RunDir:
    """A copy of stage 1 (sample persona) and a short stage 2 in ``run_dir``, through twinlib only."""
    from twinlib.sft import train_sft

    shutil.copytree(stage1, run_dir)
    train_sft(run_dir, "tiny", max_steps=sft_steps, max_eval_samples=64, progress=False)
    return RunDir(run_dir)


@pytest.fixture(scope="module")
def stage2_run(request, tmp_path_factory) -> Path:
    """A pristine run with stage 1 and 2 outputs (never modified by the tests: they copy it)."""
    dst = tmp_path_factory.mktemp("stage2") / "run"
    try:
        provided = request.getfixturevalue("pipeline_run")
        src = Path(provided)
        if not (src / "models" / "sft" / "config.json").exists():
            raise pytest.FixtureLookupError("pipeline_run", request)
        dst.mkdir(parents=True)
        for name in ("pairs.csv", "dataset", "models/sft"):
            if (src / name).is_dir():
                shutil.copytree(src / name, dst / name)
            elif (src / name).exists():
                shutil.copy(src / name, dst / name)
    except pytest.FixtureLookupError:
        build_stage12(request.getfixturevalue("sample_stage1"), dst)
    return dst


def fresh(stage2_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(stage2_run, run)
    return run


def execute(run: Path, **params) -> Path:
    import papermill as pm

    out = run / "notebooks" / NOTEBOOK.name
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"run_dir": str(run), **params}, cwd=str(ROOT),
                        kernel_name="python3", progress_bar=False, log_output=False)
    return out


@pytest.fixture(scope="module")
def refined_run(stage2_run, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("refined") / "run"
    shutil.copytree(stage2_run, run)
    execute(run, ranker="auto", rounds=2, k=4, prompts_per_round=32, auto_prompts_per_round=32)
    return run


def test_auto_rounds_are_measured_and_the_best_validated_one_kept(refined_run):
    """Every round is measured on the same validation messages; models/refined is the round with the
    best validation fidelity (round 0, the stage-2 model, included), and the verdict says so."""
    import torch

    from twinlib.modeling import load_model

    log = json.loads((refined_run / "refine_log.json").read_text(encoding="utf-8"))
    rounds = log["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and log["finished"]
    assert all(len(r["fidelity_items"]) == len(rounds[0]["fidelity_items"]) > 0 for r in rounds)
    print("fidelity by round:", [r["fidelity"] for r in rounds], "auto-score:", [r["auto_score"] for r in rounds])
    assert all(r["simulated"] and r["rankers"] == ["auto"] for r in rounds[1:])
    assert all(r["n_best"] == 32 and r["steps"] > 0 for r in rounds[1:])
    kept = json.loads((refined_run / "models" / "refined" / "twin.json").read_text())["kept_round"]
    best = max(r["fidelity"] for r in rounds)
    assert kept == min(r["round"] for r in rounds if r["fidelity"] == best)
    source = refined_run / "models" / "sft" if kept == 0 else refined_run / "refine" / f"round_{kept}"
    a, _ = load_model(source, device="cpu")
    b, _ = load_model(refined_run / "models" / "refined", device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    verdict = json.loads((refined_run / "stage3.json").read_text())["verdict"]
    assert verdict["kept_round"] == kept and "validation" in verdict["verdict"]


def test_auto_run_outputs(refined_run):
    run = RunDir(refined_run)
    refined = run.model("refined")
    assert (refined / "config.json").exists() and (refined / "refine_log.json").exists()
    assert json.loads((refined / "twin.json").read_text())["simulated_rankings"] is True
    assert (run.figures / "refinement_rounds.png").stat().st_size > 1000
    from twinlib.ranking import RankingStore, to_preferences

    judged = RankingStore.for_run(run).judgements()
    assert len(judged) == 64 and all(j["ranker"] == "auto" and j["simulated"] for j in judged)
    assert all(len(j["candidates"]) == 4 and len(j["ranks"]) == 4 for j in judged)
    assert {j["round"] for j in judged} == {1, 2}
    # candidates come from the training split only
    pairs = pd.read_csv(run.pairs_csv, keep_default_na=False)
    train_prompts = set(pairs.loc[pairs["split"] == "train", "prompt"])
    assert {j["prompt"] for j in judged} <= train_prompts
    # round 2 was sampled by the round-1 model, and each record says which model
    versions = {j["round"]: j["model"]["version"] for j in judged}
    assert versions[1] != versions[2] and all(j["model"]["path"] for j in judged)
    prefs = to_preferences(run.rankings)
    assert len(prefs) > 64 and (prefs["margin"] >= 1).all()
    # the executed notebook is saved in the run and has no error output
    nb = json.loads((run.executed / NOTEBOOK.name).read_text())
    assert not [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_rerun_reuses_and_widget_falls_back_under_papermill(refined_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(refined_run, run)
    before = (run / "models" / "refined" / "model.safetensors").stat().st_mtime_ns
    # default overwrite=False: models/refined is reused, nothing retrained
    from twinlib.refine import run_refinement

    ref = run_refinement(run, "tiny", rounds=2, ranker="auto", verbose=False)
    assert ref.reused and (run / "models" / "refined" / "model.safetensors").stat().st_mtime_ns == before
    # ranker="widget" in papermill: never waits; learns from the saved rankings (file mode), says so
    execute(run, ranker="widget", rounds=1, overwrite=True, prompts_per_round=4, auto_prompts_per_round=4)
    nb = json.loads((run / "notebooks" / NOTEBOOK.name).read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert "not interactive" in text and "saved rankings" in text
    log = json.loads((run / "refine_log.json").read_text())
    assert [r["round"] for r in log["rounds"]] == [0, 1] and log["rounds"][1]["n_rankings"] == 32
    assert list(run.joinpath("models").glob("refined.bak-*"))  # the old model was kept


def test_widget_rounds_with_resume(stage2_run, tmp_path):
    from twinlib.ranking import RankingStore
    from twinlib.refine import Refinement

    run = fresh(stage2_run, tmp_path)
    kw = dict(k=3, prompts_per_round=3, eval_prompts=4, eval_samples=2, max_steps_per_round=2, verbose=False)
    ref = Refinement(run, "tiny", **kw)
    w = ref.widget(rounds=2)
    first = w.session.next_item()
    assert first.round == 1 and len(first.candidates) == 3 and w.progress_label.value == "0 / 3 ranked"
    w.rank_buttons[1].value = "1"
    w.submit_button.click()
    w.order_box.value = "3 1 2"
    # the browser is closed and the kernel restarted: a new Refinement and widget resume at item 3,
    # with the same candidates (they were saved, not sampled again)
    ref2 = Refinement(run, "tiny", **kw)
    w2 = ref2.widget(rounds=2)
    cur = w2.session.next_item()
    assert w2.progress_label.value == "2 / 3 ranked" and cur.item_id == ref.candidates(1)[2].item_id
    assert cur.candidates == ref.candidates(1)[2].candidates
    w2.none_button.click()  # round 1 done -> learns, round 2 appears
    assert [h["round"] for h in ref2.history] == [0, 1]
    assert w2.session.next_item().round == 2 and w2.progress_label.value == "0 / 3 ranked"
    for _ in range(3):
        w2.rank_buttons[0].value = "1"
        w2.submit_button.click()
    assert ref2.finished and (run / "models" / "refined" / "config.json").exists()
    log = json.loads((run / "refine_log.json").read_text())
    assert [r["round"] for r in log["rounds"]] == [0, 1, 2]
    assert log["rounds"][1]["rankers"] == ["person"] and not log["rounds"][1]["simulated"]
    assert log["rounds"][1]["n_best"] == 2  # "none of these" gives no best-of-k example
    judged = RankingStore.for_run(run).judgements()
    assert [j["status"] for j in judged] == ["ranked", "ranked", "none", "ranked", "ranked", "ranked"]


def test_rerun_reuses_the_refined_model_and_shows_its_rankings(refined_run):
    """Re-running stage 3 on a finished run (as nbval and users do) reuses the model, and the
    rankings it learned from stay readable through the returned object."""
    from twinlib.refine import run_refinement

    ref = run_refinement(refined_run, "tiny", rounds=2, ranker="auto", verbose=False)
    assert ref.reused and ref.finished
    assert len(ref.store.judgements()) == 2 * 32
