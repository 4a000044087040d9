"""The papermill runner: parameters per notebook, resume, refusal to re-run over a run, clear failures."""

from __future__ import annotations

import json

import pytest

from twinlib.nbtools import new_notebook
from twinlib.runner import StageFailed, run_pipeline, stage_notebooks


def _write(path, params: str, body: str):
    import nbformat

    nbformat.write(new_notebook([("params", params), ("code", body)]), str(path))
    return path


@pytest.fixture()
def books(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _write(d / "00_template.ipynb", "run_dir = ''", "raise RuntimeError('the template is not a stage')")
    _write(d / "01_first.ipynb", "run_dir = ''\nme = 'x'",
           "from pathlib import Path\nPath(run_dir, 'first.txt').write_text(me)")
    _write(d / "02_second.ipynb", "run_dir = ''\nfail = False",
           "from pathlib import Path\nassert not fail, 'asked to fail'\n"
           "Path(run_dir, 'second.txt').write_text(Path(run_dir, 'first.txt').read_text() + '!')")
    return d


@pytest.mark.slow
def test_runs_in_order_resumes_and_fails_clearly(books, tmp_path):
    nbs = stage_notebooks(books)
    assert [n.name for n in nbs] == ["01_first.ipynb", "02_second.ipynb"]
    run = tmp_path / "run"

    # a failing stage names the notebook and the cell, keeps the finished stage
    with pytest.raises(StageFailed) as err:
        run_pipeline(run, {"me": "robin", "fail": True, "unused": 1}, notebooks=nbs, progress_bar=False, log=lambda *_: None)
    msg = str(err.value)
    assert "02_second.ipynb" in msg and "cell" in msg and "asked to fail" in msg and "--resume" in msg
    assert (run / "notebooks" / "02_second.ipynb").exists()  # the executed copy with the traceback
    assert (run / "first.txt").read_text() == "robin"         # only declared parameters reach a notebook

    # without --resume a run directory with finished stages is not touched
    with pytest.raises(FileExistsError, match="--resume"):
        run_pipeline(run, {"me": "robin"}, notebooks=nbs, progress_bar=False, log=lambda *_: None)

    # --resume skips the finished stage and runs the failed one
    (run / "first.txt").write_text("kept")
    results = run_pipeline(run, {"me": "robin"}, notebooks=nbs, resume=True, progress_bar=False, log=lambda *_: None)
    assert [r.status for r in results] == ["skipped", "done"]
    assert (run / "second.txt").read_text() == "kept!"
    state = json.loads((run / "run_state.json").read_text())
    assert {k: v["status"] for k, v in state["stages"].items()} == {"01_first.ipynb": "done", "02_second.ipynb": "done"}


@pytest.mark.slow
def test_a_stage_leaves_no_kernel_noise_in_the_terminal(books, tmp_path, capfd):
    """The kernel inherits the terminal: over TCP it warned there about unencrypted traffic on every
    stage. The runner connects to it over Unix sockets in a private temporary folder instead."""
    import os

    run_pipeline(tmp_path / "run", {"me": "robin"}, notebooks=stage_notebooks(books)[:1], progress_bar=False,
                 log=lambda *_: None)
    assert (tmp_path / "run" / "first.txt").read_text() == "robin"
    err = capfd.readouterr().err
    if os.name == "posix":
        assert "WARNING" not in err and "encryption" not in err, err


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    from twinlib.cli import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run_state.json").write_text(json.dumps({"stages": {"01_collect_data.ipynb": {"status": "done"}}}))
    rc = main(["run", "--run-dir", str(tmp_path / "run"), "--profile", "tiny"])
    assert rc == 1
    assert "--resume" in capsys.readouterr().err
