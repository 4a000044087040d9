"""WhatsApp chat exports: the ``.txt`` of "Export chat", from Android and iOS, in any locale.

A message starts with a header line and runs until the next header; the lines between are the
rest of a multi-line message (their line breaks are kept)::

    23/03/2022, 13:31 - Dmitry S: Hello                   Android (dash after the time)
    [3/18/22, 14:56:01] Elon Musk: Hello                  iOS (time stamp in brackets)

How the reader decides
----------------------
* **Layout.** Four header shapes are tried on the first 64 KiB: bracket or dash frame, date before
  or after the time (Vietnamese iOS writes ``[14:56:01, 3/18/22]``); the one that matches most
  lines is used for the whole file. Dates use ``/``, ``.`` or ``-``, 2- or 4-digit years, the year
  first or last; a comma (or the Arabic comma ``،``) may follow the date. Times are 24 h or 12 h
  (``AM``, ``pm``, ``a. m.``, Arabic ``ص``/``م``, ``午前``/``午後`` and the other CLDR day-period
  words in ``_AMPM_*``), with ``:`` or ``.``, with or without seconds; the AM/PM word follows a
  space, a no-break space or U+202F. Directional marks (U+200E, U+200F, U+202A-U+202E,
  U+2066-U+2069) may stand anywhere in the header and are removed from senders; digits may be
  Arabic-Indic.
* **One style per file.** A header whose year length, seconds or AM/PM differ from the file's
  usual style is not a new message but a line of the previous one (a pasted time stamp).
* **Sender** is what comes before the first ``": "`` of the header line (or a ``":"`` ending it);
  a header without one is a system line with sender ``""``.
* **Years.** ``22`` is 2022; Buddhist years (``2565 BE``, any year from 2400) lose 543; Japanese
  era years ``R4`` (Reiwa) and ``H31`` (Heisei) become 2022 and 2019.
* **Day or month first** is decided once per file: a value above 12 must be the day; otherwise the
  order that keeps the dates in sequence wins, then the field that changes more often is the day.
  With no evidence at all (every date like ``1/2/21``) the day comes first, or the month when the
  year comes first (``2021/02/01`` is 1 February).
* **Kinds.** ``system``: a header without ``Name:`` (Android, and iOS info lines), an iOS notice
  (its text starts with a directional mark: encryption notice, security code changed ...), and
  English notices behind a name (encryption notice, "created group", "changed the subject",
  "changed this group's icon", "Your security code with ... changed"). ``media``: ``<Media
  omitted>`` in any language (an Android line that is only ``<...>``; a caption may follow on the
  next lines), ``file.ext (file attached)`` in any language, iOS ``image omitted`` & co. (the
  header then starts with a directional mark), ``<attached: ...>``, and ``null`` (a view-once
  photo). ``deleted``: "This message was deleted" / "You deleted this message" in the languages
  of the known exports.
  ``call``: "Missed voice call" & co. ``other``: a shared location (``Location: https://maps...``).
  ``<This message was edited>`` is removed from the text.
* **Skipped.** Empty messages (``Name:`` and nothing after it) are left out silently. Lines before
  the first message and messages whose date cannot exist (month 13, 25 o'clock) are left out with
  a :class:`~twinlib.data._common.SkippedLinesWarning` that gives the count and the line numbers.
* **chat** is taken from the file name: ``WhatsApp Chat with X.txt`` and ``WhatsApp Chat - X.txt``
  (and their translations: ``mit``, ``met``, ``con``, ``com``, ``avec``, ``s uživatelem``,
  ``с контактом``) give ``X``; an iOS ``_chat.txt`` takes the name of its folder; any other
  file gives its name without ``.txt``.

Speed: one regular-expression split over the whole text finds every header; each distinct date
and time string is read once (a chat has far fewer of them than messages); sender, text and kind
are worked out on whole columns with pyarrow.compute. There is no per-line Python loop.
"""

from __future__ import annotations

import re
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from twinlib.data import COLUMNS, KINDS, ExportError
from twinlib.data._common import SkippedLinesWarning, read_text

# --- header grammar (Python re) ---------------------------------------------------------------

_MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # not U+200D (ZWJ)
_M = f"[{_MARKS}]*"
_SP = "[ \u00a0\u202f]"
# AM/PM words (Unicode CLDR day periods) before or after the time; _IS_PM is keyed by the word
# without dots and spaces, in lower case
_AMPM_BEFORE = "午前|午後|上午|下午|오전|오후|ÖÖ|ÖS|ก่อนเที่ยง|หลังเที่ยง"
_AMPM_AFTER = rf"[AaPp]\.?{_SP}?[Mm]\.?|ص|م|vorm\.|nachm\.|π\.μ\.|μ\.μ\.|SA|CH|ap\.|ip\.|fm|em"
_IS_PM = {"am": False, "pm": True, "ص": False, "م": True, "vorm": False, "nachm": True,
          "πμ": False, "μμ": True, "sa": False, "ch": True, "ap": False, "ip": True, "fm": False, "em": True,
          "午前": False, "午後": True, "上午": False, "下午": True, "오전": False, "오후": True,
          "öö": False, "ös": True, "ก่อนเที่ยง": False, "หลังเที่ยง": True}

# the parts of a date and of a time; the header pattern uses them without the group names
_DATE_PARTS = (
    rf"(?P<e1>[HR])?(?P<d1>\d{{1,4}}){_M}[./-] ?{_M}(?P<d2>\d{{1,2}}){_M}[./-] ?{_M}"
    rf"(?P<e3>[HR])?(?P<d3>\d{{1,4}})(?:{_SP}?BE)?\.?"
)
_TIME_PARTS = (
    rf"(?:(?P<ap1>{_AMPM_BEFORE}){_SP}?)?(?P<hh>\d{{1,2}})[:.](?P<mi>\d{{2}})(?:[:.](?P<ss>\d{{2}}))?"
    rf"(?:{_SP}?(?P<ap2>{_AMPM_AFTER}))?"
)


def _unnamed(pattern: str) -> str:
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


_DATE = f"(?P<date>{_unnamed(_DATE_PARTS)})"
_TIME = f"(?P<time>{_unnamed(_TIME_PARTS)})"
_STAMPS = {"date-time": rf"{_DATE}[,،]?{_SP}{_M}{_TIME}", "time-date": rf"{_TIME}[,،]?{_SP}{_M}{_DATE}"}
_FRAMES = {"ios": rf"(?P<lead>{_M})\[{_M}{{stamp}}{_M}\]{_SP}",
           "android": rf"(?P<lead>{_M}){{stamp}}{_M}{_SP}[-–]{_SP}"}
# "Name: " (or "Name:" at the end of the line); absent on system lines
_SENDER = r"(?:(?P<sender>[^\n]*?):(?: |(?=\n)|\Z))?"
# (frame, order) -> header pattern with groups lead, date, time, sender. It starts with the line
# break before the header (the text gets one in front): a literal first character lets re skip
# ahead quickly, which "^" with re.MULTILINE does not.
_STYLES = {
    (frame, order): re.compile("\n" + frame_rx.format(stamp=stamp_rx) + _SENDER)
    for frame, frame_rx in _FRAMES.items()
    for order, stamp_rx in _STAMPS.items()
}
_DATE_RX, _TIME_RX = re.compile(_DATE_PARTS), re.compile(_TIME_PARTS)
_EXAMPLES = "'23/03/2022, 13:31 - Name: text' (Android) or '[3/18/22, 14:56:01] Name: text' (iOS)"
_EPOCH = date(1970, 1, 1).toordinal()

# --- message kinds (RE2 patterns for pyarrow.compute; "$" is the end of the text) -------------

_KIND_NAMES = pa.array(KINDS)
_TEXT, _SYSTEM_KIND = KINDS.index("text"), KINDS.index("system")
_STRIP = " \t\n\u00a0\u202f" + _MARKS
_EDITED = f"[ {_MARKS}]*<This message was edited>"
# Android "<Media omitted>" in any language (a first line that is only <...>), "IMG-1.jpg (file
# attached)" in any language, iOS "... <attached: ...>", "null" (a view-once photo)
_MEDIA = (r"^(?:<[^<>\n]{1,40}>|[^\n]+\.[A-Za-z0-9]{2,5} \([^()\n]{3,40}\))(?:\n|$)"
          r"|^[^\n]*<attached: |^null$")
