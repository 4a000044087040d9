"""Export: the Hugging Face folder loads with plain transformers and answers like the run's model; the
GGUF file (llama.cpp's converter) does too, in llama.cpp itself, where llama-cpp-python is installed."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from twinlib.modeling import PROFILES
from twinlib.export import (ExportError, _unpack_converter, export, export_hf, gpt2_byte_level, modelfile_text,
                            template_family, with_default_system)

CONVERSATION = [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "what should we eat? 🍕 café"}]


def _run_model_greedy(run, n_tokens=30):
    """The run's own model, asked the twinlib way (build_messages + the system prompt), greedily."""
    import torch

    from twinlib.modeling import load_model, prompt_text

    model, tok = load_model(Path(run) / "models" / "sft", device="cpu", dtype=torch.float32)
    ctx = [{"sender": "<PERSON_1>", "text": "hey", "me": False}, {"sender": "<ME>", "text": "yo", "me": True}]
    text = prompt_text(tok, ctx, CONVERSATION[-1]["content"])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n_tokens,
                             eos_token_id=model.generation_config.eos_token_id, pad_token_id=tok.pad_token_id)
    return text, ids, out[0, len(ids):].tolist()


@pytest.fixture(scope="module")
def hf_export(toy_run, tmp_path_factory):
    return export_hf(toy_run, "sft", out=tmp_path_factory.mktemp("export") / "sft-hf")


def test_hf_folder_loads_with_plain_transformers_and_replies_the_same(toy_run, hf_export):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_export)
    model = AutoModelForCausalLM.from_pretrained(hf_export)
    # no system message given: the exported template adds the one the twin was trained with
    text = tok.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    ref_text, ref_ids, ref_new = _run_model_greedy(toy_run)
    assert text == ref_text
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(ids, do_sample=False, max_new_tokens=30)   # eos and pad from the exported config
    assert out[0, ids.shape[1]:].tolist()[: len(ref_new)] == ref_new
    assert tok.decode(ref_new, skip_special_tokens=True).strip()     # it says something
    info = json.loads((hf_export / "twin_export.json").read_text())
    assert info["twin_model"] == "sft" and info["sampling"]["max_new_tokens"] == PROFILES["tiny"].max_new_tokens
    assert "personal data" in (hf_export / "README.md").read_text()
    assert set(model.generation_config.eos_token_id) >= {tok.convert_tokens_to_ids("<|im_end|>")}
    given = tok.apply_chat_template([{"role": "system", "content": "other"}] + CONVERSATION, tokenize=False)
    if info["system_prompt_in_template"]:
        assert given.count("<|im_start|>system") == 1 and "other" in given  # a given system prompt is kept
    else:  # a template that leaves system messages out (the tiny model's) does so still
        assert "<|im_start|>system" not in text and "other" not in given


def test_export_never_overwrites_silently(toy_run, hf_export):
    with pytest.raises(ExportError, match="--overwrite"):
        export_hf(toy_run, "sft", out=hf_export)
    with pytest.raises(ExportError, match="unknown export format"):
        export(toy_run, to="onnx")


def test_default_system_template():
    from jinja2 import Environment

    tpl = with_default_system("{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}", 'say "hi"')
    render = Environment().from_string(tpl).render
    assert render(messages=[{"role": "user", "content": "x"}]) == '[system:say "hi"][user:x]'
    assert render(messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]) == "[system:s][user:x]"


def test_modelfile_carries_template_system_prompt_and_stops(hf_export):
    from transformers import AutoTokenizer

    assert template_family(AutoTokenizer.from_pretrained(hf_export)) == "chatml"
    text = modelfile_text("twin-sft.f16.gguf", hf_export)
    assert "FROM ./twin-sft.f16.gguf" in text
    assert 'TEMPLATE """' in text and '<|im_start|>user\n{{ .Content }}<|im_end|>\n<|im_start|>assistant\n' in text
    if json.loads((hf_export / "twin_export.json").read_text())["system_prompt_in_template"]:
        assert 'SYSTEM """You are my digital twin.' in text
    else:  # trained without one: neither a SYSTEM line nor a system block
        assert "SYSTEM" not in text and ".System" not in text
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0.9" in text


