"""Discord channel exported by DiscordChatExporter (format "JSON"): ``{guild, channel, messages: [...]}``.

- sender: ``author.nickname`` (the name shown in that chat), else ``author.name``.
- ``timestamp`` is ISO 8601 with the exporting computer's UTC offset; the clock time is kept and
  the offset dropped (naive local time as the export states it).
- ``type`` ``Default``/``Reply`` -> ``text``; ``Call`` -> ``call``; anything else
  (``ChannelPinnedMessage``, ``RecipientAdd``, ``ThreadCreated``, ...) -> ``system``.
- no ``content`` but attachments -> ``media``; only stickers -> ``sticker``; only embeds -> ``other``.
- chat: the channel's name (for a DM, the other person's name as DiscordChatExporter writes it).
- the same message id twice (overlapping partial exports) is kept once.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


from twinlib.data import ExportError
from twinlib.data._common import head_json_start, load_json, pandas_time, to_frame, warn_skipped

_TEXT_TYPES = {"Default", "Reply", None, ""}
_CALL_TYPES = {"Call"}


def sniff(path: Path, head: str) -> bool:
    return (head_json_start(head) and '"guild"' in head and '"channel"' in head
            and ('"messages"' in head or '"author"' in head))


def _time(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        pass
    return pandas_time(value)  # e.g. 7 fractional digits, which datetime.fromisoformat of Python 3.10 refuses


def _kind(msg: dict, content: str) -> str:
    mtype = msg.get("type")
    if mtype is not None and not isinstance(mtype, str):  # damaged: not a type name (and maybe unhashable)
        return "system"
    if mtype in _CALL_TYPES:
        return "call"
    if mtype not in _TEXT_TYPES:
        return "system"
    if content.strip():
        return "text"
    if msg.get("attachments"):
        return "media"
    if msg.get("stickers"):
        return "sticker"
    if msg.get("embeds"):
        return "other"
    return ""


def read(path: Path):
    path = Path(path)
    data = load_json(path, "Discord export")
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ExportError(path, "this JSON has no 'messages' list.",
                          hint="export the channel with DiscordChatExporter using the JSON format.")
    channel = data.get("channel") if isinstance(data.get("channel"), dict) else {}
    chat = str(channel.get("name") or channel.get("id") or path.stem)
    rows, seen, no_time = [], set(), []
    for i, msg in enumerate(data["messages"]):
        if not isinstance(msg, dict):
            continue
        mid = msg.get("id")
        if mid is not None:
            mid = str(mid)  # a number, or even a list in a damaged file
            if mid in seen:
                continue
            seen.add(mid)
        content = str(msg.get("content") or "")
        kind = _kind(msg, content)
        if not kind:
            continue
        ts = _time(msg.get("timestamp"))
        if ts is None:
            no_time.append(f"message {mid or i + 1}")
            continue
        author = msg.get("author") if isinstance(msg.get("author"), dict) else {}
        sender = str(author.get("nickname") or author.get("name") or "Deleted User")
        rows.append((chat, ts, sender, content, kind))
    warn_skipped(path, len(no_time), no_time, "messages without a timestamp")
    return to_frame(rows)
