"""ChatLab's standard exchange format (hellodigua/ChatLab, "ChatLab Standard Format"), which
ChatLab writes and WeFlow exports WeChat chats to, as JSON or as JSON Lines:

``{"chatlab": {"version", "exportedAt", ...}, "meta": {"name", "platform", "type", "ownerId"?},
"members": [{"platformId", "accountName", "groupNickname"?}], "messages": [{"sender", "accountName",
"groupNickname"?, "timestamp", "type", "content"}]}``; the ``.jsonl`` form has one object a line, each
with ``_type`` ``header`` (``chatlab`` and ``meta``), ``member`` or ``message``; ``#`` lines are comments.

- ``type``: 0 text and 25 reply -> ``text``; 1 image, 2 voice, 3 video, 4 file, 7 link, 8 location,
  24 share, 27 contact card -> ``media``; 5 -> ``sticker``; 23 -> ``call``; 22 poke and 80 -> ``system``;
  81 -> ``deleted``; 20 red packet, 21 transfer, 26 forward, 99 and unknown -> ``other``.
- sender: the message's ``groupNickname``, else its ``accountName``, else the member's, else the
  ``sender`` id (system messages have none); the person's other names become aliases for the anonymizer. When ``meta.ownerId`` names the exporting account (WeFlow writes it), its messages
  are from ``"Me"`` (pass ``--me Me``), and its names become names of "Me" for the anonymizer;
  without it, pass your name as it appears.
- ``timestamp``: epoch seconds (milliseconds if larger) -> this machine's local time.
- chat: ``meta.name``, else the file name.
"""

from __future__ import annotations

import json
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import epoch_to_local, head_json_start, load_json, message_list, read_text, timed_messages, to_frame

ME = "Me"
_KINDS = {0: "text", 25: "text", 1: "media", 2: "media", 3: "media", 4: "media", 7: "media", 8: "media",
          24: "media", 27: "media", 5: "sticker", 23: "call", 22: "system", 80: "system", 81: "deleted"}


def sniff(path: Path, head: str) -> bool:
    stripped = head.lstrip("\ufeff \t\r\n")
    if head_json_start(head) and '"chatlab"' in head[:4096]:
        return True
    first = stripped.split("\n", 1)[0]
    return first.startswith("{") and '"_type"' in first and '"header"' in first and '"chatlab"' in first


def _load(path: Path) -> dict:
    """The export as one dict, from JSON or JSON Lines (told apart by the first line's ``_type``)."""
    text = read_text(path, "ChatLab export")
    lines = text.splitlines()
    first = next((ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    if not (first.startswith("{") and '"_type"' in first):
        return load_json(path, "ChatLab export")
    data: dict = {"members": [], "messages": []}
    for n, line in enumerate(lines, start=1):
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ExportError(path, f"this line is not valid JSON ({e.msg} at column {e.colno}).", line=n,
                              hint="each line of a ChatLab .jsonl file must be one JSON object; export again.") from None
        kind = obj.pop("_type", None) if isinstance(obj, dict) else None
        if kind == "header":
            data.update({k: obj.get(k) for k in ("chatlab", "meta")})
        elif kind in ("member", "message"):
            data[kind + "s"].append(obj)
    return data


def _timestamp(msg: dict):
    """A message's time: ChatLab writes Unix seconds, some exporters milliseconds."""
    return epoch_to_local(msg.get("timestamp"), unit="ms" if _big(msg.get("timestamp")) else "s")


def read(path: Path):
    path = Path(path)
    data = _load(path)
    messages = message_list(path, data, "ChatLab",
                            hint="pass the .json or .jsonl file ChatLab (or WeFlow's ChatLab export) wrote.")
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    chat = str(meta.get("name") or "").strip() or path.stem
    owner = str(meta.get("ownerId") or "").strip()
    members = {str(m.get("platformId")): m for m in data.get("members") or [] if isinstance(m, dict)}
    rows, aliases = [], {}
    for msg, ts in timed_messages(path, messages, _timestamp, "messages without a readable timestamp"):
        sender_id = str(msg.get("sender") or "").strip()
        member = members.get(sender_id, {})
        names = [str(n).strip() for n in (msg.get("groupNickname"), msg.get("accountName"),
                                          member.get("groupNickname"), member.get("accountName")) if n]
        names = list(dict.fromkeys(n for n in names if n))
        try:
            kind = _KINDS.get(int(msg.get("type")), "other")
        except (TypeError, ValueError):
            kind = "other"
        text = msg.get("content") if isinstance(msg.get("content"), str) else ""
        if kind not in ("text", "system", "deleted"):
            text = ""
        if kind == "text" and not text.strip():
            continue
        if owner and sender_id == owner:
            sender = ME
            aliases.update({n: ME for n in names if n != ME})
        else:
            sender = names[0] if names else sender_id
            aliases.update({n: sender for n in names[1:]})
        rows.append((chat, ts, "" if kind == "system" else sender, text, kind))
    out = to_frame(rows)
    if aliases:
        out.attrs["aliases"] = aliases
    return out


def _big(value) -> bool:
    try:
        return float(value) > 1e11
    except (TypeError, ValueError):
        return False
