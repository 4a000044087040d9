"""Readers for chat exports: one module per format, one normalized table out.

Every reader returns a :class:`pandas.DataFrame` with the columns of :data:`COLUMNS`:

``chat``       the conversation's name (a chat title, a channel, an e-mail thread, the other number)
``timestamp``  ``datetime64[ns]``, naive local time as the export states it
``sender``     the display name (or number / address) of who wrote the message
``text``       the message text, line breaks kept, markers such as ``<This message was edited>`` removed
``kind``       ``"text"`` for what a person wrote; anything else is a break for pair building:
               ``media``, ``system``, ``deleted``, ``call``, ``sticker``, ``other``

Use :func:`read_export`; it detects the format or takes ``format=`` to force one.
"""

from __future__ import annotations

import importlib
import warnings
from datetime import datetime
from pathlib import Path

import pandas as pd

COLUMNS = ["chat", "timestamp", "sender", "text", "kind"]
KINDS = ("text", "media", "system", "deleted", "call", "sticker", "other")

# format name -> module in twinlib.data that defines ``read(path) -> DataFrame`` and
# ``sniff(path, head) -> bool`` (``head``: the first 64 KiB decoded as UTF-8 with replacement,
# or "" for a folder). Detection tries them in this order.
FORMATS: dict[str, str] = {
    "slack": "slack",
    "chatlab": "chatlab",       # ChatLab JSON / JSONL (also WeFlow's ChatLab export)
    "weflow-json": "weflow",    # WeFlow's own detailed JSON (WeChat)
    "qq-json": "qqjson",        # qq-chat-exporter JSON
    "telegram": "telegram",
    "messenger": "meta",        # Facebook Messenger and Instagram share one JSON layout
    "instagram": "meta",
    "discord": "discord",
    "qq-txt": "qqtxt",          # QQ's own .txt export and qq-chat-exporter's TXT
    "signal": "signal",
    "sms-xml": "sms",
    "mbox": "mbox",
    "wechat-csv": "wechat",     # PyWxDump CSV and WeFlow's WeClone CSV
    "wechatmsg-csv": "wechatmsg",  # WeChatMsg (留痕) CSV
    "whatsapp": "whatsapp",
    "csv": "csvfile",
}


class ExportError(ValueError):
    """An export could not be read. The message names the file, the place and the fix."""

    def __init__(self, path, problem: str, *, line: int | None = None, hint: str | None = None):
        where = f"{path}" + (f", line {line}" if line is not None else "")
        msg = f"{where}: {problem}"
        if hint:
            msg += f"\n  What to do: {hint}"
        super().__init__(msg)
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.hint = hint


from twinlib.data._common import SkippedLinesWarning  # noqa: E402  (re-export; needs ExportError above)


def _reader(fmt: str):
    return importlib.import_module(f"twinlib.data.{FORMATS[fmt]}")


def _head(path: Path) -> str:
    if path.is_dir():
        return ""
    with open(path, "rb") as fh:
        raw = fh.read(65536)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(raw) - 4 and len(raw) == 65536:  # a character cut at the 64 KiB boundary
            return raw[: e.start].decode("utf-8")
    from twinlib.data._common import decode_gbk

    gbk = decode_gbk(raw, partial=len(raw) == 65536)  # an older Chinese export in GBK
    return gbk if gbk is not None else raw.decode("utf-8", errors="replace")


def _looks_binary(path: Path) -> bool:
    if path.is_dir():
        return False
    with open(path, "rb") as fh:
        raw = fh.read(8192)
    if not raw:
        return False
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 text, not binary
        return False
    if b"\x00" in raw:
        return True
    try:
        raw.decode("utf-8")
        return False
    except UnicodeDecodeError as e:
        # a multi-byte character cut at the 8 KiB boundary is fine
        if e.start >= len(raw) - 4:
            return False
    from twinlib.data._common import decode_gbk

    return decode_gbk(raw, partial=True) is None  # GBK text (older Chinese exports) is no binary


