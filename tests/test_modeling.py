"""Models: the tiny model, the one conversation layout, failing fast offline, hardware defaults, API drift."""

from __future__ import annotations

import ast
import inspect
import json
import time
import warnings
from pathlib import Path

import pytest

from twinlib import modeling
from twinlib.modeling import (
    PLAIN_CHAT_TEMPLATE,
    PROFILES,
    SYSTEM_PROMPT,
    ModelNotAvailableError,
    build_messages,
    build_tiny_model,
    end_of_turn_ids,
    fit_messages,
    get_profile,
    load_model,
    prompt_text,
    resolve_model_source,
    trainer_precision_kwargs,
)

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "yeah saturday works for me 🌵", "Are you free on Saturday?", "haha no stress", "How about 7 at the deli?",
    "legend, book it", "Running a bit late, sorry!", "all good, take your time", "sounds mint",
] * 20


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny")
    build_tiny_model(TEXTS, out, profile=PROFILES["tiny"].with_overrides(tiny_vocab_size=400), seed=0)
    return out


# --------------------------------------------------------------------------- tiny model


def test_tiny_model_builds_and_loads_offline(tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert (tiny / "config.json").exists() and (tiny / "tokenizer.json").exists()
    assert json.loads((tiny / "twin.json").read_text())["kind"] == "tiny"
    model, tok = load_model(tiny, device="cpu")
    assert not model.training
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    assert "{% generation %}" in tok.chat_template
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in end_of_turn_ids(tok)
    assert im_end in (model.generation_config.eos_token_id or [])
    trainable, total = modeling.count_parameters(model)
    assert 100_000 < total < 3_000_000 and trainable == total


def test_prepare_base_model_reuses_a_built_tiny_model(tiny):
    stamp = (tiny / "model.safetensors").stat().st_mtime_ns
    assert modeling.prepare_base_model(PROFILES["tiny"], TEXTS, tiny) == str(tiny)
    assert (tiny / "model.safetensors").stat().st_mtime_ns == stamp


# --------------------------------------------------------------------------- layout


def test_build_messages_layout():
    ctx = [
        {"sender": "<PERSON_1>", "text": "hey", "me": False},
        {"sender": "<PERSON_2>", "text": "you around?", "me": False},
        {"sender": "<ME>", "text": "yep", "me": True},
        {"sender": "<ME>", "text": "what's up", "me": True},
    ]
    msgs = build_messages(json.dumps(ctx), "Dinner at 7?", reply="keen as")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[0]["content"] == SYSTEM_PROMPT
    assert msgs[1]["content"] == "hey\n\nyou around?"          # same-role turns merged, oldest first
    assert msgs[2]["content"] == "yep\n\nwhat's up"
    assert msgs[3]["content"] == "Dinner at 7?"                # the prompt is the last user turn
    assert msgs[4] == {"role": "assistant", "content": "keen as"}
    # generation: no reply; a context that opens with the person gets a placeholder user turn
    gen = build_messages([{"text": "morning!", "me": True}], "Morning", system=None)
    assert [m["role"] for m in gen] == ["user", "assistant", "user"] and gen[0]["content"] == "…"
    # the prompt merges into a trailing user context turn; empty / missing contexts are fine
    assert build_messages([{"text": "a", "me": False}], "b")[-1] == {"role": "user", "content": "a\n\nb"}
    assert build_messages("", "hi") == build_messages(None, "hi") == build_messages("[]", "hi")


def test_fit_messages_drops_oldest_turns_first(tiny):
    _, tok = load_model(tiny, device="cpu")
    ctx = [{"text": "word " * 60, "me": False}, {"text": "yo", "me": True}, {"text": "what?", "me": False}]
    full = fit_messages(tok, ctx, "free later?", reply="yeah", max_tokens=None)
    assert full == build_messages(ctx, "free later?", reply="yeah")

    def n_tokens(msgs, gen=False):
        return len(tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen))["input_ids"])

    budget = n_tokens(build_messages(ctx[1:], "free later?", reply="yeah"))  # room for all but the oldest turn
    assert budget < n_tokens(full)
    short = fit_messages(tok, ctx, "free later?", reply="yeah", max_tokens=budget)
    assert short == build_messages(ctx[1:], "free later?", reply="yeah")
    assert n_tokens(short) <= budget
    no_context = n_tokens(build_messages([], "free later?", reply="yeah"))
    assert fit_messages(tok, ctx, "free later?", reply="yeah", max_tokens=no_context) == \
        build_messages([], "free later?", reply="yeah")
    long_msg = "so " * 40 + "free later?"
    cut = fit_messages(tok, ctx, long_msg, reply="yeah", max_tokens=no_context + 4)
    assert cut[-1] == {"role": "assistant", "content": "yeah"}             # the reply is never cut
    assert cut[-2]["content"].startswith("…") and cut[-2]["content"].endswith("free later?")  # the message's end is kept
    assert n_tokens(cut) <= no_context + 4
    # generation uses the same trimming
    p = prompt_text(tok, ctx, "free later?", max_tokens=n_tokens(build_messages(ctx[1:], "free later?"), gen=True))
    assert p.endswith("<|im_start|>assistant\n") and "word" not in p and "what?" in p


