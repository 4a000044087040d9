"""Small helpers shared by the reader modules (JSON loading, epoch times, row collection)."""

from __future__ import annotations

import csv
import json
import warnings
from datetime import datetime
from pathlib import Path

import pandas as pd

import twinlib.data as _data
from twinlib.data import COLUMNS, ExportError


class SkippedLinesWarning(UserWarning):
    """A reader skipped lines it could not read; the message gives the count and the first line numbers.

    Defined here (not in ``twinlib/data/__init__.py``) so readers can import it without a cycle;
    ``twinlib.data`` re-exports it as ``twinlib.data.SkippedLinesWarning``.
    """


def read_text(path: Path, what: str = "file", hint: str = "pass the file exactly as the app exported it.",
              gbk: bool = False) -> str:
    """The file's text: UTF-8 (a BOM allowed), or UTF-16 with a byte order mark; with ``gbk=True``
    also GBK (read as its superset GB18030), which older Chinese Windows tools write, when the
    bytes are not UTF-8 but are plausible Chinese text in GBK (see :func:`decode_gbk`).

    Undecodable bytes become an :class:`ExportError` naming the byte offset (and line, for UTF-8).
    """
    raw = Path(path).read_bytes()
    utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
    try:
        return raw.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as e:
        text = decode_gbk(raw) if gbk and not utf16 else None
        if text is not None:
            return text
        also = " or GBK" if gbk and not utf16 else ""
        raise ExportError(path, f"the {what} is not {'UTF-16' if utf16 else 'UTF-8'}{also} text (byte {e.start}).",
                          line=None if utf16 else raw[: e.start].count(b"\n") + 1, hint=hint) from None


def decode_gbk(raw: bytes, partial: bool = False) -> str | None:
    """``raw`` decoded as GBK/GB18030 when that decodes without error and reads as Chinese text
    (most non-ASCII characters are among the 6,763 characters of GB2312, as in any Chinese text
    and unlike bytes of another encoding that happen to decode); else ``None``. ``partial``: the
    bytes may end inside a character (the head of a file)."""
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError as e:
        if not partial or e.start < len(raw) - 4:
            return None
        text = raw[: e.start].decode("gb18030", errors="strict")
    wide = [c for c in text if ord(c) > 127]
    if not wide:
        return None
    common = sum(1 for c in wide if _in_gb2312(c))
    return text if common >= 0.9 * len(wide) else None


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
        return True
    except UnicodeEncodeError:
        return False


def load_json(path: Path, what: str = "export"):
    """Parse a JSON file; a damaged or cut-off file becomes an :class:`ExportError` with line and column."""
    text = read_text(path, what, hint="pass the JSON file exactly as the app exported it, not a re-saved copy.")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # an unterminated string runs to the end of the file: cut off, too
        if e.pos >= len(text.rstrip()) - 1 or e.msg.startswith("Unterminated string"):
            problem = f"the JSON ends too early ({e.msg.removesuffix(' at')} at column {e.colno})."
            hint = "the file looks cut off; export again (and unzip the whole archive)."
        else:
            problem = f"this is not valid JSON: {e.msg} at column {e.colno}."
            hint = "the file looks damaged or edited by hand; export again."
        raise ExportError(path, problem, line=e.lineno, hint=hint) from None
    except RecursionError:  # the json module recurses once per level of [ or {
        raise ExportError(path, "this JSON is nested too deeply to read (thousands of [ or { inside each "
                          "other).", hint="the file looks damaged or is not a chat export; export again.") from None
    except ValueError as e:  # e.g. a number of more than 4300 digits (Python's limit for int())
        raise ExportError(path, f"this JSON cannot be read ({e}).",
                          hint="the file looks damaged or is not a chat export; export again.") from None


def epoch_to_local(value, unit: str = "s") -> datetime | None:
    """Epoch seconds (``unit="s"``) or milliseconds (``"ms"``) -> naive local time of this machine.

    Uses the operating system's time zone rules (``TZ`` / /etc/localtime), so daylight saving time
    is applied per date. Returns ``None`` for missing or impossible values.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if unit == "ms":
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds)
    except (OverflowError, OSError, ValueError):
        return None


def pandas_time(value: str):
    """``value`` read by ``pandas.Timestamp`` (it knows many forms) as a naive time stamp (a
    ``datetime``; its UTC offset dropped, the clock time kept), or ``None`` when pandas cannot read
    it or reads it as a missing value (``"NaT"``, ``"nan"``)."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.isna(ts):
        return None
    return ts.tz_localize(None) if ts.tzinfo is not None else ts


def warn_skipped(path, count: int, where: list, why: str) -> None:
    if not count:
        return
    first = ", ".join(str(w) for w in where[:5])
    warnings.warn(f"{path}: skipped {count} {why} (first at {first}).", SkippedLinesWarning, stacklevel=3)


def to_frame(rows: list) -> pd.DataFrame:
    """Rows of (chat, timestamp, sender, text, kind) -> DataFrame with :data:`COLUMNS`."""
    if not rows:
        return _data.empty_frame()
    return pd.DataFrame(rows, columns=COLUMNS)


def head_json_start(head: str) -> bool:
    """True when ``head`` starts like a JSON object (after a BOM and blanks)."""
    return head.lstrip("\ufeff \t\r\n").startswith("{")


def message_list(path: Path, data, tool: str, hint: str) -> list:
    """The ``"messages"`` list of a JSON export, or an :class:`ExportError` naming the tool and the fix."""
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ExportError(path, f'this {tool} file has no "messages" list.', hint=hint)
    return data["messages"]


def timed_messages(path: Path, messages: list, time_of, what: str = "messages without a readable time"):
    """``(message, time)`` for every message of a JSON export that is an object with a readable time
    (``time_of(message)`` not None); the others are skipped and named in one warning at the end."""
    bad = []
    for i, msg in enumerate(messages):
        ts = time_of(msg) if isinstance(msg, dict) else None
        if ts is None:
            bad.append(i)
            continue
        yield msg, ts
    warn_skipped(path, len(bad), [f"message {n}" for n in bad], what)


def csv_rows(path: Path, reader, hint: str = "export the chat again."):
    """``(line, record)`` for each row of a ``csv`` reader, ``line`` being the line the record starts
    on (a quoted text can span several); a malformed CSV becomes an :class:`ExportError` there."""
    start = reader.line_num + 1
    try:
        for rec in reader:
            line, start = start, reader.line_num + 1
            yield line, rec
    except csv.Error as e:
        raise ExportError(path, f"the CSV is malformed ({e}).", line=reader.line_num, hint=hint) from None
