"""Real architectures with random weights, built locally: try the GPU profiles with no download.

The ``t4`` and ``gpu`` profiles fine-tune real instruct checkpoints (SmolLM2, a Llama-architecture
model; Qwen2.5) with LoRA. Without a connection to the model hub those cannot be downloaded, but
their *architectures* can be built from a configuration, with random weights, and saved as a
checkpoint folder laid out like the real one: the model, a byte-level BPE tokenizer with the
instruct models' special tokens, and a chat template in the style of the real one (ChatML, a
default system prompt when none is given). Such a folder works as ``base_model`` anywhere a
Hugging Face id does, so every stage runs the code path of the real model: LoRA on the usual
projection modules, grouped-query attention, rotary positions, merging, the reward model, PPO,
DPO, evaluation and chat. The replies are random, of course.

Two sizes:

* ``toy`` (the default): a few hundred thousand parameters, two layers: CI runs the whole
  pipeline on it in minutes on a CPU (``tests/test_real_architectures.py``).
* the real configuration of a checkpoint (:data:`REAL_CONFIGS`: ``smollm2-135m``,
  ``smollm2-360m``, ``qwen2.5-0.5b``, ``qwen2.5-1.5b``): the same number of layers, width, heads
  and vocabulary as the checkpoint, so speed and memory are the real model's
  (``bench/gpu_bench.py`` measures the ``gpu`` profile this way).

Command line::

    python -m twinlib.toy_models --arch qwen2 --out models/toy-qwen2            # toy size
    python -m twinlib.toy_models --size qwen2.5-1.5b --out models/qwen2.5-1.5b-random       # real size
    python -m twinlib run --profile gpu --base-model models/toy-qwen2 --run-dir runs/try-gpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable, Sequence

# --------------------------------------------------------------------------- chat templates

# SmolLM2-Instruct style: ChatML, and a default system prompt when the conversation has none.
LLAMA_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

# Qwen2.5-Instruct style: ChatML, a default system prompt, tools listed in the system turn, and
# tool calls / tool responses as the real template lays them out.
QWEN2_CHAT_TEMPLATE = (
    "{%- if tools -%}"
    "{{- '<|im_start|>system\n' -}}"
    "{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] -}}"
    "{%- else -%}{{- 'You are a helpful assistant.' -}}{%- endif -%}"
    "{{- '\n\n# Tools\n\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\n' -}}{{- tool | tojson -}}{%- endfor -%}"
    "{{- '\n</tools><|im_end|>\n' -}}"
    "{%- elif messages[0]['role'] == 'system' -%}"
    "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) "
    "or (message.role == 'assistant' and not message.tool_calls) -%}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant' -}}"
    "{%- if message.content -%}{{- '\n' + message.content -}}{%- endif -%}"
    "{%- for call in message.tool_calls -%}"
    "{{- '\n<tool_call>\n' -}}{{- (call.function if call.function is defined else call) | tojson -}}"
    "{{- '\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{{- '<|im_start|>user\n<tool_response>\n' + message.content + '\n</tool_response><|im_end|>\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}"
)

#: What each architecture's folder imitates: the config class, the chat template and the
#: special tokens of its instruct checkpoints (SmolLM2: BOS <|im_start|>, pad = EOS; Qwen2.5: no
#: BOS, pad <|endoftext|>), so that these quirks are exercised too.
ARCHITECTURES = {
    "llama": {
        "like": "HuggingFaceTB/SmolLM2-360M-Instruct",
        "template": LLAMA_CHAT_TEMPLATE,
        "tokens": {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
                   "unk_token": "<|endoftext|>"},
        "toy": dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=100000.0,
                    tie_word_embeddings=True),
    },
    "qwen2": {
        "like": "Qwen/Qwen2.5-1.5B-Instruct",
        "template": QWEN2_CHAT_TEMPLATE,
        "tokens": {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None},
        "toy": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6, rope_theta=1000000.0,
                    tie_word_embeddings=True, use_sliding_window=False),
    },
}

#: The configurations of the real checkpoints (their ``config.json``), by size name.
REAL_CONFIGS = {
    "smollm2-135m": ("llama", dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                   num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                                   rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)),
    "smollm2-360m": ("llama", dict(vocab_size=49152, hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                                   num_attention_heads=15, num_key_value_heads=5, max_position_embeddings=8192,
                                   rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True)),
    "qwen2.5-0.5b": ("qwen2", dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                   num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                                   rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                                   use_sliding_window=False)),
    "qwen2.5-1.5b": ("qwen2", dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                   num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                                   rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True,
                                   use_sliding_window=False)),
}
SIZES = ("toy",) + tuple(REAL_CONFIGS)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
ROLES = ["system", "user", "assistant", "tool"]


# --------------------------------------------------------------------------- pieces


def default_texts() -> list[str]:
    """Text for the tokenizer when none is given: the bundled sample persona's chats (generated on
    first use), one line each."""
    import tempfile

    from twinlib.sample_data import generate_sample

    folder = Path(__file__).resolve().parent.parent / "data" / "sample"
    if not any(folder.glob("*.txt")):  # an installed package has no data/: generate the (deterministic) sample
        folder = Path(tempfile.mkdtemp(prefix="twin-sample-"))
        generate_sample(folder)
    lines = []
    for f in sorted(folder.glob("*.txt")):
        lines += [ln for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise FileNotFoundError(f"no sample chats in {folder} to train a tokenizer on; pass texts=...")
    return lines


def build_tokenizer(arch: str, texts: Iterable[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on ``texts`` with ``arch``'s special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    spec = _arch(arch)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([t for t in texts if isinstance(t, str) and t] + ROLES * 50, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **{k: v for k, v in spec["tokens"].items() if v},
                                   additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in spec["tokens"].values()])
    fast.chat_template = spec["template"]
    fast.padding_side = "left"
    return fast


def model_config(arch: str, size: str = "toy", tokenizer=None, **overrides):
    """The ``transformers`` config of ``arch`` (``llama`` or ``qwen2``) at ``size`` (``toy`` or a
    :data:`REAL_CONFIGS` name). The toy size takes its vocabulary from ``tokenizer``; a real size
    keeps the checkpoint's (larger than a tokenizer trained here: the extra rows are never used,
    as in the real checkpoints, whose vocabulary is padded too)."""
    from transformers import LlamaConfig, Qwen2Config

    spec = _arch(arch)
    if size == "toy":
        kw = dict(spec["toy"])
        if tokenizer is None:
            raise ValueError("the toy size takes its vocabulary size from a tokenizer: pass tokenizer=...")
        kw["vocab_size"] = len(tokenizer)
    elif size in REAL_CONFIGS:
        family, kw = REAL_CONFIGS[size]
        if family != arch:
            raise ValueError(f"size {size!r} is a {family} model, not {arch}; pick --arch {family}")
        kw = dict(kw)
    else:
        raise ValueError(f"unknown size {size!r}; choose one of {list(SIZES)}")
    if tokenizer is not None:
        kw.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    kw.update(overrides)
    return (LlamaConfig if arch == "llama" else Qwen2Config)(**kw)


def build_model_folder(out_dir, arch: str = "llama", size: str = "toy", texts: Sequence[str] | None = None,
                       vocab_size: int = 2048, seed: int = 0, dtype=None, device: str = "cpu", **overrides) -> Path:
    """Build a random-weight checkpoint folder of ``arch`` at ``size`` in ``out_dir`` and return it.

    ``texts`` train its tokenizer (default: the sample persona's chats); ``dtype`` is the dtype the
    weights are saved in (default fp32 for the toy size, bf16 for real sizes, as the checkpoints
    ship); ``device="cuda"`` initialises a real size on the GPU (much faster than on a CPU).
    An existing folder with a model is returned as it is.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from twinlib.modeling import end_of_turn_ids

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    tok = build_tokenizer(arch, default_texts() if texts is None else texts, vocab_size=vocab_size)
    cfg = model_config(arch, size, tok, **overrides)
    if dtype is None:
        dtype = torch.float32 if size == "toy" else torch.bfloat16
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    model.generation_config.eos_token_id = end_of_turn_ids(tok)
    model.generation_config.pad_token_id = tok.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "random_weights.json").write_text(json.dumps({
        "architecture": arch, "size": size, "layout_of": spec_like(arch, size), "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "note": "random weights built locally by twinlib.toy_models: the code path and the speed of the real "
                "model, none of its knowledge",
    }, indent=2))
    return out


