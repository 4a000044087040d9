"""E-mail in mbox format (Gmail/Google Takeout, Thunderbird, Apple Mail export).

Mails are split at ``From `` lines (read-only, one mail in memory at a time) and parsed with the
standard library's ``email`` package (``policy.default``), so MIME, quoted-printable/base64 and
charsets are decoded there.

- text: the ``text/plain`` body, else the ``text/html`` body turned into text. mbox's ``>From``
  escaping is undone, then what the sender did not write is cut: the quoted reply (``> `` lines and
  the "On <date>, <name> wrote:" line before them, Outlook's "-----Original Message-----" or
  "From:/Sent:" block, HTML ``<blockquote>``) and the signature after a ``-- `` line.
- sender: the display name in ``From`` (else the address).
- chat: the subject without ``Re:``/``Fwd:``/``AW:``/``WG:``... prefixes (a thread), or "(no subject)".
- timestamp: the ``Date`` header's clock time as written; its UTC offset is dropped (naive local
  time as the export states it). Without ``Date``, the mbox ``From `` line's date.
- a mail with attachments and no text is ``media``.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import email.utils
import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import to_frame, warn_skipped

_HEADER_RE = re.compile(r"^(?:From|Date|Subject|To|Message-ID|Received|Return-Path|Delivered-To|X-[\w-]+):",
                        re.M | re.I)
_PREFIX_RE = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|tr|rif|antw|odp|res|enc|r)\s*(?:\[\d+\])?\s*:\s*)+",
                        re.I)
_ATTRIBUTION_RE = re.compile(
    r"^(?:On\b.{0,300}\bwrote|Am\b.{0,300}\bschrieb|Le\b.{0,300}\ba écrit|El\b.{0,300}\bescribió"
    r"|Il\b.{0,300}\bha scritto|Op\b.{0,300}\bschreef)\s*:\s*$", re.I | re.S)
_OUTLOOK_RE = re.compile(r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
                         r"Forwarded message|Weitergeleitete Nachricht)\s*-{2,}\s*$", re.I)
_OUTLOOK_FROM_RE = re.compile(r"^\s*\*?(?:From|Von|De|Da)\s*:\*?\s")
_OUTLOOK_NEXT_RE = re.compile(r"^\s*\*?(?:Sent|Date|Gesendet|Envoyé|Inviato|To|An|À|Subject|Betreff)\s*:", re.I)


def sniff(path: Path, head: str) -> bool:
    if head.startswith("From ") and _HEADER_RE.search(head[:8192]):
        return True
    return Path(path).suffix.lower() in (".mbox", ".mbx") and bool(_HEADER_RE.search(head[:8192]))


class _HTMLText(HTMLParser):
    """Tags out, line structure kept; quoted parts (``<blockquote>``, Gmail/Thunderbird quote divs) dropped."""

    _LINE = {"div", "li", "tr", "table", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"}
    _PARA = {"p"}
    _VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
    _SKIP = {"style", "script", "head", "title", "blockquote"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[tuple[str, bool]] = []
        self.skip = 0

    def _newline(self, n: int = 1):
        text = "".join(self.out[-3:])
        have = len(text) - len(text.rstrip("\n")) if text.strip() else n
        self.out.append("\n" * max(0, n - have))

    def handle_starttag(self, tag, attrs):
        if tag == "br":
            self.out.append("\n")
        elif tag in self._LINE or tag in self._PARA:
            self._newline()
        if tag in self._VOID:
            return
        cls = dict(attrs).get("class") or ""
        skipping = tag in self._SKIP or (tag == "div" and ("gmail_quote" in cls or "moz-cite-prefix" in cls))
        self.stack.append((tag, skipping))
        self.skip += skipping

    def handle_startendtag(self, tag, attrs):
        if tag == "br":
            self.out.append("\n")

    def handle_endtag(self, tag):
        if any(t == tag for t, _ in self.stack):
            while self.stack:
                t, skipping = self.stack.pop()
                self.skip -= skipping
                if t == tag:
                    break
        if tag in self._PARA:
            self._newline(2)
        elif tag in self._LINE:
            self._newline()

    def handle_data(self, data):
        if self.skip <= 0:
            self.out.append(re.sub(r"[ \t\r\n\f\xa0]+", " ", data))

    def text(self) -> str:
        lines = [ln.strip() for ln in "".join(self.out).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(markup: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(markup)
        parser.close()
    except Exception:  # html.parser is lenient; anything left is not worth failing the import
        pass
    return parser.text()


def strip_reply(text: str) -> str:
    """Keep what the sender wrote: cut quoted replies, forwarded originals and the signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # mbox ">From " escaping (mboxrd: one level of ">" was added)
    lines = [ln[1:] if re.match(r"^>+From ", ln) else ln for ln in lines]
    kept: list[str] = []
    for i, ln in enumerate(lines):
        if ln in ("-- ", "--"):  # signature delimiter
            break
        if _OUTLOOK_RE.match(ln) or (ln.strip() == "_" * len(ln.strip()) and len(ln.strip()) >= 10):
            break
        if _OUTLOOK_FROM_RE.match(ln) and any(_OUTLOOK_NEXT_RE.match(x) for x in lines[i + 1:i + 4]):
            break
        # attribution line(s) right before a quote: "On Mon, ... <x@y> wrote:" (maybe wrapped)
        for span in (1, 2, 3):
            chunk = " ".join(x.strip() for x in lines[i:i + span])
            after = next((x for x in lines[i + span:i + span + 2] if x.strip()), "")
            if _ATTRIBUTION_RE.match(chunk) and (after.startswith(">") or not after):
                return _tidy(kept)
        if ln.startswith(">"):
            continue
        kept.append(ln)
    return _tidy(kept)


