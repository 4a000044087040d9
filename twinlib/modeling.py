"""Models: profiles, the built-in tiny model, loading any checkpoint, device and dtype.

One function, :func:`build_messages`, lays out a conversation for the model; training,
generation, ranking, PPO and evaluation all go through it, so the twin is always asked the
same way it was taught.

``base_model`` can be

* ``"tiny"``: a GPT-2-style model of about a million parameters with random weights and a
  byte-level BPE tokenizer trained on the run's own text (:func:`build_tiny_model`). It runs
  anywhere, offline, on a CPU in minutes: CI and ``make pipeline`` use it. It learns the
  *style* of the person, not language in general.
* any Hugging Face causal-LM id (``"HuggingFaceTB/SmolLM2-360M-Instruct"``) or a local folder
  holding one, trained with LoRA on a GPU. Instruct checkpoints keep their own chat template.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

from twinlib.pairs import context_turns

SYSTEM_PROMPT = "You are my digital twin. Reply to the last message the way I would."

# ChatML with {% generation %} markers so TRL can also train on assistant tokens only. The tiny
# model is trained from scratch on this layout alone, so a system prompt would tell it nothing
# and cost about a fifth of every example's tokens: its template leaves system messages out
# (the marker below tells :func:`supports_system_role` that this is on purpose).
NO_SYSTEM_MARKER = "{#- twin: system messages are left out on purpose -#}"
TINY_CHAT_TEMPLATE = (
    NO_SYSTEM_MARKER +
    "{%- for message in messages if message['role'] != 'system' -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)
TINY_SPECIAL_TOKENS = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]

# For checkpoints that ship no chat template (base models such as gpt2 or SmolLM2-135M): plain
# role headers and the tokenizer's own end-of-sequence token as the end of a turn, so no new
# token (and no resized embedding) is needed and generation stops at EOS.
PLAIN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ message['role'] + ':\n' }}"
    "{%- if message['role'] == 'assistant' -%}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ message['content'] + '\n\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'assistant:\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class Profile:
    """Every size-dependent setting of a run, picked by one notebook parameter ``profile``."""

    name: str
    base_model: str
    lora: bool
    description: str
    memory: str
    max_length: int = 256            # tokens of context + reply seen in training
    max_prompt_tokens: int = 192     # generation keeps the last N prompt tokens
    max_new_tokens: int = 40
    # stage 2: train until the validation loss stops improving, within these bounds
    sft_epochs: float = 3.0          # at most this many passes over the training pairs
    sft_batch_size: int = 16
    sft_grad_accum: int = 1
    sft_learning_rate: float = 2e-3
    sft_max_steps: int = -1          # > 0: a cap on the steps that sft_epochs gives
    sft_time_budget_min: float = 0.0  # > 0: training ends after this many minutes (the best checkpoint is kept)
    sft_patience: int = 3            # evaluations without a better validation loss before stopping (0: never)
    sft_evals: int = 12              # validation passes spread over the planned steps
    sft_pretrain_min: float = 0.0    # > 0: minutes of continued pre-training on whole conversations first
    # CPU threads for a run on a CPU (0: picked by pick_cpu_threads, whatever the profile). The tiny
    # model's matrices are too small to gain much from a second thread, and a busy machine makes
    # several threads wait on each other: one thread measured 4× faster than two on a shared 2-core machine.
    cpu_threads: int = 0
    # LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # tiny model only
    tiny_arch: str = "llama"         # llama (rotary positions, RMSNorm, SwiGLU) or gpt2
    tiny_vocab_size: int = 3000
    tiny_width: int = 128
    tiny_layers: int = 4
    tiny_heads: int = 4
    tiny_intermediate: int = 0       # the MLP's width (0: 8/3 × tiny_width, as Llama)
    extra: dict = field(default_factory=dict)

    def with_overrides(self, **kw) -> "Profile":
        unknown = set(kw) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown profile settings {sorted(unknown)}; known: {sorted(asdict(self))}")
        return replace(self, **kw)


PROFILES: dict[str, Profile] = {
    "tiny": Profile(
        name="tiny",
        base_model="tiny",
        lora=False,
        description="built-in 0.7M-parameter model (2-layer Llama), tokenizer trained on your chats; CPU, minutes; "
                    "learns your style and habits, not language",
        memory="about 1.3 GB of RAM while training (peak RSS), no GPU",
        # a 64-token window: the message, the turn or two before it and the reply. Whole earlier
        # turns are dropped to fit (fit_messages), which also keeps the model's attention on the
        # message it answers: with 4 earlier turns it learned the sample's habits about 3x slower.
        max_length=64,
        max_prompt_tokens=48,
        max_new_tokens=32,
        sft_epochs=8.0,            # the sample's habits appear after about 5 epochs (0.55 at 5, 0.93 at 6, 0.98 at 8)
        # best validation loss after 8 epochs: English sample 0.962 at 3e-3, 0.936 at 2e-3; Chinese
        # sample 2.091 at 3e-3 (habit accuracy 0.62), 1.882 at 2e-3
        sft_learning_rate=2e-3,
        sft_time_budget_min=1.9,   # stage 2 within 2.5 minutes on 2 idle CPU cores, whatever the export's size
        cpu_threads=1,
        tiny_layers=2,
    ),
    "t4": Profile(
        name="t4",
        base_model="HuggingFaceTB/SmolLM2-360M-Instruct",
        lora=True,
        description="Colab's free T4 (16 GB): SmolLM2-360M-Instruct with LoRA, fp16",
        memory="about 5 GB of GPU memory at batch 8 × 512 tokens (estimated)",
        max_length=512,
        max_prompt_tokens=384,
        max_new_tokens=48,
        sft_epochs=2.0,
        sft_batch_size=8,
        sft_grad_accum=2,
        sft_learning_rate=2e-4,
    ),
    "gpu": Profile(
        name="gpu",
        base_model="Qwen/Qwen2.5-1.5B-Instruct",
        lora=True,
        description="a 24 GB+ local GPU (Ampere or newer): Qwen2.5-1.5B-Instruct with LoRA, bf16",
        memory="about 14 GB of GPU memory at batch 8 × 512 tokens (estimated)",
        max_length=512,
        max_prompt_tokens=384,
        max_new_tokens=48,
        sft_epochs=2.0,
        sft_batch_size=8,
        sft_grad_accum=2,
        sft_learning_rate=1e-4,
        lora_r=32,
        lora_alpha=64,
    ),
}


AUTO = "auto"
GPU_PROFILE_MIN_GIB = 20  # a CUDA GPU with at least this much memory gets "gpu", a smaller one "t4"


def auto_profile_name() -> str:
    """The profile ``"auto"`` picks on this machine: ``t4`` or ``gpu`` on a CUDA GPU (by its
    memory), ``tiny`` anywhere else. On Colab with a GPU runtime this makes a real model the default."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch-free use of the data stage
        return "tiny"
    if not torch.cuda.is_available():
        return "tiny"
    gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return "gpu" if gib >= GPU_PROFILE_MIN_GIB else "t4"


