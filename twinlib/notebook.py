"""What every notebook does first and last: set-up, the run directory, the closing summary."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

from twinlib.rundir import RunDir


DRIVE_MOUNT = Path("/content/drive")
DRIVE_FOLDER = Path("/content/drive/MyDrive/twin")   # TWIN_DRIVE_FOLDER overrides


def in_colab() -> bool:
    return "google.colab" in sys.modules


def drive_folder() -> Path:
    """The folder on Google Drive that plays the project folder on Colab (``runs/``, ``data/``)."""
    return Path(os.environ.get("TWIN_DRIVE_FOLDER") or DRIVE_FOLDER)


def use_drive_on_colab() -> Path:
    """Mount Google Drive (Colab asks once for permission) and work in :func:`drive_folder`.

    Relative paths of the notebooks (``run_dir``, ``export_paths``) then mean folders on your
    Drive: the run directory outlives a disconnected or recycled runtime, and a re-run with the
    same ``run_dir`` picks up everything written so far (rankings, judgements, models).
    """
    from google.colab import drive  # only importable on Colab

    if not (DRIVE_MOUNT / "MyDrive").is_dir():
        drive.mount(str(DRIVE_MOUNT))
    folder = drive_folder()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    return folder


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


#: Warnings of the libraries that say nothing a learner can act on (each was seen in an executed notebook).
LIBRARY_NOISE = (
    (FutureWarning, r"(?s).*(is_gradient_checkpointing|gradient_checkpointing|is deprecated and will be removed).*"),
    (UserWarning, r"(?s).*(attention mask is not set|pad token is same as eos|copying from a non-meta parameter).*"),
)


def quiet_libraries() -> None:
    """Keep executed notebooks readable: no per-file "Loading weights" / "Writing model shards" /
    dataset-map progress bars (they read "0%" in any viewer that does not run widgets), no load
    reports, and none of the library warnings in :data:`LIBRARY_NOISE`. Our own progress bars
    (training, PPO) and every other warning stay."""
    import warnings

    for category, pattern in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - torch-free use of the data stage
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def setup(run_dir, seed: int = 0, quiet: bool = False, drive: bool = True) -> RunDir:
    """Prepare a notebook: create the run directory, seed, print versions and the device.

    On Colab with ``drive=True`` (the notebooks' ``colab_drive`` parameter) Google Drive is
    mounted and relative paths mean folders of :func:`drive_folder`; elsewhere ``drive`` does
    nothing. Returns the :class:`~twinlib.rundir.RunDir` that the notebook reads and writes.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_libraries()
    project = Path(__file__).resolve().parent.parent
    if in_colab() and drive:
        folder = use_drive_on_colab()
        if not quiet:
            print(f"Colab: working in {folder} on your Google Drive (run_dir {run_dir!r} is "
                  f"{(folder / run_dir) if not Path(run_dir).is_absolute() else run_dir}); "
                  "set colab_drive = False to keep everything on the runtime's disk instead.")
    elif Path.cwd().resolve() == project / "notebooks":
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
