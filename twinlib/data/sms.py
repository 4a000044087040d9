"""Android text messages saved by "SMS Backup & Restore" (``sms-<date>.xml``, root ``<smses>``).

- ``<sms address= date= type= body= contact_name=>``: ``type`` 1 received, 2 sent (4 outbox and
  6 queued count as sent; 3 drafts and 5 failed are skipped).
- ``<mms date= msg_box= address= contact_name=>`` with ``<parts><part ct= text= data=>`` and
  ``<addrs><addr address= type=>``: ``msg_box`` 1 received, 2 sent (4 outbox). The text is the
  ``text/plain`` parts; an MMS with only pictures/video/audio/files is ``media``. Attachment
  ``data`` (base64) is never read into the table.
- Sender: the phone's owner is ``"Me"`` (pass ``--me Me``); a received message is from
  ``contact_name`` (or the number when the backup says ``(Unknown)``); in a group MMS the sender is
  the ``from`` address (type 137), named after that number's contact where the backup knows it.
- chat: ``contact_name``, else the address (group MMS: ``~``-joined numbers or an RCS group id).
- ``date`` (epoch milliseconds, UTC) -> naive local time of this machine. (``readable_date`` is the
  phone's clock but localized, optional and not always parseable, so it is not used.)

The file is parsed incrementally (large backups with photos are hundreds of MB). Emoji written as
UTF-16 surrogate pairs (``&#55357;&#56832;``, which XML parsers reject) are repaired on the fly.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

from twinlib.data import ExportError
from twinlib.data._common import SkippedLinesWarning, epoch_to_local, to_frame, warn_skipped

ME = "Me"
_SENT_SMS = {"2", "4", "6"}
_RECEIVED_SMS = {"1"}
_SENT_MMS = {"2", "4"}
_RECEIVED_MMS = {"1"}
_UNKNOWN = {"", "(Unknown)", "null", "Unknown"}
_PAIR_RE = re.compile(rb"&#(5[56]\d{3});&#(5[67]\d{3});")
_LONE_RE = re.compile(rb"&#(5[5-7]\d{3});")


def sniff(path: Path, head: str) -> bool:
    return "<smses" in head[:4096] or ("<sms " in head and "address=" in head and "<?xml" in head[:200])


class _SurrogateFixingReader:
    """File wrapper that turns ``&#55357;&#56832;`` (UTF-16 surrogates) into ``&#128512;``."""

    def __init__(self, fh):
        self.fh = fh
        self.carry = b""

    @staticmethod
    def _pair(m: re.Match) -> bytes:
        hi, lo = int(m.group(1)), int(m.group(2))
        if 0xD800 <= hi <= 0xDBFF and 0xDC00 <= lo <= 0xDFFF:
            return b"&#%d;" % (0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        return m.group(0)

    @staticmethod
    def _lone(m: re.Match) -> bytes:
        return b"&#65533;" if 0xD800 <= int(m.group(1)) <= 0xDFFF else m.group(0)

    def read(self, n: int = -1) -> bytes:
        while True:
            chunk = self.fh.read(n if n and n > 0 else -1)
            data = self.carry + chunk
            self.carry = b""
            if chunk:  # keep a reference that may straddle the chunk end for the next read
                cut = data.find(b"&", max(0, len(data) - 16))
                if cut >= 0:
                    data, self.carry = data[:cut], data[cut:]
                if not data:
                    continue
            return _LONE_RE.sub(self._lone, _PAIR_RE.sub(self._pair, data))


def _digits(address: str) -> str:
    return re.sub(r"\D", "", address or "")


def _name(contact: str | None, address: str | None) -> str:
    contact = (contact or "").strip()
    if contact and contact not in _UNKNOWN:
        return contact
    return (address or "").strip() or "unknown number"


def read(path: Path):
    path = Path(path)
    raw_rows = []  # (chat, ts, sender or ("addr", number), text, kind)
    known: dict[str, str] = {}  # number -> contact name, from one-to-one threads
    no_time: list[str] = []
    count = 0
    with open(path, "rb") as fh:
        try:
            root = None
            for event, elem in ET.iterparse(_SurrogateFixingReader(fh), events=("start", "end")):
                if event == "start":
                    if root is None:
                        root = elem
                        if elem.tag not in ("smses", "allsms"):
                            raise ExportError(path, f"the XML root is <{elem.tag}>, not <smses>.",
                                              hint="pass the messages backup (sms-*.xml) of SMS Backup & "
                                              "Restore, not the call log.")
                    continue
                if elem.tag not in ("sms", "mms"):
                    continue
                count += 1
                a = elem.attrib
                address = a.get("address", "")
                contact = a.get("contact_name")
                if contact and contact not in _UNKNOWN and address and "~" not in address and "@" not in address \
                        and "," not in contact:
                    known.setdefault(_digits(address), contact)
                chat = _name(contact, address)
                date = a.get("date")
                unit = "ms" if date and len(date.split(".")[0]) > 11 else "s"
                ts = epoch_to_local(date, unit=unit)
                if elem.tag == "sms":
                    box = a.get("type", "")
                    text, kind = a.get("body") or "", "text"
                    if box in _SENT_SMS:
                        sender = ME
                    elif box in _RECEIVED_SMS:
                        sender = chat
                    else:
                        sender = None
                    if text == "null":
                        text = ""
                else:
                    box = a.get("msg_box", "")
                    texts, media = [], False
                    for part in elem.iter("part"):
                        ct = (part.get("ct") or "").lower()
                        if ct == "text/plain":
                            t = part.get("text")
                            if t and t != "null":
                                texts.append(t)
                        elif ct != "application/smil":
                            media = True
                    text = "\n".join(texts)
                    kind = "text" if text.strip() else ("media" if media else "")
                    addrs = [(ad.get("address") or "", ad.get("type")) for ad in elem.iter("addr")]
                    group = "~" in address or "@" in address or len({_digits(x) for x, _ in addrs}) > 2
                    from_addr = next((x for x, t in addrs if t == "137" and x), None)
                    if box in _SENT_MMS:
                        sender = ME
                    elif box in _RECEIVED_MMS:
                        # in a group the backup's contact_name is the group; the sender is the "from"
                        sender = ("addr", from_addr) if group and from_addr else chat
                    else:
                        sender = None
                elem.clear()
                if root is not None:
                    root.clear()
                if sender is None or not kind or (kind == "text" and not text.strip()):
                    continue
                if ts is None:
                    no_time.append(f"message {count}")
                    continue
                raw_rows.append((chat, ts, sender, text, kind))
        except LookupError as e:  # expat does not know the encoding the XML declaration names
            raise ExportError(path, f"the XML declares an encoding Python does not know ({e}).", line=1,
                              hint="SMS Backup & Restore writes UTF-8; make a new backup, or fix the "
                              "encoding=\"...\" in the first line.") from None
        except ET.ParseError as e:
            line, col = e.position
            with open(path, "rb") as f2:
                total_lines = sum(1 for _ in f2)
            at_end = line >= total_lines
            if at_end and raw_rows:
                # an interrupted backup: keep what is there, say what is missing
                warnings.warn(f"{path}: the backup ends early (line {line}); read {len(raw_rows)} messages "
                              "before that, the rest is missing. Copy the complete backup from the phone "
                              "to read everything.", SkippedLinesWarning,
                              stacklevel=2)
            else:
                raise ExportError(path, f"the XML is broken ({str(e).split(':')[0]}, column {col}).", line=line,
                                  hint=("the file looks cut off; copy the backup from the phone again."
                                        if at_end else "the backup file is damaged; make a new backup with "
                                        "SMS Backup & Restore.")) from None
    rows = []
    for chat, ts, sender, text, kind in raw_rows:
        if isinstance(sender, tuple):
            sender = known.get(_digits(sender[1])) or sender[1]
        rows.append((chat, ts, sender, text, kind))
    warn_skipped(path, len(no_time), no_time, "messages without a date")
    return to_frame(rows)