def _tidy(lines: list[str]) -> str:
    text = "\n".join(ln.rstrip() for ln in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _body(msg) -> tuple[str, bool]:
    """(text, has attachments)"""
    has_attachments = any(True for _ in msg.iter_attachments()) if msg.is_multipart() else False
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return "", has_attachments
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", errors="replace")
    if not isinstance(content, str):
        return "", has_attachments
    if part.get_content_subtype() == "html":
        content = html_to_text(content)
    return strip_reply(content), has_attachments


def normalize_subject(subject: str) -> str:
    subject = re.sub(r"\s+", " ", subject or "").strip()
    subject = _PREFIX_RE.sub("", subject).strip()
    return subject or "(no subject)"


def _sender(msg) -> str:
    raw = str(msg.get("From", "") or "")
    name, addr = email.utils.parseaddr(raw)
    return name.strip().strip('"') or addr or raw.strip() or "unknown sender"


def _date(msg, from_line: str) -> datetime | None:
    raw = msg.get("Date")
    if raw is not None:
        dt = getattr(raw, "datetime", None)
        if dt is None:
            try:
                dt = email.utils.parsedate_to_datetime(str(raw))
            except (TypeError, ValueError, IndexError):
                dt = None
        if dt is not None:
            return dt.replace(tzinfo=None)
    m = re.search(r"((?:[A-Z][a-z]{2} ){2}[ \d]\d \d{1,2}:\d{2}:\d{2} \d{4})", from_line)
    if m:
        try:
            return datetime.strptime(re.sub(r" +", " ", m.group(1)), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            return None
    return None


def _split(fh):
    """Yield (line number, "From " line, message bytes) of an mbox opened for reading in binary.

    A mail starts at a "From " line at the top of the file or after an empty line (the mbox
    convention; a body's own "From " lines are escaped as ">From " by well-behaved writers).
    """
    from_line, start, buf, prev_blank = None, 0, [], True
    for lineno, line in enumerate(fh, start=1):
        if line.startswith(b"From ") and prev_blank:
            if from_line is not None:
                yield start, from_line, b"".join(buf)
            from_line, start, buf = line.decode("ascii", errors="replace").rstrip("\r\n"), lineno, []
        elif from_line is not None:
            buf.append(line)
        prev_blank = not line.strip()
    if from_line is not None:
        yield start, from_line, b"".join(buf)


def read(path: Path):
    path = Path(path)
    rows, skipped, seen = [], [], 0
    parser = email.parser.BytesParser(policy=email.policy.default)
    with open(path, "rb") as fh:
        for lineno, from_line, raw in _split(fh):
            seen += 1
            try:
                msg = parser.parsebytes(raw.replace(b"\r\n", b"\n"))
                text, attachments = _body(msg)
                subject = str(msg.get("Subject", "") or "")
                ts = _date(msg, from_line)
                sender = _sender(msg)
            except Exception as e:  # one malformed mail must not stop the whole mailbox
                skipped.append(f"line {lineno} ({type(e).__name__})")
                continue
            if ts is None:
                skipped.append(f"line {lineno}")
                continue
            if text.strip():
                kind = "text"
            elif attachments:
                kind = "media"
            else:
                continue
            rows.append((normalize_subject(subject), ts, sender, text, kind))
    if not seen:
        raise ExportError(path, "no e-mails found: an mbox file starts each mail with a 'From ' line.",
                          line=1, hint="pass the .mbox file exported by your mail program (or Google Takeout).")
    warn_skipped(path, len(skipped), skipped, "mails without a readable date or body")
    return to_frame(rows)
