"""The run directory: one folder holds everything a run reads and writes.

Notebooks never share variables; they share files in the run directory, at the paths below.
Keeping the layout in one place means a stage can be re-run, resumed or compared by path alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


def data_fingerprint(run) -> str | None:
    """A short hash of the run's ``pairs.csv``: models and rankings are only valid for the data
    they were made from (``None`` before stage 1)."""
    import hashlib

    p = RunDir(run).pairs_csv
    if not p.exists():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


class DataMismatchError(RuntimeError):
    """A model of the run directory was trained on other data than the run's ``pairs.csv``."""


def check_fingerprint(run, model_dir, stage: str) -> None:
    """Refuse to reuse ``model_dir`` when it was trained on other pairs than the run's (its
    ``twin.json`` records :func:`data_fingerprint`). Models that record none (older runs) pass."""
    meta = Path(model_dir) / "twin.json"
    if not meta.exists():
        return
    saved = json.loads(meta.read_text(encoding="utf-8")).get("data_fingerprint")
    now = data_fingerprint(run)
    if saved and now and saved != now:
        root = RunDir(run).root
        raise DataMismatchError(
            f"{model_dir} was trained on other data than {RunDir(run).pairs_csv} holds now (fingerprint {saved} vs "
            f"{now}): stage 1 was re-run with another export or other settings. Reusing it would give you the twin "
            f"of the old data. Use a new run_dir for the new export (e.g. runs/mine), or run {stage} with "
            f"overwrite = True to train it again on {root}'s current data (the old model is kept as a backup)."
        )


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root):
        """``root``: a folder, or a RunDir (returned as the same folder), so callers take either."""
        object.__setattr__(self, "root", root.root if isinstance(root, RunDir) else Path(root))

    # stage 1
    @property
    def messages(self) -> Path: return self.root / "messages.parquet"
    @property
    def pairs_csv(self) -> Path: return self.root / "pairs.csv"
    @property
    def dataset(self) -> Path: return self.root / "dataset"
    @property
    def stage1(self) -> Path: return self.root / "stage1.json"
    # models
    @property
    def models(self) -> Path: return self.root / "models"
    def model(self, name: str) -> Path:
        """``base``, ``sft``, ``refined``, ``reward``, ``ppo`` or ``dpo``."""
        return self.models / name
    # stage 3
    @property
    def rankings(self) -> Path: return self.root / "rankings.jsonl"
    # stage 5
    @property
    def eval(self) -> Path: return self.root / "eval"
    @property
    def judgements(self) -> Path: return self.root / "eval" / "judgements.jsonl"
    @property
    def figures(self) -> Path: return self.root / "figures"
    @property
    def executed(self) -> Path: return self.root / "notebooks"

    def ensure(self) -> "RunDir":
        for p in (self.root, self.models, self.figures, self.eval):
            p.mkdir(parents=True, exist_ok=True)
        return self

    def write_json(self, name: str, obj) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        tmp.replace(path)
        return path

    def read_json(self, name: str):
        path = self.root / name
        if not path.exists():
            raise FileNotFoundError(
                f"{path} is missing: run the notebook that writes it first "
                f"(python -m twinlib run ... --run-dir {self.root})."
            )
        return json.loads(path.read_text(encoding="utf-8"))

    def relative(self, path) -> str:
        """``path`` relative to the run directory when it lies inside it, else as given: what the
        run's files record, so that a run moved to another folder (or to Drive) still resolves."""
        try:
            return str(Path(path).resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def resolve(self, recorded) -> Path:
        """A path a run's file recorded with :meth:`relative`, back as a path (relative ones under
        the run directory, wherever it now is)."""
        p = Path(str(recorded))
        return p if p.is_absolute() else self.root / p

    def require(self, path: Path, stage: str) -> Path:
        """Fail with a clear message when an earlier stage's output is missing."""
        if not Path(path).exists():
            raise FileNotFoundError(
                f"{path} is missing. It is written by {stage}; run that notebook on this run "
                f"directory first (or `python -m twinlib run --run-dir {self.root} ...`)."
            )
        return Path(path)
