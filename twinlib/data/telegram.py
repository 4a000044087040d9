"""Telegram Desktop JSON export ("Export chat history" or "Export Telegram data", format JSON).

Two layouts: a single chat ``{name, type, id, messages: [...]}`` (``result.json`` of one chat) and
the whole account ``{about, personal_information, ..., chats: {list: [...]}, left_chats: {list: [...]}}``.

- ``text`` is a string or a list of strings and ``{type, text}`` entities; the pieces are
  concatenated as they are (entities carry their own spaces).
- ``date`` is the local time of the exporting computer and is used as is; only when it is missing
  (some tools write just ``date_unixtime``) the epoch is converted to this machine's local time.
- ``type: "service"`` -> ``system`` (``phone_call``/``group_call`` -> ``call``).
- photo, file, video, voice, location... -> ``media``; stickers -> ``sticker`` (text: the emoji).
  A media message with a caption is ``text`` with the caption: the caption is what the person wrote.
- forwarded messages -> ``other``: somebody else wrote them.
- ``from: null`` (deleted account) -> ``from_id`` (e.g. ``user123``), or ``"Deleted Account"``.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import epoch_to_local, head_json_start, load_json, to_frame, warn_skipped

_CALL_ACTIONS = {"phone_call", "group_call", "invite_to_group_call", "group_call_scheduled"}
_MEDIA_KEYS = ("photo", "file", "media_type", "location_information", "place_name", "live_location_period_seconds",
               "contact_information", "poll", "game_title", "invoice_information")


def sniff(path: Path, head: str) -> bool:
    if not head_json_start(head):
        return False
    # whole-account export: {"about": "Here is the data you requested. ...Telegram...", "personal_information"
    # ..., "chats": {"about": ..., "list": [...]}} (contacts and sessions may fill the first 64 KiB)
    if '"personal_information"' in head or ('"about"' in head[:600] and "Telegram" in head[:600]):
        return True
    if re.search(r'"chats"\s*:\s*\{\s*"(?:about|list)"', head) and '"messages"' in head:
        return True
    if '"messages"' not in head:
        return False
    return ('"date_unixtime"' in head or '"text_entities"' in head or '"from_id"' in head
            or re.search(r'"type"\s*:\s*"(?:personal_chat|private_group|private_supergroup|public_supergroup|'
                         r'public_channel|private_channel|saved_messages|bot_chat)"', head) is not None
            or (re.search(r'"type"\s*:\s*"(?:message|service)"', head) is not None and '"from"' in head))


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for piece in value:
            if isinstance(piece, str):
                parts.append(piece)
            elif isinstance(piece, dict):
                parts.append(str(piece.get("text", "")))
        return "".join(parts)
    return str(value)


def _time(msg: dict) -> datetime | None:
    date = msg.get("date")
    if isinstance(date, str) and date:
        try:
            return datetime.fromisoformat(date).replace(tzinfo=None)
        except ValueError:
            pass
    if msg.get("date_unixtime") is not None:
        return epoch_to_local(msg.get("date_unixtime"))
    return None


def _sender(msg: dict) -> str:
    name = msg.get("from") if msg.get("type") != "service" else msg.get("actor")
    if name:
        return str(name)
    ident = msg.get("from_id") if msg.get("type") != "service" else msg.get("actor_id")
    return str(ident) if ident else "Deleted Account"


def _kind_and_text(msg: dict) -> tuple[str, str]:
    text = _text(msg.get("text"))
    if msg.get("type") == "service":
        action = str(msg.get("action") or "")
        kind = "call" if action in _CALL_ACTIONS else "system"
        return kind, text or action.replace("_", " ")
    if "forwarded_from" in msg:  # null when the original author hides their account
        return "other", text
    if msg.get("media_type") == "sticker":
        return "sticker", str(msg.get("sticker_emoji") or text)
    if text.strip():
        return "text", text
    if any(k in msg for k in _MEDIA_KEYS):
        return "media", ""
    return "", ""  # nothing at all: dropped


def _chats(data, path: Path) -> list[dict]:
    if not isinstance(data, dict):
        raise ExportError(path, "this JSON is not a Telegram export (no chat object at the top).",
                          hint="pass result.json from Telegram Desktop's export (format: JSON).")
    if isinstance(data.get("messages"), list):
        return [data]
    chats = []
    for key in ("chats", "left_chats"):
        block = data.get(key)
        if isinstance(block, dict) and isinstance(block.get("list"), list):
            chats.extend(c for c in block["list"] if isinstance(c, dict))
    if not chats and not isinstance(data.get("chats"), dict):
        raise ExportError(path, "this JSON has neither a 'messages' list nor 'chats.list'.",
                          hint="pass result.json from Telegram Desktop's export (format: JSON, "
                          "with 'Personal chats' ticked for a whole-account export).")
    return chats


def _chat_name(chat: dict, path: Path) -> str:
    if chat.get("type") == "saved_messages":
        return "Saved Messages"
    if chat.get("name"):
        return str(chat["name"])
    return f"chat {chat['id']}" if chat.get("id") is not None else path.stem


def read(path: Path):
    path = Path(path)
    data = load_json(path, "Telegram export")
    rows, no_time = [], []
    for chat in _chats(data, path):
        name = _chat_name(chat, path)
        messages = chat.get("messages")
        for i, msg in enumerate(messages if isinstance(messages, list) else []):
            if not isinstance(msg, dict):
                continue
            kind, text = _kind_and_text(msg)
            if not kind:
                continue
            ts = _time(msg)
            if ts is None:
                no_time.append(f"message id {msg.get('id', i)}")
                continue
            rows.append((name, ts, _sender(msg), text, kind))
    warn_skipped(path, len(no_time), no_time, "messages without a date")
    return to_frame(rows)