_LOCATION = r"^[^:\n]{1,30}: https://maps\.google\.com/\?q="
# notices that carry a name (the chat's or a contact's) in front of them; only looked for when
# one of _SYSTEM_WORDS is in the file
_SYSTEM_WORDS = ("end-to-end", "security code", "created group", "changed the subject",
                 "changed this group's icon")
_SYSTEM = (
    r"^(?:Messages and calls are end-to-end encrypted"
    r"|Messages (?:to this|you send to this) (?:chat|group)(?: and calls)? are now secured with end-to-end"
    r"|Your security code with [^\n]{1,80} changed"
    r"|[^\n]{1,80} created group [\"“]"
    r"|[^\n]{1,80} changed the subject (?:from [^\n]* )?to [\"“]"
    r"|[^\n]{1,80} changed this group's icon$)"
)


def _phrases(*texts: str) -> pa.Array:
    """Lower-case phrases, with and without a final full stop (iOS adds one)."""
    lower = {t.lower() for t in texts}
    return pa.array(sorted(lower | {t + "." for t in lower} | {t + "。" for t in lower}))


# whole texts (after trimming and lower-casing)
_DELETED = _phrases(
    "This message was deleted", "You deleted this message",                       # en
    "Diese Nachricht wurde gelöscht", "Du hast diese Nachricht gelöscht",         # de
    "Dit bericht is verwijderd", "U hebt dit bericht verwijderd",                 # nl
    "Ce message a été supprimé", "Vous avez supprimé ce message",                 # fr
    "Se eliminó este mensaje", "Eliminaste este mensaje",                         # es
    "Esta mensagem foi apagada", "Apagou esta mensagem",                          # pt
    "Questo messaggio è stato eliminato", "Hai eliminato questo messaggio",       # it
    "Tato zpráva byla odstraněna", "Tuto zprávu jste odstranil/a",                # cs Android
    "Tato zpráva byla smazána", "Tuto zprávu jste smazal/a",                      # cs iOS
    "Данное сообщение удалено", "Вы удалили данное сообщение",                    # ru
    "Це повідомлення було видалено", "Ви видалили це повідомлення",               # uk
    "Pesan ini dihapus", "Anda menghapus pesan ini",                              # id
    "Tin nhắn này đã bị xóa", "Bạn đã xoá tin nhắn này",                          # vi
    "यह मैसेज डिलीट कर दिया गया है", "आपने यह मैसेज डिलीट किया",                      # hi
    "ข้อความนี้ถูกลบแล้ว", "คุณได้ลบข้อความนี้",                                       # th
    "このメッセージは削除されました", "このメッセージを削除しました",                  # ja
    "تم حذف هذه الرسالة", "أنت حذفت هذه الرسالة", "لقد حذَفت هذه الرسالة",           # ar
)
_CALLS = _phrases(
    "Missed voice call", "Missed video call", "Missed group voice call", "Missed group video call",
    "Zmeškaný hovor", "Пропущенный аудиозвонок", "Gemiste spraakoproep",
)

# file name -> chat name: "WhatsApp Chat with X", "WhatsApp Chat - X" and translations
_CHAT_NAME = re.compile(
    r"WhatsApp.*?\s(?:with|mit|met|con|com|avec|s uživatelem|с контактом|-)\s+(?P<name>.+)", re.I
)


def sniff(path: Path, head: str) -> bool:
    """True when one of the first 50 non-blank lines of ``head`` is a WhatsApp message header."""
    if not head or Path(path).is_dir():
        return False
    lines = [ln for ln in head.lstrip("\ufeff").replace("\r", "").split("\n")[:500] if ln.strip()]
    sample = "\n" + "\n".join(lines[:50])
    return any(rx.search(sample) for rx in _STYLES.values())


def read(path: Path) -> pd.DataFrame:
    """Read one WhatsApp ``.txt`` export into the columns of :data:`twinlib.data.COLUMNS`."""
    path = Path(path)
    return _parse(_load_text(path), path, chat_name(path))


