"""PPO for the twin: an actor–critic that moves the model toward replies the reward likes.

TRL 1.16 no longer ships PPO, so this module is a compact implementation on top of
torch/transformers/peft/accelerate, written to be read next to ``notebooks/04_ppo.ipynb``.

One PPO *update* (:meth:`PPOTrainer.step`) is

1. **rollout** — sample one reply per prompt from the current policy (the *actor*) and record,
   for every reply token, its log-probability under the policy (``logprobs``), under the frozen
   *reference* model (``ref_logprobs``) and the *critic*'s estimate of the return (``values``);
   the reward function scores each finished reply (``scores``);
2. **rewards** (:func:`compute_rewards`) — every token pays ``kl_coef × (logprob − ref_logprob)``,
   a per-token KL penalty that keeps the twin close to where it started; the last token also
   gets the score;
3. **advantages** (:func:`gae`) — generalised advantage estimation with ``gamma`` and ``lam``,
   then whitened (:func:`whiten`);
4. **optimisation** (:func:`ppo_update`) — a few epochs of random minibatches
   (:func:`ppo_iter`) on the clipped surrogate (:func:`policy_loss`), the clipped value loss
   (:func:`value_loss`) and an entropy bonus, with gradient clipping; the update stops early
   when the approximate KL between the new and the rollout policy runs away.

**Reference model.** For a LoRA policy the reference is the same network with the adapter
switched off (``with policy.disable_adapter():``), so no second copy sits in memory. The
adapter trained here is a *fresh* one on top of the twin with its SFT adapter merged in
(:func:`load_policy`), so "adapter off" is the twin as it was before PPO — not the generic
base model, which would pull the twin's style back out. For the 1M-parameter tiny model, which
is fully fine-tuned, a frozen deep copy is kept (a few MB).

**Critic.** A value head: one linear layer on the policy's last hidden state, sharing the
trunk (:class:`ActorCritic`). It costs ``hidden_size + 1`` parameters and no second forward
pass — the same forward gives the next-token logits (actor) and the values (critic). A
separate value model (InstructGPT) is a second network in memory and a second forward; it
isolates the critic's gradients from the policy, which matters for very large models but not
at our scale, and the value loss is down-weighted (``vf_coef``) so it does not dominate the
shared trunk. The head starts at zero, so the first values are 0 and the first advantages
are the rewards.

Reward functions have one interface, ``reward_fn(contexts, prompts, replies) -> list[float]``:
the trained reward model (:class:`twinlib.rewards.RewardModelScorer`) and plain Python
functions (:func:`contains_word_reward`) plug into the same loop.

Device placement and ``backward`` go through accelerate's :class:`~accelerate.Accelerator`, so
the loop runs on a CPU, one GPU, or several with ``accelerate launch`` (each process samples
its own prompts; whitening is per process; logged numbers are averaged over processes).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from twinlib.modeling import SYSTEM_PROMPT, end_of_turn_ids, has_model, pick_device, prompt_text
from twinlib.rundir import RunDir
from twinlib.style import count_words

RewardFn = Callable[[Sequence, Sequence[str], Sequence[str]], Sequence[float]]


# --------------------------------------------------------------------------- settings


@dataclass
class PPOConfig:
    """Every setting of a PPO run (the notebook's parameters map onto these)."""

    steps: int = 30                  # PPO updates; each samples `batch_size` fresh replies
    batch_size: int = 16             # replies per update (per process)
    minibatch_size: int = 8          # replies per gradient step
    ppo_epochs: int = 4              # passes over each rollout
    learning_rate: float = 2e-4      # tiny model; LoRA on a real model: ~1e-5 (see ppo_config_for)
    clip_param: float = 0.2          # ε of the clipped surrogate: ratio kept within [1-ε, 1+ε]
    value_clip: float = 0.2          # the critic's values move at most this much from the rollout's
    vf_coef: float = 0.1             # weight of the value loss (the critic shares the trunk)
    ent_coef: float = 0.0            # weight of the entropy bonus
    kl_coef: float = 0.1             # β of the per-token KL penalty to the reference
    target_kl: float | None = None   # adaptive KL: target KL per reply (nats); None keeps β fixed
    kl_horizon: int = 10_000         # adaptive KL: how fast β follows the target
    gamma: float = 1.0               # discount
    lam: float = 0.95                # GAE λ
    max_grad_norm: float | None = 1.0
    max_approx_kl: float | None = 0.1   # stop the update when approx. KL(old‖new) per token exceeds this
    max_new_tokens: int = 24
    max_prompt_tokens: int = 192
    temperature: float = 1.0         # sampling temperature (log-probs use the same one)
    normalize_reward: bool = True    # scores → (score − running mean) / running std: the scale of a reward model is arbitrary
    form_coef: float = 0.0           # weight of the form term (length, emoji, punctuation typical for the person)
    eval_every: int = 5              # updates between validation measurements (0: never; the last update is kept)
    seed: int = 0


def ppo_config_for(profile, **overrides) -> PPOConfig:
    """Sensible defaults for a :class:`twinlib.modeling.Profile`.

    The tiny model is fully fine-tuned with a large step and, to stay within a CPU's minutes,
    sees the last 128 prompt tokens and writes up to 24; LoRA on a real model takes a much
    smaller step, smaller minibatches and an adaptive KL coefficient (target 6 nats per reply).
    """
    if getattr(profile, "lora", False):
        kw: dict = {"learning_rate": 1e-5, "minibatch_size": 4, "target_kl": 6.0,
                    "max_new_tokens": min(getattr(profile, "max_new_tokens", 32), 48),
                    "max_prompt_tokens": getattr(profile, "max_prompt_tokens", 384)}
    else:
        kw = {"max_new_tokens": min(getattr(profile, "max_new_tokens", 24), 24),
              "max_prompt_tokens": min(getattr(profile, "max_prompt_tokens", 128), 128)}
    kw["form_coef"] = 0.5  # length, emoji and punctuation stay typical for the person
    kw.update(overrides)
    return PPOConfig(**kw)


# --------------------------------------------------------------------------- the maths


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is 1."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit variance (and zero mean unless ``shift_mean=False``) over the masked positions.

    Uses the population variance (divide by n). Masked-out positions come back as 0.
    """
    if mask is None:
        mask = torch.ones_like(x)
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def compute_rewards(scores, logprobs, ref_logprobs, mask, kl_coef: float):
    """Per-token rewards: ``-kl_coef × (logprob − ref_logprob)`` on every reply token, plus the score on the last.

    ``scores`` is (B,), the others (B, T) with ``mask`` 1 on reply tokens (a prefix of each row).
    Returns ``(rewards, kl)``, both (B, T) and 0 outside the mask; ``kl`` is the per-token
    estimate ``log π(y|x) − log π_ref(y|x)`` whose sum over a reply is that reply's KL sample.
    """
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards * mask, kl


def gae(rewards, values, mask, gamma: float = 1.0, lam: float = 0.95):
    """Generalised advantage estimation over each reply (Schulman et al., 2016).

    ``δ_t = r_t + γ V_{t+1} − V_t`` and ``A_t = δ_t + γ λ A_{t+1}``, with ``V`` = 0 after the last
    reply token. Returns ``(advantages, returns)`` with ``returns = advantages + values`` — the
    critic's regression target. Everything is 0 outside ``mask``.
    """
    values = values * mask
    rewards = rewards * mask
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(logprobs, old_logprobs, advantages, mask, clip_param: float = 0.2):
    """PPO's clipped surrogate (to minimise): ``mean(max(−A·r, −A·clip(r, 1−ε, 1+ε)))``, ``r = π/π_old``.

    Returns ``(loss, clip_fraction, approx_kl)``: the share of tokens whose ratio left
    ``[1−ε, 1+ε]`` (as CleanRL counts it; where the advantage pushes the ratio further out, the
    clipped term wins and the gradient is zero), and the estimate ``mean((r − 1) − log r)`` of
    KL(π_old‖π), which is ≥ 0 and unbiased (Schulman's "k3").
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_param, 1.0 + clip_param)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean(((ratio - 1.0).abs() > clip_param).float(), mask)
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
    return loss, clip_fraction, approx_kl


def value_loss(values, old_values, returns, mask, clip_value: float = 0.2):
    """The critic's clipped regression loss: ``0.5 · mean(max((V − R)², (V_clip − R)²))``.

    ``V_clip = V_old + clip(V − V_old, −c, c)`` keeps one update from moving the values far from
    the rollout's. Returns ``(loss, clip_fraction)``.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_value, clip_value)
    err = (values - returns) ** 2
    err_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    with torch.no_grad():
        clip_fraction = masked_mean((err_clipped > err).float(), mask)
    return loss, clip_fraction


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution at each position: ``logsumexp(z) − Σ p·z``."""
    p = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)


