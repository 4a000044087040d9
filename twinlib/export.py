"""Take the twin elsewhere: ``python -m twinlib export --run runs/NAME --to hf|gguf|ollama``.

* ``hf``: a plain Hugging Face folder (a LoRA adapter merged into its base), loadable with
  ``AutoModelForCausalLM``/``AutoTokenizer`` alone. Its chat template adds the twin's system prompt
  when a conversation brings none, so ``tokenizer.apply_chat_template(messages,
  add_generation_prompt=True)`` gives exactly the prompt the twin was trained on; its generation
  config holds the run's sampling settings and the end-of-turn tokens.
* ``gguf``: that folder converted by **llama.cpp's own converter** (``convert_hf_to_gguf.py``) into
  one ``.gguf`` file for llama.cpp, LM Studio, Ollama and the like.
* ``ollama``: the GGUF file plus a ``Modelfile`` with the twin's chat template (in Ollama's Go
  template language), its system prompt, stop tokens and sampling settings:
  ``ollama create my-twin -f Modelfile``.

Where the converter comes from. llama.cpp does not publish ``convert_hf_to_gguf.py`` as a package
of its own: the ``gguf`` package on PyPI is its GGUF reader/writer, without the converter. The
source distribution of ``llama-cpp-python`` on PyPI carries all of llama.cpp, converter included,
so :func:`find_converter` takes it from there (``pip download``, once, into ``~/.cache/twin``), or
from a llama.cpp checkout given with ``--converter`` / ``$TWIN_LLAMA_CPP``. It needs torch, numpy
and transformers, which the project has.

The tiny model needs two things from us. Its ``config.json`` (written by transformers 5) lacks the
``n_ctx`` key the converter's GPT-2 class reads, so the staging copy gets ``n_ctx = n_positions``.
And its tokenizer, trained on the run's own text, is unknown to the converter, which recognizes a
BPE pre-tokenizer by hashing how it tokenizes a test string — a hash no table can hold for a
vocabulary made per run. Its pre-tokenizer is GPT-2's byte-level split exactly (``ByteLevel`` with
GPT-2's regular expression), so we tell the converter ``gpt-2`` when, and only when,
``tokenizer.json`` says so. Real profiles (SmolLM2, Qwen2.5) are recognized by the converter as
they are.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Sequence

FORMATS = ("hf", "gguf", "ollama")
GGUF_TYPES = ("f32", "f16", "bf16", "q8_0")
#: The llama-cpp-python release whose sdist gives the converter when llama-cpp-python is not installed.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")


class ExportError(RuntimeError):
    """An export that cannot be made (the message says why and what to do)."""


# --------------------------------------------------------------------------- hf


def with_default_system(template: str, system: str) -> str:
    """``template`` that inserts ``system`` as the first message when a conversation has no system message."""
    literal = json.dumps(system, ensure_ascii=False)
    head = ("{%- if not messages or messages[0]['role'] != 'system' -%}"
            "{%- set messages = [{'role': 'system', 'content': " + literal + "}] + messages -%}"
            "{%- endif -%}")
    return head + template


def renders_system(tokenizer) -> bool:
    """Whether the chat template shows a ``system`` message in its output.

    Not every template does: Gemma's refuses one, and the tiny model's leaves it out on purpose
    (it is trained from scratch on the conversations alone). Only where it shows does the export
    add the twin's system prompt (to the template, and to Ollama's ``SYSTEM``).
    """
    probe = "\u2063twin-export-probe\u2063"
    try:
        text = tokenizer.apply_chat_template([{"role": "system", "content": probe}, {"role": "user", "content": "hi"}],
                                             tokenize=False)
    except Exception:  # noqa: BLE001 — jinja raises TemplateError("System role not supported")
        return False
    return probe in text


def _out_dir(run_dir, out, default_name: str) -> Path:
    from twinlib.rundir import RunDir

    return Path(out) if out else RunDir(run_dir).root / "export" / default_name


def _fresh(folder: Path, overwrite: bool) -> None:
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise ExportError(f"{folder} exists and is not empty: pass --overwrite to replace it, or --out elsewhere.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)


def export_hf(run_dir, model: str = "best", out=None, overwrite: bool = False) -> Path:
    """Write the run's ``model`` as a merged, self-contained Hugging Face folder; return it.

    Default place: ``runs/NAME/export/<model>-hf`` (inside the run, so it stays out of git).
    """
    import torch

    from twinlib.generation import settings_for
    from twinlib.modeling import SYSTEM_PROMPT, end_of_turn_ids, later_stage_profile, load_model
    from twinlib.serve import resolve_model

    name, path = resolve_model(run_dir, model)
    folder = _out_dir(run_dir, out, f"{name}-hf")
    _fresh(folder, overwrite)
    m, tok = load_model(path, device="cpu", dtype=torch.float32, merge_adapter=True)
    saved = getattr(m.config, "dtype", None) or getattr(m.config, "torch_dtype", None)
    if isinstance(saved, str):
        saved = getattr(torch, saved, None)
    if saved in (torch.float16, torch.bfloat16):
        m = m.to(saved)  # back to the precision of the base checkpoint (the merge ran in fp32)
    profile = later_stage_profile("auto", run_dir)
    s = settings_for(profile, num_return_sequences=1)
    gc = m.generation_config
    gc.eos_token_id, gc.pad_token_id = end_of_turn_ids(tok), tok.pad_token_id
    gc.do_sample, gc.temperature, gc.top_p = True, s.temperature, s.top_p
    gc.max_new_tokens, gc.no_repeat_ngram_size = s.max_new_tokens, s.no_repeat_ngram_size
    system_shown = renders_system(tok)
    if system_shown and tok.chat_template:
        tok.chat_template = with_default_system(tok.chat_template, SYSTEM_PROMPT)
    m.save_pretrained(folder)
    tok.save_pretrained(folder)
    info = {"twin_model": name, "source": str(path), "system_prompt": SYSTEM_PROMPT,
            "system_prompt_in_template": system_shown,
            "max_prompt_tokens": profile.max_prompt_tokens,
            "sampling": {"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens,
                         "no_repeat_ngram_size": s.no_repeat_ngram_size}}
    (folder / "twin_export.json").write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    (folder / "README.md").write_text(_model_card(name, info), encoding="utf-8")
    return folder


def _model_card(name: str, info: dict) -> str:
    system_note = (f"The chat template adds the system prompt the twin was trained with (`{info['system_prompt']}`) "
                   "when the conversation has none." if info["system_prompt_in_template"] else
                   "The twin was trained without a system prompt, and its template leaves one out.")
    return f"""# A digital twin ({name})

