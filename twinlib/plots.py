"""Small matplotlib helpers shared by the notebooks: plain functions, one figure each.

Every function returns the :class:`matplotlib.figure.Figure` it drew and, given ``path``,
also writes it there as a PNG. The figure is closed in pyplot before it is returned, so calling a
helper from library code (e.g. while saving a model) never pops up or leaks a figure, and a
notebook shows it exactly once by leaving it as the cell's last expression.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def _figure(figsize=(7.0, 4.0)):
    import matplotlib.pyplot as plt  # made through pyplot so that Jupyter's inline display knows figures

    fig, ax = plt.subplots(figsize=figsize, dpi=100, layout="constrained")
    plt.close(fig)  # not kept in pyplot's list: shown once (as a return value) or never
    return fig, ax


def _save(fig, path) -> None:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)


def loss_points(log_history: Sequence[dict]) -> dict[str, list[tuple[float, float]]]:
    """``{"train": [(step, loss), ...], "validation": [(step, eval_loss), ...]}`` from a Trainer log history."""
    train, val = [], []
    for row in log_history:
        step = row.get("step", 0)
        if "loss" in row:
            train.append((step, float(row["loss"])))
        if "eval_loss" in row:
            val.append((step, float(row["eval_loss"])))
    # an evaluation repeated at the same step (the final one on the best model) is drawn once
    val = sorted(dict(val).items())
    return {"train": train, "validation": val}


def plot_loss_curves(log_history: Sequence[dict], path=None, title: str = "Supervised fine-tuning", best_step: int | None = None):
    """Training and validation loss against the optimizer step (a Trainer's ``state.log_history``).

    ``best_step`` marks the checkpoint that was kept (best validation loss).
    """
    pts = loss_points(log_history)
    fig, ax = _figure()
    if pts["train"]:
        x, y = zip(*pts["train"])
        ax.plot(x, y, label="training loss", color="tab:blue", alpha=0.8)
    if pts["validation"]:
        x, y = zip(*pts["validation"])
        ax.plot(x, y, "o-", label="validation loss", color="tab:orange")
    if best_step is not None:
        ax.axvline(best_step, color="grey", linestyle="--", linewidth=1, label=f"kept: step {best_step}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss (reply tokens)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if pts["train"] or pts["validation"]:
        ax.legend()
    _save(fig, path)
    return fig


def plot_refinement(history: Sequence[dict], path=None, title: str = "Iterative refinement",
                    keys: Sequence[str] = ("auto_score", "meaning", "wording", "form")):
    """How the ranking signal moves round by round (stage 3's ``refine_log.json`` ``rounds``).

    Round 0 is the stage-2 model. ``auto_score`` (the automatic ranker's score of fresh replies
    to fixed held-out prompts) is drawn with its standard error; the other keys are its parts.
    Rounds learned from simulated rankings are marked "(simulated)" on the x axis.
    """
    labels = {"auto_score": "auto-ranker score (higher = more like you)", "meaning": "meaning (cosine to the real reply)", "wording": "wording (chrF to the real reply)", "form": "form (typical for you)",
              "reference_similarity": "similarity to the real reply"}
    rows = sorted(history, key=lambda h: h["round"])
    fig, ax = _figure((9.5, 4.0))
    x = [h["round"] for h in rows]
    for i, key in enumerate(keys):
        pts = [(h["round"], h[key]) for h in rows if h.get(key) is not None]
        if not pts:
            continue
        xs, ys = zip(*pts)
        if key == "auto_score":
            se = [h.get("auto_score_se") or 0.0 for h in rows if h.get(key) is not None]
            ax.errorbar(xs, ys, yerr=se, fmt="o-", linewidth=2.5, capsize=4, label=labels.get(key, key), zorder=3)
        else:
            ax.plot(xs, ys, "s--", alpha=0.7, label=labels.get(key, key))
    ax.set_xticks(x)
    ax.set_xticklabels([("SFT" if h["round"] == 0 else f"round {h['round']}" + ("\n(simulated)" if h.get("simulated") else ""))
                        for h in rows])
    ax.set_ylabel("score of fresh replies (held-out prompts)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if rows:  # beside the axes: inside, it hides the lines near the top
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    _save(fig, path)
    return fig


PPO_PANELS = (
    ("mean_reward", "reward-model score of the replies"),
    ("val_score", "validation fidelity (held-out)"),
    ("kl", "KL to the reference (nats per reply)"),
    ("clip_frac", "clip fraction"),
    ("value_loss", "value loss (critic)"),
    ("entropy", "entropy (nats per token)"),
    ("approx_kl", "approx. KL old → new (per token)"),
    ("reply_words", "reply length (words)"),
)


def plot_ppo_curves(logs: Sequence[dict], path=None, title: str = "PPO", panels=PPO_PANELS,
                    validation: Sequence[dict] | None = None, kept: int | None = None,
                    person_words: float | None = None):
    """One small panel per PPO statistic against the update (``models/ppo/ppo_log.json``).

    The reward-model score should rise. The **validation fidelity** (the held-out measure stage 5
    picks the best model by; ``validation`` holds it, update 0 included) says whether that rise
    is real: where the score keeps climbing while validation fidelity falls, the policy has
    started to game the reward model — the update marked "kept" is the one saved. The KL to the
    reference should level off; clip fraction and approximate KL should stay small; updates
    stopped early are marked with a red dot at the approximate KL that stopped them. A reply
    length drifting away from the person's (dotted line) is the usual first sign of hacking.
    """
    cols = (len(panels) + 1) // 2
    fig, axes = _figure((3.7 * cols, 5.5))
    fig.clf()
    axes = fig.subplots(2, cols).ravel()
    steps = [e.get("step", i + 1) for i, e in enumerate(logs)]
    for ax, (key, label) in zip(axes, panels):
        if key == "val_score" and validation:
            pts = [(v["step"], v["val_score"]) for v in validation if isinstance(v.get("val_score"), (int, float))]
        else:
            pts = [(s, e.get(key)) for s, e in zip(steps, logs) if isinstance(e.get(key), (int, float))]
        if pts:
            xs, vals = zip(*pts)
            ax.plot(xs, vals, ".-", color="tab:blue")
            if key == "val_score" and kept is not None and kept in xs:
                ax.plot([kept], [vals[xs.index(kept)]], "*", color="tab:green", markersize=12, label=f"kept: update {kept}")
                ax.legend(fontsize=8)
            if key == "approx_kl":
                stopped = [(s, e["stop_approx_kl"]) for s, e in zip(steps, logs)
                           if e.get("early_stopped") and isinstance(e.get("stop_approx_kl"), (int, float))]
                if stopped:
                    sx, sy = zip(*stopped)
                    ax.plot(sx, sy, "o", color="tab:red", label="stopped here (its approx. KL)")
                    ax.legend(fontsize=8)
            if key == "reply_words" and person_words is not None:
                ax.axhline(person_words, color="grey", linestyle=":", label="the person")
                ax.legend(fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("PPO update")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _save(fig, path)
    return fig