def ppo_iter(batch_size: int, minibatch_size: int, epochs: int, generator: torch.Generator | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(epoch, indices)``: each epoch a fresh random permutation of ``range(batch_size)``
    cut into minibatches of ``minibatch_size`` (the last one smaller if it does not divide), so
    every sample is seen exactly once per epoch."""
    if batch_size < 1 or minibatch_size < 1:
        raise ValueError("batch_size and minibatch_size must be positive")
    for epoch in range(epochs):
        perm = torch.randperm(batch_size, generator=generator)
        for start in range(0, batch_size, minibatch_size):
            yield epoch, perm[start : start + minibatch_size]


class RunningMoments:
    """Running mean and standard deviation of every reward seen so far (Chan et al.'s parallel update)."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 0

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().float().flatten()
        n = int(x.numel())
        if n == 0:
            return
        m, v = float(x.mean()), float(x.var(unbiased=False))
        total = self.count + n
        delta = m - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + v * n + delta ** 2 * self.count * n / total) / total if self.count else v
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 0.0))


class FixedKLController:
    """A constant KL coefficient."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Adaptive KL coefficient (Ziegler et al., 2019): β grows when the KL per reply is above
    ``target`` and shrinks when below, by at most ±20 % × ``n_steps / horizon`` per update."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int = 10_000):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


# --------------------------------------------------------------------------- actor and critic


def response_logits(model, input_ids, attention_mask, prompt_len: int, output_hidden: bool = False):
    """Logits predicting the reply tokens ``input_ids[:, prompt_len:]`` (and the hidden states
    they come from). Prompts are left-padded, so positions are counted from the first real token."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    n_reply = input_ids.shape[1] - prompt_len
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        output_hidden_states=output_hidden,
        logits_to_keep=n_reply + 1,
        use_cache=False,
    )
    # the logit at position i predicts token i+1: positions prompt_len-1 … end-1
    logits = out.logits[:, -(n_reply + 1) : -1].float()
    hidden = out.hidden_states[-1][:, prompt_len - 1 : -1] if output_hidden else None
    return logits, hidden


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log π(token) from logits, one per position."""
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


class ActorCritic(nn.Module):
    """The actor (the twin's causal LM) and the critic (a linear value head on its last hidden state).

    ``forward`` returns, for each reply token, its log-probability under the actor, the
    critic's value of the state before it, and the entropy of the actor's distribution there.
    """

    def __init__(self, policy):
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, input_ids, attention_mask, prompt_len: int, temperature: float = 1.0):
        logits, hidden = response_logits(self.policy, input_ids, attention_mask, prompt_len, output_hidden=True)
        logits = logits / temperature
        logprobs = token_logprobs(logits, input_ids[:, prompt_len:])
        values = self.value_head(hidden.float()).squeeze(-1)
        return logprobs, values, entropy_from_logits(logits)


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover
        return False
    return isinstance(model, PeftModel)


def response_mask(response: torch.Tensor, stop_ids: Sequence[int]) -> torch.Tensor:
    """1 on reply tokens up to and including the first end-of-turn token, 0 after it (padding)."""
    is_stop = torch.isin(response, torch.tensor(list(stop_ids), device=response.device))
    stops_before = is_stop.long().cumsum(1) - is_stop.long()
    return (stops_before == 0).long()


# --------------------------------------------------------------------------- one update


def ppo_update(model, optimizer, accelerator, rollout: dict, advantages, returns, config: PPOConfig, generator=None) -> dict:
    """Several epochs of clipped PPO steps on one rollout; returns the averaged statistics.

    Before each gradient step the approximate KL between the rollout policy and the current one
    is checked: when it exceeds ``config.max_approx_kl`` the rest of the update is skipped.
    """
    mask = rollout["mask"].float()
    P = rollout["prompt_len"]
    stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "entropy", "clip_frac", "value_clip_frac", "approx_kl")}
    early_stopped, stop_kl = False, None
    n = rollout["input_ids"].shape[0]
    for _, idx in ppo_iter(n, config.minibatch_size, config.ppo_epochs, generator):
        m = mask[idx]
        logprobs, values, entropy = model(rollout["input_ids"][idx], rollout["attention_mask"][idx], P, config.temperature)
        pg_loss, clip_frac, approx_kl = policy_loss(logprobs, rollout["logprobs"][idx], advantages[idx], m, config.clip_param)
        vf_loss, vf_clip = value_loss(values, rollout["values"][idx], returns[idx], m, config.value_clip)
        ent = masked_mean(entropy, m)
        kl_now = accelerator.reduce(approx_kl.detach().reshape(1), reduction="mean").item()
        if config.max_approx_kl is not None and kl_now > config.max_approx_kl:
            early_stopped = True  # the policy has moved too far from the one that sampled: stop here
            stop_kl = kl_now
            break
        loss = pg_loss + config.vf_coef * vf_loss - config.ent_coef * ent
        accelerator.backward(loss)
        if config.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for k, v in (("policy_loss", pg_loss), ("value_loss", vf_loss), ("entropy", ent), ("clip_frac", clip_frac),
                     ("value_clip_frac", vf_clip), ("approx_kl", approx_kl)):
            stats[k].append(float(v.detach()))
    out = {k: (sum(v) / len(v) if v else float("nan")) for k, v in stats.items()}
    out["minibatches"] = len(stats["policy_loss"])
    out["early_stopped"] = early_stopped
    out["stop_approx_kl"] = stop_kl  # the value that triggered the stop (None when none did)
    return out


# --------------------------------------------------------------------------- the loop


def as_conversations(prompts) -> list[tuple]:
    """``(context, prompt)`` tuples from a DataFrame with ``prompt`` (and ``context``) columns,
    a list of such tuples, or a list of plain prompt strings."""
    if hasattr(prompts, "columns"):
        ctx = prompts["context"] if "context" in prompts.columns else [None] * len(prompts)
        return [(c, str(p)) for c, p in zip(ctx, prompts["prompt"])]
    out = []
    for p in prompts:
        out.append((None, p) if isinstance(p, str) else (p[0], p[1]))
    if not out:
        raise ValueError("PPO needs at least one prompt")
    return out


class PPOTrainer:
    """Runs PPO updates on ``policy`` (a causal LM, plain or PEFT) against ``reward_fn``.

    ``prompts`` are the conversations to reply to (see :func:`as_conversations`); each update
    draws ``config.batch_size`` of them. ``ref_model`` defaults to the policy with its adapter
    disabled (PEFT) or a frozen copy of it (plain model).
    """

    def __init__(self, policy, tokenizer, prompts, reward_fn: RewardFn, config: PPOConfig | None = None,
                 ref_model=None, accelerator=None, system: str | None = SYSTEM_PROMPT,
                 form_fn: Callable[[Sequence[str]], Sequence[float]] | None = None,
                 validator: Callable[[object], float] | None = None):
        from accelerate import Accelerator

        self.config = config or PPOConfig()
        self.form_fn = form_fn
        self.validator = validator
        self.reward_stats = RunningMoments()
        self.best = None  # (update, validation score, trainable state) of the best validated policy
        # cpu=True without an accelerator: several CPU processes (torchrun) then form one group (gloo)
        self.accelerator = accelerator or Accelerator(cpu=pick_device() == "cpu")
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.system = system
        self.conversations = as_conversations(prompts)
        self.stop_ids = end_of_turn_ids(tokenizer)
        self.is_peft = is_peft_model(policy)
        device = self.accelerator.device
        if ref_model is None and not self.is_peft:
            ref_model = copy.deepcopy(policy)  # full fine-tuning: a frozen copy (the tiny model is ~5 MB)
        if ref_model is not None:
            ref_model.requires_grad_(False)
            ref_model.eval().to(device)
        self.ref_model = ref_model
        actor_critic = ActorCritic(policy).to(device)
        # eval mode all along: no dropout, so the rollout's and the update's log-probs agree
        actor_critic.eval()
        params = [p for p in actor_critic.parameters() if p.requires_grad]
        if not any(p.requires_grad for p in policy.parameters()):
            raise ValueError("the policy has no trainable parameters: for a LoRA model, add a fresh adapter "
                             "(twinlib.ppo.load_policy does) before PPO.")
        optimizer = torch.optim.AdamW(params, lr=self.config.learning_rate, eps=1e-5, weight_decay=0.0)
        self.model, self.optimizer = self.accelerator.prepare(actor_critic, optimizer)
        if self.config.target_kl:
            self.kl_ctl = AdaptiveKLController(self.config.kl_coef, self.config.target_kl, self.config.kl_horizon)
        else:
            self.kl_ctl = FixedKLController(self.config.kl_coef)
        seed = self.config.seed + self.accelerator.process_index
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.logs: list[dict] = []
        self._order: list[int] = []

    # -- pieces -------------------------------------------------------------------------

    @property
    def actor_critic(self) -> ActorCritic:
        return self.accelerator.unwrap_model(self.model)

    @property
    def policy(self):
        return self.actor_critic.policy

    def next_prompts(self) -> list[tuple]:
        """The next ``batch_size`` conversations, cycling through a shuffled order."""
        out = []
        while len(out) < self.config.batch_size:
            if not self._order:
                self._order = torch.randperm(len(self.conversations), generator=self.generator).tolist()
            out.append(self.conversations[self._order.pop()])
        return out

    @torch.no_grad()
    def rollout(self, conversations: list[tuple]) -> dict:
        """Sample one reply per conversation; score it; record log-probs, reference log-probs, values."""
        cfg, tok, ac = self.config, self.tokenizer, self.actor_critic
        device = self.accelerator.device
        texts = [prompt_text(tok, ctx, p, system=self.system, max_tokens=cfg.max_prompt_tokens) for ctx, p in conversations]
        old_side, old_trunc = tok.padding_side, tok.truncation_side
        tok.padding_side, tok.truncation_side = "left", "left"
        try:
            enc = tok(texts, return_tensors="pt", padding=True, truncation=True,
                      max_length=cfg.max_prompt_tokens, add_special_tokens=False).to(device)
        finally:
            tok.padding_side, tok.truncation_side = old_side, old_trunc
        # pure sampling (no top-k/top-p/penalties): the log-probs below are those of the sampler
        seqs = ac.policy.generate(
            **enc, do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0, repetition_penalty=1.0,
            no_repeat_ngram_size=0, max_new_tokens=cfg.max_new_tokens, eos_token_id=self.stop_ids,
            pad_token_id=tok.pad_token_id,
        )
        P = enc["input_ids"].shape[1]
        response = seqs[:, P:]
        mask = response_mask(response, self.stop_ids)
        attention_mask = torch.cat([enc["attention_mask"], mask], dim=1)
        replies = [tok.decode(r[m.bool()], skip_special_tokens=True).strip() for r, m in zip(response, mask)]
        contexts = [c for c, _ in conversations]
        prompts = [p for _, p in conversations]
        raw = torch.tensor([float(s) for s in self.reward_fn(contexts, prompts, replies)], device=device)
        scores = raw
        if cfg.normalize_reward:  # the reward model's scale is arbitrary: whiten with running moments
            self.reward_stats.update(raw)
            scores = (raw - self.reward_stats.mean) / max(self.reward_stats.std, 1e-6)
        form = None
        if self.form_fn is not None and cfg.form_coef:
            form = torch.tensor([float(f) for f in self.form_fn(replies)], device=device)
            scores = scores + cfg.form_coef * form
        logprobs, values, _ = ac(seqs, attention_mask, P, cfg.temperature)
        if self.ref_model is not None:
            ref_logits, _ = response_logits(self.ref_model, seqs, attention_mask, P)
        else:
            with ac.policy.disable_adapter():  # the reference: same weights, adapter off
                ref_logits, _ = response_logits(ac.policy, seqs, attention_mask, P)
        ref_logprobs = token_logprobs(ref_logits / cfg.temperature, response)
        maskf = mask.float()
        return {
            "input_ids": seqs, "attention_mask": attention_mask, "prompt_len": P, "mask": mask,
            "logprobs": logprobs * maskf, "ref_logprobs": ref_logprobs * maskf, "values": values * maskf,
            "scores": scores, "raw_scores": raw, "form": form, "replies": replies, "prompts": prompts,
        }

    def _mean(self, x) -> float:
        t = torch.as_tensor(x, dtype=torch.float32, device=self.accelerator.device).reshape(1)
        return self.accelerator.reduce(t, reduction="mean").item()

    def step(self) -> dict:
        """One PPO update: rollout → rewards → GAE → clipped updates. Returns its log entry."""
        cfg = self.config
        t0 = time.time()
        batch = self.rollout(self.next_prompts())
        mask = batch["mask"].float()
        kl_coef = self.kl_ctl.value
        rewards, kl = compute_rewards(batch["scores"], batch["logprobs"], batch["ref_logprobs"], mask, kl_coef)
        advantages, returns = gae(rewards, batch["values"], mask, cfg.gamma, cfg.lam)
        advantages = whiten(advantages, mask)
        stats = ppo_update(self.model, self.optimizer, self.accelerator, batch, advantages, returns, cfg, self.generator)
        kl_per_reply = self._mean(kl.sum(1).mean())
        self.kl_ctl.update(kl_per_reply, cfg.batch_size * self.accelerator.num_processes)
        words = [count_words(r) for r in batch["replies"]]  # CJK: characters, as the person's line in the plot
        entry = {
            "step": len(self.logs) + 1,
            "mean_reward": self._mean(batch["raw_scores"].mean()),
            "mean_shaped_reward": self._mean(batch["scores"].mean()),
            "mean_form": self._mean(batch["form"].mean()) if batch["form"] is not None else None,
            "reply_words": self._mean(sum(words) / max(len(words), 1)),
            "kl": kl_per_reply,
            "kl_coef": kl_coef,
            "mean_total_reward": self._mean(rewards.sum(1).mean()),
            "reply_tokens": self._mean(mask.sum(1).mean()),
            **{k: (self._mean(v) if isinstance(v, float) and not math.isnan(v) else v) for k, v in stats.items()},
            "seconds": round(time.time() - t0, 3),
            "sample": batch["replies"][0],
        }
        self.logs.append(entry)
        return entry

    def _trainable_state(self) -> dict:
        """A copy of what PPO changes: the policy's trainable weights (the LoRA adapter, or the whole
        tiny model) and the value head."""
        return {n: p.detach().clone() for n, p in self.actor_critic.named_parameters() if p.requires_grad}

    def validate(self, update: int) -> float | None:
        """Score the current policy with ``validator`` (held-out data) and keep it if it is the best so far."""
        if self.validator is None:
            return None
        rng = torch.get_rng_state()  # the validator samples with its own seed: keep the rollouts' stream
        try:
            score = float(self.validator(self.policy))
        finally:
            torch.set_rng_state(rng)
        if self.best is None or score > self.best[1]:
            self.best = (update, score, self._trainable_state())
        return score

    def restore_best(self) -> int | None:
        """Load the best validated weights back (the update they come from; None without a validator)."""
        if self.best is None:
            return None
        update, _, state = self.best
        params = dict(self.actor_critic.named_parameters())
        with torch.no_grad():
            for n, v in state.items():
                params[n].copy_(v)
        return update

    def train(self, steps: int | None = None, progress: bool = True, log_path=None) -> list[dict]:
        """Run ``steps`` updates (default ``config.steps``); returns the log (one dict per update).

        With a ``validator`` the starting policy (update 0) and every ``config.eval_every``-th
        update (and the last) are scored on held-out data, and the best of them is loaded back at
        the end (:meth:`restore_best`): PPO keeps its best validated update, not its last, so a
        run that starts to game its reward model hands on the policy from before that began.
        With ``log_path`` the log is (re)written there after every update.
        """
        from twinlib.progress import Progress

        steps = self.config.steps if steps is None else steps
        if self.validator is not None and not self.logs:
            self.validation = [{"step": 0, "val_score": self.validate(0)}]
        bar = Progress("PPO updates", steps, enabled=bool(progress) and self.accelerator.is_main_process)
        for i in range(steps):
            e = self.step()
            every = self.config.eval_every
            if self.validator is not None and ((every and e["step"] % every == 0) or i == steps - 1):
                e["val_score"] = self.validate(e["step"])
                self.validation.append({"step": e["step"], "val_score": e["val_score"]})
            bar.update(i + 1, f"reward {e['mean_reward']:.3f}, KL {e['kl']:.2f}, clip {e['clip_frac']:.2f}")
            if log_path is not None and self.accelerator.is_main_process:
                write_log(self.logs, log_path)
        return self.logs


def write_log(logs: list[dict], path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(logs, indent=1, ensure_ascii=False, default=float), encoding="utf-8")
    tmp.replace(path)
    return path


def train_ppo(policy, tokenizer, prompts, reward_fn: RewardFn, config: PPOConfig | None = None, ref_model=None,
              log_path=None, progress: bool = True) -> list[dict]:
    """Run PPO on ``policy`` in place and return the per-update logs (see :class:`PPOTrainer`)."""
    trainer = PPOTrainer(policy, tokenizer, prompts, reward_fn, config, ref_model=ref_model)
    return trainer.train(progress=progress, log_path=log_path)


# --------------------------------------------------------------------------- simple rewards


def contains_word_reward(word: str, bonus: float = 1.0) -> RewardFn:
    """A reward function: ``bonus`` when the reply contains ``word`` (case-insensitive), else 0."""
    w = word.lower()

    def reward(contexts, prompts, replies):
        return [bonus if w in r.lower() else 0.0 for r in replies]

    reward.__name__ = f"contains_{word}"
    return reward


def mean_reward(model, tokenizer, conversations, reward_fn: RewardFn, n: int = 1, max_new_tokens: int = 24,
                temperature: float = 1.0, seed: int = 0, batch_size: int = 32) -> float:
    """Mean reward of freshly sampled replies (pure sampling, as PPO samples) — to compare policies."""
    from twinlib.generation import GenerationSettings, generate_replies

    settings = GenerationSettings(num_return_sequences=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_p=1.0, top_k=0, no_repeat_ngram_size=0)
    convs = as_conversations(conversations)
    replies = generate_replies(model, tokenizer, convs, n=n, settings=settings, seed=seed, batch_size=batch_size)
    flat_c = [c for (c, _), rs in zip(convs, replies) for _ in rs]
    flat_p = [p for (_, p), rs in zip(convs, replies) for _ in rs]
    flat_r = [r for rs in replies for r in rs]
    scores = reward_fn(flat_c, flat_p, flat_r)
    return float(sum(scores) / max(len(scores), 1))


# --------------------------------------------------------------------------- a toy task (tests, bench)

TOY_PROMPTS = [
    "what are you doing tonight?", "any plans for the weekend?", "how was work today?", "are you hungry?",
    "what should we eat?", "did you see the game?", "where are you?", "can you call me later?",
    "how is your mum?", "want to meet up tomorrow?", "what time is it there?", "you still awake?",
]
TOY_REPLIES = [
    "not much, just chilling at home", "haha yes obviously", "no idea tbh, you pick", "on my way, ten minutes",
    "work was long but fine", "maybe later, I am so tired", "yeah sounds good to me", "lol no way",
    "I will text you when I am done", "we could get pizza", "pizza again? sure why not", "ok ok see you soon",
    "ugh traffic is terrible", "sure, call me after eight", "she is doing better thanks",
]


TOY_OPENERS = ["hey", "yo", "hi there", "morning!", "quick question", "so", "ok listen"]


def toy_conversations(n: int = 96, seed: int = 0) -> list[tuple[str, str, str]]:
    """``(context, prompt, reply)`` rows of a made-up chat where 2 replies in 15 mention pizza.
    ``context`` is one earlier message (JSON, as in ``pairs.csv``)."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        ctx = json.dumps([{"sender": "<PERSON_1>", "text": rng.choice(TOY_OPENERS), "me": False}])
        rows.append((ctx, rng.choice(TOY_PROMPTS), rng.choice(TOY_REPLIES)))
    return rows


