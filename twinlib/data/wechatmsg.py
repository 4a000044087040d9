"""WeChat chats exported as CSV by WeChatMsg (留痕, LC044/WeChatMsg): one file per chat,
``聊天记录/<name>/<name>_utf8.csv``, UTF-8 with a BOM (GBK when re-saved on Chinese Windows: detected),
with the header ``localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime,Remark,NickName,Sender``.

WeChatMsg writes the first nine columns from WeChat's own message table; the last three only in
group chats, where they name the member who wrote (their remark, nickname and WeChat ID; on your
own messages, yours). One-to-one chats have no name column at all: the chat is the file name.

- ``Type`` (WeChat's message type) 1 text; 3 image, 34 voice, 42 contact card, 43 video, 48 location
  -> ``media``; 47 -> ``sticker``; 49 (app messages) by ``SubType``: 57 quote reply -> ``text`` when
  WeChatMsg kept its text, 6 file, 5 link, 3 music, 33/36 mini program -> ``media``, 19 forwarded
  chat, 2000 transfer, 2001 red packet and the rest -> ``other``; 50 -> ``call``; 10000/10002
  system notices -> ``system`` (a recalled message, 撤回, -> ``deleted``); anything else ``other``.
- sender: ``IsSender`` 1 is the account owner, written as ``"Me"`` (pass ``--me Me``), as the other
  WeChat readers do; your remark and nickname in a group's rows become names of "Me" for the
  anonymizer (``attrs["aliases"]``). Others: ``Remark``, else ``NickName``, else ``Sender`` (the
  WeChat ID); in a one-to-one chat, the chat's name. A member's other names are aliases too.
- time: ``StrTime`` (local time as WeChatMsg wrote it), else ``CreateTime`` (epoch seconds ->
  this machine's local time).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import csv_rows, epoch_to_local, read_text, to_frame, warn_skipped

ME = "Me"
COLUMNS = ("localId", "TalkerId", "Type", "SubType", "IsSender", "CreateTime", "Status", "StrContent", "StrTime",
           "Remark", "NickName", "Sender")
REQUIRED = ("Type", "IsSender", "CreateTime", "StrContent")
_LAYOUT = ("export the chat with WeChatMsg (留痕) as CSV; the header must be "
           "localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime,Remark,NickName,Sender.")
_MEDIA_TYPES = {3, 34, 42, 43, 48}
_MEDIA_APPS = {3, 4, 5, 6, 33, 36, 51}
_TAGS = re.compile(r"<[^<>]+>|<!\[CDATA\[|\]\]>")
_REVOKE = re.compile(r"撤回|revokemsg")


def sniff(path: Path, head: str) -> bool:
    first = head.lstrip("\ufeff").split("\n", 1)[0]
    cols = {c.strip().strip('"') for c in first.split(",")}
    return {"localId", "TalkerId", "Type", "IsSender", "StrContent"} <= cols


def _int(value) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _kind(type_: int | None, sub: int | None, text: str) -> str:
    if type_ == 1:
        return "text"
    if type_ in _MEDIA_TYPES:
        return "media"
    if type_ == 47:
        return "sticker"
    if type_ == 49:
        if sub == 57:
            return "text" if text.strip() else "other"
        return "media" if sub in _MEDIA_APPS else "other"
    if type_ == 50:
        return "call"
    if type_ in (10000, 10002):
        return "deleted" if _REVOKE.search(text) else "system"
    return "other"


def _time(rec: dict) -> datetime | None:
    written = (rec.get("StrTime") or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M"):
        try:
            return datetime.strptime(written, fmt)
        except ValueError:
            pass
    stamp = (rec.get("CreateTime") or "").strip()
    return epoch_to_local(stamp, unit="ms" if len(stamp) > 11 else "s") if stamp.isdigit() else None


def _chat_name(path: Path) -> str:
    """WeChatMsg writes 聊天记录/<name>/<name>_utf8.csv."""
    return re.sub(r"_utf8$", "", path.stem) or path.parent.name


def read(path: Path):
    path = Path(path)
    content = read_text(path, "WeChatMsg CSV", gbk=True, hint="pass the CSV as WeChatMsg wrote it (UTF-8).")
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [c.strip() for c in next(reader, [])]
    except csv.Error as e:
        raise ExportError(path, f"the CSV header is malformed ({e}).", line=1, hint=_LAYOUT) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ExportError(path, f"the WeChatMsg CSV has no column(s) {', '.join(missing)}.", line=1, hint=_LAYOUT)
    col = {name: i for i, name in enumerate(header)}
    chat = _chat_name(path)
    rows, bad, aliases = [], [], {}
    for line, rec_list in csv_rows(path, reader):
        if not any(x.strip() for x in rec_list):
            continue
        # one-to-one chats have 9 values a row: the name columns are missing, not empty
        rec = {name: (rec_list[i] if i < len(rec_list) else "") for name, i in col.items()}
        text = rec.get("StrContent") or ""
        kind = _kind(_int(rec.get("Type")), _int(rec.get("SubType")), text)
        if kind in ("system", "deleted"):
            text = _TAGS.sub("", text).replace("重新编辑", "").strip()
        elif kind != "text":
            text = ""
        if kind == "text" and not text.strip():
            continue
        ts = _time(rec)
        if ts is None:
            bad.append(line)
            continue
        names = [n for n in ((rec.get("Remark") or "").strip(), (rec.get("NickName") or "").strip()) if n]
        if str(rec.get("IsSender") or "").strip() == "1":
            sender = ME
            aliases.update({n: ME for n in names})
        elif kind in ("system", "deleted") and not names:
            sender = ""  # a notice in a group: nobody's message
        else:
            sender = names[0] if names else ((rec.get("Sender") or "").strip() or chat)
            aliases.update({n: sender for n in names[1:] if n != sender})
        rows.append((chat, ts, sender, text, kind))
    warn_skipped(path, len(bad), [f"line {n}" for n in bad], "rows with no readable StrTime or CreateTime")
    out = to_frame(rows)
    if aliases:
        out.attrs["aliases"] = aliases
    return out
