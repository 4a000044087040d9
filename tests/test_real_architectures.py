"""The real-model path without a download: random-weight Llama (SmolLM2-style) and Qwen2
(Qwen2.5-style) folders built locally (``twinlib.toy_models``), each with its instruct models'
chat template and special tokens, run as ``--base-model <folder>`` on the ``t4`` and ``gpu``
profiles through the runner and notebooks 02–05: LoRA on the usual projection modules, the merged
SFT model, the reward model, PPO with the adapter-off reference, DPO, evaluation and chat. The
settings are small (a few steps, short replies, a bounded evaluation); the code path is the GPU
profiles'. ``bench/gpu_bench.py --cpu-smoke`` runs here too, so the GPU benchmark keeps working.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECTIONS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

# small settings: every stage's code path, few steps, short replies (a random model never stops
# early), a bounded evaluation. profile_overrides reach stages 3-5 through the profile stage 2 saves.
SMALL = {
    "max_steps": 6,
    "profile_overrides": {"sft_evals": 2, "max_length": 96, "max_prompt_tokens": 64, "max_new_tokens": 6},
    "rounds": 1, "prompts_per_round": 6, "auto_prompts_per_round": 12,
    "ppo_steps": 2, "batch_size": 4, "reward_epochs": 1, "dpo_epochs": 1, "n_samples": 2,
    "n_test": 12, "n_prompt_tests": 1, "n_validation": 12, "verdict_messages": 8, "judge_messages": 24,
}


def lora_modules(adapter_config: dict) -> set[str]:
    """The kinds of module a saved LoRA adapter is on (``q_proj``, ...), from its full module paths."""
    return {m.rsplit(".", 1)[-1] for m in adapter_config["target_modules"]}


@pytest.fixture(scope="module")
def arch_folders(sample_stage1, tmp_path_factory) -> dict:
    """A toy-size Llama and Qwen2 folder, tokenizers trained on the sample persona's training pairs."""
    import pandas as pd

    from twinlib.toy_models import build_model_folder

    pairs = pd.read_csv(sample_stage1 / "pairs.csv", keep_default_na=False)
    train = pairs[pairs["split"] == "train"]
    texts = list(train["prompt"]) + list(train["response"])
    base = tmp_path_factory.mktemp("real_architectures")
    return {arch: build_model_folder(base / arch, arch, texts=texts, vocab_size=1024) for arch in ("llama", "qwen2")}


def test_toy_folders_have_the_instruct_layout(arch_folders):
    """What the pipeline meets in a real instruct checkpoint: a ChatML template with a default
    system prompt, grouped-query attention, tied embeddings, SmolLM2's pad = EOS and Qwen's missing BOS."""
    from twinlib.modeling import end_of_turn_ids, load_model, prompt_text, supports_system_role

    for arch, folder in arch_folders.items():
        model, tok = load_model(folder, device="cpu")
        cfg = model.config
        assert cfg.model_type == arch
        assert cfg.num_key_value_heads < cfg.num_attention_heads and cfg.tie_word_embeddings
        assert supports_system_role(tok)
        text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
        assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")  # default system prompt
        assert "You are my digital twin" in prompt_text(tok, "[]", "hi")                               # ours replaces it
        assert end_of_turn_ids(tok) == [tok.convert_tokens_to_ids("<|im_end|>")]
        if arch == "llama":
            assert tok.pad_token == tok.eos_token == "<|im_end|>" and tok.bos_token == "<|im_start|>"
        else:
            assert tok.bos_token is None and tok.pad_token == "<|endoftext|>"
        info = json.loads((folder / "random_weights.json").read_text())
        assert info["parameters"] == sum(p.numel() for p in model.parameters()) < 1_000_000