def test_the_tiny_template_leaves_the_system_prompt_out_on_purpose(tiny):
    """The tiny model learns from scratch on this layout only: a system prompt would be a fifth of
    every example's tokens and tell it nothing. It is dropped, not folded into the first turn."""
    _, tok = load_model(tiny, device="cpu")
    assert modeling.supports_system_role(tok)
    msgs = fit_messages(tok, [], "hi")
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}  # the layout is the same for every model
    text = prompt_text(tok, [], "hi")
    assert SYSTEM_PROMPT not in text and text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_templates_without_system_role_get_it_folded_into_the_first_turn(tiny):
    _, tok = load_model(tiny, device="cpu")
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert not modeling.supports_system_role(tok)
    msgs = fit_messages(tok, [], "hi")
    assert [m["role"] for m in msgs] == ["user"] and msgs[0]["content"].startswith(SYSTEM_PROMPT)
    assert prompt_text(tok, [], "hi").startswith("<user>" + SYSTEM_PROMPT)


def test_plain_template_for_base_models_ends_turns_with_eos(tiny):
    _, tok = load_model(tiny, device="cpu")
    tok.chat_template = PLAIN_CHAT_TEMPLATE
    text = tok.apply_chat_template(build_messages([], "hi", reply="yo"), tokenize=False)
    assert text.endswith("assistant:\nyo" + tok.eos_token + "\n")
    assert prompt_text(tok, [], "hi").endswith("assistant:\n")


# --------------------------------------------------------------------------- hub ids


def test_uncached_hub_id_fails_fast_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    t0 = time.time()
    with pytest.raises(ModelNotAvailableError) as err:
        load_model("HuggingFaceTB/SmolLM2-360M-Instruct", device="cpu")
    assert time.time() - t0 < 5
    msg = str(err.value)
    assert "SmolLM2-360M-Instruct" in msg and "not in the Hugging Face cache" in msg
    assert "huggingface-cli download" in msg and "profile='tiny'" in msg  # says what to do


def test_folder_without_a_model_is_reported(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="holds no model"):
        resolve_model_source(tmp_path)
    with pytest.raises(ValueError, match="build_tiny_model"):
        resolve_model_source("tiny")


