"""No personal data in a run directory: every file the runner and the notebooks write is scanned
for the names and the planted personal data of the sample the run was made from, the executed
notebooks and the models' tokenizers included.

The English sample is scanned in the test suite's run of the whole pipeline (the ``pipeline_run``
fixture); the Chinese one in a run of stages 01 and 02 made here (stage 2 with its defaults, about
two minutes, so that the same run also shows that SFT learns the Chinese persona's habits). Files
that hold no text (model weights, optimizer states, pictures) are not read; Arrow
files (the Hugging Face dataset) are, as their strings are stored as plain UTF-8. In an executed
notebook, the cells that are the course's own, unchanged from ``notebooks/`` (the template's text
and defaults, which name the English sample persona by design), are left out; every output, every
cell the run added or changed (papermill's parameters, the runner's) and the metadata are read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from twinlib.data import find_exports, read_exports

ROOT = Path(__file__).resolve().parent.parent
NOT_TEXT = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz", ".png", ".jpg", ".jpeg", ".gif", ".pdf",
            ".pkl", ".joblib"}


def _notebook_text(path: Path) -> str:
    """An executed notebook as text, less the cells unchanged from the course's notebook of that name."""
    data = json.loads(path.read_text(encoding="utf-8"))
    source_nb = ROOT / "notebooks" / path.name
    template = set()
    if source_nb.exists():
        template = {"".join(c["source"]) for c in json.loads(source_nb.read_text(encoding="utf-8"))["cells"]}
    kept = []
    for cell in data.get("cells", []):
        source = "".join(cell.get("source", []))
        kept.append({"outputs": cell.get("outputs", []), "metadata": cell.get("metadata", {}),
                     "source": "" if source in template else source})
    return json.dumps({"cells": kept, "metadata": data.get("metadata", {})}, ensure_ascii=False)


def run_texts(run: Path) -> dict[str, str]:
    """Every file of the run that can hold text, as text (relative path -> text)."""
    out = {}
    for p in sorted(run.rglob("*")):
        if not p.is_file() or p.suffix.lower() in NOT_TEXT:
            continue
        rel = p.relative_to(run).as_posix()
        if p.suffix == ".ipynb":
            out[rel] = _notebook_text(p)
        elif p.suffix == ".parquet":
            out[rel] = pd.read_parquet(p).astype(str).to_csv()
        else:
            out[rel] = p.read_bytes().decode("utf-8", errors="replace")
    return out


def leaks(texts: dict[str, str], patterns: list[re.Pattern]) -> list[str]:
    return [f"{rel}: {pat.pattern}" for rel, text in texts.items() for pat in patterns if pat.search(text)]


# ----------------------------------------------------------------------------- the English sample