def stage2_profile(run) -> Profile | None:
    """The profile stage 2 trained the run's ``models/sft`` with (its ``twin.json``), or None."""
    root = getattr(run, "root", None) if not isinstance(run, (str, Path)) else Path(run)
    if root is None:
        return None
    try:
        saved = json.loads((Path(root) / "models" / "sft" / "twin.json").read_text(encoding="utf-8")).get("profile")
        return Profile(**saved) if saved else None
    except (OSError, ValueError, TypeError):
        return None


def get_profile(name: str, base_model: str | None = None, run=None, **overrides) -> Profile:
    """The preset ``name``, optionally with another ``base_model`` and settings.

    ``name="auto"``: the profile stage 2 used for ``run`` when it has trained a model (so later
    stages follow it without being told), else :func:`auto_profile_name` for this machine.
    """
    if name == AUTO:
        saved = stage2_profile(run) if run is not None else None
        if saved is not None:
            if base_model and base_model != saved.base_model:
                raise ValueError(f"base_model {base_model!r} differs from the {saved.base_model!r} that stage 2 "
                                 f"trained this run with; leave base_model empty, or name the profile.")
            return saved.with_overrides(**overrides) if overrides else saved
        name = auto_profile_name()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES) + [AUTO]}.")
    prof = PROFILES[name]
    if base_model:
        overrides["base_model"] = base_model
        if base_model != "tiny" and name == "tiny":
            overrides.setdefault("lora", True)
            overrides.setdefault("sft_learning_rate", 2e-4)
    return prof.with_overrides(**overrides) if overrides else prof


