"""Sampling replies from the twin and scoring real replies under it.

Batched, left-padded, stopping at the end-of-turn token; the conversation layout comes from
:func:`twinlib.modeling.build_messages`, the same one used in training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from twinlib.modeling import SYSTEM_PROMPT, end_of_turn_ids, fit_messages, prompt_text


@dataclass(frozen=True)
class GenerationSettings:
    """The sampling settings of every stage (the prompt tests' defaults)."""

    num_return_sequences: int = 5
    max_new_tokens: int = 40
    temperature: float = 0.9
    top_p: float = 0.95
    top_k: int = 0
    no_repeat_ngram_size: int = 2
    repetition_penalty: float = 1.0

    def as_kwargs(self) -> dict:
        kw = asdict(self)
        if not kw["top_k"]:
            kw.pop("top_k")
        return kw


def settings_for(profile=None, **overrides) -> GenerationSettings:
    """The stage settings for a :class:`~twinlib.modeling.Profile` (its ``max_new_tokens``), with overrides."""
    kw = {}
    if profile is not None:
        kw["max_new_tokens"] = profile.max_new_tokens
    kw.update(overrides)
    return GenerationSettings(**kw)


def _batches(seq, size):
    for i in range(0, len(seq), size):
        yield i, seq[i : i + size]


def generate_replies(
    model,
    tokenizer,
    conversations: Sequence[tuple],
    n: int = 5,
    settings: GenerationSettings | None = None,
    batch_size: int = 16,
    max_prompt_tokens: int = 192,
    seed: int | None = None,
    system: str | None = SYSTEM_PROMPT,
    progress: bool = False,
) -> list[list[str]]:
    """Sample ``n`` replies for each ``(context, prompt)`` in ``conversations``.

    Returns one list of ``n`` strings per conversation, in order. ``context`` is the JSON
    string or list of earlier turns, as in ``pairs.csv``.
    """
    import torch

    settings = settings or GenerationSettings()
    gen_kw = settings.as_kwargs()
    gen_kw["num_return_sequences"] = n
    if seed is not None:
        torch.manual_seed(seed)
    # whole context turns are dropped (oldest first) to fit max_prompt_tokens, as in training;
    # the tokenizer's left truncation below is only a safety net for a single over-long message
    texts = [prompt_text(tokenizer, ctx, prompt, system=system, max_tokens=max_prompt_tokens) for ctx, prompt in conversations]
    stop = end_of_turn_ids(tokenizer)
    out: list[list[str]] = []
    old_side, old_trunc = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    device = next(model.parameters()).device
    it = _batches(texts, max(1, batch_size // max(1, n) or 1))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(list(it), desc="generating", unit="batch")
    was_training = model.training
    model.eval()
    try:
        for _, chunk in it:
            enc = tokenizer(
                chunk,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_prompt_tokens,
                add_special_tokens=False,
            ).to(device)
            with torch.no_grad():
                seqs = model.generate(
                    **enc,
                    do_sample=True,
                    eos_token_id=stop,
                    pad_token_id=tokenizer.pad_token_id,
                    **gen_kw,
                )
            new = seqs[:, enc["input_ids"].shape[1] :]
            decoded = tokenizer.batch_decode(new, skip_special_tokens=True)
            decoded = [d.strip() for d in decoded]
            for j in range(len(chunk)):
                out.append(decoded[j * n : (j + 1) * n])
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = old_side, old_trunc
        model.train(was_training)
    return out


def encode_reply(tokenizer, context, prompt: str, reply: str, max_length: int = 256, system: str | None = SYSTEM_PROMPT):
    """Token ids of a full conversation and the index where the reply starts.

    The prompt part is the chat template with the assistant turn opened; the reply part is the
    rest of the templated conversation (the reply and its end-of-turn marker). The oldest context
    turns are dropped to fit ``max_length`` as in training (:func:`~twinlib.modeling.fit_messages`);
    a prompt still too long is cut from the left so the reply always fits.
    """
    msgs = fit_messages(tokenizer, context, prompt, reply=reply, max_tokens=max_length, system=system)
    p = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(msgs, tokenize=False)
    if not full.startswith(p):  # templates that rewrite earlier turns: fall back to concatenation
        full = p + reply + (tokenizer.eos_token or "")
    p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(full[len(p) :], add_special_tokens=False)["input_ids"]
    r_ids = r_ids[: max_length // 2] if len(r_ids) > max_length // 2 else r_ids
    keep = max_length - len(r_ids)
    p_ids = p_ids[-keep:] if keep > 0 else []
    return p_ids + r_ids, len(p_ids)


def score_replies(
    model,
    tokenizer,
    rows: Sequence[tuple],
    batch_size: int = 16,
    max_length: int = 256,
    system: str | None = SYSTEM_PROMPT,
) -> list[dict]:
    """Log-likelihood of given replies: one ``{"logprob", "tokens", "mean_logprob"}`` per ``(context, prompt, reply)``.

    Perplexity of the person's real replies under a model is ``exp(-sum logprob / sum tokens)``.
    """
    import torch

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    model.eval()
    for _, chunk in _batches(list(rows), batch_size):
        enc = [encode_reply(tokenizer, c, p, r, max_length=max_length, system=system) for c, p, r in chunk]
        width = max(len(ids) for ids, _ in enc)
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        att = torch.zeros((len(enc), width), dtype=torch.long)
        for i, (toks, _) in enumerate(enc):  # right padding: positions stay 0-based
            ids[i, : len(toks)] = torch.tensor(toks)
            att[i, : len(toks)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=att.to(device)).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tgt = ids[:, 1:].to(device)
        tok_lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1).cpu()
        for i, (toks, start) in enumerate(enc):
            lp = tok_lp[i, max(start - 1, 0) : len(toks) - 1]
            n_tok = int(lp.numel())
            total = float(lp.sum())
            out.append({"logprob": total, "tokens": n_tok, "mean_logprob": total / max(n_tok, 1)})
    return out