Exported by `python -m twinlib export`. **This model was trained on private messages: treat it as
personal data.** Do not publish it, or share it, without the consent of the people whose messages
it learned from.

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tok = AutoTokenizer.from_pretrained(".")
model = AutoModelForCausalLM.from_pretrained(".")
ids = tok.apply_chat_template([{{"role": "user", "content": "are you free on saturday?"}}],
                              add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**ids)   # sampling settings come from generation_config.json
print(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
```

`user` messages are the other person, `assistant` messages are the twin. {system_note} Keep
conversations short: training saw at most {info['max_prompt_tokens']} prompt tokens.
"""


# --------------------------------------------------------------------------- the converter


def cache_dir() -> Path:
    root = os.environ.get("TWIN_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "twin")
    return Path(root)


def _installed_llama_cpp_python() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        return None


def _is_converter(folder: Path) -> bool:
    return (folder / "convert_hf_to_gguf.py").is_file() and (folder / "gguf-py").is_dir()


def find_converter(converter=None, fetch: bool = True, quiet: bool = False) -> Path:
    """A folder holding llama.cpp's ``convert_hf_to_gguf.py`` (and its ``gguf-py``).

    In order: ``converter`` or ``$TWIN_LLAMA_CPP`` (a llama.cpp checkout); a copy cached in
    ``~/.cache/twin/llama.cpp-VERSION``; with ``fetch``, the source distribution of
    ``llama-cpp-python`` (the installed version, else :data:`LLAMA_CPP_PYTHON_VERSION`) downloaded
    from the package index with pip and unpacked there.
    """
    given = converter or os.environ.get("TWIN_LLAMA_CPP")
    if given:
        folder = Path(given).expanduser()
        if folder.is_file() and folder.name == "convert_hf_to_gguf.py":
            folder = folder.parent
        if not _is_converter(folder):
            raise ExportError(f"{folder} holds no llama.cpp converter (convert_hf_to_gguf.py and gguf-py/): point "
                              "--converter at a llama.cpp checkout.")
        return folder
    version = _installed_llama_cpp_python() or LLAMA_CPP_PYTHON_VERSION
    folder = cache_dir() / f"llama.cpp-{version}"
    if _is_converter(folder):
        return folder
    if not fetch:
        raise ExportError(f"llama.cpp's converter is not in {folder}: run the export without --no-fetch once, or "
                          "pass --converter /path/to/llama.cpp.")
    if not quiet:
        print(f"Fetching llama.cpp's converter: the llama-cpp-python {version} source distribution from the package "
              f"index (about 75 MB, once) into {folder} …", flush=True)
    with tempfile.TemporaryDirectory(prefix="twin-llama-cpp-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet",
               f"llama-cpp-python=={version}", "-d", tmp]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise ExportError("downloading llama-cpp-python's source took over 15 minutes: try again, or pass "
                              "--converter /path/to/llama.cpp.") from None
        archives = sorted(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if proc.returncode != 0 or not archives:
            raise ExportError(f"could not download llama-cpp-python {version}'s source from the package index "
                              f"({(proc.stderr or proc.stdout).strip()[-400:]}). Without it there is no GGUF: pass "
                              "--converter /path/to/llama.cpp (a checkout of github.com/ggml-org/llama.cpp), or "
                              "export --to hf.")
        _unpack_converter(archives[0], folder)
    return folder


def _unpack_converter(archive: Path, folder: Path) -> None:
    part = folder.with_name(folder.name + ".partial")
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    with tarfile.open(archive, "r:gz") as tar:
        members = []
        for mem in tar.getmembers():
            _, sep, rest = mem.name.partition("/vendor/llama.cpp/")
            if sep and any(rest == p or (p.endswith("/") and rest.startswith(p)) for p in CONVERTER_PARTS):
                if mem.isfile() or mem.isdir():
                    mem.name = rest
                    members.append(mem)
        tar.extractall(part, members=members, filter="data")
    if not _is_converter(part):
        shutil.rmtree(part)
        raise ExportError(f"{archive.name} holds no vendor/llama.cpp/convert_hf_to_gguf.py: this llama-cpp-python "
                          "release is laid out differently; pass --converter /path/to/llama.cpp.")
    if folder.exists():
        shutil.rmtree(folder)
    part.rename(folder)


# The converter, run in its own process with one change: a byte-level BPE tokenizer whose split is
# exactly GPT-2's (the tiny model's, checked in tokenizer.json before we ask) is named "gpt-2".
_RUNNER = r"""
import os, runpy, sys
root = sys.argv[1]
sys.path.insert(0, root)
sys.path.insert(1, os.path.join(root, "gguf-py"))
pre = os.environ.get("TWIN_GGUF_PRE")
if pre:
    from conversion.base import TextModel
    _recognize = TextModel.get_vocab_base_pre
    def get_vocab_base_pre(self, tokenizer):
        try:
            return _recognize(self, tokenizer)
        except NotImplementedError:
            return pre
    TextModel.get_vocab_base_pre = get_vocab_base_pre
sys.argv = [os.path.join(root, "convert_hf_to_gguf.py")] + sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def gpt2_byte_level(folder) -> bool:
    """Whether ``tokenizer.json`` in ``folder`` is a BPE with GPT-2's byte-level pre-tokenizer, exactly."""
    try:
        tj = json.loads((Path(folder) / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    pre = tj.get("pre_tokenizer") or {}
    return ((tj.get("model") or {}).get("type") == "BPE" and pre.get("type") == "ByteLevel"
            and pre.get("use_regex", True) and not pre.get("add_prefix_space", False))


def _stage_for_gguf(hf_dir: Path, stage: Path) -> None:
    """A copy of the exported folder in the shape the converter reads."""
    shutil.copytree(hf_dir, stage)
    cfg_path = stage / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("model_type") == "gpt2" and "n_ctx" not in cfg:
        cfg["n_ctx"] = cfg.get("n_positions", 1024)  # read by the converter's GPT-2 class
        cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    tpl = stage / "chat_template.jinja"
    if tpl.exists():  # TRL's {% generation %} markers mean nothing outside training
        text = tpl.read_text(encoding="utf-8")
        tpl.write_text(text.replace("{% generation %}", "").replace("{% endgeneration %}", ""), encoding="utf-8")


def convert_to_gguf(hf_dir, out_file, outtype: str = "f16", converter=None, fetch: bool = True,
                    quiet: bool = False) -> Path:
    """Convert an exported Hugging Face folder to one GGUF file with llama.cpp's converter."""
    if outtype not in GGUF_TYPES:
        raise ExportError(f"unknown GGUF type {outtype!r}: choose one of {', '.join(GGUF_TYPES)}.")
    import importlib.util

    missing = [m for m in ("sentencepiece",) if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"llama.cpp's converter needs {', '.join(missing)}: pip install {' '.join(missing)} "
                          "(or pip install -e .[gguf]).")
    root = find_converter(converter, fetch=fetch, quiet=quiet)
    hf_dir, out_file = Path(hf_dir), Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("NO_LOCAL_GGUF", None)  # use the gguf-py that came with this converter
    if gpt2_byte_level(hf_dir):
        env["TWIN_GGUF_PRE"] = "gpt-2"
    with tempfile.TemporaryDirectory(prefix="twin-gguf-") as tmp:
        stage = Path(tmp) / "model"
        _stage_for_gguf(hf_dir, stage)
        cmd = [sys.executable, "-c", _RUNNER, str(root), str(stage), "--outfile", str(out_file), "--outtype", outtype]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not out_file.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ExportError(f"llama.cpp's converter ({root}) failed on {hf_dir}:\n{tail}\nThe Hugging Face folder "
                          f"{hf_dir} is fine to use as it is.")
    return out_file


# --------------------------------------------------------------------------- ollama


def template_family(tokenizer) -> str | None:
    """``chatml``, ``plain`` (our template for checkpoints without one) or ``llama3``; None when unknown."""
    from twinlib.modeling import PLAIN_CHAT_TEMPLATE

    tpl = str(tokenizer.chat_template or "")
    if PLAIN_CHAT_TEMPLATE in tpl:
        return "plain"
    try:
        probe = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                              add_generation_prompt=True)
    except Exception:  # noqa: BLE001 — a template that cannot render a plain user turn is not one we know
        return None
    if "<|im_start|>user\nhi<|im_end|>" in probe:
        return "chatml"
    if "<|start_header_id|>user<|end_header_id|>" in probe:
        return "llama3"
    return None


# Ollama's Go templates of the chat layouts above (system from SYSTEM or the conversation).
OLLAMA_TEMPLATES = {
    "chatml": ('{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
               '{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
               '<|im_start|>assistant\n{{ else if eq .Role "assistant" }}{{ .Content }}<|im_end|>\n{{ end }}{{ end }}',
               ["<|im_end|>", "<|im_start|>"]),
    "plain": ('{{ if .System }}system:\n{{ .System }}\n\n{{ end }}'
              '{{ range .Messages }}{{ if eq .Role "user" }}user:\n{{ .Content }}\n\nassistant:\n'
              '{{ else if eq .Role "assistant" }}{{ .Content }}<EOS>\n{{ end }}{{ end }}', []),
    "llama3": ('<|begin_of_text|>{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
               '{{ range .Messages }}{{ if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Content }}'
               '<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n{{ else if eq .Role "assistant" }}'
               '{{ .Content }}<|eot_id|>{{ end }}{{ end }}', ["<|eot_id|>"]),
}


def modelfile_text(gguf_name: str, hf_dir) -> str:
    """An Ollama ``Modelfile`` for the exported twin: template, system prompt, stops, sampling."""
    from transformers import AutoTokenizer

    hf_dir = Path(hf_dir)
    info = json.loads((hf_dir / "twin_export.json").read_text(encoding="utf-8"))
    tok = AutoTokenizer.from_pretrained(hf_dir)
    family = template_family(tok)
    s = info["sampling"]
    lines = ["# An Ollama Modelfile for a digital twin, written by `python -m twinlib export --to ollama`.",
             "# This model was trained on private messages: keep it to yourself. Use: ollama create my-twin -f Modelfile",
             f"FROM ./{gguf_name}", ""]
    system = info.get("system_prompt_in_template", True)
    if family in OLLAMA_TEMPLATES:
        template, stops = OLLAMA_TEMPLATES[family]
        template = template.replace("<EOS>", tok.eos_token or "")
        if not system:  # the template leaves system messages out: so does Ollama's
            template = template.split("{{ end }}", 1)[1] if template.startswith("{{ if .System }}") else template
        stops = stops + ([tok.eos_token] if tok.eos_token and tok.eos_token not in stops else [])
        lines += [f'TEMPLATE """{template}"""', ""]
    else:
        stops = [tok.eos_token] if tok.eos_token else []
        lines += ["# The chat template of this model has no Go translation here: Ollama uses the one in the GGUF file.", ""]
    if system:
        lines += [f'SYSTEM """{info["system_prompt"]}"""', ""]
    lines += [f'PARAMETER stop "{x}"' for x in dict.fromkeys(stops)]
    lines += [f"PARAMETER temperature {s['temperature']}", f"PARAMETER top_p {s['top_p']}",
              f"PARAMETER num_predict {s['max_new_tokens']}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- all together


def export(run_dir, to: str = "hf", model: str = "best", out=None, outtype: str = "f16", converter=None,
           fetch: bool = True, overwrite: bool = False, quiet: bool = False) -> dict[str, Path]:
    """Export the run's twin; returns the paths written (``hf``, and ``gguf``/``modelfile``)."""
    if to not in FORMATS:
        raise ExportError(f"unknown export format {to!r}: choose one of {', '.join(FORMATS)}.")
    from twinlib.serve import resolve_model

    name, _ = resolve_model(run_dir, model)
    if to == "hf":
        return {"hf": export_hf(run_dir, name, out=out, overwrite=overwrite)}
    base = _out_dir(run_dir, out, f"{name}-{to}")
    _fresh(base, overwrite)
    hf = export_hf(run_dir, name, out=base / "hf", overwrite=True)
    gguf = convert_to_gguf(hf, base / f"twin-{name}.{outtype}.gguf", outtype=outtype, converter=converter,
                           fetch=fetch, quiet=quiet)
    paths = {"hf": hf, "gguf": gguf}
    if to == "ollama":
        mf = base / "Modelfile"
        mf.write_text(modelfile_text(gguf.name, hf), encoding="utf-8")
        paths["modelfile"] = mf
    return paths


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m twinlib export",
                                 description="Export a run's twin: a Hugging Face folder, a GGUF file, or GGUF + an "
                                             "Ollama Modelfile.")
    ap.add_argument("--run", required=True, help="the run directory, e.g. runs/sample")
    ap.add_argument("--to", default="hf", choices=FORMATS, help="hf (default), gguf or ollama")
    ap.add_argument("--model", default="best", choices=("best", "base", "sft", "refined", "ppo", "dpo"),
                    help="which of the run's models (default: best)")
    ap.add_argument("--out", default=None, help="output folder (default: runs/NAME/export/<model>-<format>)")
    ap.add_argument("--outtype", default="f16", choices=GGUF_TYPES, help="GGUF precision (default f16)")
    ap.add_argument("--converter", default=None,
                    help="a llama.cpp checkout holding convert_hf_to_gguf.py (default: $TWIN_LLAMA_CPP, else fetched "
                         "from llama-cpp-python's source distribution on the package index, once)")
    ap.add_argument("--no-fetch", action="store_true", help="never download the converter")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    return ap


def export_main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        paths = export(args.run, to=args.to, model=args.model, out=args.out, outtype=args.outtype,
                       converter=args.converter, fetch=not args.no_fetch, overwrite=args.overwrite)
    except (ExportError, FileNotFoundError, ValueError) as e:
        print(f"twin export: {e}", file=sys.stderr)
        return 1
    for kind, p in paths.items():
        print(f"{kind}: {p}")
    if "modelfile" in paths:
        print(f"Next: cd {paths['modelfile'].parent} && ollama create my-twin -f Modelfile && ollama run my-twin")
    print("This model learned from private messages: treat it as personal data.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(export_main())