def as_profile(profile: "str | Profile", base_model: str | None = None, run=None) -> Profile:
    """``profile`` as a :class:`Profile`: one given is returned as it is, a name goes to :func:`get_profile`."""
    return profile if isinstance(profile, Profile) else get_profile(profile, base_model, run=run)


def later_stage_profile(profile: "str | Profile", run, base_model: str | None = None) -> Profile:
    """The profile for a stage after 2 (refinement, reward model, PPO, DPO).

    When ``profile`` is ``"auto"`` or names the preset stage 2 trained ``models/sft`` with, the
    profile saved with that model (its ``base_model`` and overrides included) so that LoRA,
    precision and threads match the model on disk; otherwise as :func:`as_profile`.
    """
    if isinstance(profile, str):
        saved = stage2_profile(run)
        if saved is not None and profile in (AUTO, saved.name) and base_model in (None, "", saved.base_model):
            return saved
    return as_profile(profile, base_model, run=run)


# --------------------------------------------------------------------------- hardware


def pick_device() -> str:
    """``cuda`` when a GPU is visible, ``mps`` on Apple silicon, else ``cpu``."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str | None = None):
    """fp32 on CPU, bf16 on Ampere or newer, fp16 on older GPUs such as the T4."""
    import torch

    device = device or pick_device()
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


#: Below this many parameters a model trains fastest on one CPU thread: its matrices are too small
#: to share out, and beside another job a second thread mostly waits for the first.
SMALL_MODEL_PARAMETERS = 20_000_000


def busy_cores(seconds: float = 0.3) -> float:
    """How many CPU cores other processes keep busy right now: ``/proc/stat`` sampled over
    ``seconds`` while this process sleeps (Linux); elsewhere the one-minute load average."""
    import time

    def sample():
        with open("/proc/stat", encoding="ascii") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v) - idle, sum(v)

    try:
        b0, t0 = sample()
        time.sleep(seconds)
        b1, t1 = sample()
        ncpu = os.cpu_count() or 1
        return ncpu * (b1 - b0) / max(t1 - t0, 1)
    except (OSError, ValueError):
        try:
            return float(os.getloadavg()[0])
        except (OSError, AttributeError):
            return 0.0


def pick_cpu_threads(profile: "Profile | None" = None, parameters: int | None = None) -> int:
    """Torch threads for a run on a CPU, whatever the profile.

    The profile's ``cpu_threads`` when it sets one (> 0). Otherwise one thread for a small model
    (under :data:`SMALL_MODEL_PARAMETERS`), and for a larger one the cores that other processes
    leave idle (at least one, at most torch's default). torch's default, one thread per core, is
    the worst choice on a shared machine (a laptop, CI beside a test suite): each operation waits
    for its slowest thread, and a thread that shares its core with another job makes every step
    wait. A toy-size Llama folder on the ``t4`` profile, beside two busy processes on a 2-core
    machine, took 55× its time per step alone with torch's two threads and 3.5× with one; beside one
    busy process, 2.0× with one (``bench/contention_bench.py``).
    """
    explicit = int(getattr(profile, "cpu_threads", 0) or 0)
    if explicit > 0:
        return explicit
    if parameters is not None and parameters < SMALL_MODEL_PARAMETERS:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    idle = cores - int(busy_cores() + 0.5)
    return max(1, min(idle, _torch_default_threads(), cores))


_THREADS = {"default": None, "picked": None}


def _torch_default_threads() -> int:
    """torch's thread count as this process found it (before :func:`use_cpu_threads` changed it)."""
    import torch

    if _THREADS["default"] is None:
        _THREADS["default"] = torch.get_num_threads()
    return _THREADS["default"]


def use_cpu_threads(model=None, profile: "Profile | None" = None) -> int:
    """Set torch's thread count for CPU work on ``model`` (:func:`pick_cpu_threads`), unless someone
    already chose one: a count other than torch's default and other than the last one picked here
    is left as it is. :func:`load_model` calls it for every model it loads on a CPU, so sampling,
    scoring and training in any stage run with threads that suit a shared machine. Returns the count."""
    import torch

    default, now = _torch_default_threads(), torch.get_num_threads()
    if now not in (default, _THREADS["picked"]):
        return now
    n = pick_cpu_threads(profile, count_parameters(model)[1] if model is not None else None)
    torch.set_num_threads(n)
    _THREADS["picked"] = n
    return n


@contextmanager
def cpu_threads(profile: "Profile | None" = None, model=None, device: str | None = None):
    """Run a block with :func:`pick_cpu_threads` torch threads when ``device`` is a CPU (the
    default device when ``None``), restoring the thread count afterwards; elsewhere no change."""
    import torch

    kind = str(device or pick_device()).split(":")[0]
    if kind != "cpu":
        yield None
        return
    n = pick_cpu_threads(profile, count_parameters(model)[1] if model is not None else None)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def distributed_state():
    """accelerate's ``PartialState`` of this process (one of several under ``torchrun`` or
    ``accelerate launch``). On a machine without an accelerator it is created with ``cpu=True``:
    without it, accelerate takes each of several CPU processes under torchrun for the only one, and
    "the main process first" lets them all in at once."""
    from accelerate import PartialState

    return PartialState(cpu=pick_device() == "cpu")


def weights_in_sync(model) -> bool | None:
    """With several processes (``torchrun``, ``accelerate launch``): whether every process holds the
    same trainable weights, from checksums of them gathered from all processes (a collective: every
    process must call it). ``None`` with a single process."""
    import torch
    from accelerate.utils import gather

    state = distributed_state()
    if state.num_processes < 2:
        return None
    params = [p for p in model.parameters() if p.requires_grad] or list(model.parameters())
    with torch.no_grad():
        sums = torch.stack([p.detach().double().sum() for p in params])
        squares = torch.stack([p.detach().double().square().sum() for p in params])
        weights = torch.arange(1, len(params) + 1, dtype=torch.float64, device=sums.device)
        check = torch.stack([sums.sum(), squares.sum(), (weights * sums).sum()]).reshape(1, 3).to(state.device)
    every = gather(check).reshape(-1, 3).cpu()
    return bool((every == every[0]).all())


def _checkpointing_key() -> str:
    """``activation_checkpointing`` in transformers 5 (``gradient_checkpointing`` is its deprecated alias)."""
    try:
        from transformers import TrainingArguments

        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__:
            return "activation_checkpointing"
    except ImportError:  # pragma: no cover
        pass
    return "gradient_checkpointing"


def trainer_precision_kwargs(device: str | None = None, checkpointing: bool | None = None) -> dict:
    """Keyword arguments for any TRL/transformers training config that fit the hardware.

    TRL configs default to bf16 and gradient checkpointing even on a CPU, which is about
    9× slower there; this turns both off on CPU and picks bf16/fp16 on GPUs. Activation
    (gradient) checkpointing is on by default on GPUs, where it saves memory for real models;
    pass ``checkpointing`` to force it. It is named ``activation_checkpointing`` on
    transformers 5, whose ``gradient_checkpointing`` is a deprecated alias that warns.
    """
    import torch

    device = device or pick_device()
    key = _checkpointing_key()
    kw: dict = {"report_to": "none"}
    if device == "cuda":
        bf16 = torch.cuda.is_bf16_supported()
        ckpt = True if checkpointing is None else bool(checkpointing)
        kw.update(bf16=bf16, fp16=not bf16, **{key: ckpt})
        if ckpt:
            kw[key + "_kwargs"] = {"use_reentrant": False}
    else:
        kw.update(bf16=False, fp16=False, use_cpu=(device == "cpu"), **{key: bool(checkpointing)})
        kw["dataloader_pin_memory"] = False  # nothing to pin to without an accelerator
    return kw


def hardware_summary() -> str:
    """One line for the top of each notebook: versions and the device (with a hint on CPU)."""
    import platform

    import torch
    import transformers
    import trl

    dev = pick_device()
    line = (
        f"python {platform.python_version()} · torch {torch.__version__} · transformers "
        f"{transformers.__version__} · trl {trl.__version__} · device: {dev}"
    )
    if dev == "cuda":
        p = torch.cuda.get_device_properties(0)
        line += f" ({p.name}, {p.total_memory / 2**30:.0f} GiB)"
    else:
        line += " — no GPU: the tiny profile runs fine; for a real model use Colab (Runtime → Change runtime type → T4 GPU)."
    return line


# --------------------------------------------------------------------------- conversations


def build_messages(context, prompt: str, reply: str | None = None, system: str | None = SYSTEM_PROMPT) -> list[dict]:
    """The one layout of a conversation for the model.

    ``context`` is the JSON string or list of earlier turns (``{"sender", "text", "me"}``,
    oldest first), ``prompt`` the message being answered, ``reply`` the person's answer (for
    training) or ``None`` (for generation). The person is the ``assistant``; everybody else
    is the ``user``. Consecutive turns of the same role are joined with a blank line so that
    templates which insist on alternating roles accept them.
    """
    msgs: list[dict] = []
    if system:
        msgs.append({"role": "system", "content": system})
    turns = [("assistant" if t.get("me") else "user", str(t.get("text", ""))) for t in context_turns(context)]
    turns.append(("user", str(prompt)))
    if reply is not None:
        turns.append(("assistant", str(reply)))
    for role, text in turns:
        if len(msgs) > (1 if system else 0) and msgs[-1]["role"] == role:
            msgs[-1]["content"] += "\n\n" + text
        else:
            msgs.append({"role": role, "content": text})
    # a conversation must open with the user for most templates
    first = 1 if system else 0
    if len(msgs) > first and msgs[first]["role"] == "assistant":
        msgs.insert(first, {"role": "user", "content": "…"})
    return msgs


def fit_messages(
    tokenizer,
    context,
    prompt: str,
    reply: str | None = None,
    max_tokens: int | None = None,
    system: str | None = SYSTEM_PROMPT,
) -> list[dict]:
    """:func:`build_messages`, dropping the oldest context turns until the conversation fits.

    The templated conversation (with the assistant turn opened when ``reply`` is ``None``)
    is kept within ``max_tokens`` tokens by removing whole context turns, oldest first, so the
    system prompt, the prompt and the reply are never cut. Training (:mod:`twinlib.sft`) and
    generation (:func:`prompt_text`) both use it, so the twin sees the same layout in both.
    If the prompt and reply alone are longer than ``max_tokens``, all context is dropped and the
    *start* of the prompt is cut (``…`` marks the cut): the end of the message, the reply and
    its end-of-turn token are what training needs, and a trainer that truncates at the end would
    cut the reply instead.
    """
    turns = context_turns(context)
    folded = system if system and not supports_system_role(tokenizer) else None
    fold = _system_folder(folded)
    system = None if folded else system

    def length(t):
        msgs = fold(build_messages(t, prompt, reply=reply, system=system))
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=reply is None)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    if max_tokens is None or length(turns) <= max_tokens:
        return fold(build_messages(turns, prompt, reply=reply, system=system))
    if not turns or length([]) > max_tokens:  # even the message alone does not fit: keep its end
        ids = tokenizer(str(prompt), add_special_tokens=False)["input_ids"]
        over = length([]) - max_tokens
        cut = str(prompt)
        if over < len(ids):
            cut = "…" + tokenizer.decode(ids[over + 1:])
            while len(cut) > 1 and length_with(tokenizer, fold, system, cut, reply) > max_tokens:
                cut = "…" + cut[2:]
        return fold(build_messages([], cut, reply=reply, system=system))
    lo, hi = 1, len(turns)  # drop the first k turns: find the smallest k that fits
    while lo < hi:
        mid = (lo + hi) // 2
        if length(turns[mid:]) <= max_tokens:
            hi = mid
        else:
            lo = mid + 1
    return fold(build_messages(turns[lo:], prompt, reply=reply, system=system))