def build_toy_twin(out_dir, steps: int = 100, batch_size: int = 16, lr: float = 3e-3, seed: int = 0) -> Path:
    """A tiny twin for tests and the bench: the built-in tiny model, briefly trained (a plain
    next-token loss on the reply tokens) on :func:`toy_conversations`. It then says "pizza" in
    roughly one reply in eight — rare enough that PPO has something to learn."""
    from twinlib.generation import encode_reply
    from twinlib.modeling import build_tiny_model, load_model

    out = Path(out_dir)
    if (out / "config.json").exists():
        return out
    rows = toy_conversations(seed=seed)
    texts = [r for _, _, r in rows] + TOY_PROMPTS + TOY_OPENERS
    build_tiny_model(texts * 3, out, seed=seed)
    model, tok = load_model(out, device="cpu", dtype=torch.float32)
    model.train()
    torch.manual_seed(seed)  # dropout
    enc = [encode_reply(tok, c, p, r, max_length=128) for c, p, r in rows]
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 10) * (1 - s / steps))
    g = torch.Generator().manual_seed(seed)
    pad = tok.pad_token_id
    for _ in range(steps):
        idx = torch.randint(len(enc), (batch_size,), generator=g).tolist()
        width = max(len(enc[i][0]) for i in idx)
        ids = torch.full((batch_size, width), pad)
        labels = torch.full((batch_size, width), -100)
        att = torch.zeros((batch_size, width), dtype=torch.long)
        for j, i in enumerate(idx):
            toks, start = enc[i]
            ids[j, : len(toks)] = torch.tensor(toks)
            att[j, : len(toks)] = 1
            labels[j, start : len(toks)] = torch.tensor(toks[start:])
        loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(out)
    return out


