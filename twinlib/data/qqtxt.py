"""QQ chats as text: the classic QQ export (PC QQ, *消息管理器 → 导出消息记录* as ``.txt``) and the TXT
export of qq-chat-exporter (shuakami/qq-chat-exporter, "QCE").

Classic QQ (UTF-8 with a BOM, UTF-16 in old versions, GBK when re-saved: detected)::

    消息记录（此消息记录为文本格式，不支持重新导入）

    ================================================================
    消息分组:我的好友
    ================================================================
    消息对象:张三
    ================================================================

    2016-03-21 20:14:42 张三
    你好啊

    2019-09-23 8:43:38 PM 【管理员】骰娘(87200175)

A header line is a date, a time (24 h, or 12 h with AM/PM or 上午/下午) and the sender: in a group,
the nickname followed by ``(QQ number)`` or ``<e-mail>``, perhaps after a title in 【】; the message
follows on the next lines. An export of several chats has one ``消息对象:`` section each.

QCE TXT (``[QQChatExporter V5 / …]`` at the top, ``聊天名称: X`` in the header)::

    Alice (PM):
    时间: 2024-01-01 00:01:40
    内容: Anyone seen the build break?
    资源: 1 个文件
      - image: screenshot.png

- sender: the nickname as shown (titles, QQ numbers and addresses dropped). Neither export marks
  your own messages: pass your QQ nickname as ``--me``. 系统消息 headers are ``system`` with no sender.
- kinds: a message that is only ``[图片]``/``[语音]``/``[视频]``/``[文件]`` (QCE: ``[图片: x]``, ``[语音 7秒]``,
  ``[文件: x]``, ``[…消息]``) is ``media``; ``[表情]``/``[表情消息]`` ``sticker``; "…撤回了一条消息" ``deleted``;
  QCE's ``[系统消息]`` ``system`` and ``[无文本内容]`` ``other``. Such placeholders inside a text are removed,
  as is QCE's quoted ``[回复 X: …]`` line; face codes ``[[微笑]]`` become ``[微笑]``.
- time: local time as written.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import read_text, to_frame, warn_skipped

_CLASSIC_HEAD = "消息记录（此消息记录为文本格式"
_QCE_HEAD = re.compile(r"\[QQChatExporter|QQ聊天记录导出文件")
_HEADER = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2}) (\d{1,2}:\d{2}:\d{2})(?: ?([AaPp][Mm]|上午|下午))? (.+?)\s*$")
_ID_TAIL = re.compile(r"\s*(?:\((\d{4,12})\)|（(\d{4,12})）|<([^<>]+)>)$")
_TITLES = re.compile(r"^(?:【[^】]*】\s*)+")
_SECTION = re.compile(r"^消息(?:分组|对象)\s*[:：](.*)$")
_PLACE = re.compile(r"\[(?:图片|表情|语音|视频|文件|闪照)\]")
_MEDIA_ONLY = re.compile(r"^(?:\[(?:图片|语音|视频|文件|闪照)(?:[:：][^\]]*|\s*\d+秒)?\]|\[[^\[\]]*消息\])$")
_QCE_PLACE = re.compile(r"\[(?:图片|文件|视频|语音)(?:[:：][^\]]*|\s*\d+秒)?\]")
_STICKER = re.compile(r"^\[(?:表情|表情消息|动画表情|[^\[\]]{1,8}表情)\]$")
_FACE = re.compile(r"\[\[([^\[\]]{1,10})\]\]")
_RECALL = re.compile(r"撤回了一条消息")
_QCE_SENDER = re.compile(r"^(?:\[[^\]]*\]\s*)?(.+):$")
_QCE_TIME = re.compile(r"^时间: (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})$")
_QCE_META = re.compile(r"^(?:资源: \d+ 个文件|  - [^:]+: .*|提及: .*|回复: .*|类型: .*)$")
_QCE_REPLY = re.compile(r"^\[回复 [^\n]*\]\n?")  # the quoted line (it may hold brackets itself)


def sniff(path: Path, head: str) -> bool:
    head = head.lstrip("\ufeff")
    if head.startswith(_CLASSIC_HEAD) or _QCE_HEAD.search(head[:2000]):
        return True
    lines = [ln for ln in head.replace("\r", "").split("\n")[:60] if ln.strip()]
    # an excerpt without the banner: several header lines of the classic layout with QQ numbers
    return sum(bool(_HEADER.match(ln) and _ID_TAIL.search(ln)) for ln in lines) >= 2


def _kind_and_text(body: str) -> tuple[str, str]:
    body = _FACE.sub(r"[\1]", body.strip())
    if _RECALL.search(body):
        return "deleted", body
    if _STICKER.match(body):
        return "sticker", ""
    if _MEDIA_ONLY.match(body):
        return "media", ""
    text = _QCE_PLACE.sub("", _PLACE.sub("", body)).strip()
    return ("text", text) if text else ("media", "")


def _classic_time(date: str, clock: str, half: str | None) -> datetime | None:
    try:
        ts = datetime.strptime(f"{date} {clock}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    if half:
        pm = half.lower() == "pm" or half == "下午"
        hour = ts.hour % 12 + (12 if pm else 0)
        ts = ts.replace(hour=hour)
    return ts


def _sender(raw: str) -> str:
    name = _TITLES.sub("", raw).strip()
    stripped = _ID_TAIL.sub("", name).strip()
    return stripped or name


def _read_classic(path: Path, lines: list[str]):
    chat = path.stem
    rows, bad = [], []
    current = None  # [chat, ts, sender, body lines, line number]

    def flush():
        if current is None:
            return
        body = "\n".join(current[3]).strip("\n")
        if not body.strip():
            return
        kind, text = _kind_and_text(body)
        sender = current[2]
        if sender == "系统消息":
            kind, sender = ("deleted" if kind == "deleted" else "system"), ""
        rows.append((current[0], current[1], sender, text if kind in ("text", "system", "deleted") else "", kind))

    for n, line in enumerate(lines, start=1):
        section = _SECTION.match(line.strip())
        if section or line.startswith("=" * 20) or line.startswith(_CLASSIC_HEAD):
            flush()
            current = None
            if section and line.strip().startswith("消息对象"):
                chat = section.group(1).strip() or chat
            continue
        m = _HEADER.match(line)
        if m:
            flush()
            ts = _classic_time(m.group(1), m.group(2), m.group(3))
            if ts is None:
                bad.append(n)
                current = None
                continue
            current = [chat, ts, _sender(m.group(4)), [], n]
        elif current is not None:
            current[3].append(line)
    flush()
    return rows, bad


def _read_qce(path: Path, lines: list[str]):
    chat = next((ln.split(":", 1)[1].strip() for ln in lines[:30] if ln.startswith("聊天名称:")), "") or path.stem
    starts = [i - 1 for i, ln in enumerate(lines) if i and _QCE_TIME.match(ln) and _QCE_SENDER.match(lines[i - 1])]
    footer = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() == "导出完成"), len(lines))
    footer = footer - 1 if footer < len(lines) and lines[footer - 1].startswith("=====") else footer
    rows, bad = [], []
    for k, s in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else footer
        sender = _QCE_SENDER.match(lines[s]).group(1).strip()
        ts = datetime.strptime(_QCE_TIME.match(lines[s + 1]).group(1), "%Y-%m-%d %H:%M:%S")
        body = lines[s + 2:end]
        while body and (not body[-1].strip() or _QCE_META.match(body[-1])):
            body.pop()
        if not body or not body[0].startswith("内容: "):
            bad.append(s + 1)
            continue
        content = "\n".join([body[0][len("内容: "):]] + body[1:])
        content = _QCE_REPLY.sub("", content)
        if content.strip() == "[系统消息]":
            rows.append((chat, ts, "", "", "system"))
            continue
        if content.strip() == "[无文本内容]":
            rows.append((chat, ts, sender, "", "other"))
            continue
        kind, text = _kind_and_text(content)
        rows.append((chat, ts, sender, text if kind in ("text", "deleted") else "", kind))
    return rows, bad


def read(path: Path):
    path = Path(path)
    content = read_text(path, "QQ export", gbk=True, hint="pass the .txt exactly as QQ or qq-chat-exporter wrote it.")
    lines = content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if _QCE_HEAD.search("\n".join(lines[:10])):
        rows, bad = _read_qce(path, lines)
        where = "message header"
    else:
        rows, bad = _read_classic(path, lines)
        where = "header line"
    if not rows and not bad:
        raise ExportError(path, "no QQ message was found in this text file.",
                          hint="pass the .txt that QQ's message manager (or qq-chat-exporter) exported.")
    warn_skipped(path, len(bad), [f"line {n}" for n in bad], f"messages with an unreadable {where}")
    return to_frame(rows)