def length_with(tokenizer, fold, system, prompt: str, reply: str | None) -> int:
    """Tokens of a context-free conversation (for :func:`fit_messages`' last resort)."""
    msgs = fold(build_messages([], prompt, reply=reply, system=system))
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=reply is None)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def supports_system_role(tokenizer) -> bool:
    """Whether the tokenizer's chat template takes a ``system`` message (Gemma 2's refuses one).

    The tiny model's template takes one and leaves it out on purpose (:data:`NO_SYSTEM_MARKER`):
    that counts as taking it, so the system prompt is not folded into the first user turn.
    """
    key = str(getattr(tokenizer, "chat_template", None))
    if NO_SYSTEM_MARKER in key:
        return True
    memo = getattr(tokenizer, "_twin_supports_system", None)
    cached = memo[1] if isinstance(memo, tuple) and memo[0] == key else None
    if cached is None:
        probe = "\u2063twin-probe\u2063"
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "system", "content": probe}, {"role": "user", "content": "hi"}], tokenize=False
            )
            cached = probe in text
        except Exception:  # noqa: BLE001 — jinja raises TemplateError("System role not supported")
            cached = False
        try:
            tokenizer._twin_supports_system = (key, cached)
        except AttributeError:  # pragma: no cover
            pass
    return cached