def toy_rankings(model, tokenizer, conversations, prefer: Callable[[str], float], k: int = 4, seed: int = 0,
                 ranker: str = "auto") -> list[dict]:
    """Stage 3's ranking records for ``k`` replies sampled per ``(context, prompt)``, ranked by
    ``prefer(reply)`` (higher is better, equal scores tie) — a simulated person with a known taste."""
    import uuid

    from twinlib.generation import GenerationSettings, generate_replies
    from twinlib.pairs import context_turns
    from twinlib.ranking import item_key, scores_to_ranks

    convs = as_conversations(conversations)
    settings = GenerationSettings(num_return_sequences=k, temperature=1.0, top_p=1.0, top_k=0, no_repeat_ngram_size=0)
    cands = generate_replies(model, tokenizer, convs, n=k, settings=settings, seed=seed)
    records, seen = [], set()
    for (ctx, prompt), cs in zip(convs, cands):
        iid = f"r1:{item_key(ctx, prompt)}"
        if iid in seen:  # one ranking per conversation and round, as in stage 3
            continue
        seen.add(iid)
        records.append({
            "id": uuid.uuid4().hex, "item_id": iid, "round": 1, "ranker": ranker,
            "status": "ranked", "context": context_turns(ctx), "prompt": prompt, "candidates": cs,
            "ranks": scores_to_ranks([prefer(c) for c in cs]), "undo_of": None, "model": {"path": "toy"},
        })
    return records


