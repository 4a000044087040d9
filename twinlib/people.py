"""Who is in the export, and which of them is the person the twin should imitate.

Exports rarely say whose phone they came from. The person exporting their own history is
the one participant present in (nearly) every chat, so :func:`infer_me` picks the sender of
text messages in the most chats and refuses to guess when that is a tie (a single 1:1 chat
is always a tie): then the user passes ``me=...`` (``--me NAME`` on the command line).
"""

from __future__ import annotations

import difflib

import pandas as pd

PARTICIPANT_COLUMNS = ["sender", "chats", "messages"]


class AmbiguousMeError(ValueError):
    """Several participants could be the person; ``candidates`` holds their counts."""

    def __init__(self, candidates: pd.DataFrame):
        self.candidates = candidates
        listed = "; ".join(
            f"{row.sender!r} ({_plural(row.chats, 'chat')}, {_plural(row.messages, 'message')})"
            for row in candidates.itertuples(index=False)
        )
        super().__init__(
            "cannot tell which participant is you: " + listed + ". "
            "Pass me=... (or --me NAME) with your name as it appears in the export."
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def participants(messages: pd.DataFrame) -> pd.DataFrame:
    """Count, per sender of text messages, the chats they wrote in and their messages.

    Returns a frame with the columns ``sender, chats, messages``, most chats first, then most
    messages, then first appearance. Only ``kind == "text"`` rows with a sender count: media
    and system notices say little about who owns the export.
    """
    for col in ("chat", "sender", "kind"):
        if col not in messages.columns:
            raise ValueError(f"the message table has no {col!r} column (expected chat, timestamp, sender, text, kind).")
    text = messages.loc[(messages["kind"] == "text") & (messages["sender"].astype(str).str.strip() != ""),
                        ["chat", "sender"]]
    if text.empty:
        return pd.DataFrame({"sender": pd.Series(dtype=object), "chats": pd.Series(dtype="int64"),
                             "messages": pd.Series(dtype="int64")})
    order = {s: i for i, s in enumerate(pd.unique(text["sender"]))}
    counts = text.groupby("sender", sort=False).agg(chats=("chat", "nunique"), messages=("chat", "size"))
    counts = counts.reset_index()
    counts["_first"] = counts["sender"].map(order)
    counts = counts.sort_values(["chats", "messages", "_first"], ascending=[False, False, True], kind="stable")
    counts = counts.drop(columns="_first").reset_index(drop=True)
    return counts.astype({"chats": "int64", "messages": "int64"})


def infer_me(messages: pd.DataFrame, me: str | None = None) -> str:
    """Return the sender name of the person whose twin is built.

    With ``me`` given, check that it is a sender of text messages (a case-insensitive match is
    accepted and returns the name as the export spells it); otherwise raise ``ValueError``
    naming the closest senders. Without ``me``, return the participant who wrote in the most
    chats; when several share the top count, raise :class:`AmbiguousMeError` listing them.
    """
    people = participants(messages)
    if people.empty:
        raise ValueError("the messages contain no text message with a sender, so there is nobody to imitate.")
    senders = list(people["sender"])
    if me is not None:
        if me in senders:
            return me
        wanted = " ".join(str(me).split()).casefold()
        folded = [s for s in senders if " ".join(s.split()).casefold() == wanted]
        if len(folded) == 1:
            return folded[0]
        if len(folded) > 1:
            raise ValueError(f"me={me!r} matches several senders that differ only in case: {folded}; "
                             "pass the exact spelling.")
        close = sorted(senders, key=lambda s: -difflib.SequenceMatcher(None, wanted, s.casefold()).ratio())
        raise ValueError(
            f"me={me!r} is not a sender in these messages. Closest senders: "
            + ", ".join(repr(s) for s in close[:5])
            + ". Pass one of them as me=... (or --me NAME)."
        )
    top = people[people["chats"] == people["chats"].iloc[0]]
    if len(top) == 1:
        return str(top["sender"].iloc[0])
    raise AmbiguousMeError(top.reset_index(drop=True))
