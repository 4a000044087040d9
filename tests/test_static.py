"""Static gates that need no GPU and no training: notebook hygiene, imports, API drift, install agreement."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import nbformat
import pytest

from twinlib.nbtools import problems

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert any(n.startswith("01_") for n in names), names


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(nb):
    """Exactly one parameters cell, no committed outputs or counts, every code cell parses."""
    assert problems(nb) == []


def _notebook_imports(nb_path: Path) -> set[str]:
    nb = nbformat.read(str(nb_path), as_version=4)
    mods = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                mods.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods.add(node.module.split(".")[0])
    return mods


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_are_installed(nb):
    """Every module a notebook imports is importable here (google.colab only exists on Colab)."""
    missing = [m for m in sorted(_notebook_imports(nb)) if m != "google" and importlib.util.find_spec(m) is None]
    assert not missing, f"{nb.name} imports modules the project does not install: {missing}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_logic_lives_in_twinlib(nb):
    """Notebooks call twinlib; they define no functions or classes of their own."""
    book = nbformat.read(str(nb), as_version=4)
    for i, cell in enumerate(c for c in book.cells if c.cell_type == "code"):
        tree = ast.parse("\n".join(l for l in cell.source.splitlines() if not l.lstrip().startswith(("%", "!"))))
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
        assert not defs, f"{nb.name} code cell {i} defines {defs}: move them to twinlib"


# --------------------------------------------------------------------------- API drift

CONFIG_CLASSES = {
    "SFTConfig": "trl",
    "RewardConfig": "trl",
    "DPOConfig": "trl",
    "RLOOConfig": "trl",
    "GRPOConfig": "trl",
    "SFTTrainer": "trl",
    "RewardTrainer": "trl",
    "DPOTrainer": "trl",
    "RLOOTrainer": "trl",
    "TrainingArguments": "transformers",
    "GPT2Config": "transformers",
    "LoraConfig": "peft",
    "Accelerator": "accelerate",
}


def _keyword_calls():
    """(file, line, class name, keyword) for every keyword our code passes to a config/trainer class."""
    found = []
    for path in sorted((ROOT / "twinlib").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            if name in CONFIG_CLASSES:
                for kw in node.keywords:
                    if kw.arg is not None:
                        found.append((path.relative_to(ROOT), node.lineno, name, kw.arg))
    return found


def test_api_drift_keywords_exist():
    """Every keyword we pass to a TRL/transformers/peft/accelerate class exists in the installed version."""
    calls = _keyword_calls()
    assert calls, "found no config calls to check: the scan is broken"
    bad = []
    for path, line, name, kw in calls:
        cls = getattr(importlib.import_module(CONFIG_CLASSES[name]), name)
        params = inspect.signature(cls).parameters
        if kw not in params:
            bad.append(f"{path}:{line} {name}({kw}=...)")
    assert not bad, "keywords unknown to the installed libraries:\n" + "\n".join(bad)


def test_precision_kwargs_exist_in_every_trl_config():
    """The hardware keywords we splat into configs are accepted by each TRL config we use."""
    import trl

    from twinlib.modeling import trainer_precision_kwargs

    for device in ("cpu", "cuda"):
        try:
            kw = trainer_precision_kwargs(device)
        except (AssertionError, RuntimeError):  # no CUDA here: cuda branch needs torch.cuda
            continue
        for cls in (trl.SFTConfig, trl.RewardConfig, trl.DPOConfig, trl.RLOOConfig):
            params = inspect.signature(cls).parameters
            assert set(kw) <= set(params), (cls.__name__, set(kw) - set(params))


# --------------------------------------------------------------------------- install agreement


def test_environment_yml_and_colab_cells_install_the_project():
    """environment.yml and every notebook's Colab cell install this project with extras pyproject defines."""
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"])
    env = (ROOT / "environment.yml").read_text()
    m = re.search(r"-e \.\[([^\]]+)\]", env)
    assert m, "environment.yml must pip-install the project (-e .[extras])"
    assert set(m.group(1).split(",")) <= extras
    assert "torch" not in " ".join(pyproject["project"]["dependencies"]), "torch is installed per machine, not by the package"
    for nb in NOTEBOOKS:
        src = "\n".join(c.source for c in nbformat.read(str(nb), as_version=4).cells if c.cell_type == "code")
        if "google.colab" not in src:
            continue
        m = re.search(r"twinlib\[([^\]]+)\] @ git\+", src)
        assert m, f"{nb.name}: the Colab cell must install twinlib[...] from the repository"
        assert set(m.group(1).split(",")) <= extras, nb.name


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_papermill_sees_every_parameter(nb):
    """papermill must parse every assignment of the parameters cell (an '=' inside a comment breaks it)."""
    import papermill as pm

    book = nbformat.read(str(nb), as_version=4)
    cell = next(c for c in book.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for n in ast.parse(cell.source).body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    seen = set(pm.inspect_notebook(str(nb)))
    assert assigned == seen, f"papermill cannot parse {sorted(assigned - seen)}: keep '=' out of comments"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    import re

    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("doc", ["README.md", "docs/formats.md", "docs/stage1.md", "docs/stage2.md",
                                 "docs/stage3.md", "docs/stage4.md", "docs/stage5.md", "docs/serving.md"])
def test_doc_links_resolve(doc):
    """Every in-page anchor names a heading, every relative link or picture names a file that exists."""
    import re

    path = ROOT / doc
    text = path.read_text(encoding="utf-8")
    body = re.sub(r"```.*?```", "", text, flags=re.S)
    anchors = {_anchor(m) for m in re.findall(r"^#+ (.+)$", body, flags=re.M)}
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", body):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file, _, frag = target.partition("#")
        if not file:
            if frag not in anchors:
                bad.append(target)
        elif not (path.parent / file).exists():
            bad.append(target)
    assert not bad, f"{doc}: links to nothing: {bad}"
