"""Signal Desktop chats exported by signal-export (``sigexport``): ``<chat>/chat.md``.

Each message starts with ``[YYYY-MM-DD HH:MM(:SS)] Sender: text`` (older versions:
``[YYYY-MM-DD, HH:MM]``); lines without that header continue the message (line breaks kept).
The time is the local time signal-export wrote; your own messages have the sender ``Me``.

signal-export's decorations are taken apart again: the quoted message (``> ...`` lines before the
body) and the reactions line ``(- Name: 👍 -)`` are dropped, attachment links ``![name](path)`` /
``[name](./media/...)`` make an attachment-only message ``media``, a sticker ``(( 😀 ))`` alone is
``sticker``, ``(This message was deleted)`` is ``deleted`` and call lines ("Missed voice call",
"Outgoing call") are ``call``.

chat: the folder name for ``chat.md`` / ``index.md`` (signal-export names the folder after the
chat), else the file name without suffix.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import read_text, to_frame

HEADER_RE = re.compile(r"^\[(\d{4}-\d{2}-\d{2}),? (\d{1,2}:\d{2}(?::\d{2})?)\] (.*?): ?(.*)$")
_ATTACH_RE = re.compile(r"(?:!\[[^\]\n]*\]\([^)\n]*\)"  # ![photo.jpg](./media/photo.jpg)
                        r"|\[[^\]\n]*\]\((?:\./|\.\./)?(?:media|exported_stickers)/[^)\n]*\))[ \t]*")
_REACTIONS_RE = re.compile(r"\n?\(- .* -\)\s*$")
_STICKER_RE = re.compile(r"\n?\(\( (.*) \)\)\s*$")
_CALL_RE = re.compile(r"^(?:Incoming|Outgoing|Missed)(?: (?:voice|video|audio|group))? call(?: \(.*\))?$")
_DELETED = "(This message was deleted)"


def sniff(path: Path, head: str) -> bool:
    head = head.lstrip("\ufeff")
    # WhatsApp on iPhones in ISO-date locales also writes "[2021-05-02 13:03:12] Name: text", but
    # with U+200E marks (the encryption notice at the top, "omitted" media); signal-export has none.
    if "\u200e" in head:
        return False
    lines = [ln for ln in head.split("\n")[:50] if ln.strip()]
    if not lines or not HEADER_RE.match(lines[0]):
        return False
    return sum(1 for ln in lines if HEADER_RE.match(ln)) >= min(2, len(lines)) or len(lines) == 1


def _chat_name(path: Path) -> str:
    if path.stem.lower() in ("chat", "index") and path.parent.name:
        return path.parent.name
    return path.stem


def _body(raw: str) -> tuple[str, str]:
    text = _REACTIONS_RE.sub("", raw)
    sticker = None
    m = _STICKER_RE.search(text)
    if m:
        sticker = m.group(1)
        text = text[: m.start()]
    # a reply starts with the quoted message: "Name: " + blank line, "> ..." lines, blank line
    lines = text.split("\n")
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i > 0 and i < len(lines) and lines[i].startswith(">"):
        while i < len(lines) and (lines[i].startswith(">")):
            i += 1
        lines = lines[i:]
    text = "\n".join(lines)
    had_attachment = bool(_ATTACH_RE.search(text))
    if had_attachment:
        text = _ATTACH_RE.sub("", text)
    text = "\n".join(ln.rstrip() for ln in text.split("\n")).strip("\n").strip()
    if text == _DELETED:
        return "deleted", ""
    if _CALL_RE.match(text):
        return "call", text
    if text:
        return "text", text
    if sticker is not None:
        return "sticker", sticker
    if had_attachment:
        return "media", ""
    return "", ""


def read(path: Path):
    path = Path(path)
    content = read_text(path, hint="pass chat.md exactly as signal-export wrote it.")
    chat = _chat_name(path)
    rows = []
    current = None  # [timestamp, sender, lines]
    for lineno, line in enumerate(content.splitlines(), start=1):
        m = HEADER_RE.match(line)
        if m:
            if current:
                rows.append(current)
            date, clock, sender, first = m.groups()
            fmt = "%Y-%m-%d %H:%M:%S" if clock.count(":") == 2 else "%Y-%m-%d %H:%M"
            try:
                ts = datetime.strptime(f"{date} {clock}", fmt)
            except ValueError:
                raise ExportError(path, f"impossible date {date} {clock}.", line=lineno,
                                  hint="fix or delete that line; the file may have been edited.") from None
            current = [ts, sender, [first]]
        elif current is not None:
            current[2].append(line)
        elif line.strip():
            raise ExportError(path, "the first message has no '[YYYY-MM-DD HH:MM] Name:' header.", line=lineno,
                              hint="pass chat.md as signal-export wrote it (or format='signal' only for "
                              "such files).")
    if current:
        rows.append(current)
    out = []
    for ts, sender, lines in rows:
        kind, text = _body("\n".join(lines))
        if kind:
            out.append((chat, ts, sender, text, kind))
    return to_frame(out)