def _system_folder(system: str | None):
    """For templates without a system role: put the system prompt at the top of the first user turn."""
    if not system:
        return lambda msgs: msgs

    def fold(msgs):
        msgs = [dict(m) for m in msgs]
        if msgs and msgs[0]["role"] == "user":
            msgs[0]["content"] = system + "\n\n" + msgs[0]["content"]
        return msgs

    return fold


def prompt_text(tokenizer, context, prompt: str, system: str | None = SYSTEM_PROMPT, max_tokens: int | None = None) -> str:
    """The model's input for generating a reply: chat template with the assistant turn opened.

    With ``max_tokens``, the oldest context turns are dropped until it fits (:func:`fit_messages`).
    """
    msgs = fit_messages(tokenizer, context, prompt, max_tokens=max_tokens, system=system)
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end the twin's turn (the template's end-of-turn marker and EOS)."""
    ids = []
    for tok in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
            ids.append(tid)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return sorted(set(ids))


# --------------------------------------------------------------------------- tiny model


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 3000):
    """A byte-level BPE tokenizer trained on ``texts``, with ChatML special tokens and template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=TINY_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    roles = ["user", "assistant"]  # the template's role headers (the tiny template has no system turn)
    tok.train_from_iterator(list(texts) + roles * 50, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def tiny_config(profile: Profile, tokenizer):
    """The tiny model's ``transformers`` config: a Llama-style decoder (``tiny_arch="llama"``, the
    default) or GPT-2 (``"gpt2"``), ``tiny_width`` wide and ``tiny_layers`` deep.

    Llama's rotary position embeddings let attention find "the message just before my reply"
    wherever it sits; GPT-2's learned absolute positions must learn that for every offset, and its
    dropout slows training. Measured on the sample persona (4 epochs, same tokens, same CPU time):
    validation loss 1.77 against 2.13 (GPT-2 without dropout) and 2.28 (GPT-2 as configured by
    default), and context habits 0.22 against 0.05. It is also the family of the real checkpoints
    (SmolLM2, Qwen2), so the tiny model runs the same code paths as they do.
    """
    common = dict(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    if profile.tiny_arch == "llama":
        from transformers import LlamaConfig

        return LlamaConfig(hidden_size=profile.tiny_width, num_hidden_layers=profile.tiny_layers,
                           num_attention_heads=profile.tiny_heads, num_key_value_heads=profile.tiny_heads,
                           intermediate_size=profile.tiny_intermediate or int(profile.tiny_width * 8 / 3),
                           max_position_embeddings=max(512, profile.max_length), tie_word_embeddings=True,
                           rope_theta=10000.0, **common)
    if profile.tiny_arch == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(n_positions=max(512, profile.max_length), n_embd=profile.tiny_width, n_layer=profile.tiny_layers,
                          n_head=profile.tiny_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common)
    raise ValueError(f"tiny_arch must be 'llama' or 'gpt2', got {profile.tiny_arch!r}")


def build_tiny_model(texts: Iterable[str], out_dir, profile: Profile | None = None, seed: int = 0) -> Path:
    """Create the built-in tiny model (random weights, tokenizer trained on ``texts``) in ``out_dir``.

    It is saved like any checkpoint, so every later stage loads it with :func:`load_model`.
    """
    import torch
    from transformers import AutoModelForCausalLM

    profile = profile or PROFILES["tiny"]
    texts = [t for t in texts if isinstance(t, str) and t]
    if not texts:
        raise ValueError("no text to train the tiny model's tokenizer on: is the training split empty?")
    tok = train_tiny_tokenizer(texts, vocab_size=profile.tiny_vocab_size)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(profile, tok))
    model.generation_config.eos_token_id = end_of_turn_ids(tok)
    model.generation_config.pad_token_id = tok.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "twin.json").write_text(json.dumps({"kind": "tiny", "profile": asdict(profile)}, indent=2, default=str))
    return out