def spec_like(arch: str, size: str) -> str:
    """The checkpoint a folder of ``arch`` at ``size`` stands in for."""
    if size in REAL_CONFIGS:
        name = {"smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-360m": "HuggingFaceTB/SmolLM2-360M-Instruct",
                "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B-Instruct", "qwen2.5-1.5b": "Qwen/Qwen2.5-1.5B-Instruct"}[size]
        return name
    return _arch(arch)["like"] + " (toy size)"


def _arch(arch: str) -> dict:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


# --------------------------------------------------------------------------- command line


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m twinlib.toy_models", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHITECTURES), default=None,
                    help="llama or qwen2 (default: the size's, llama for toy)")
    ap.add_argument("--size", choices=SIZES, default="toy", help="toy (default) or a real checkpoint's configuration")
    ap.add_argument("--out", required=True, help="the folder to write (use it as --base-model)")
    ap.add_argument("--vocab-size", type=int, default=2048, help="tokens the tokenizer learns (default 2048)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="where the weights are initialised (cuda is faster for real sizes)")
    args = ap.parse_args(argv)
    args.arch = args.arch or (REAL_CONFIGS[args.size][0] if args.size in REAL_CONFIGS else "llama")
    out = build_model_folder(args.out, args.arch, args.size, vocab_size=args.vocab_size, seed=args.seed,
                             device=args.device)
    info = json.loads((out / "random_weights.json").read_text())
    print(f"{out}: {args.arch}, {info['parameters']:,} parameters, random weights in the layout of {info['layout_of']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
