"""The notebooks' opening: set-up on Colab (Google Drive), the "auto" profile, the sample on demand."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path

import pytest

from twinlib import modeling, notebook
from twinlib.modeling import PROFILES, get_profile
from twinlib.sample_data import ensure_sample


@pytest.fixture
def fake_colab(tmp_path, monkeypatch):
    """A stand-in for ``google.colab``: ``drive.mount`` creates ``MyDrive`` under the mount point."""
    mount = tmp_path / "content" / "drive"
    calls = []

    def fake_mount(where):
        calls.append(where)
        (Path(where) / "MyDrive").mkdir(parents=True, exist_ok=True)

    colab = types.ModuleType("google.colab")
    colab.__spec__ = importlib.machinery.ModuleSpec("google.colab", None)
    colab.drive = types.SimpleNamespace(mount=fake_mount)
    google = types.ModuleType("google")
    google.__spec__ = importlib.machinery.ModuleSpec("google", None)
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(notebook, "DRIVE_MOUNT", mount)
    monkeypatch.setenv("TWIN_DRIVE_FOLDER", str(mount / "MyDrive" / "twin"))
    monkeypatch.chdir(tmp_path)
    return mount, calls


def test_on_colab_the_run_directory_lives_on_drive(fake_colab):
    mount, calls = fake_colab
    run = notebook.setup("runs/mine", quiet=True)
    assert calls == [str(mount)]
    folder = mount / "MyDrive" / "twin"
    assert Path.cwd() == folder
    assert run.root.resolve() == (folder / "runs" / "mine").resolve() and run.root.is_dir()
    # a second notebook in the same runtime finds Drive mounted and does not mount again
    notebook.setup("runs/mine", quiet=True)
    assert calls == [str(mount)]


def test_on_colab_drive_can_be_turned_off(fake_colab, tmp_path):
    _, calls = fake_colab
    run = notebook.setup("runs/local", quiet=True, drive=False)
    assert calls == []
    assert run.root.resolve() == (tmp_path / "runs" / "local").resolve()


def test_off_colab_drive_is_ignored(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    run = notebook.setup("runs/x", quiet=True, drive=True)
    assert run.root.resolve() == (tmp_path / "runs" / "x").resolve()


def test_the_sample_is_generated_where_it_is_missing(tmp_path, capsys):
    root = Path(__file__).resolve().parent.parent / "data" / "sample"
    target = tmp_path / "data" / "sample"
    other = tmp_path / "mine"
    assert ensure_sample([str(target), str(other)]) == [str(target), str(other)]
    assert not other.exists(), "only a data/sample folder is generated"
    made = sorted(p.relative_to(target) for p in target.rglob("*") if p.is_file())
    assert made, "nothing generated"
    for rel in made:  # the same files, byte for byte, as the bundled sample
        assert (target / rel).read_bytes() == (root / rel).read_bytes(), rel
    assert "generated the synthetic sample" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*")}
    ensure_sample(str(target))  # an existing folder is left alone
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*")} == before


def _write_twin(run: Path, **profile_changes) -> None:
    from dataclasses import asdict

    prof = asdict(PROFILES["t4"].with_overrides(**profile_changes))
    (run / "models" / "sft").mkdir(parents=True)
    (run / "models" / "sft" / "twin.json").write_text(json.dumps({"kind": "sft", "profile": prof}))


def test_auto_profile_follows_stage_2(tmp_path):
    _write_twin(tmp_path, base_model="my/checkpoint", sft_batch_size=2)
    prof = get_profile("auto", run=tmp_path)
    assert prof.name == "t4" and prof.base_model == "my/checkpoint" and prof.sft_batch_size == 2
    assert get_profile("auto", run=tmp_path, max_new_tokens=7).max_new_tokens == 7
    with pytest.raises(ValueError, match="differs from"):
        get_profile("auto", base_model="other/model", run=tmp_path)
    # later stages: the saved profile for "auto" or the same preset name, the preset otherwise
    from twinlib.modeling import later_stage_profile

    assert later_stage_profile("t4", tmp_path).base_model == "my/checkpoint"
    assert later_stage_profile("auto", tmp_path).sft_batch_size == 2
    assert later_stage_profile("tiny", tmp_path) == PROFILES["tiny"]
    assert later_stage_profile("t4", tmp_path, base_model="other/model").base_model == "other/model"


def test_auto_profile_picks_by_hardware(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_profile("auto", run=tmp_path).name == "tiny"   # no stage 2 yet, no GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for gib, expected in ((15, "t4"), (80, "gpu")):
        props = types.SimpleNamespace(total_memory=gib * 2**30, name="fake")
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i, p=props: p)
        assert modeling.auto_profile_name() == expected
        assert get_profile("auto").name == expected
    with pytest.raises(ValueError, match="auto"):
        get_profile("huge")
