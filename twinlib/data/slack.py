"""Slack workspace export, unzipped: a folder with ``channels.json``, ``users.json`` (and for
Business+ exports ``groups.json``, ``dms.json``, ``mpims.json``) and one folder per conversation
holding ``YYYY-MM-DD.json`` day files.

- sender: the user's ``real_name`` from ``users.json`` (else ``name``, else the message's
  ``user_profile``, else the id); bots: their ``username`` / ``bot_profile`` name.
- ``<@U123>`` -> ``@Real Name``; ``<#C1|general>`` -> ``#general``; ``<!here>`` -> ``@here``;
  ``<https://x|label>`` -> ``label``, ``<https://x>`` -> ``https://x``; ``&amp;`` etc. unescaped.
- ``ts`` (epoch seconds) -> naive local time of this machine.
- subtypes: ``channel_join`` and other membership/topic/pin events -> ``system``; ``bot_message``
  -> ``other``; ``tombstone`` -> ``deleted``; huddles -> ``call``; a message with files and no
  text -> ``media`` (with text: ``text``).
- chat: the channel's name (the folder name); direct messages: the members' names.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import epoch_to_local, load_json, to_frame, warn_skipped

_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\.json$")
_TEXT_SUBTYPES = {None, "", "me_message", "thread_broadcast", "reply_broadcast", "file_share", "message_replied"}
_CALL_SUBTYPES = {"huddle_thread", "sh_room_created", "sh_room_shared"}
_LINK_RE = re.compile(r"<([^<>]*)>")


def _dict(value) -> dict:
    """A JSON object, or ``{}`` for anything else (a damaged export may hold null, a list, a number)."""
    return value if isinstance(value, dict) else {}


def _name(*values) -> str | None:
    """The first non-empty string among ``values`` (other types are skipped)."""
    return next((v for v in values if isinstance(v, str) and v), None)


def sniff(path: Path, head: str) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / "channels.json").is_file() or (path / "users.json").is_file())


def _users(root: Path) -> dict[str, str]:
    names: dict[str, str] = {}
    f = root / "users.json"
    if f.is_file():
        data = load_json(f, "Slack users list")
        for u in data if isinstance(data, list) else []:
            if not isinstance(u, dict) or not _name(u.get("id")):
                continue
            prof = _dict(u.get("profile"))
            names[u["id"]] = _name(u.get("real_name"), prof.get("real_name"), prof.get("display_name"),
                                   u.get("name"), u["id"])
    return names


def _conversations(root: Path, users: dict[str, str]) -> dict[str, str]:
    """folder name -> chat name"""
    chats: dict[str, str] = {}
    for fname in ("channels.json", "groups.json", "mpims.json", "dms.json"):
        f = root / fname
        if not f.is_file():
            continue
        data = load_json(f, f"Slack {fname}")
        for c in data if isinstance(data, list) else []:
            if not isinstance(c, dict):
                continue
            if _name(c.get("name")):
                chats[c["name"]] = c["name"]
            elif _name(c.get("id")):  # a direct message: the folder is named by id
                members = c.get("members") if isinstance(c.get("members"), list) else []
                members = [users.get(m, m) for m in members if isinstance(m, str)]
                chats[c["id"]] = ", ".join(members) if members else c["id"]
    return chats


def _clean(text: str, users: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        inner = m.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or users.get(target[1:], target[1:]))
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            if label:
                return label
            word = target[1:].split("^")[0]
            return "@" + word
        return label or target.removeprefix("mailto:")

    return html.unescape(_LINK_RE.sub(repl, text))


def _sender(msg: dict, users: dict[str, str]) -> str:
    uid = _name(msg.get("user"))
    if uid and uid in users:
        return users[uid]
    prof = _dict(msg.get("user_profile"))
    return (_name(prof.get("real_name"), prof.get("display_name"), msg.get("username"),
                  _dict(msg.get("bot_profile")).get("name"), uid, msg.get("bot_id")) or "Slack")


def _kind(msg: dict, text: str) -> str:
    sub = msg.get("subtype")
    if sub is not None and not isinstance(sub, str):  # damaged: not a subtype name (maybe unhashable)
        return "system"
    if sub == "bot_message" or (msg.get("bot_id") and not msg.get("user")):
        return "other"
    if sub == "tombstone":
        return "deleted"
    if sub in _CALL_SUBTYPES:
        return "call"
    if sub not in _TEXT_SUBTYPES:
        return "system"
    if text.strip():
        return "text"
    if msg.get("files") or msg.get("file") or msg.get("attachments"):
        return "media"
    return ""


def read(path: Path):
    root = Path(path)
    if not root.is_dir():
        raise ExportError(root, "a Slack export is a folder, not a single file.",
                          hint="unzip the Slack export and pass the folder that holds channels.json.")
    users = _users(root)
    chats = _conversations(root, users)
    rows, no_time = [], []
    folders = sorted(d for d in root.iterdir() if d.is_dir())
    for folder in folders:
        days = sorted(f for f in folder.iterdir() if f.is_file() and _DAY_RE.match(f.name))
        chat = chats.get(folder.name, folder.name)
        for day in days:
            data = load_json(day, "Slack day file")
            if not isinstance(data, list):
                raise ExportError(day, "a Slack day file should hold a list of messages.",
                                  hint="pass the unzipped export folder as Slack wrote it.")
            for msg in data:
                if not isinstance(msg, dict) or msg.get("type", "message") != "message":
                    continue
                text = _clean(str(msg.get("text") or ""), users)
                kind = _kind(msg, text)
                if not kind:
                    continue
                ts = epoch_to_local(msg.get("ts"))
                if ts is None:
                    no_time.append(f"{folder.name}/{day.name}")
                    continue
                rows.append((chat, ts, _sender(msg, users), text, kind))
    if not rows and not folders:
        raise ExportError(root, "no conversation folders (with YYYY-MM-DD.json files) in this Slack export.",
                          hint="unzip the whole export; every channel is a folder next to channels.json.")
    warn_skipped(root, len(no_time), no_time, "messages without ts")
    return to_frame(rows)