def build_toy_run(run_dir, word: str = "pizza", n_items: int = 64, seed: int = 0) -> Path:
    """A run directory with what stage 4 reads, made from the toy task: ``pairs.csv``,
    ``models/sft`` (:func:`build_toy_twin`) and ``rankings.jsonl`` in which replies containing
    ``word`` are ranked above the others. For tests and smoke runs of ``04_ppo.ipynb``."""
    import pandas as pd

    from twinlib.modeling import load_model
    from twinlib.ranking import RankingStore

    run = RunDir(run_dir).ensure()
    rows = toy_conversations(n=160, seed=seed)
    splits = ["train"] * 120 + ["validation"] * 20 + ["test"] * 20
    pairs = pd.DataFrame({
        "conversation_id": range(len(rows)), "chat": "chat_1", "timestamp": "2024-03-04T12:00:00",
        "prompt_sender": "<PERSON_1>", "prompt": [p for _, p, _ in rows], "response": [r for _, _, r in rows],
        "context": [c for c, _, _ in rows], "split": splits,
    })
    pairs.to_csv(run.pairs_csv, index=False)
    sft = build_toy_twin(run.model("sft"), seed=seed)
    if not run.rankings.exists():
        model, tok = load_model(sft, device="cpu", dtype=torch.float32)
        convs = [(c, p) for c, p in zip(pairs["context"][:n_items], pairs["prompt"][:n_items])]
        store = RankingStore.for_run(run)
        w = word.lower()
        for rec in toy_rankings(model, tok, convs, lambda r: float(w in r.lower()), seed=seed):
            store.append(rec)
    return run.root


