"""Stage 1's look at the data: overview tables and plots of messages and pairs."""

from __future__ import annotations

import pandas as pd


def overview(messages: pd.DataFrame) -> pd.DataFrame:
    """Messages per chat and kind, with first and last date."""
    g = messages.groupby("chat")
    table = pd.DataFrame({
        "messages": g.size(),
        "text": g["kind"].apply(lambda k: int((k == "text").sum())),
        "senders": g["sender"].nunique(),
        "first": g["timestamp"].min().dt.date,
        "last": g["timestamp"].max().dt.date,
    })
    return table.sort_values("messages", ascending=False)


def kinds(messages: pd.DataFrame) -> pd.Series:
    return messages["kind"].value_counts()


def plot_messages_per_month(messages: pd.DataFrame, me: str, path=None):
    """Bar chart of text messages per month, the person's next to everybody else's."""
    import matplotlib.pyplot as plt

    text = messages[messages["kind"] == "text"]
    month = text["timestamp"].dt.to_period("M").astype(str)
    who = (text["sender"] == me).map({True: "me", False: "others"})
    counts = pd.crosstab(month, who).sort_index()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    colors = {"me": "#2a9d8f", "others": "#bbbbbb"}
    counts.plot.bar(ax=ax, color=[colors[c] for c in counts.columns], width=0.8)
    ax.set_xlabel("month")
    ax.set_ylabel("text messages")
    ax.set_title("Messages per month")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def plot_reply_lengths(pairs: pd.DataFrame, path=None):
    """Histogram of the person's reply lengths (words) next to the prompts'."""
    import matplotlib.pyplot as plt

    r = pairs["response"].str.split().str.len()
    p = pairs["prompt"].str.split().str.len()
    hi = int(max(r.quantile(0.99), p.quantile(0.99), 5)) + 1
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.hist([p.clip(upper=hi), r.clip(upper=hi)], bins=range(0, hi + 2), label=["prompts (others)", "replies (me)"],
            color=["#bbbbbb", "#2a9d8f"])
    ax.set_xlabel("words per turn")
    ax.set_ylabel("pairs")
    ax.set_title("How long are the replies?")
    ax.legend()
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def example_pairs(pairs: pd.DataFrame, n: int = 5, seed: int = 0) -> pd.DataFrame:
    """A few random pairs for a look (context shortened to its last turn)."""
    from twinlib.pairs import context_turns

    rows = pairs.sample(min(n, len(pairs)), random_state=seed).copy()
    rows["last context turn"] = rows["context"].map(lambda c: (context_turns(c) or [{"text": ""}])[-1]["text"])
    return rows[["conversation_id", "last context turn", "prompt", "response", "split"]]

