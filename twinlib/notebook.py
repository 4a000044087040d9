"""What every notebook does first and last: set-up, the run directory, the closing summary."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from twinlib.rundir import RunDir


def in_colab() -> bool:
    return "google.colab" in sys.modules


def seed_everything(seed: int = 0) -> None:
    """Seed python, numpy and torch (and transformers' helpers) for repeatable runs."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        from transformers import set_seed

        set_seed(seed)
    except ImportError:  # torch-free use of the data stage
        pass


def setup(run_dir, seed: int = 0, quiet: bool = False) -> RunDir:
    """Prepare a notebook: create the run directory, seed, print versions and the device.

    Returns the :class:`~twinlib.rundir.RunDir` that the notebook reads and writes.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    project = Path(__file__).resolve().parent.parent
    if Path.cwd().resolve() == project / "notebooks":
        # opened from notebooks/ in Jupyter: relative paths (run_dir, data/...) mean the project folder
        os.chdir(project)
    run = RunDir(Path(run_dir).expanduser()).ensure()
    seed_everything(seed)
    if not quiet:
        try:
            from twinlib.modeling import hardware_summary

            print(hardware_summary())
        except ImportError as e:  # pragma: no cover - a broken install
            print(f"(could not import the model libraries: {e})")
        print(f"run directory: {run.root.resolve()}")
    return run


def summarize_outputs(run: RunDir, since: float | None = None) -> list[str]:
    """Files in the run directory (optionally only those written after ``since``), for a closing cell."""
    rows = []
    for p in sorted(run.root.rglob("*")):
        if p.is_file() and (since is None or p.stat().st_mtime >= since) and "notebooks" not in p.parts[-2:-1]:
            rows.append(f"{p.relative_to(run.root)}  ({p.stat().st_size / 1024:.1f} KiB)")
    return rows