def detect_format(path) -> str:
    """Return the format name of the export at ``path`` (a key of :data:`FORMATS`)."""
    path = Path(path)
    if not path.exists():
        raise ExportError(path, "no such file or folder.", hint="check the path you passed as the export.")
    if path.is_file() and path.stat().st_size == 0:
        raise ExportError(path, "the file is empty.", hint="export the chat again; the export may have been interrupted.")
    if _looks_binary(path):
        raise ExportError(
            path,
            "this is a binary file, not a chat export.",
            hint="pass the text/JSON/XML/CSV export itself (unzip a .zip export first).",
        )
    head = _head(path)
    seen = set()
    for fmt, mod in FORMATS.items():
        if mod in seen:  # messenger and instagram share one sniffer; meta.which() tells them apart
            continue
        if _reader(fmt).sniff(path, head):
            if mod == "meta":
                return _reader(fmt).which(path, head)
            return fmt
        seen.add(mod)
    raise ExportError(
        path,
        "the export format was not recognized.",
        hint="pass format=... (one of " + ", ".join(FORMATS) + "), or convert it to a CSV with the "
        "columns timestamp,sender,text.",
    )


def normalize(df: pd.DataFrame, path) -> pd.DataFrame:
    """Bring a reader's frame to the common schema: columns, dtypes, time order."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:  # a bug in a reader, not the user's fault
        raise RuntimeError(f"reader for {path} returned no {missing} column")
    out = df[COLUMNS].copy()
    outside = _out_of_range_rows(out["timestamp"])  # datetime64[ns] holds the years 1677-2262 only
    if outside.any():
        warnings.warn(f"{path}: skipped {int(outside.sum())} message(s) dated outside the years 1678-2261 "
                      f"(first: {out['timestamp'][outside].iloc[0]}); those dates look damaged.",
                      SkippedLinesWarning, stacklevel=3)
        out = out[~outside]
        if len(out) == 0:
            raise ExportError(path, "no message has a date between the years 1678 and 2261.",
                              hint="check that the export is not damaged; export the chat again.")
    out["timestamp"] = pd.to_datetime(out["timestamp"])
    if getattr(out["timestamp"].dt, "tz", None) is not None:
        out["timestamp"] = out["timestamp"].dt.tz_localize(None)
    out["timestamp"] = out["timestamp"].astype("datetime64[ns]")
    for c in ("chat", "sender", "text", "kind"):
        out[c] = out[c].fillna("").astype(str)
    bad = set(out["kind"].unique()) - set(KINDS)
    if bad:
        raise RuntimeError(f"reader for {path} returned unknown kinds {sorted(bad)}")
    out = out.sort_values(["timestamp"], kind="stable").reset_index(drop=True)
    return out


_FIRST, _LAST = datetime(1678, 1, 1), datetime(2261, 12, 31, 23, 59, 59)  # inside datetime64[ns]


def _out_of_range(t) -> bool:
    """A date that exists but does not fit a ``datetime64[ns]`` (e.g. year 9999 in a damaged file)."""
    return isinstance(t, datetime) and t is not pd.NaT and not _FIRST <= t.replace(tzinfo=None) <= _LAST


def _out_of_range_rows(ts: pd.Series) -> pd.Series:
    """Which of a reader's timestamps (datetimes, or datetime64 of any unit) ``normalize`` cannot hold."""
    if ts.dtype.kind == "M":
        if getattr(ts.dt, "tz", None) is not None:
            ts = ts.dt.tz_localize(None)
        return ts.notna() & ((ts < _FIRST) | (ts > _LAST))
    return ts.map(_out_of_range).astype(bool)


