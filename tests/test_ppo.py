"""PPO (twinlib.ppo): the maths on hand-computed numbers, the rollout's bookkeeping, learning on
the tiny model (a known word reward, then the reward model trained from rankings), and the
stage-4 notebook end to end."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from twinlib.ppo import (
    AdaptiveKLController,
    FixedKLController,
    PPOConfig,
    PPOTrainer,
    compute_rewards,
    contains_word_reward,
    entropy_from_logits,
    gae,
    policy_loss,
    ppo_iter,
    response_mask,
    value_loss,
    whiten,
)

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- shared toy data


def fresh_run(toy_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(toy_run, dst)
    return dst


# --------------------------------------------------------------------------- clipped objective


def test_policy_loss_on_both_sides_of_the_clip_range():
    # ratios 1.5 (above 1+ε), 0.5 (below 1-ε), 1.1 (inside); advantages +1 and -1
    ratios = torch.tensor([[1.5, 0.5, 1.5, 0.5, 1.1]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1.0]])
    old = torch.zeros_like(ratios)
    logprobs = torch.log(ratios).requires_grad_(True)
    mask = torch.ones_like(ratios)
    loss, clip_frac, approx_kl = policy_loss(logprobs, old, adv, mask, clip_param=0.2)
    # per token max(-A r, -A clip(r)): A>0,r=1.5 → -1.2 (clipped); A>0,r=0.5 → -0.5 (unclipped, pessimistic);
    # A<0,r=1.5 → 1.5 (unclipped); A<0,r=0.5 → 0.8 (clipped); inside → -1.1
    expected = (-1.2 - 0.5 + 1.5 + 0.8 - 1.1) / 5
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert clip_frac.item() == pytest.approx(4 / 5)  # four of the five ratios left [0.8, 1.2]
    kl = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.5, 0.5, 1.1)]
    assert approx_kl.item() == pytest.approx(sum(kl) / 5, abs=1e-6)
    loss.backward()
    g = logprobs.grad[0]
    # where the clipped term wins the gradient is zero; elsewhere d/dlogp(-A r) = -A r / n
    assert g[0].item() == 0.0 and g[3].item() == 0.0
    assert g[1].item() == pytest.approx(-1.0 * 0.5 / 5)
    assert g[2].item() == pytest.approx(1.0 * 1.5 / 5)
    assert g[4].item() == pytest.approx(-1.0 * 1.1 / 5)


def test_policy_loss_ignores_masked_tokens_and_is_minus_advantage_at_ratio_one():
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    adv = torch.tensor([[0.5, -0.25, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, clip_frac, approx_kl = policy_loss(logprobs, logprobs.clone(), adv, mask, 0.2)
    assert loss.item() == pytest.approx(-(0.5 - 0.25) / 2)
    assert clip_frac.item() == 0.0 and approx_kl.item() == pytest.approx(0.0)


def test_value_loss_is_clipped_around_the_old_values():
    values = torch.tensor([[0.5, 0.5]])
    old = torch.zeros_like(values)
    returns = torch.tensor([[1.0, 0.0]])
    loss, clip_frac = value_loss(values, old, returns, torch.ones_like(values), clip_value=0.2)
    # token 1: V clipped to 0.2 → (0.2-1)² = 0.64 beats (0.5-1)² = 0.25; token 2: 0.25 beats (0.2-0)² = 0.04
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.25) / 2)
    assert clip_frac.item() == pytest.approx(0.5)


# --------------------------------------------------------------------------- GAE, KL penalty, whitening


def test_gae_on_a_short_trajectory():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 5.0]])   # the 4th position is padding
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # δ2 = 1 - 0.7 = 0.3; δ1 = 0.9·0.7 - 0.6 = 0.03; δ0 = 0.9·0.6 - 0.5 = 0.04; γλ = 0.72
    a2 = 0.3
    a1 = 0.03 + 0.72 * a2
    a0 = 0.04 + 0.72 * a1
    assert adv[0].tolist() == pytest.approx([a0, a1, a2, 0.0], abs=1e-6)
    assert ret[0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.6, a2 + 0.7, 0.0], abs=1e-6)


def test_gae_with_gamma_and_lambda_one_is_the_monte_carlo_return():
    rewards = torch.tensor([[0.1, -0.2, 2.0], [1.0, 0.0, 0.0]])
    values = torch.tensor([[0.3, 0.1, 0.4], [0.2, 7.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert ret[0].tolist() == pytest.approx([1.9, 1.8, 2.0], abs=1e-6)
    assert adv[0].tolist() == pytest.approx([1.6, 1.7, 1.6], abs=1e-6)
    assert ret[1].tolist() == pytest.approx([1.0, 0.0, 0.0]) and adv[1].tolist() == pytest.approx([0.8, 0.0, 0.0])


def test_compute_rewards_kl_penalty_and_score_on_the_last_token():
    scores = torch.tensor([2.0, -1.0])
    logprobs = torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-0.1, -0.2, 0.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5, -3.0], [-0.4, -0.2, -9.0, -9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    rewards, kl = compute_rewards(scores, logprobs, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(rewards, torch.tensor([[-0.05, 0.1, 2.0, 0.0], [-0.03, -1.0, 0.0, 0.0]]), atol=1e-6)
    # the KL of a reply is the sum of its per-token terms
    assert kl.sum(1).tolist() == pytest.approx([-0.5, 0.3])


def test_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = whiten(x, mask)
    s = math.sqrt(2 / 3)
    assert out[0].tolist() == pytest.approx([-1 / s, 0.0, 1 / s, 0.0], abs=1e-5)
    kept = whiten(x, mask, shift_mean=False)
    assert kept[0, :3].tolist() == pytest.approx([2 - 1 / s, 2.0, 2 + 1 / s], abs=1e-5)


def test_entropy_from_logits():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    assert entropy_from_logits(logits).tolist() == pytest.approx([math.log(4), 0.0], abs=1e-5)


def test_kl_controllers():
    fixed = FixedKLController(0.2)
    fixed.update(100.0, 256)
    assert fixed.value == 0.2
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10_000)
    ctl.update(12.0, 256)                # error 1.0 clipped to +0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 256 / 10_000))
    ctl.value = 0.1
    ctl.update(4.5, 256)                 # error -0.25 clipped to -0.2
    assert ctl.value == pytest.approx(0.1 * (1 - 0.2 * 256 / 10_000))
    ctl.value = 0.1
    ctl.update(6.6, 1000)                # error +0.1, inside the clip
    assert ctl.value == pytest.approx(0.1 * (1 + 0.1 * 1000 / 10_000))


# --------------------------------------------------------------------------- minibatches and masks


@pytest.mark.parametrize("n,mb", [(8, 4), (10, 4), (5, 8), (7, 1)])
def test_ppo_iter_covers_every_sample_once_per_epoch(n, mb):
    g = torch.Generator().manual_seed(0)
    batches = list(ppo_iter(n, mb, epochs=3, generator=g))
    assert [e for e, _ in batches] == sorted(e for e, _ in batches)
    for epoch in range(3):
        idx = torch.cat([i for e, i in batches if e == epoch])
        assert sorted(idx.tolist()) == list(range(n))
        assert all(len(i) <= mb for e, i in batches if e == epoch)
    orders = [torch.cat([i for e, i in batches if e == k]).tolist() for k in range(3)]
    if n > 3:
        assert len({tuple(o) for o in orders}) > 1   # reshuffled every epoch


def test_response_mask_stops_after_the_first_end_of_turn():
    eot, pad = 3, 0
    response = torch.tensor([[5, 7, eot, pad, pad], [5, 6, 7, 8, 9], [eot, 5, eot, pad, pad]])
    assert response_mask(response, [eot]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]


# --------------------------------------------------------------------------- the loop on the tiny model


def _toy_policy(toy_run):
    from twinlib.modeling import load_model

    return load_model(toy_run / "models" / "sft", device="cpu", dtype=torch.float32)


def _convs(n=24, seed=3):
    from twinlib.ppo import toy_conversations

    return [(c, p) for c, p, _ in toy_conversations(n, seed=seed)]


def test_rollout_bookkeeping_full_model(toy_run):
    """Before any update the policy *is* the reference and the rollout's log-probs are the update's."""
    model, tok = _toy_policy(toy_run)
    cfg = PPOConfig(batch_size=6, minibatch_size=3, max_new_tokens=12)
    tr = PPOTrainer(model, tok, _convs(), contains_word_reward("pizza"), cfg)
    batch = tr.rollout(tr.next_prompts())
    mask = batch["mask"].float()
    assert batch["input_ids"].shape[0] == 6 and len(batch["replies"]) == 6
    assert (mask.sum(1) >= 1).all()
    assert torch.allclose(batch["logprobs"], batch["ref_logprobs"], atol=1e-5)
    assert (batch["values"] == 0).all()          # zero-initialised value head
    lp, values, ent = tr.model(batch["input_ids"][:3], batch["attention_mask"][:3], batch["prompt_len"])
    assert torch.allclose(lp * mask[:3], batch["logprobs"][:3], atol=1e-5)
    assert (ent[mask[:3].bool()] >= 0).all()
    assert batch["raw_scores"].tolist() == [1.0 if "pizza" in r.lower() else 0.0 for r in batch["replies"]]


def test_update_stops_early_when_the_approximate_kl_runs_away_and_beta_adapts(toy_run):
    model, tok = _toy_policy(toy_run)
    cfg = PPOConfig(batch_size=8, minibatch_size=2, ppo_epochs=2, learning_rate=1e-3, max_new_tokens=12,
                    max_approx_kl=1e-9, kl_coef=0.1, target_kl=3.0)

    def longer_is_better(contexts, prompts, replies):
        return [len(r) / 10 for r in replies]

    tr = PPOTrainer(model, tok, _convs(), longer_is_better, cfg)
    e = tr.step()
    # the first minibatch always runs (ratio 1, approx KL 0); the policy then moved, so the next one stops
    assert e["early_stopped"] is True and e["minibatches"] == 1
    assert e["kl"] == pytest.approx(0.0, abs=1e-4)       # rollout sampled before any change
    assert tr.kl_ctl.value == pytest.approx(0.1 * (1 - 0.2 * 8 / 10_000))   # KL 0 < target: β shrinks


def test_lora_reference_is_the_policy_with_the_adapter_disabled(toy_run):
    from peft import LoraConfig, get_peft_model

    model, tok = _toy_policy(toy_run)
    # every linear layer but the head, whatever the tiny model's architecture (Llama-style now, GPT-2 before)
    policy = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    n_params = sum(p.numel() for p in policy.parameters())
    cfg = PPOConfig(batch_size=8, minibatch_size=4, ppo_epochs=2, learning_rate=1e-2, max_new_tokens=12,
                    max_approx_kl=None)
    def longer_is_better(contexts, prompts, replies):  # varies in every batch, so there is a gradient
        return [len(r) / 10 for r in replies]

    tr = PPOTrainer(policy, tok, _convs(), longer_is_better, cfg)
    assert tr.ref_model is None                  # no second copy in memory
    assert sum(p.numel() for p in tr.policy.parameters()) == n_params
    first = tr.rollout(tr.next_prompts())
    assert torch.allclose(first["logprobs"], first["ref_logprobs"], atol=1e-5)   # LoRA B starts at 0
    frozen = {n: p.detach().clone() for n, p in tr.policy.named_parameters() if "lora_" not in n}
    tr.step()
    tr.step()
    later = tr.rollout(tr.next_prompts())
    assert not torch.allclose(later["logprobs"], later["ref_logprobs"], atol=1e-4)  # the adapter moved
    for n, p in tr.policy.named_parameters():   # ...and only the adapter
        if n in frozen:
            assert torch.equal(p, frozen[n]), n


@pytest.mark.slow
def test_ppo_learns_a_known_word_reward(toy_run, tmp_path):
    """+1 when the reply says "pizza": the mean reward rises clearly within 12 updates, the KL stays bounded."""
    from twinlib.ppo import mean_reward, train_ppo

    model, tok = _toy_policy(toy_run)
    reward = contains_word_reward("pizza")
    held_out = _convs(24, seed=11)
    before = mean_reward(model, tok, held_out, reward, n=8, seed=1)
    cfg = PPOConfig(steps=12, batch_size=16, minibatch_size=8, ppo_epochs=4, learning_rate=2e-4, kl_coef=0.1,
                    max_new_tokens=16, seed=0)
    logs = train_ppo(model, tok, _convs(96, seed=3), reward, cfg, log_path=tmp_path / "ppo_log.json", progress=False)
    after = mean_reward(model, tok, held_out, reward, n=8, seed=1)
    rewards = [e["mean_reward"] for e in logs]
    first, last = sum(rewards[:2]) / 2, sum(rewards[-3:]) / 3
    print(f"word reward: sampled {before:.2f} → {after:.2f}; rollout reward {first:.2f} → {last:.2f}; "
          f"max KL {max(e['kl'] for e in logs):.2f} nats/reply")
    assert before < 0.35
    assert last >= first + 0.35 and last >= 0.6
    assert after >= before + 0.3
    assert max(e["kl"] for e in logs) < 15.0
    assert json.loads((tmp_path / "ppo_log.json").read_text())[-1]["step"] == 12
    for key in ("mean_reward", "kl", "clip_frac", "value_loss", "entropy", "approx_kl", "kl_coef"):
        assert all(isinstance(e[key], float) for e in logs), key


@pytest.mark.slow
def test_ppo_against_the_reward_model_trained_from_rankings(toy_run, tmp_path):
    """The rankings prefer replies that mention pizza; the reward model learns that from the
    pairs and PPO against it raises both its score and the share of such replies."""
    from twinlib.modeling import load_model
    from twinlib.ppo import load_logs, mean_reward, run_ppo
    from twinlib.rewards import RewardModelScorer, train_reward_model

    run = fresh_run(toy_run, tmp_path)
    rm = train_reward_model(run, "tiny", epochs=3, log=lambda *_: None)
    assert rm["test_accuracy"] is not None and rm["test_accuracy"] >= 0.7
    cfg = PPOConfig(steps=10, batch_size=16, learning_rate=2e-4, max_new_tokens=16)
    summary = run_ppo(run, "tiny", config=cfg, progress=False, log=lambda *_: None, validate=False)
    assert summary["steps"] == 10
    out = run / "models" / "ppo"
    for name in ("config.json", "ppo_log.json", "ppo.json", "value_head.pt", "twin.json"):
        assert (out / name).exists(), name
    assert not list((run / "models").glob(".ppo*")), "temporary folders left behind"
    logs = load_logs(run)
    assert len(logs) == 10
    scorer = RewardModelScorer(run / "models" / "reward", device="cpu")
    word = contains_word_reward("pizza")
    convs = _convs(24, seed=11)
    sft, tok = load_model(run / "models" / "sft", device="cpu")
    ppo, _ = load_model(out, device="cpu")
    rm_before, rm_after = mean_reward(sft, tok, convs, scorer, n=4), mean_reward(ppo, tok, convs, scorer, n=4)
    w_before, w_after = mean_reward(sft, tok, convs, word, n=4), mean_reward(ppo, tok, convs, word, n=4)
    print(f"reward model score {rm_before:.2f} → {rm_after:.2f}; pizza share {w_before:.2f} → {w_after:.2f}")
    assert rm_after > rm_before + 0.5
    assert w_after > w_before + 0.2
    # an existing model is reused, never overwritten silently
    again = run_ppo(run, "tiny", config=cfg, progress=False, log=lambda *_: None, validate=False)
    assert again["reused"] is True and again["steps"] == 10


@pytest.mark.slow
def test_ppo_against_the_reward_model_trained_from_the_sample_rankings(pipeline_run, tmp_path, one_thread):
    """The sample persona's rankings (stage 3 of the test pipeline, simulated ranker): a reward
    model trained on them, then PPO from the refined twin. The reward-model score of fresh replies
    to held-out messages rises clearly within 20 updates, the KL to the reference stays bounded."""
    from twinlib.modeling import load_model
    from twinlib.ppo import load_logs, mean_reward, run_ppo, train_prompts
    from twinlib.rewards import RewardModelScorer, train_reward_model
    from twinlib.rundir import RunDir

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    for name in ("pairs.csv", "rankings.jsonl"):
        shutil.copy(pipeline_run / name, run.root / name)
    for model in ("sft", "refined"):
        shutil.copytree(pipeline_run / "models" / model, run.model(model))
    rm = train_reward_model(run, "tiny", epochs=3, log=lambda *_: None)
    assert rm["pairs"] >= 100 and rm["test_pairs"] > 0
    cfg = PPOConfig(steps=20, batch_size=16, learning_rate=2e-4, max_new_tokens=24, max_prompt_tokens=128)
    run_ppo(run, "tiny", config=cfg, progress=False, log=lambda *_: None, validate=False)
    logs = load_logs(run)
    test = train_prompts(run, split="test", limit=40)
    convs = list(zip(test["context"], test["prompt"], test["response"]))
    scorer = RewardModelScorer(run.model("reward"), device="cpu")
    scores = {}
    for name in ("refined", "ppo"):
        model, tok = load_model(run.model(name), device="cpu")
        scores[name] = mean_reward(model, tok, convs, scorer, n=2, seed=1)
    tokens = [e["reply_tokens"] for e in logs]
    print(f"sample rankings: reward-model held-out accuracy {rm['test_accuracy']:.2f}; score on held-out "
          f"messages {scores['refined']:.2f} → {scores['ppo']:.2f}; max KL {max(e['kl'] for e in logs):.2f} "
          f"nats/reply; reply tokens {tokens[0]:.1f} → {sum(tokens[-5:]) / 5:.1f}")
    assert scores["ppo"] > scores["refined"] + 0.3
    assert max(e["kl"] for e in logs) < 15.0


# --------------------------------------------------------------------------- the notebook


@pytest.mark.slow
def test_notebook_04_runs_on_a_toy_run(toy_run, tmp_path):
    import nbformat
    import papermill as pm

    from twinlib.nbtools import problems

    nb_path = ROOT / "notebooks" / "04_ppo.ipynb"
    assert problems(nb_path) == []
    nb = nbformat.read(str(nb_path), as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "run_dir" in params[0].source
    import ast

    assigned = [t.id for node in ast.parse(params[0].source).body for t in node.targets]
    assert list(pm.inspect_notebook(str(nb_path))) == assigned   # papermill can read (and so set) every one
    run = fresh_run(toy_run, tmp_path)
    pm.execute_notebook(
        str(nb_path), str(tmp_path / "04_out.ipynb"), cwd=str(ROOT), kernel_name="python3", progress_bar=False,
        parameters={"run_dir": str(run), "profile": "tiny", "ppo_steps": 6, "reward_epochs": 2, "dpo_epochs": 2,
                    "n_samples": 4},
    )
    for sub in ("reward", "ppo", "dpo"):
        assert (run / "models" / sub / "config.json").exists(), sub
    stage4 = json.loads((run / "stage4.json").read_text())
    assert stage4["ppo"]["steps"] == 6
    assert stage4["reward_model"]["test_accuracy"] is not None
    assert (run / "figures" / "ppo_curves.png").exists()
    assert (run / "stage4_samples.csv").exists()


@pytest.mark.slow
def test_lora_profile_path_end_to_end(toy_run, tmp_path):
    """The code path of the GPU profiles, on CPU: a LoRA twin (adapter folder over a base) →
    reward model (adapter merged, LoRA on the classifier), PPO and DPO (merged twin + fresh
    adapter, reference = adapter off), each saved as a plain checkpoint load_model reads."""
    from peft import get_peft_model

    from twinlib.dpo import train_dpo
    from twinlib.modeling import get_profile, load_model, lora_config
    from twinlib.ppo import ppo_config_for, run_ppo
    from twinlib.rewards import train_reward_model

    run = tmp_path / "run"
    run.mkdir()
    for name in ("pairs.csv", "rankings.jsonl"):
        shutil.copy(toy_run / name, run / name)
    base = tmp_path / "base"
    shutil.copytree(toy_run / "models" / "sft", base)
    prof = get_profile("tiny", base_model=str(base))
    assert prof.lora
    model, tok = load_model(base, device="cpu")
    twin = get_peft_model(model, lora_config(prof))
    for n, p in twin.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.02)            # an SFT adapter that changes something
    twin.save_pretrained(run / "models" / "sft")
    tok.save_pretrained(run / "models" / "sft")
    quiet = lambda *_: None  # noqa: E731
    rm = train_reward_model(run, prof, max_steps=2, log=quiet)
    assert rm["test_accuracy"] is not None
    ppo = run_ppo(run, prof, config=ppo_config_for(prof, steps=2, batch_size=8), progress=False, log=quiet)
    assert ppo["steps"] == 2
    dpo = train_dpo(run, prof, max_steps=2, log=quiet)
    assert dpo["train_pairs"] > 0
    for sub in ("reward", "ppo", "dpo"):
        assert (run / "models" / sub / "config.json").exists(), sub
        assert not (run / "models" / sub / "adapter_config.json").exists(), sub
    ppo_model, _ = load_model(run / "models" / "ppo", device="cpu")
    assert type(ppo_model).__name__ == type(model).__name__   # the base's architecture, adapters merged away