# --------------------------------------------------------------------------- stage 4: PPO on a run


def load_policy(path, profile, device: str | None = None):
    """The policy PPO starts from: ``(model, tokenizer)``.

    A LoRA twin (adapter folder) has its adapter merged into the base and gets a fresh LoRA
    adapter, so that "adapter disabled" is exactly the twin before PPO (the reference). A full
    model (the tiny profile) is loaded in fp32 and trained whole.
    """
    from twinlib.modeling import load_model, lora_config

    if getattr(profile, "lora", False):
        model, tok = load_model(path, device=device, merge_adapter=True)
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(profile))
    else:
        model, tok = load_model(path, device=device, dtype=torch.float32)
    return model, tok


def save_policy(model, tokenizer, out_dir, source=None) -> Path:
    """Save a policy so :func:`twinlib.modeling.load_model` loads it: a PEFT policy is merged first
    (the result is a full checkpoint of the base's size). ``source``: the model it was trained
    from, whose ``twin.json`` (profile, system prompt) the saved model keeps."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if is_peft_model(model):
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    meta = Path(source) / "twin.json" if source is not None else None
    if meta is not None and meta.exists():
        shutil.copyfile(meta, out / "twin.json")
    return out


def train_prompts(run, split: str = "train", limit: int | None = None, seed: int = 0):
    """The run's ``(context, prompt)`` rows of one split of ``pairs.csv`` (the prompts PPO replies to)."""
    import pandas as pd

    path = run.require(run.pairs_csv, "01_collect_data.ipynb")
    df = pd.read_csv(path, keep_default_na=False)
    df = df[df["split"] == split] if "split" in df.columns else df
    df = df[df["prompt"].astype(str).str.strip() != ""]
    if limit is not None and len(df) > limit:
        df = df.sample(limit, random_state=seed)
    return df[["context", "prompt"] + (["response"] if "response" in df.columns else [])].reset_index(drop=True)


def fidelity_validator(run, profile, tokenizer, n: int = 64, seed: int = 0, split: str = "validation"):
    """A PPO ``validator``: the validation fidelity (:func:`twinlib.evaluation.fidelity_scores`, the
    score stage 5 picks the best model by) of a policy, from two replies sampled with the stage
    settings for ``n`` fixed ``split`` messages (never the test split), the same seed every time."""
    from twinlib.evaluation import fidelity_scores
    from twinlib.generation import generate_replies, settings_for

    rows = train_prompts(run, split=split, limit=n, seed=seed)
    if rows.empty:
        rows = train_prompts(run, split="train", limit=n, seed=seed)
    convs = list(zip(rows["context"], rows["prompt"]))
    real = rows["response"].tolist()

    def validate(policy) -> float:
        replies = generate_replies(policy, tokenizer, convs, n=2, settings=settings_for(profile, num_return_sequences=2),
                                   seed=seed + 777, max_prompt_tokens=profile.max_prompt_tokens)
        return float(fidelity_scores([r[0] for r in replies], [r[1] for r in replies], real).mean())

    validate.n = len(rows)
    return validate


def person_form(run):
    """The form term of PPO's reward: how typical a reply's length, emoji and punctuation are for the
    person (:class:`twinlib.ranking.Typicality`, fitted on their training replies), minus the
    typicality of their own replies, so that replies as typical as the person's score 0."""
    import numpy as np

    from twinlib.ranking import Typicality

    rows = train_prompts(run, split="train")
    real = [r for r in rows.get("response", []) if str(r).strip()]
    typ = Typicality(real)
    centre = float(np.mean(typ.score_many(real)))

    def form(replies):
        return [s - centre for s in typ.score_many(replies)]

    return form


