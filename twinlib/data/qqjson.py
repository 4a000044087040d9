"""QQ chats exported as JSON by qq-chat-exporter (shuakami/qq-chat-exporter, "QCE"), V5 and V4:

``{"metadata": {"name": "QQChatExporter V5 / …", …}, "chatInfo": {"name", "type", …}, "statistics": {…},
"messages": [{"timestamp", "time"?, "sender": {"uid", "uin", "name", "nickname"?, "groupCard"?},
"type", "content": {"text", "elements", "resources", "mentions", "reply"?}, "recalled"/"isRecalled",
"system"/"isSystemMessage", "rawMessage"?: {"sendNickName", "sendMemberName"}}]}``

- sender: ``sender.name`` (QCE's choice: the group card, else the nickname); the other names of the
  same person (nickname, group card, V4's ``sendNickName``/``sendMemberName``) become aliases for the
  anonymizer. QCE does not mark your own messages: pass your name as it appears (``--me``).
- kinds: ``system`` -> ``system``; ``recalled`` -> ``deleted``; a message whose only elements are
  market faces (QQ's big stickers) -> ``sticker`` (small faces stay in the text, ``[微笑]``); one whose text is only resource placeholders (``[图片: x]``,
  ``[语音 7秒]``, ``[文件: x]``) -> ``media``; other texts -> ``text`` (placeholders and the quoted
  ``[回复 X: …]`` line removed, ``[[微笑]]`` -> ``[微笑]``).
- time: ``time`` (local time as written) when present, else ``timestamp`` (epoch milliseconds, or
  V4's ISO string) -> this machine's local time.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from twinlib.data._common import epoch_to_local, head_json_start, load_json, message_list, timed_messages, to_frame
from twinlib.data.qqtxt import _FACE, _kind_and_text

_REPLY = re.compile(r"^\[回复 [^\n]*\]\n?")
_STICKER_TYPES = {"market_face", "marketface", "sticker"}  # big stickers; small faces ([微笑]) stay text


def sniff(path: Path, head: str) -> bool:
    return head_json_start(head) and "QQChatExporter" in head[:4096] and '"chatInfo"' in head


def _time(msg: dict) -> datetime | None:
    written = str(msg.get("time") or "").strip()
    try:
        return datetime.strptime(written, "%Y-%m-%d %H:%M:%S")
    except ValueError:
        pass
    stamp = msg.get("timestamp")
    if isinstance(stamp, str) and not stamp.strip().isdigit():
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().replace(tzinfo=None)
        except ValueError:
            return None
    return epoch_to_local(stamp, unit="ms")


def read(path: Path):
    path = Path(path)
    data = load_json(path, "qq-chat-exporter export")
    messages = message_list(path, data, "qq-chat-exporter", hint="export the chat from qq-chat-exporter again as JSON.")
    info = data.get("chatInfo") if isinstance(data.get("chatInfo"), dict) else {}
    chat = str(info.get("name") or "").strip() or path.stem
    rows, aliases = [], {}
    for msg, ts in timed_messages(path, messages, _time):
        who = msg.get("sender") if isinstance(msg.get("sender"), dict) else {}
        raw = msg.get("rawMessage") if isinstance(msg.get("rawMessage"), dict) else {}
        names = [str(n).strip() for n in (who.get("name"), who.get("groupCard"), who.get("nickname"),
                                          raw.get("sendMemberName"), raw.get("sendNickName")) if n]
        names = list(dict.fromkeys(n for n in names if n))
        sender = names[0] if names else str(who.get("uin") or who.get("uid") or "").strip()
        aliases.update({n: sender for n in names[1:]})
        content = msg.get("content") if isinstance(msg.get("content"), dict) else {}
        text = content.get("text") if isinstance(content.get("text"), str) else ""
        elements = [e for e in content.get("elements") or [] if isinstance(e, dict)]
        types = {str(e.get("type") or "").lower() for e in elements}
        if msg.get("system") or msg.get("isSystemMessage"):
            rows.append((chat, ts, "", _REPLY.sub("", text).strip(), "system"))
            continue
        if msg.get("recalled") or msg.get("isRecalled"):
            rows.append((chat, ts, sender, "", "deleted"))
            continue
        if types & _STICKER_TYPES and not _FACE.sub("", text).strip():
            rows.append((chat, ts, sender, "", "sticker"))
            continue
        kind, text = _kind_and_text(_REPLY.sub("", text))
        if kind == "text" and not text.strip():
            continue
        rows.append((chat, ts, sender, text if kind in ("text", "deleted") else "", kind))
    out = to_frame(rows)
    if aliases:
        out.attrs["aliases"] = aliases
    return out