def chat_name(path: Path) -> str:
    """The chat's name from the export's file name (see the module notes)."""
    path = Path(path)
    stem = path.stem
    if stem.lower().startswith("_chat") and path.parent.name:
        stem = path.parent.name  # iOS: <folder "WhatsApp Chat - X">/_chat.txt
    stem = re.sub(r"\s*\(\d+\)$", "", stem)  # "... (2)" from a second download
    m = _CHAT_NAME.search(stem)
    return m.group("name").strip() if m else stem


def _load_text(path: Path) -> str:
    """The file's text (UTF-8, or UTF-16 with a byte order mark) with plain line breaks."""
    text = read_text(path, hint="pass the .txt exactly as WhatsApp exported it; if you edited it, "
                                "save it again as UTF-8.")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _pick_style(flow: str) -> tuple[str, re.Pattern] | None:
    """(frame, pattern) of the header shape that matches most lines at the start (None: none)."""
    samples = (flow[:65536], flow) if len(flow) > 65536 else (flow,)
    for sample in samples:
        counts = {key: sum(1 for _ in rx.finditer(sample)) for key, rx in _STYLES.items()}
        best = max(counts, key=counts.get)
        if counts[best]:
            return best[0], _STYLES[best]
    return None


def _parse(text: str, path: Path, chat: str) -> pd.DataFrame:
    """The messages of an export's ``text`` (see the module notes for every rule)."""
    flow = "\n" + text  # every header now follows a line break
    del text  # a long chat's text is big: keep one copy
    style = _pick_style(flow)
    if style is None:
        first_no, first = next(((i, ln) for i, ln in enumerate(flow.split("\n")[1:], 1) if ln.strip()),
                               (1, ""))
        raise ExportError(
            path, f"no line looks like a WhatsApp message. Expected lines like {_EXAMPLES}; "
                  f"line {first_no} reads {first[:80]!r}.",
            line=first_no,
            hint="pass the .txt from WhatsApp's 'Export chat' (unzip the .zip first); for another "
                 "app's export pass format=... .")
    frame, rx = style
    parts = rx.split(flow)  # preamble, then per message: its header's groups, then its body
    k, group = rx.groups + 1, rx.groupindex
    preamble, bodies = parts[0], parts[k::k]
    # dates, times and senders repeat: code them (and read each distinct date and time once)
    dcode, dates = _codes(parts[group["date"]::k])
    tcode, times = _codes(parts[group["time"]::k])
    scode, senders = _codes(parts[group["sender"]::k])  # -1: no sender (a system line)
    lead = None
    if frame == "ios":  # iOS puts a directional mark before the header of an attachment
        lead = _flags(pc.greater(pc.utf8_length(pa.array(parts[group["lead"]::k])), 0))
    del parts  # the long lists of small strings

    def lines_of(idx: list[int], as_split: list[str] = bodies) -> list[int]:
        """Every line number of the messages ``idx`` (positions among the headers), for warnings."""
        if not idx:
            return []
        lines = pc.count_substring(pa.array(as_split), "\n").to_numpy() + 1
        starts = preamble.count("\n") + 1 + np.concatenate([[0], np.cumsum(lines)[:-1]])
        return [int(n) for i in idx for n in range(starts[i], starts[i] + lines[i])]

    e1, d1, d2, e3, d3 = (np.array(c, dtype=object) for c in
                          zip(*(_DATE_RX.match(s).group("e1", "d1", "d2", "e3", "d3") for s in dates)))
    tsec, has_sec, has_ap = _seconds_of_day(times)

    # one style per file: a header in another style is a line of the message before it
    year_first = (np.not_equal(e1, None) | (_lengths(d1) == 4))[dcode].mean() > 0.5
    y_str, era = (d1, e1) if year_first else (d3, e3)
    shape = ((np.where(np.not_equal(era, None), 0, _lengths(y_str)) * 4)[dcode]
             + (has_sec * 2 + has_ap)[tcode])
    keep = shape == np.bincount(shape).argmax()
    skip_rows: list[int] = []  # headers before the first message, or with a date that cannot be
    if not keep.all():
        bodies, skip_rows = _merge_into_previous(bodies, [m.group(0) for m in rx.finditer(flow)], keep)
    rows = np.flatnonzero(keep)
    edited, notices = "<This message was edited>" in flow, any(word in flow for word in _SYSTEM_WORDS)
    del flow

    # time stamps: days since 1970 and seconds of the day, per distinct string
    dc, tc = dcode[rows], tcode[rows]
    p, q = (d2, d3) if year_first else (d1, d2)
    days = _days(y_str, era, p.astype(np.int64), q.astype(np.int64), dc, year_first)
    bad = (days[dc] < 0) | (tsec[tc] < 0)
    if bad.all():
        raise ExportError(path, f"no message has a date and time that exist ({_EXAMPLES} expected).",
                          line=lines_of(rows[:1].tolist())[0],
                          hint="check that the file is an unedited WhatsApp export.")
    skipped = [n for n, ln in enumerate(preamble.split("\n")[1:], 1) if ln.strip()]
    skipped += lines_of(skip_rows + rows[bad].tolist())
    if skipped:
        first = ", ".join(map(str, skipped[:5])) + (", ..." if len(skipped) > 5 else "")
        warnings.warn(f"{path}: skipped {len(skipped)} line(s) that are not WhatsApp messages or have "
                      f"a date or time that cannot exist (line {first}); every message should start "
                      f"like {_EXAMPLES}.",
                      SkippedLinesWarning, stacklevel=3)
    rows, dc, tc = rows[~bad], dc[~bad], tc[~bad]
    timestamp = (days[dc] * 86400 + tsec[tc]).astype("datetime64[s]").astype("datetime64[ns]")

    # sender, text, kind
    body = pa.array(bodies if len(rows) == len(bodies) else [bodies[i] for i in rows.tolist()],
                    type=pa.string())
    del bodies, lines_of  # the text now lives in arrow arrays
    if edited:
        body = pc.replace_substring_regex(body, _EDITED, "")
    clean = pc.utf8_trim(body, characters=_STRIP)
    scode = scode[rows]
    names = pa.array([re.sub(f"[{_MARKS}]", "", s).replace("\u00a0", " ").strip() for s in senders]
                     + [""]).take(np.where(scode < 0, len(senders), scode))  # no sender (system): ""
    kind = _kinds(body, clean, scode >= 0, None if lead is None else lead[rows], notices)
    keep_row = (kind != _TEXT) | _flags(pc.greater(pc.utf8_length(clean), 0))
    out = pd.DataFrame({"chat": chat, "timestamp": timestamp, "sender": names.to_pandas(),
                        "text": clean.to_pandas(), "kind": _KIND_NAMES.take(kind).to_pandas()},
                       columns=COLUMNS)
    return out if keep_row.all() else out[keep_row].reset_index(drop=True)


