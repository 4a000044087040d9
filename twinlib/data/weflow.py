"""WeChat chats exported by WeFlow as its own detailed JSON (the "JSON" choice of its export dialog):

``{"weflow": {"version", "exportedAt", ...}, "session": {"wxid", "nickname", "remark", "displayName",
"type": "私聊" | "群聊", ...}, "messages": [{"localId", "createTime", "formattedTime", "type", "localType",
"content", "isSend", "senderUsername", "senderDisplayName", ...}], "avatars"?: {...}}``

(WeFlow's other exports: the WeClone CSV is read by ``wechat-csv``, the ChatLab JSON by ``chatlab``.)

- ``type`` (WeFlow's Chinese type name; ``localType`` is not reliable and is not used): 文本消息 and
  引用消息 -> ``text``; 图片/语音/视频/文件/名片/位置消息, 卡片式链接, 图文消息, 小程序分享, 视频号直播卡片
  -> ``media``; 动画表情 -> ``sticker``; 通话消息 and 语音/视频通话 -> ``call``; 系统消息 -> ``system``
  (撤回, a recalled message -> ``deleted``); 红包卡片, 转账卡片, 聊天记录合并转发 and unknown types -> ``other``.
- sender: ``isSend`` 1 is the account owner, written as ``"Me"`` (pass ``--me Me``; your display name
  becomes a name of "Me" for the anonymizer); otherwise ``senderDisplayName``, else ``senderUsername``;
  ``isSend`` null is a system message.
- time: ``formattedTime`` (local time as written), else ``createTime`` (epoch seconds -> this
  machine's local time).
- chat: ``session.displayName``, else its remark or nickname, else the file name.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from twinlib.data._common import epoch_to_local, head_json_start, load_json, message_list, timed_messages, to_frame

ME = "Me"
_TEXT = {"文本消息", "引用消息"}
_MEDIA = {"图片消息", "语音消息", "视频消息", "文件消息", "名片消息", "位置消息", "卡片式链接", "图文消息",
          "小程序分享", "视频号直播卡片", "音乐分享"}
_CALL = {"通话消息", "语音通话", "视频通话"}
_REVOKE = re.compile(r"撤回")


def sniff(path: Path, head: str) -> bool:
    return head_json_start(head) and bool(re.search(r'"weflow"\s*:\s*\{', head[:4096])) and '"session"' in head


def _kind(type_name: str, content: str) -> str:
    if type_name in _TEXT:
        return "text"
    if type_name in _MEDIA:
        return "media"
    if type_name == "动画表情":
        return "sticker"
    if type_name in _CALL:
        return "call"
    if type_name == "系统消息":
        return "deleted" if _REVOKE.search(content) else "system"
    return "other"


def _time(msg: dict) -> datetime | None:
    written = str(msg.get("formattedTime") or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(written, fmt)
        except ValueError:
            pass
    return epoch_to_local(msg.get("createTime"))


def read(path: Path):
    path = Path(path)
    data = load_json(path, "WeFlow export")
    messages = message_list(path, data, "WeFlow", hint="export the chat from WeFlow again as JSON (or as ChatLab JSON).")
    session = data.get("session") if isinstance(data.get("session"), dict) else {}
    chat = next((str(session[k]).strip() for k in ("displayName", "remark", "nickname")
                 if str(session.get(k) or "").strip()), path.stem)
    rows, aliases = [], {}
    for msg, ts in timed_messages(path, messages, _time):
        content = msg.get("content") if isinstance(msg.get("content"), str) else ""
        kind = _kind(str(msg.get("type") or ""), content)
        text = content if kind in ("text", "system", "deleted") else ""
        if kind == "text" and not text.strip():
            continue
        name = str(msg.get("senderDisplayName") or "").strip()
        if msg.get("isSend") == 1:
            sender = ME
            if name and name not in (ME, "我"):
                aliases[name] = ME
        elif msg.get("isSend") is None and kind in ("system", "deleted"):
            sender = ""
        else:
            sender = name or str(msg.get("senderUsername") or "").strip() or chat
        rows.append((chat, ts, sender, text, kind))
    out = to_frame(rows)
    if aliases:
        out.attrs["aliases"] = aliases
    return out
