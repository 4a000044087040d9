"""WeChat chats exported as CSV by PyWxDump (the layout WeClone reads):
``id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime``.

- ``type_name`` 文本 (text) and 引用回复 (quote reply; the quoted ``[引用]...`` tail is dropped)
  -> ``text``; 图片/视频/语音/文件/位置/名片/分享... -> ``media``; 动画表情 -> ``sticker``;
  系统通知/拍一拍... -> ``system`` (撤回 "recalled" -> ``deleted``); 语音通话/视频通话 -> ``call``;
  forwarded chat records, transfers, red packets and unknown types -> ``other``.
- sender: ``is_sender`` 1 is the account owner, written as ``"Me"`` (pass ``--me Me``); otherwise
  ``talker`` (in a group, the member), else the ``room_name``.
- chat: ``room_name``.
- ``CreateTime``: local time as written (``2024/10/4 11:42``), or epoch seconds -> this machine's
  local time.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path


from twinlib.data import ExportError
from twinlib.data._common import epoch_to_local, pandas_time, to_frame, warn_skipped

ME = "Me"
REQUIRED = ("type_name", "is_sender", "talker", "room_name", "msg", "CreateTime")

_TEXT = {"文本", "引用回复", "text"}
_STICKER = {"动画表情", "表情"}
_MEDIA = {"图片", "视频", "语音", "文件", "位置", "名片", "分享卡片", "卡片式链接", "小程序", "音乐", "图文",
          "视频号", "直播", "链接", "分享", "位置共享"}
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


def _time(value: str) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return epoch_to_local(value, unit="ms" if len(value) > 11 else "s")
    for fmt in ("%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    return pandas_time(value)


def read(path: Path):
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
        with fh:
            reader = csv.DictReader(fh)
            header = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ExportError(path, f"the WeChat CSV has no column(s) {', '.join(missing)}.", line=1,
                                  hint="export with PyWxDump (CSV); the header must be "
                                  "id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime.")
            reader.fieldnames = header
            rows, bad = [], []
            start = reader.line_num + 1
            for rec in reader:
                line, start = start, reader.line_num + 1
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
                chat = (rec.get("room_name") or "").strip() or path.stem
                if str(rec.get("is_sender") or "").strip() == "1":
                    sender = ME
                else:
                    sender = (rec.get("talker") or "").strip() or chat
                rows.append((chat, ts, sender, msg if kind in ("text", "system", "deleted") else "", kind))
    except UnicodeDecodeError as e:
        raise ExportError(path, f"the CSV is not UTF-8 text (byte {e.start}).",
                          hint="save the CSV as UTF-8 (PyWxDump writes UTF-8; Excel may have re-saved it).") from None
    except csv.Error as e:
        raise ExportError(path, f"the CSV is malformed ({e}).", hint="export the chat again.") from None
    warn_skipped(path, len(bad), [f"line {n}" for n in bad], "rows with an unreadable CreateTime")
    return to_frame(rows)
