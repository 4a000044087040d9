"""Facebook Messenger and Instagram direct messages (Meta's "Download your information", JSON).

One file per thread chunk (``messages/inbox/<thread>/message_1.json``): ``participants``,
``messages`` (newest first), ``title``. Each message has ``sender_name``, ``timestamp_ms`` and
``content`` or ``photos``/``videos``/``gifs``/``files``/``audio_files``/``sticker``/``share``/
``call_duration``.

- Meta writes every string double-encoded (UTF-8 bytes read as Latin-1: ``Ã©`` for ``é``); each
  string is repaired with ``s.encode("latin-1").decode("utf-8")`` and kept unchanged when that fails
  (it was not double-encoded).
- ``timestamp_ms`` is a UTC epoch; it becomes naive *local time of this machine* (its time zone
  rules, daylight saving included), like the other readers' "local time as the export states it".
- Reactions ("Reacted ❤ to your message", "Liked a message"), polls, "X joined/left the group"
  and ``type`` Subscribe/Unsubscribe are ``system``; unsent messages are ``deleted``; calls ``call``.
- ``which()`` says ``"instagram"`` when the path lies in an Instagram export (a folder or file
  name containing "instagram", e.g. ``your_instagram_activity/messages/inbox/...``) or the file
  links to instagram.com; otherwise ``"messenger"``. Both are read the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import epoch_to_local, head_json_start, load_json, to_frame, warn_skipped

_MEDIA_KEYS = ("photos", "videos", "gifs", "files", "audio_files")
_SYSTEM_RE = re.compile(
    r"(?:^|\s)(?:reacted|Reacted) .{1,40} to (?:your|a) message\s*$"
    r"|(?:^|\s)(?:Liked|liked) a message\s*$"
    r"|created a poll: |in the poll\.$|This poll is no longer available\.|'s poll has multiple updates\."
    r"|^You are now connected on Messenger"
)
# "<sender> named the group ..." etc.: only when the text starts with the sender's name or "You"
_ACTION_RE = re.compile(
    r"(?:named the group|changed the group photo|set (?:the|your|his|her|their) nickname|"
    r"cleared (?:the|your) nickname|added .{1,80} to the group|left the group|removed .{1,80} from the group|"
    r"created the group|changed the chat theme|set the quick reaction|turned (?:on|off) disappearing messages|"
    r"pinned a message|changed the theme|are now connected on Messenger)"
)
# after "<sender> " or "You "
_CALL_RE = re.compile(r"(?:started|joined|missed|ended) (?:a |an |the )?(?:video |audio |group )?(?:call|video chat)"
                      r"(?: from .{1,80})?\.?\s*$")
_ATTACHMENT_RE = re.compile(r"sent (?:an? |\d+ )?(?:attachment|photo|video|voice message|GIF|sticker|link|"
                            r"audio clip|file)s?\.?\s*$")
_UNSENT_RE = re.compile(r"unsent a message\.?\s*$")


def fix_mojibake(s):
    """Undo Meta's double encoding (``"Ã©"`` -> ``"é"``); strings that were fine stay as they are."""
    if not isinstance(s, str) or s.isascii():
        return s
    try:
        return s.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return s


def sniff(path: Path, head: str) -> bool:
    return head_json_start(head) and '"sender_name"' in head and '"timestamp_ms"' in head


def which(path: Path, head: str) -> str:
    # <export root>/your_instagram_activity/messages/inbox/<thread>/message_1.json: look that far up only
    parts = [p.lower() for p in Path(path).resolve().parts[-6:]]
    if any("instagram" in p for p in parts) or "instagram.com" in head:
        return "instagram"
    return "messenger"


def _str(value) -> str:
    """A string field, repaired; anything else (null, a number or list in a damaged file) is ``""``."""
    return fix_mojibake(value) if isinstance(value, str) else ""


def _kind_and_text(msg: dict) -> tuple[str, str]:
    content = _str(msg.get("content"))
    sender = _str(msg.get("sender_name"))
    who = next((w for w in (sender, "You") if w and content.startswith(w + " ")), None)
    if msg.get("is_unsent") or (who and _UNSENT_RE.match(content, len(who) + 1)):
        return "deleted", content
    mtype = msg.get("type")
    if mtype == "Call" or "call_duration" in msg or (who and _CALL_RE.match(content, len(who) + 1)) \
            or content.startswith("The video chat ended") or content.startswith("The call ended"):
        return "call", content
    if mtype in ("Subscribe", "Unsubscribe") or (content and _SYSTEM_RE.search(content)) \
            or (who and _ACTION_RE.match(content, len(who) + 1)):
        return "system", content
    has_media = any(msg.get(k) for k in _MEDIA_KEYS)
    if msg.get("sticker") and not content.strip():
        return "sticker", ""
    if content.strip() and not (who and _ATTACHMENT_RE.match(content, len(who) + 1)):
        return "text", content
    if has_media or msg.get("share") or msg.get("sticker") or content:
        return "media", ""
    return "", ""


def _chat_name(data: dict, path: Path) -> str:
    title = _str(data.get("title"))
    if title:
        return title
    participants = data.get("participants") if isinstance(data.get("participants"), list) else []
    names = [_str(p.get("name")) for p in participants if isinstance(p, dict)]
    names = [n for n in names if n]
    if names:
        return ", ".join(names)
    return Path(path).parent.name if Path(path).stem.startswith("message_") else Path(path).stem


def read(path: Path):
    path = Path(path)
    data = load_json(path, "Messenger/Instagram export")
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ExportError(path, "this JSON has no 'messages' list.",
                          hint="pass a message_N.json file from messages/inbox/<chat>/ of the "
                          "Facebook or Instagram download (format: JSON).")
    chat = _chat_name(data, path)
    rows, no_time = [], []
    for i, msg in enumerate(data["messages"]):
        if not isinstance(msg, dict):
            continue
        kind, text = _kind_and_text(msg)
        if not kind:
            continue
        ts = epoch_to_local(msg.get("timestamp_ms"), unit="ms")
        if ts is None:
            no_time.append(f"message {i + 1}")
            continue
        sender = _str(msg.get("sender_name")) or "Facebook user"
        rows.append((chat, ts, sender, text, kind))
    warn_skipped(path, len(no_time), no_time, "messages without timestamp_ms")
    return to_frame(rows[::-1])  # the file is newest first
