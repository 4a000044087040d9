"""The runner keeps personal parameters (me, nicknames, other names, export paths) out of the
executed notebooks it writes into the run directory, while the notebooks still receive them."""

from __future__ import annotations

import json
import os

import pytest

from test_runner import _write

from twinlib.runner import PRIVATE_ENV, StageFailed, private_parameters, run_pipeline, stage_notebooks

SECRETS = {
    "me": "林晓雨 Lin",
    "nicknames": {"小雨同学": "林晓雨 Lin"},
    "other_names": ["Uncle Quillon"],
    "export_paths": ["/home/xiaoyu/私人/wechat-export.csv"],
}


@pytest.fixture()
def books(tmp_path):
    d = tmp_path / "nbs"
    d.mkdir()
    _write(d / "01_collect.ipynb",
           "run_dir = ''\nme = 'Robin'\nnicknames = {}\nother_names = []\nexport_paths = ['data/sample']\nseed = 0",
           "import json\nfrom pathlib import Path\n"
           "print('names read:', len(nicknames) + len(other_names))\n"
           "Path(run_dir, 'seen.json').write_text(json.dumps([me, nicknames, other_names, export_paths, seed]))")
    _write(d / "02_next.ipynb", "run_dir = ''\nfail = False",
           "assert not fail, 'asked to fail'")
    return d


def _executed_text(run) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in (run / "notebooks").glob("*.ipynb"))


def _leaks(text: str) -> list[str]:
    values = ["林晓雨", "Lin", "小雨同学", "Uncle Quillon", "xiaoyu", "私人", "wechat-export"]
    return [v for v in values if v in text]


@pytest.mark.slow
def test_personal_parameters_reach_the_notebook_but_not_its_executed_copy(books, tmp_path):
    run = tmp_path / "run"
    run_pipeline(run, {**SECRETS, "seed": 7}, notebooks=stage_notebooks(books), progress_bar=False,
                 log=lambda *_: None)
    assert json.loads((run / "seen.json").read_text(encoding="utf-8")) == [
        SECRETS["me"], SECRETS["nicknames"], SECRETS["other_names"], SECRETS["export_paths"], 7]
    text = _executed_text(run)
    assert _leaks(text) == []
    nb = json.loads((run / "notebooks" / "01_collect.ipynb").read_text(encoding="utf-8"))
    assert nb["metadata"]["papermill"]["parameters"] == {"run_dir": str(run.resolve()), "seed": 7}
    assert nb["metadata"]["papermill"]["input_path"].endswith("01_collect.ipynb")
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert any("private_parameters(me=me" in s for s in sources)
    assert PRIVATE_ENV not in os.environ  # set for the run only
    state = (run / "run_state.json").read_text(encoding="utf-8")
    assert _leaks(state) == []


@pytest.mark.slow
def test_a_failing_stage_leaves_no_personal_parameter_either(books, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(StageFailed):
        run_pipeline(run, {**SECRETS, "fail": True}, notebooks=stage_notebooks(books), progress_bar=False,
                     log=lambda *_: None)
    assert (run / "notebooks" / "02_next.ipynb").exists()
    assert _leaks(_executed_text(run)) == []
    assert PRIVATE_ENV not in os.environ


def test_private_parameters_fall_back_to_the_notebook_defaults(monkeypatch):
    """Run by hand (or by nbval) the executed copy uses its own defaults; under the runner, the values passed."""
    monkeypatch.delenv(PRIVATE_ENV, raising=False)
    assert private_parameters(me="Robin", export_paths=["data/sample"]) == ("Robin", ["data/sample"])
    monkeypatch.setenv(PRIVATE_ENV, json.dumps({"me": "Me"}))
    assert private_parameters(me="Robin", export_paths=["data/sample"]) == ("Me", ["data/sample"])
