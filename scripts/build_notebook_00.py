"""Writes notebooks/00_template.ipynb: the opening every course notebook follows."""
from pathlib import Path

import nbformat

from twinlib.nbtools import new_notebook

ROOT = Path(__file__).resolve().parent.parent
cells = [
("md", """
# NN · Title of the stage

**What you will learn:** one or two sentences on the idea this stage teaches.

**What you will build:** the files this stage writes into the run directory, and which stage reads them.

Copy this notebook to start a new stage: keep the order of the sections below. It is not part of the
pipeline (the runner skips `00_*`).
"""),
("md", """
## 0 · Settings

Every setting lives in the next cell, tagged `parameters`: papermill and `python -m twinlib run`
replace it. Keep `=` out of the comments (papermill's parser stops at a second `=`).
"""),
("params", """
run_dir = "runs/sample"   # the run directory: the only place a notebook reads and writes
colab_drive = True        # on Colab: keep run_dir and data/ on your Google Drive (nothing lost on a disconnect)
profile = "auto"          # auto | tiny (CPU) | t4 (Colab T4, LoRA) | gpu (24 GB+ GPU, LoRA)
seed = 0
"""),
("code", """
from twinlib.notebook import setup
run = setup(run_dir, seed=seed, drive=colab_drive)   # prints library versions and the device, creates the run directory
"""),
("md", """
## 1 · First section

Explain *why* in markdown; keep code cells short and call `twinlib` (no functions defined here).
Read earlier stages' outputs only from `run` (for example `run.pairs_csv`), never from another
notebook's variables.
"""),
("md", """
## Summary

List what this stage wrote, so the reader knows where to look next.
"""),
("code", """
from twinlib.notebook import summarize_outputs
print("\\n".join(summarize_outputs(run)))
"""),
]
nbformat.write(new_notebook(cells), str(ROOT / "notebooks" / "00_template.ipynb"))