# --------------------------------------------------------------------------- loading


class ModelNotAvailableError(RuntimeError):
    """A hub model is neither a local folder nor cached, and the hub cannot be reached."""


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub (or of the HTTPS proxy, when one is set): never hangs.

    huggingface_hub itself retries for about 25 s before giving up on a missing network, so
    we look first and fail fast with a message instead.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get("TWIN_OFFLINE"):
        return False
    from urllib.parse import urlparse

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlparse(proxy if proxy else os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme in ("https", "") else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def has_model(folder) -> bool:
    """True when ``folder`` holds a saved model (full or adapter)."""
    folder = Path(folder)
    return (folder / "config.json").exists() or (folder / "adapter_config.json").exists()


def resolve_model_source(name_or_path) -> tuple[str, bool]:
    """Return ``(where, local_only)`` for a model id or folder, failing fast when it cannot load."""
    p = Path(str(name_or_path)).expanduser()
    if p.exists():
        if not has_model(p):
            raise ModelNotAvailableError(
                f"{p} exists but holds no model (no config.json or adapter_config.json). "
                "Point base_model at the folder written by save_pretrained, or at a Hugging Face id."
            )
        return str(p), True
    name = str(name_or_path)
    if name == "tiny":
        raise ValueError("'tiny' is built per run: call build_tiny_model(...) and load the folder it writes.")
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
        if isinstance(cached, str):
            return name, True
    except Exception:  # noqa: BLE001 — any cache problem means "not cached"
        pass
    if not _hub_reachable():
        raise ModelNotAvailableError(
            f"The model {name!r} is not a local folder, is not in the Hugging Face cache, and the hub "
            "cannot be reached from this machine. Either (1) run with internet once so it is cached, "
            f"(2) on a connected machine run `huggingface-cli download {name} --local-dir models/{name.split('/')[-1]}` "
            "and pass that folder as base_model, or (3) use profile='tiny', which needs no download."
        )
    return name, False


def load_tokenizer(name_or_path):
    from transformers import AutoTokenizer

    where, local = resolve_model_source(name_or_path)
    tok = AutoTokenizer.from_pretrained(where, local_files_only=local)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if tok.chat_template is None:  # a base model: plain role headers, EOS ends a turn
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    return tok


def load_model(name_or_path, device: str | None = None, dtype=None, merge_adapter: bool = False):
    """Load ``(model, tokenizer)`` from a hub id or folder, a LoRA adapter folder included.

    Adapter folders (written by a LoRA run) load as a PEFT model on top of their base; pass
    ``merge_adapter=True`` for a plain model (e.g. to export). The model is put in eval mode on
    ``device`` (default: :func:`pick_device`) with a dtype that fits it.
    """
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    dtype = dtype or pick_dtype(device)
    where, local = resolve_model_source(name_or_path)
    tok = load_tokenizer(where)
    if Path(where).exists() and (Path(where) / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        base = json.loads((Path(where) / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base_local = resolve_model_source(base)[1] if base else True  # the adapter's base must load too
        model = AutoPeftModelForCausalLM.from_pretrained(where, dtype=dtype, local_files_only=base_local)
        if merge_adapter:
            model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, local_files_only=local)
    model.to(device)
    model.eval()
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if str(device).split(":")[0] == "cpu":
        use_cpu_threads(model)  # torch's default (a thread per core) is the slowest choice on a busy machine
    return model, tok


def lora_config(profile: Profile):
    """The peft LoRA configuration of a profile (all linear layers)."""
    from peft import LoraConfig

    return LoraConfig(
        r=profile.lora_r,
        lora_alpha=profile.lora_alpha,
        lora_dropout=profile.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return train, total


def prepare_base_model(profile: Profile, train_texts: Sequence[str], out_dir, seed: int = 0) -> str:
    """The starting checkpoint of a run: builds the tiny model in ``out_dir`` or returns the hub id/folder.

    Re-running never overwrites a built tiny model: an existing ``out_dir`` is reused.
    """
    if profile.base_model != "tiny":
        resolve_model_source(profile.base_model)  # fail fast if unavailable
        return profile.base_model
    out = Path(out_dir)
    if (out / "config.json").exists():
        return str(out)
    return str(build_tiny_model(train_texts, out, profile=profile, seed=seed))