def test_profiles_document_memory_and_switch_to_lora_for_real_models():
    for prof in PROFILES.values():
        assert prof.description and prof.memory
    assert not PROFILES["tiny"].lora and PROFILES["t4"].lora and PROFILES["gpu"].lora
    custom = get_profile("tiny", base_model="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert custom.lora and custom.base_model.endswith("135M-Instruct") and custom.sft_learning_rate < 1e-3
    with pytest.raises(ValueError, match="choose one of"):
        get_profile("huge")
    with pytest.raises(ValueError, match="unknown profile settings"):
        PROFILES["tiny"].with_overrides(sft_epoch=1)
    cfg = modeling.lora_config(PROFILES["t4"])
    assert cfg.r == PROFILES["t4"].lora_r and cfg.task_type == "CAUSAL_LM"


# --------------------------------------------------------------------------- hardware


def test_cpu_turns_off_bf16_and_checkpointing():
    from trl import SFTConfig

    kw = trainer_precision_kwargs("cpu")
    assert kw["bf16"] is False and kw["fp16"] is False and kw["use_cpu"] is True
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no "gradient_checkpointing is deprecated"
        cfg = SFTConfig(output_dir="/tmp/twin-unused", **kw)
    assert cfg.bf16 is False and cfg.gradient_checkpointing is False
    # TRL's own defaults are the CPU-hostile ones this guards against
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = SFTConfig(output_dir="/tmp/twin-unused", use_cpu=True)
    assert default.bf16 is True and default.gradient_checkpointing is True


def test_gpu_kwargs_pick_half_precision_and_checkpointing(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a T4
    kw = trainer_precision_kwargs("cuda")
    assert kw["fp16"] is True and kw["bf16"] is False
    key = modeling._checkpointing_key()
    assert kw[key] is True and kw[key + "_kwargs"] == {"use_reentrant": False}
    assert trainer_precision_kwargs("cuda", checkpointing=False)[key] is False


def _keywords_of_call(tree, func_name: str) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == func_name:
            names.update(k.arg for k in node.keywords if k.arg)
    return names


def test_every_keyword_we_pass_to_sftconfig_exists():
    """Static gate against TRL/transformers API drift: no training needed."""
    import trl

    params = set(inspect.signature(trl.SFTConfig).parameters)
    sft_src = ast.parse((ROOT / "twinlib" / "sft.py").read_text())
    fn = next(n for n in ast.walk(sft_src) if isinstance(n, ast.FunctionDef) and n.name == "sft_config")
    ours = _keywords_of_call(fn, "dict")
    assert {"max_length", "completion_only_loss", "load_best_model_at_end", "eval_strategy"} <= ours
    for device in ("cpu", "cuda"):
        ours |= set(trainer_precision_kwargs(device))
    bench = ast.parse((ROOT / "bench" / "sft_bench.py").read_text())
    from twinlib.sft import sft_config

    own = set(inspect.signature(sft_config).parameters)  # the rest of its keywords go to SFTConfig
    ours |= _keywords_of_call(bench, "SFTConfig") | (_keywords_of_call(bench, "sft_config") - own)
    missing = sorted(k for k in ours if k not in params)
    assert not missing, f"trl.SFTConfig no longer accepts {missing}"
    trainer_params = set(inspect.signature(trl.SFTTrainer).parameters)
    assert {"model", "args", "train_dataset", "eval_dataset", "processing_class", "peft_config", "callbacks"} <= trainer_params


# --------------------------------------------------------------------------- generation


def test_generation_and_scoring_use_the_training_layout(tiny):
    from twinlib.generation import encode_reply, generate_replies, score_replies, settings_for

    model, tok = load_model(tiny, device="cpu")
    ctx = [{"text": "Are you around later?", "me": False}, {"text": "yep", "me": True}]
    ids, start = encode_reply(tok, ctx, "Dinner at 7?", "legend", max_length=256)
    assert tok.decode(ids[:start]) == prompt_text(tok, ctx, "Dinner at 7?", max_tokens=256)
    assert tok.decode(ids[start:]) == "legend<|im_end|>\n"  # the reply and its end of turn, as trained
    scored = score_replies(model, tok, [(ctx, "Dinner at 7?", "legend"), ("[]", "hi", "yo")])
    assert scored[0]["tokens"] == len(ids) - start and scored[0]["logprob"] < 0

    settings = settings_for(PROFILES["tiny"], max_new_tokens=6)
    assert settings.no_repeat_ngram_size == 2 and settings_for(PROFILES["t4"]).max_new_tokens == PROFILES["t4"].max_new_tokens
    tok.padding_side = "right"
    replies = generate_replies(model, tok, [(ctx, "Dinner at 7?"), ("[]", "hi"), (None, "Free on Saturday?")],
                               n=5, settings=settings, seed=0, batch_size=10)
    assert len(replies) == 3 and all(len(r) == 5 and all(isinstance(x, str) for x in r) for r in replies)
    assert all("<|im_end|>" not in x for r in replies for x in r)
    assert tok.padding_side == "right"  # left padding only while generating
    again = generate_replies(model, tok, [(ctx, "Dinner at 7?"), ("[]", "hi"), (None, "Free on Saturday?")],
                             n=5, settings=settings, seed=0, batch_size=10)
    assert again == replies  # seeded
