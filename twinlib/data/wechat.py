"""WeChat chats exported as CSV by PyWxDump (the layout WeClone reads):
``id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime``, and by WeFlow's
"WeClone" export, which leaves out ``room_name``: ``id,MsgSvrID,type_name,is_sender,talker,msg,src,CreateTime``
(UTF-8 with a BOM, CRLF). Older copies re-saved on Chinese Windows may be GBK: detected.

- ``type_name`` 文本 / ``text`` and 引用回复 (quote reply; the quoted ``[引用]...`` tail is dropped)
  -> ``text``; 图片/视频/语音/文件/位置/名片/分享... (WeFlow: image, video, voice, file, location) ->
  ``media``; 动画表情 / sticker -> ``sticker``; 系统通知/拍一拍... -> ``system`` (撤回 "recalled" ->
  ``deleted``); 语音通话/视频通话 -> ``call``; forwarded chat records, transfers, red packets and
  unknown types -> ``other``.
- sender: ``is_sender`` 1 is the account owner, written as ``"Me"`` (pass ``--me Me``); otherwise
  ``talker`` (PyWxDump: a WeChat ID, in a group the member's; WeFlow: the display name), else the
  chat. WeFlow writes your own display name as the ``talker`` of your messages: it becomes a name
  of "Me" for the anonymizer (``attrs["aliases"]``), so it is replaced inside messages too.
- chat: ``room_name``; without it (WeFlow) the file name, less WeFlow's 私聊_/群聊_ prefix.
- ``CreateTime``: local time as written (``2024/10/4 11:42``); an ISO time with ``Z`` or an offset
  (WeFlow writes UTC, ``2024-10-04T03:42:00.000Z``) or epoch seconds -> this machine's local time.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path


from twinlib.data import ExportError
from twinlib.data._common import csv_rows, epoch_to_local, pandas_time, read_text, to_frame, warn_skipped

ME = "Me"
REQUIRED = ("type_name", "is_sender", "talker", "msg", "CreateTime")
_LAYOUT = ("export with PyWxDump (CSV: id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime) "
           "or WeFlow (WeClone CSV: id,MsgSvrID,type_name,is_sender,talker,msg,src,CreateTime).")

_TEXT = {"文本", "引用回复", "text"}
_STICKER = {"动画表情", "表情", "sticker"}
_MEDIA = {"图片", "视频", "语音", "文件", "位置", "名片", "分享卡片", "卡片式链接", "小程序", "音乐", "图文",
          "视频号", "直播", "链接", "分享", "位置共享", "image", "video", "voice", "file", "location"}
_CALL = {"语音通话", "视频通话", "音视频通话", "通话"}
_SYSTEM = {"系统通知", "拍一拍", "群公告", "系统消息", "邀请", "撤回消息"}
_QUOTE_TAIL = re.compile(r"\s*\[引用\]\(.*$", re.S)


def sniff(path: Path, head: str) -> bool:
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    cols = {c.strip().strip('"') for c in first.split(",")}
    return {"type_name", "is_sender", "talker", "msg"} <= cols


def _kind(type_name: str, msg: str) -> str:
    if type_name in _TEXT:
        return "text"
    if type_name in _STICKER:
        return "sticker"
    if type_name in _MEDIA:
        return "media"
    if type_name in _CALL:
        return "call"
    if type_name in _SYSTEM and ("revokemsg" in msg or "撤回" in msg):
        return "deleted"  # "... recalled a message"
    if type_name in _SYSTEM:
        return "system"
    return "other"


_ZONED = re.compile(r"\d[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$")


def _time(value: str) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return epoch_to_local(value, unit="ms" if len(value) > 11 else "s")
    if _ZONED.search(value):  # WeFlow's UTC times: an instant, shown in this machine's local time
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone().replace(tzinfo=None)
        except ValueError:
            pass
    for fmt in ("%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    return pandas_time(value)


def _chat_from_file(path: Path) -> str:
    """WeFlow names a file 私聊_<name>.csv or 群聊_<name>.csv."""
    stem = path.stem
    for prefix in ("私聊_", "群聊_"):
        if stem.startswith(prefix) and len(stem) > len(prefix):
            return stem[len(prefix):]
    return stem


def read(path: Path):
    path = Path(path)
    content = read_text(path, "WeChat CSV", gbk=True,
                        hint="pass the CSV as PyWxDump or WeFlow wrote it (UTF-8), or save it as UTF-8.")
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = [c.strip() for c in reader.fieldnames or []]
    except csv.Error as e:
        raise ExportError(path, f"the CSV header is malformed ({e}).", line=1, hint=_LAYOUT) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ExportError(path, f"the WeChat CSV has no column(s) {', '.join(missing)}.", line=1, hint=_LAYOUT)
    weflow = "room_name" not in header  # WeFlow's talker is a display name, yours on your messages
    reader.fieldnames = header
    rows, bad = [], []
    own_names: set[str] = set()
    default_chat = _chat_from_file(path)
    for line, rec in csv_rows(path, reader):
        type_name = (rec.get("type_name") or "").strip()
        msg = rec.get("msg") or ""
        kind = _kind(type_name, msg)
        if type_name == "引用回复":
            msg = _QUOTE_TAIL.sub("", msg)
        elif kind in ("system", "deleted"):
            msg = re.sub(r"<[^<>]+>", "", msg).strip()
        if kind == "text" and not msg.strip():
            continue
        ts = _time(rec.get("CreateTime"))
        if ts is None:
            bad.append(line)
            continue
        chat = (rec.get("room_name") or "").strip() or default_chat
        talker = (rec.get("talker") or "").strip()
        if str(rec.get("is_sender") or "").strip() == "1":
            sender = ME
            if weflow and talker and talker not in (ME, "我"):
                own_names.add(talker)
        else:
            sender = talker or chat
        rows.append((chat, ts, sender, msg if kind in ("text", "system", "deleted") else "", kind))
    warn_skipped(path, len(bad), [f"line {n}" for n in bad], "rows with an unreadable CreateTime")
    out = to_frame(rows)
    if own_names:
        out.attrs["aliases"] = {name: ME for name in sorted(own_names)}
    return out