@pytest.mark.slow
@pytest.mark.parametrize("arch,profile", [("qwen2", "gpu")])
def test_pipeline_on_a_real_architecture(arch, profile, arch_folders, sample_stage1, tmp_path):
    """Notebooks 02-05 through the runner (``python -m twinlib run --base-model <folder>``)."""
    run = tmp_path / "run"
    shutil.copytree(sample_stage1, run)
    cmd = [sys.executable, "-m", "twinlib", "run", "--run-dir", str(run), "--only", "02", "03", "04", "05",
           "--profile", profile, "--base-model", str(arch_folders[arch]), "--quiet"]
    for key, value in SMALL.items():
        cmd += ["--param", f"{key}={json.dumps(value)}"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TWIN_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    # stage 2: LoRA on the projection modules, merged into a plain checkpoint of the same architecture
    sft = run / "models" / "sft"
    metrics = json.loads((sft / "train_metrics.json").read_text())
    assert metrics["profile"] == profile and metrics["lora"] and metrics["merged_adapter"]
    assert metrics["steps"] == SMALL["max_steps"]
    assert metrics["trainable_parameters"] < metrics["parameters"]
    adapter = json.loads((sft / "adapter" / "adapter_config.json").read_text())
    assert lora_modules(adapter) == PROJECTIONS, adapter["target_modules"]
    assert json.loads((sft / "twin.json").read_text())["profile"]["base_model"] == str(arch_folders[arch])
    # stages 3-4: every model a plain checkpoint of the base's architecture (adapters merged away)
    for name in ("sft", "refined", "reward", "ppo", "dpo"):
        folder = run / "models" / name
        assert json.loads((folder / "config.json").read_text())["model_type"] == arch, name
        assert not (folder / "adapter_config.json").exists(), name
    ppo = json.loads((run / "models" / "ppo" / "ppo.json").read_text())
    assert ppo["steps"] == SMALL["ppo_steps"] and ppo["config"]["target_kl"] == 6.0   # the LoRA PPO settings
    assert json.loads((run / "models" / "reward" / "reward.json").read_text())["test_pairs"] > 0
    assert json.loads((run / "models" / "dpo" / "dpo.json").read_text())["train_pairs"] > 0
    # stage 5: every model evaluated on the bounded sample, the best one picked
    config = json.loads((run / "eval" / "config.json").read_text())
    assert config["n_test"] == SMALL["n_test"]
    results = json.loads((run / "eval" / "metrics.json").read_text())
    assert {"base", "sft", "refined", "ppo", "dpo"} <= set(results)
    assert config["models"]["base"] == str(arch_folders[arch])      # "base" is the folder the run started from
    assert json.loads((run / "eval" / "selection.json").read_text())["best"] in results

    # chat with the twin the run picked, as `python -m twinlib chat` does
    from twinlib.chat import ChatSession, load_twin

    name, model, tok = load_twin(run)
    session = ChatSession(model, tok, seed=0, max_prompt_tokens=SMALL["profile_overrides"]["max_prompt_tokens"])
    assert isinstance(session.reply("are you free tonight?"), str)
    assert len(session.history) == 2 and name in results


@pytest.mark.slow
def test_lora_path_on_llama_in_python(arch_folders, sample_stage1, tmp_path, one_thread):
    """The same path for the Llama folder on the ``t4`` profile, through the stage functions the
    notebooks call (in this process: a second runner pass would cost CI as much again): LoRA SFT,
    rankings, the reward model, PPO (reference = adapter off), DPO, evaluation and chat."""
    from twinlib.chat import ChatSession
    from twinlib.dpo import train_dpo
    from twinlib.evaluation import evaluate_models
    from twinlib.modeling import get_profile, load_model
    from twinlib.ppo import ppo_config_for, run_ppo, toy_rankings, train_prompts
    from twinlib.ranking import RankingStore
    from twinlib.rewards import train_reward_model
    from twinlib.rundir import RunDir
    from twinlib.sft import train_sft

    run = RunDir(tmp_path / "run")
    shutil.copytree(sample_stage1, run.root)
    folder = arch_folders["llama"]
    prof = get_profile("t4", base_model=str(folder), **SMALL["profile_overrides"])
    quiet = lambda *_: None  # noqa: E731
    metrics = train_sft(run, prof, max_steps=SMALL["max_steps"], progress=False, max_eval_samples=32)
    assert metrics["lora"] and metrics["steps"] == SMALL["max_steps"]
    adapter = json.loads((run.model("sft") / "adapter" / "adapter_config.json").read_text())
    assert lora_modules(adapter) == PROJECTIONS
    # stage 3's output without its loop: 4 candidates of the twin per message, ranked shortest first
    model, tok = load_model(run.model("sft"), device="cpu")
    rows = train_prompts(run, limit=16)
    store = RankingStore.for_run(run)
    for record in toy_rankings(model, tok, list(zip(rows["context"], rows["prompt"])), lambda r: -len(r)):
        store.append(record)
    reward = train_reward_model(run, prof, max_steps=4, log=quiet)
    assert reward["test_pairs"] > 0
    ppo = run_ppo(run, prof, start_from="sft", config=ppo_config_for(prof, steps=2, batch_size=4), progress=False,
                  log=quiet, n_validation=8)
    assert ppo["steps"] == 2 and ppo["config"]["target_kl"] == 6.0 and ppo["processes"] == 1
    dpo = train_dpo(run, prof, start_from="sft", max_steps=4, log=quiet)
    assert dpo["train_pairs"] > 0
    for name in ("sft", "reward", "ppo", "dpo"):
        assert json.loads((run.model(name) / "config.json").read_text())["model_type"] == "llama", name
        assert not (run.model(name) / "adapter_config.json").exists(), name
    _, results = evaluate_models(run, models=["sft", "ppo", "dpo"], n_test=8, n_validation=8, progress=False, profile=prof)
    assert set(results) == {"sft", "ppo", "dpo"}
    twin, tok = load_model(run.model("ppo"), device="cpu")
    session = ChatSession(twin, tok, seed=0, max_prompt_tokens=prof.max_prompt_tokens)
    assert isinstance(session.reply("are you free tonight?"), str) and len(session.history) == 2


@pytest.mark.slow
def test_gpu_bench_cpu_smoke(tmp_path):
    """bench/gpu_bench.py --cpu-smoke: every configuration runs or says why it cannot (here: no CUDA)."""
    out = tmp_path / "gpu_bench.json"
    cmd = [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--cpu-smoke", "--json", str(out),
           "--only", "as shipped", "padding-free", "Liger kernels", "flash_attention_2"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(out.read_text())
    rows = {r["config"]: r for r in result["sft"]}
    for name in ("as shipped", "padding-free"):
        assert rows[name]["tokens_per_s"] > 0 and rows[name]["achieved_tflops"] > 0, rows[name]
    assert rows["padding-free"]["padding_free"] and not rows["as shipped"]["padding_free"]
    for name in ("Liger kernels", "flash_attention_2"):
        assert "CUDA" in rows[name]["skipped"], rows[name]
    assert result["ppo"]["rollout_tokens_per_s"] > 0 and result["ppo"]["update_tokens_per_s"] > 0
    assert "tokens_per_s" in proc.stdout and "these figures say nothing about a GPU" in proc.stdout


def test_cpu_threads_are_picked_for_any_profile(arch_folders):
    """On a CPU every profile gets threads picked for a shared machine, not torch's one per core:
    one for a small model, the profile's own setting when it has one, and a count someone chose
    before loading is left alone."""
    import torch

    from twinlib.modeling import PROFILES, get_profile, load_model, pick_cpu_threads

    t4 = get_profile("t4", base_model=str(arch_folders["llama"]))
    assert t4.cpu_threads == 0                                           # nothing set: picked
    assert pick_cpu_threads(t4, parameters=250_000) == 1                 # a toy-size model: one thread
    assert pick_cpu_threads(PROFILES["tiny"], parameters=10**9) == 1     # the profile's own setting wins
    big = pick_cpu_threads(t4, parameters=10**9)
    assert 1 <= big <= (os.cpu_count() or 1)                             # a real size: the idle cores
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        load_model(arch_folders["qwen2"], device="cpu")
        assert torch.get_num_threads() == 1                              # picked on load: one for a toy model
        torch.set_num_threads(5)                                         # a count chosen by hand stays
        load_model(arch_folders["qwen2"], device="cpu")
        assert torch.get_num_threads() == 5
    finally:
        torch.set_num_threads(before)