def explain_rollout(trainer: "PPOTrainer", conversation: tuple, reply_index: int = 0):
    """One real rollout, step by step, as a table: for every token of a sampled reply, its
    log-probability under the policy and under the reference, the KL penalty it pays, the reward
    it receives (the score lands on the last token), the critic's value, the TD error δ and the
    GAE advantage — the numbers :func:`compute_rewards` and :func:`gae` compute, for a reader to
    follow by hand. Nothing is trained."""
    import pandas as pd

    cfg = trainer.config
    batch = trainer.rollout([conversation])
    mask = batch["mask"].float()
    rewards, kl = compute_rewards(batch["scores"], batch["logprobs"], batch["ref_logprobs"], mask, trainer.kl_ctl.value)
    adv, returns = gae(rewards, batch["values"], mask, cfg.gamma, cfg.lam)
    n = int(mask[reply_index].sum())
    ids = batch["input_ids"][reply_index, batch["prompt_len"]:][:n]
    values = batch["values"][reply_index, :n]
    next_values = torch.cat([values[1:], values.new_zeros(1)])
    delta = rewards[reply_index, :n] + cfg.gamma * next_values - values
    table = pd.DataFrame({
        "token": [trainer.tokenizer.decode([int(t)]) for t in ids],
        "log π (policy)": batch["logprobs"][reply_index, :n].tolist(),
        "log π_ref": batch["ref_logprobs"][reply_index, :n].tolist(),
        "KL term": kl[reply_index, :n].tolist(),
        "reward r_t = −β·KL (+ score)": rewards[reply_index, :n].tolist(),
        "value V_t": values.tolist(),
        "δ_t = r_t + γV_{t+1} − V_t": delta.tolist(),
        "advantage A_t": adv[reply_index, :n].tolist(),
    }).round(4)
    return {"reply": batch["replies"][reply_index], "score": float(batch["scores"][reply_index]),
            "raw_score": float(batch["raw_scores"][reply_index]), "beta": trainer.kl_ctl.value, "table": table}


def make_reward(run, reward, start, profile, seed: int = 0):
    """``(reward_fn, name)`` for PPO: ``"model"`` (the reward model in ``models/reward``), ``"judge"``
    (the automatic Turing judge, :class:`twinlib.rewards.JudgeReward`), ``"mix"`` (both,
    standardized and summed) or any reward function."""
    from twinlib.rewards import JudgeReward, MixedReward, RewardModelScorer

    if not isinstance(reward, str):
        return reward, getattr(reward, "__name__", "custom")
    if reward not in ("model", "judge", "mix"):
        raise ValueError(f"reward must be 'model', 'judge', 'mix' or a function, got {reward!r}")
    parts = []
    if reward in ("model", "mix"):
        parts.append(RewardModelScorer(run.require(run.model("reward"), "the reward-model section of 04_ppo.ipynb")))
    if reward in ("judge", "mix"):
        parts.append(JudgeReward(run, start, profile, seed=seed))
    names = {"model": "reward model (models/reward)", "judge": "the automatic Turing judge",
             "mix": "reward model + Turing judge"}
    return (parts[0] if len(parts) == 1 else MixedReward(run, parts, seed=seed)), names[reward]


