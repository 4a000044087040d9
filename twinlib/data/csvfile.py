"""Plain CSV, for any chat you can convert yourself: a header row with the columns
``timestamp,sender,text`` and optionally ``chat`` and ``kind`` (names are case-insensitive; the
delimiter may be ``,``, ``;`` or a tab; UTF-8).

- ``timestamp``: ISO 8601 (``2024-05-01 13:45`` or ``2024-05-01T13:45:10``) is best; other
  unambiguous forms pandas understands work too (month first when ambiguous). A UTC offset is
  dropped and the clock time kept. Plain numbers are epoch seconds/milliseconds -> local time.
- ``chat`` defaults to the file name without ``.csv``; ``kind`` defaults to ``text`` and must be one
  of ``text, media, system, deleted, call, sticker, other``.
- rows with an empty ``text`` and kind ``text`` are skipped.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path


from twinlib.data import KINDS, ExportError
from twinlib.data._common import csv_rows, epoch_to_local, pandas_time, read_text, to_frame

REQUIRED = ("timestamp", "sender", "text")
OPTIONAL = ("chat", "kind")
_FIX = ("the first row must name the columns, e.g. 'timestamp,sender,text' (optional: chat, kind); "
        "rename your columns to these names.")


def sniff(path: Path, head: str) -> bool:
    if Path(path).suffix.lower() in (".csv", ".tsv"):
        return True
    first = head.lstrip("\ufeff").split("\n", 1)[0].lower()
    return all(c in first for c in REQUIRED) and any(d in first for d in ",;\t")


def _delimiter(header_line: str) -> str:
    best, best_hits = ",", -1
    for d in (",", ";", "\t", "|"):
        names = {c.strip().strip('"').strip().lower() for c in header_line.split(d)}
        hits = sum(c in names for c in REQUIRED + OPTIONAL)
        if hits > best_hits or (hits == best_hits and header_line.count(d) > header_line.count(best)):
            best, best_hits = d, hits
    return best


def parse_time(value: str) -> datetime | None:
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit() and len(value) >= 9:
        return epoch_to_local(value, unit="ms" if len(value) > 11 else "s")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        pass
    return pandas_time(value)


def read(path: Path):
    path = Path(path)
    content = read_text(path, "CSV", hint="save the CSV as UTF-8 (in Excel: 'CSV UTF-8').")
    header_line = content.split("\n", 1)[0]
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=_delimiter(header_line))
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise ExportError(path, f"the header row is malformed ({e}).", line=1, hint=_FIX) from None
    if not header:
        raise ExportError(path, "the CSV has no header row.", line=1, hint=_FIX)
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        found = ", ".join(h.strip() for h in header if h.strip()) or "none"
        raise ExportError(path, f"the CSV has no column {', '.join(repr(m) for m in missing)} "
                          f"(found: {found}).", line=1, hint=_FIX)
    col = {c: names.index(c) for c in REQUIRED + OPTIONAL if c in names}
    default_chat = path.stem
    rows = []
    for line, rec in csv_rows(path, reader, hint="check the quotes around texts that contain the delimiter or line breaks."):
        if not any(x.strip() for x in rec):
            continue

        def get(c: str) -> str:
            i = col.get(c)
            return rec[i] if i is not None and i < len(rec) else ""

        raw_ts = get("timestamp")
        ts = parse_time(raw_ts)
        if ts is None:
            raise ExportError(path, f"the timestamp {raw_ts!r} could not be read.", line=line,
                              hint="write timestamps as ISO 8601, e.g. 2024-05-01 13:45:00.")
        kind = get("kind").strip().lower() or "text"
        if kind not in KINDS:
            raise ExportError(path, f"unknown kind {kind!r}.", line=line,
                              hint="use one of " + ", ".join(KINDS) + " (or leave it empty for text).")
        text = get("text")
        if kind == "text" and not text.strip():
            continue
        rows.append((get("chat").strip() or default_chat, ts, get("sender").strip(), text, kind))
    return to_frame(rows)