def test_only_the_converter_is_unpacked(tmp_path):
    archive = tmp_path / "llama_cpp_python-9.9.9.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in {"convert_hf_to_gguf.py": b"print('x')", "conversion/gpt2.py": b"", "gguf-py/gguf/__init__.py": b"",
                           "LICENSE": b"MIT", "src/llama.cpp": b"int main;", "../../evil.py": b"no"}.items():
            info = tarfile.TarInfo(f"llama_cpp_python-9.9.9/vendor/llama.cpp/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "cache" / "llama.cpp-9.9.9"
    _unpack_converter(archive, dest)
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == ["LICENSE", "conversion/gpt2.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    assert not (tmp_path / "evil.py").exists()


def test_gpt2_pre_tokenizer_is_named_only_when_it_is_gpt2s(hf_export, tmp_path):
    assert gpt2_byte_level(hf_export)
    tj = json.loads((hf_export / "tokenizer.json").read_text())
    tj["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(tj))
    assert not gpt2_byte_level(tmp_path)


@pytest.mark.slow
def test_gguf_in_llama_cpp_replies_the_same(toy_run, tmp_path):
    """Where llama-cpp-python is installed (pip install -e .[gguf]; it compiles llama.cpp): the run's
    twin through llama.cpp's converter, loaded by llama.cpp, tokenizes the prompt identically and
    gives the same greedy tokens as the run's model."""
    llama_cpp = pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python is not installed (pip install -e .[gguf] compiles llama.cpp, "
                            "about 30 minutes on 2 cores): the GGUF export is not checked here")
    pytest.importorskip("sentencepiece", reason="llama.cpp's converter needs sentencepiece (pip install -e .[gguf])")
    from transformers import AutoTokenizer

    try:
        paths = export(toy_run, to="ollama", model="sft", out=tmp_path / "ollama", outtype="f32", quiet=True)
    except ExportError as e:
        if "could not download" in str(e):
            pytest.skip(f"llama.cpp's converter could not be fetched here: {e}")
        raise
    assert paths["gguf"].stat().st_size > 100_000 and paths["modelfile"].exists()
    ref_text, ref_ids, ref_new = _run_model_greedy(toy_run)
    llm = llama_cpp.Llama(model_path=str(paths["gguf"]), n_ctx=512, n_threads=1, verbose=False)
    try:
        assert llm.tokenize(ref_text.encode(), add_bos=False, special=True) == ref_ids
        new = []
        for t in llm.generate(ref_ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            new.append(t)
            if llm.token_is_eog(t) if hasattr(llm, "token_is_eog") else t == llm.token_eos():
                break
            if len(new) >= 30:
                break
        assert new == ref_new[: len(new)] and len(new) == len(ref_new)
        # the template in the GGUF adds the system prompt too (front-ends that read it get the training layout)
        chat = llm.create_chat_completion(messages=CONVERSATION, temperature=0.0, top_k=1, max_tokens=30)
        tok = AutoTokenizer.from_pretrained(paths["hf"])
        assert chat["choices"][0]["message"]["content"].strip() == tok.decode(ref_new, skip_special_tokens=True).strip()
    finally:
        llm.close()


def test_staging_gives_the_converter_what_it_reads(tmp_path):
    """GPT-2 configs written by transformers 5 lack the n_ctx the converter reads; TRL's generation
    markers are dropped from the template copied into the GGUF."""
    from twinlib.export import _stage_for_gguf

    src = tmp_path / "hf"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 512}))
    (src / "chat_template.jinja").write_text("{% generation %}{{ m }}{% endgeneration %}")
    _stage_for_gguf(src, tmp_path / "stage")
    assert json.loads((tmp_path / "stage" / "config.json").read_text())["n_ctx"] == 512
    assert (tmp_path / "stage" / "chat_template.jinja").read_text() == "{{ m }}"
    assert "n_ctx" not in json.loads((src / "config.json").read_text())  # the export itself is untouched