def _merge_into_previous(bodies: list[str], headers: list[str],
                         keep: np.ndarray) -> tuple[list[str], list[int]]:
    """Append each header not kept (and its body) to the body of the kept message before it.

    Returns the new bodies and the headers with no kept message before them (to be skipped).
    """
    bodies, kept, orphans = list(bodies), np.flatnonzero(keep), []
    for i in np.flatnonzero(~keep).tolist():
        j = int(np.searchsorted(kept, i)) - 1
        if j < 0:
            orphans.append(i)
        else:
            bodies[kept[j]] += headers[i] + bodies[i]
    return bodies, orphans


def _codes(values: list) -> tuple[np.ndarray, list]:
    """A code for each string (-1 for None) and the distinct strings the codes point to."""
    encoded = pa.array(values, type=pa.string()).dictionary_encode()
    return pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64), encoded.dictionary.to_pylist()


def _lengths(values: np.ndarray) -> np.ndarray:
    """The length of each string."""
    return np.array([len(v) for v in values], dtype=np.int64)


def _seconds_of_day(times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seconds after midnight (-1: no such time), has-seconds and has-AM/PM for each time string."""
    secs, has_sec, has_ap = [], [], []
    for s in times:
        m = _TIME_RX.match(s)
        hh, mi, ss = int(m["hh"]), int(m["mi"]), int(m["ss"] or 0)
        ap = m["ap1"] or m["ap2"]
        if ap:
            pm = _IS_PM[re.sub(r"[.\s]", "", ap).lower()]
            hh = hh % 12 + 12 * pm if hh <= 12 else 99  # "13 PM" is no time
        secs.append(hh * 3600 + mi * 60 + ss if hh < 24 and mi < 60 and ss < 60 else -1)
        has_sec.append(m["ss"] is not None)
        has_ap.append(ap is not None)
    return (np.array(secs, dtype=np.int64), np.array(has_sec, dtype=np.int64),
            np.array(has_ap, dtype=np.int64))


def _days(y_str: np.ndarray, era: np.ndarray, p: np.ndarray, q: np.ndarray, used: np.ndarray,
          year_first: bool) -> np.ndarray:
    """Days since 1970 of each distinct date (-1: no such date); ``p``, ``q``: the other two
    fields in order; ``used``: the codes of the dates of the messages, in file order."""
    year = y_str.astype(np.int64)
    year = np.where(era == "R", year + 2018, np.where(era == "H", year + 1988, year))  # Reiwa, Heisei
    year = np.where(year < 100, year + 2000, np.where(year >= 2400, year - 543, year))  # Buddhist
    day, month = (p, q) if _p_is_day(p[used], q[used], year[used], year_first) else (q, p)
    return np.array([_days_since_1970(*ymd) for ymd in zip(year.tolist(), month.tolist(), day.tolist())],
                    dtype=np.int64)


def _days_since_1970(y: int, m: int, d: int) -> int:
    """Days from 1970-01-01 to the date, or -1 when there is no such date (WhatsApp is from 2009;
    after 2261 the nanosecond time stamps would wrap around to the 18th century)."""
    if y > 2261:
        return -1
    try:
        return date(y, m, d).toordinal() - _EPOCH
    except ValueError:
        return -1


def _p_is_day(p: np.ndarray, q: np.ndarray, year: np.ndarray, year_first: bool) -> bool:
    """Whether the first of the two non-year date fields is the day (see the module notes)."""
    p_big, q_big = int((p > 12).sum()), int((q > 12).sum())
    if p_big != q_big:
        return p_big > q_big
    back_p = int((np.diff(year * 10000 + q * 100 + p) < 0).sum())  # p as the day
    back_q = int((np.diff(year * 10000 + p * 100 + q) < 0).sum())
    if back_p != back_q:
        return back_p < back_q
    changes_p, changes_q = int((np.diff(p) != 0).sum()), int((np.diff(q) != 0).sum())
    if changes_p != changes_q:
        return changes_p > changes_q
    return not year_first


def _flags(values: pa.Array) -> np.ndarray:
    """A pyarrow boolean array as a writable numpy one."""
    return values.to_numpy(zero_copy_only=False).astype(bool)


def _kinds(body: pa.Array, clean: pa.Array, has_sender: np.ndarray, ios_lead: np.ndarray | None,
           notices: bool) -> np.ndarray:
    """Each message's kind as a position in :data:`KINDS` (see the module notes).

    ``body``: the text as split, ``clean``: trimmed; ``ios_lead``: for an iOS export, whether a
    directional mark came before the header; ``notices``: whether one of :data:`_SYSTEM_WORDS`
    is in the file.
    """
    kind = np.full(len(clean), _TEXT, dtype=np.int8)
    media = _flags(pc.match_substring_regex(clean, _MEDIA))
    if ios_lead is not None:
        marked = _flags(pc.match_substring_regex(body, f"^[{_MARKS}]"))  # a notice, not typed text
        # an attachment: a mark before the header and one in the text
        media |= ios_lead & _flags(pc.match_substring_regex(body, f"[{_MARKS}]"))
        media |= marked & _flags(pc.ends_with(clean, " omitted"))
        kind[marked] = _SYSTEM_KIND
    kind[media] = KINDS.index("media")
    kind[_flags(pc.match_substring_regex(clean, _LOCATION))] = KINDS.index("other")
    lower = pc.utf8_lower(clean)
    kind[_flags(pc.is_in(lower, value_set=_CALLS))] = KINDS.index("call")
    kind[_flags(pc.is_in(lower, value_set=_DELETED))] = KINDS.index("deleted")
    if notices:
        notice = _flags(pc.match_substring_regex(clean, _SYSTEM))
        kind[has_sender & (kind == _TEXT) & notice] = _SYSTEM_KIND
    kind[~has_sender] = _SYSTEM_KIND
    return kind