def read_export(path, format: str | None = None) -> pd.DataFrame:
    """Read one export (file, or folder for Slack) into the normalized table.

    ``format`` forces a reader (a key of :data:`FORMATS`); by default it is detected.
    Raises :class:`ExportError` with the file, the place and the fix when the input is bad.
    """
    path = Path(path)
    if format is None:
        format = detect_format(path)
    elif format not in FORMATS:
        raise ExportError(path, f"unknown format {format!r}.", hint="use one of " + ", ".join(FORMATS) + ".")
    elif not path.exists():
        raise ExportError(path, "no such file or folder.", hint="check the path you passed as the export.")
    if path.is_dir() and FORMATS[format] != "slack":
        raise ExportError(path, f"this is a folder, not a {format} export file.",
                          hint="pass the export file itself (only a Slack export is read as a folder).")
    df = _reader(format).read(path)
    if len(df) == 0:
        raise ExportError(path, f"no messages found (read as {format}).",
                          hint="check that this is the chat export itself and not empty.")
    aliases = dict(df.attrs.get("aliases") or {})
    out = normalize(df, path)
    out.attrs["format"] = format
    out.attrs["source"] = str(path)
    if aliases:
        out.attrs["aliases"] = aliases
    return out


def read_exports(paths, format: str | None = None) -> pd.DataFrame:
    """Read several exports into one table (a ``source`` column says which file each row came from).

    ``attrs["aliases"]`` gathers the readers' ``{other name: sender}`` (the names an export gives
    a sender besides the one in the ``sender`` column), for the anonymizer."""
    frames, aliases = [], {}
    for p in paths:
        df = read_export(p, format=format)
        aliases.update(df.attrs.get("aliases") or {})
        df["source"] = Path(p).name
        frames.append(df)
    if not frames:
        raise ValueError("no export given: pass at least one path.")
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    out.attrs.pop("aliases", None)
    if aliases:
        out.attrs["aliases"] = aliases
    return out


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="datetime64[ns]" if c == "timestamp" else "object") for c in COLUMNS})


EXPORT_SUFFIXES = {".txt", ".json", ".jsonl", ".xml", ".csv", ".tsv", ".mbox", ".mbx", ".md"}
MAX_DEPTH = 4  # how deep find_exports looks into sub-folders


def _is_slack_folder(p: Path) -> bool:
    return _reader("slack").sniff(p, "")


def _candidates(folder: Path) -> list[Path]:
    """Files of ``folder`` that may be exports (hidden files, READMEs and notes skipped)."""
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in EXPORT_SUFFIXES
                  and not f.name.startswith(".") and f.name.lower() != "readme.md"
                  and (f.suffix.lower() != ".md" or f.name.lower() == "chat.md"))


def _nested_exports(folder: Path, depth: int) -> list[Path]:
    """Exports in the sub-folders of ``folder``: only files whose format is recognized (an export
    folder also holds media lists, settings and other JSON), Slack export folders as folders."""
    found: list[Path] = []
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        if _is_slack_folder(sub):
            found.append(sub)
            continue
        for f in _candidates(sub):
            try:
                detect_format(f)
            except ExportError:
                continue
            found.append(f)
        if depth > 1:
            found.extend(_nested_exports(sub, depth - 1))
    return found


def find_exports(paths) -> list[Path]:
    """Expand the user's export paths: files stay, a Slack export folder stays a folder, any
    other folder contributes the export files inside it (sorted, hidden files skipped) and the
    recognized exports of its sub-folders (a Messenger ``inbox/`` with a folder per chat, a
    signal-export folder with ``<chat>/chat.md``), up to :data:`MAX_DEPTH` levels down."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ExportError(p, "no such file or folder.", hint="check the export path (relative paths start at the project folder).")
        if p.is_dir() and not _is_slack_folder(p):
            inside = _candidates(p) + _nested_exports(p, MAX_DEPTH)
            if not inside:
                raise ExportError(p, "the folder holds no chat export (.txt, .json, .xml, .csv, .mbox, "
                                     "signal-export's chat.md), here or in its sub-folders.",
                                  hint="point at the exported chat file itself, or the folder you unzipped it into.")
            found.extend(inside)
        else:
            found.append(p)
    return found