def run_ppo(run_dir, profile="tiny", start_from: str = "refined", reward="model", config: PPOConfig | None = None,
            base_model: str | None = None, overwrite: bool = False, max_prompts: int | None = 512,
            progress: bool = True, log=print, validate: bool = True, n_validation: int = 64) -> dict:
    """Stage 4's PPO on a run directory: the twin (``models/<start_from>``, falling back to
    ``models/sft``) against ``reward`` (``"model"`` = the reward model in ``models/reward``, or any
    reward function), saved to ``models/ppo`` with ``ppo_log.json`` and ``ppo.json``.

    The reward is whitened with running moments and, with ``config.form_coef``, a form term keeps
    length, emoji and punctuation typical for the person (:func:`person_form`). With ``validate``
    the starting twin and every ``config.eval_every``-th update are scored on ``n_validation``
    validation messages (:func:`fidelity_validator`) and the best of them is what is saved: the
    saved PPO model is never one that validated worse than its start.
    An existing ``models/ppo`` is reused (its summary returned) unless ``overwrite=True``.
    """
    from twinlib.modeling import cpu_threads, later_stage_profile, weights_in_sync
    from twinlib.rewards import RewardModelScorer, atomic_model_dir, existing_model, resolve_start_model

    run = RunDir(run_dir)
    prof = later_stage_profile(profile, run, base_model)
    out = run.model("ppo")
    done = existing_model(out, "ppo.json", overwrite, log)
    if done is not None:
        return done
    start = resolve_start_model(run, start_from, log)
    config = config or ppo_config_for(prof)
    reward_fn, reward_name = make_reward(run, reward, start, prof, seed=config.seed)
    policy, tok = load_policy(start, prof)
    prompts = train_prompts(run, limit=max_prompts, seed=config.seed)
    validator = fidelity_validator(run, prof, tok, n=n_validation, seed=config.seed) if validate else None
    form_fn = person_form(run) if config.form_coef else None
    trainer = PPOTrainer(policy, tok, prompts, reward_fn, config, form_fn=form_fn, validator=validator)
    t0 = time.time()
    partial = out.with_name(f".{out.name}.partial")  # the log as it grows, for a look during training
    with cpu_threads(prof, policy):  # on a CPU: threads that suit the model and a shared machine
        logs = trainer.train(progress=progress, log_path=partial / "ppo_log.json")
        kept = trainer.restore_best()
    validation = getattr(trainer, "validation", [])
    processes = trainer.accelerator.num_processes
    summary = {
        "start_model": run.relative(start), "reward": reward_name, "config": asdict(config),
        "processes": processes, "replies_per_update": config.batch_size * processes,
        "weights_in_sync": weights_in_sync(trainer.actor_critic),  # None with one process
        "steps": len(logs), "seconds": round(time.time() - t0, 1),
        "first_reward": logs[0]["mean_reward"] if logs else None,
        "final_reward": _tail_mean(logs, "mean_reward"), "final_kl": _tail_mean(logs, "kl"),
        "validation": validation, "kept_update": kept,
        "kept_val_score": trainer.best[1] if trainer.best else None,
        "start_val_score": validation[0]["val_score"] if validation else None,
    }
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        with atomic_model_dir(out, overwrite) as tmp:
            save_policy(trainer.policy, tok, tmp, source=start)
            torch.save(trainer.actor_critic.value_head.state_dict(), tmp / "value_head.pt")
            write_log(logs, tmp / "ppo_log.json")
            (tmp / "ppo.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        shutil.rmtree(partial, ignore_errors=True)
    kept_note = ""
    if kept is not None:
        kept_note = (f"; kept update {kept} of {len(logs)} (validation fidelity {summary['kept_val_score']:.3f}, "
                     f"start {summary['start_val_score']:.3f})" + (": no update beat the start, so the saved model is the start"
                                                                   if kept == 0 else ""))
    log(f"PPO: {len(logs)} updates in {summary['seconds']:.0f} s; reward-model score {summary['first_reward']:.3f} → "
        f"{summary['final_reward']:.3f}, KL to the reference {summary['final_kl']:.2f} nats per reply{kept_note}; saved to {out}")
    return summary


def _tail_mean(logs: list[dict], key: str, k: int = 5) -> float | None:
    vals = [e[key] for e in logs[-k:] if isinstance(e.get(key), (int, float))]
    return sum(vals) / len(vals) if vals else None


def load_logs(run_dir) -> list[dict]:
    """The PPO log of a run (``models/ppo/ppo_log.json``)."""
    run = RunDir(run_dir)
    path = run.require(run.model("ppo") / "ppo_log.json", "the PPO section of 04_ppo.ipynb")
    return json.loads(path.read_text(encoding="utf-8"))


def compare_samples(run_dir, models: Sequence[str] = ("start", "ppo", "dpo"), n: int = 8, split: str = "test",
                    start_from: str = "refined", reward_fn: RewardFn | None = None, max_new_tokens: int = 32,
                    seed: int = 0, log=print):
    """Replies of several models of a run to the same held-out messages, side by side.

    ``models`` are names under ``models/`` (``"start"`` = the model PPO and DPO started from);
    missing ones are left out, saying so. Returns ``DataFrame[prompt, person, <model>…,
    <model> score…]`` (scores from ``reward_fn``, e.g. the reward model, when given). Sampling
    uses the course's usual settings (:class:`twinlib.generation.GenerationSettings`), one
    reply per model and message, the same seed for every model.
    """
    import pandas as pd

    from twinlib.generation import GenerationSettings, generate_replies
    from twinlib.modeling import load_model
    from twinlib.rewards import resolve_start_model
    run = RunDir(run_dir)
    rows = train_prompts(run, split=split, limit=n, seed=seed)
    if rows.empty:
        rows = train_prompts(run, split="train", limit=n, seed=seed)
    convs = as_conversations(rows)
    table = pd.DataFrame({"prompt": rows["prompt"], "person": rows.get("response", "")})
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    for name in models:
        path = resolve_start_model(run, start_from, log=lambda *_: None) if name == "start" else run.model(name)
        if not has_model(path):
            log(f"{path} does not exist: left out of the comparison.")
            continue
        label = f"{name} ({Path(path).name})" if name == "start" else name
        model, tok = load_model(path)
        replies = [r[0] for r in generate_replies(model, tok, convs, n=1, settings=settings, seed=seed)]
        table[label] = replies
        if reward_fn is not None:
            table[f"{label} score"] = [round(float(s), 3) for s in reward_fn([c for c, _ in convs], [p for _, p in convs], replies)]
        del model
    return table


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> dict:
    """``python -m twinlib.ppo --run-dir runs/me``: stage 4's PPO without the notebook.

    The same entry point runs one process per GPU (``accelerate launch --multi_gpu --num_processes 4
    -m twinlib.ppo ...``) or per CPU (``torchrun --nproc_per_node 2 -m twinlib.ppo ...``, gloo):
    each process samples its own ``--batch-size`` replies per update, gradients are averaged, and
    only the main process writes ``models/ppo``. The reward model (notebook 04's first section)
    must exist unless ``--reward judge``.
    """
    import argparse

    from twinlib.modeling import distributed_state, later_stage_profile

    ap = argparse.ArgumentParser(prog="python -m twinlib.ppo", description=main.__doc__.split("\n\n")[0])
    ap.add_argument("--run-dir", required=True, help="the run directory of stages 1-3 (and the reward model)")
    ap.add_argument("--profile", default="auto", help="auto (what stage 2 trained with) | tiny | t4 | gpu")
    ap.add_argument("--base-model", default=None, help="only when stage 2 used another base model than the profile's")
    ap.add_argument("--start-from", default="refined", help="refined | sft | a model folder")
    ap.add_argument("--reward", default="model", choices=["model", "judge", "mix"])
    ap.add_argument("--steps", type=int, default=20, help="PPO updates (default 20)")
    ap.add_argument("--batch-size", type=int, default=16, help="replies sampled per update and process (default 16)")
    ap.add_argument("--learning-rate", type=float, default=None, help="default: the profile's (tiny 2e-4, LoRA 1e-5)")
    ap.add_argument("--no-validate", action="store_true", help="keep the last update instead of the best validated one")
    ap.add_argument("--overwrite", action="store_true", help="train again even if models/ppo exists")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-progress", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    main_process = distributed_state().is_main_process
    prof = later_stage_profile(args.profile, RunDir(args.run_dir), args.base_model)
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "seed": args.seed}
    if args.learning_rate:
        overrides["learning_rate"] = args.learning_rate
    summary = run_ppo(args.run_dir, prof, start_from=args.start_from, reward=args.reward,
                      config=ppo_config_for(prof, **overrides), overwrite=args.overwrite,
                      progress=not args.no_progress, validate=not args.no_validate,
                      log=print if main_process else (lambda *_: None))
    if main_process:
        print(json.dumps({k: v for k, v in summary.items() if k != "validation"}, indent=2, default=str))
    return summary


if __name__ == "__main__":
    main()