def english_values() -> list[re.Pattern]:
    """Everyone's names in the English sample (and name parts of 4+ letters) and its planted data."""
    raw = read_exports(find_exports(ROOT / "data" / "sample"))
    names = {s for s in raw["sender"] if s}
    parts = {p for n in names for p in n.split() if len(p) >= 4}
    text = "\n".join(raw["text"])
    planted = set(re.findall(r"[\w.]+@example\.(?:com|org)", text))
    planted |= set(re.findall(r"\+44 ?7700 ?900 ?\d{3}|07700 900\d{3}|\(555\) ?010-\d{4}|555[.-]010[.-]\d{4}", text))
    planted |= set(re.findall(r"https://(?:example\.org|maps\.google\.com)/\S+", text))
    planted |= {"4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "192.0.2.14", "51.5072"}
    assert len(names) >= 5 and len(planted) >= 8, "the sample lost its planted personal data"
    pats = [re.compile(r"\b" + re.escape(n) + r"\b", re.IGNORECASE) for n in sorted(names | parts)]
    return pats + [re.compile(re.escape(v)) for v in sorted(planted)]


@pytest.mark.slow
def test_english_run_directory_holds_no_personal_data(pipeline_run):
    texts = run_texts(pipeline_run)
    for must in ("pairs.csv", "messages.parquet", "rankings.jsonl", "models/sft/tokenizer.json",
                 "notebooks/01_collect_data.ipynb", "notebooks/05_evaluation.ipynb"):
        assert must in texts, f"{must} was not written, so it was not scanned"
    assert any(rel.endswith(".arrow") for rel in texts)
    assert leaks(texts, english_values()) == []


# ----------------------------------------------------------------------------- the Chinese sample

# stage 2 with its defaults, and no time budget, so that a slower machine trains the same epochs: the
# habits test measures what the data and the defaults teach, not the machine's speed
ZH_PARAMS = {"export_paths": [str(ROOT / "data" / "sample-zh")], "me": "Me", "profile": "tiny",
             "n_prompt_tests": 1, "verdict_messages": 20, "time_budget_min": 0}


@pytest.fixture(scope="module")
def zh_run(tmp_path_factory) -> Path:
    """Stages 01 and 02 on the Chinese sample, through the runner (stage 2 trained in full, see ZH_PARAMS)."""
    run = tmp_path_factory.mktemp("zh") / "run"
    cmd = [sys.executable, "-m", "twinlib", "run", "--run-dir", str(run), "--quiet", "--only", "01", "02"]
    for k, v in ZH_PARAMS.items():
        cmd += ["--param", f"{k}={json.dumps(v, ensure_ascii=False)}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"stages 01-02 on the Chinese sample failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return run


def chinese_values() -> list[re.Pattern]:
    from twinlib.sample_data_zh import PARTNERS, PERSONA_NAME, PLANTED

    names = {PERSONA_NAME} | {m for ms in PARTNERS.values() for m in ms}
    given = {n[-2:] for n in names if len(n) in (3, 4)}  # 晓雨, 思远, 晓峰: how friends call them
    return [re.compile(re.escape(v)) for v in sorted(names | given | set(PLANTED))]


@pytest.mark.slow
def test_chinese_run_directory_holds_no_personal_data(zh_run):
    texts = run_texts(zh_run)
    for must in ("messages.parquet", "pairs.csv", "stage1.json", "models/base/tokenizer.json",
                 "models/sft/tokenizer.json", "notebooks/01_collect_data.ipynb",
                 "notebooks/02_supervised_finetuning.ipynb"):
        assert must in texts, f"{must} was not written, so it was not scanned"
    assert leaks(texts, chinese_values()) == []
    stage1 = json.loads(texts["stage1.json"])
    replaced = stage1["anonymization"]["replaced"]
    for kind in ("ME", "PERSON", "PHONE", "EMAIL", "URL", "CARD", "ID", "ADDRESS", "AGE", "WECHAT_ID", "QQ"):
        assert replaced[kind] > 0, kind
    # the executed notebook got the parameters (it read the sample) without keeping them
    assert stage1["messages"] > 7000 and "sample-zh" not in texts["notebooks/01_collect_data.ipynb"]


@pytest.mark.slow
def test_chinese_sft_learns_the_habits(zh_run):
    """Issue 13's target on the Chinese sample, as issue 11's on the English one: the default SFT twin
    shows the persona's context habits on held-out messages (one sampled reply each, the profile's
    sampling settings), and the untrained base does not."""
    from twinlib.evaluation import load_quietly
    from twinlib.generation import generate_replies, settings_for
    from twinlib.modeling import later_stage_profile
    from twinlib.sample_data import persona_habit_accuracy
    from twinlib.sample_data_zh import HABITS_ZH

    pairs = pd.read_csv(zh_run / "pairs.csv", keep_default_na=False)
    test = pairs[pairs["split"] == "test"]
    prof = later_stage_profile("auto", zh_run)
    accuracy = {}
    for name in ("base", "sft"):
        model, tok = load_quietly(str(zh_run / "models" / name))
        replies = generate_replies(model, tok, list(zip(test["context"], test["prompt"])), n=1,
                                   settings=settings_for(prof, num_return_sequences=1), seed=0,
                                   max_prompt_tokens=prof.max_prompt_tokens)
        accuracy[name] = persona_habit_accuracy(list(test["prompt"]), [r[0] if r else "" for r in replies], HABITS_ZH)
    sft, base = accuracy["sft"], accuracy["base"]
    assert sft["n"] >= 40
    assert sft["accuracy"] >= 0.9, sft
    assert base["accuracy"] <= 0.2, base


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scanner itself: a name in an executed notebook's output, a value in an Arrow-like binary file."""
    (tmp_path / "notebooks").mkdir()
    nb = {"cells": [{"cell_type": "code", "source": ["print(me)"], "metadata": {},
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": ["林晓雨\n"]}]}],
          "metadata": {}}
    (tmp_path / "notebooks" / "01_collect_data.ipynb").write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "data.arrow").write_bytes(b"\x00\x01ARROW" + "卡号6200 0000 0000 0005".encode() + b"\xff\x00")
    (tmp_path / "model.safetensors").write_bytes("林晓雨".encode())  # weights are not text: not read
    found = leaks(run_texts(tmp_path), chinese_values())
    assert sorted(found) == ["data.arrow: 6200\\ 0000\\ 0000\\ 0005", "notebooks/01_collect_data.ipynb: 晓雨",
                             "notebooks/01_collect_data.ipynb: 林晓雨"]
