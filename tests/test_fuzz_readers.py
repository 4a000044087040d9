"""Fuzzing the export readers with hypothesis.

The guarantee: for *any* input, ``read_export`` either returns the normalized table (columns
``chat,timestamp,sender,text,kind``, known kinds, ``datetime64[ns]`` timestamps without NaT,
sorted by time) or raises our own :class:`twinlib.data.ExportError` naming the file. Never a
``KeyError``/``TypeError``/``UnicodeDecodeError``/json/xml/pandas traceback from inside a
library. :class:`SkippedLinesWarning` is allowed; any other warning is a finding too.

Inputs: random bytes; text made of export-like pieces (WhatsApp/Signal headers, JSON, XML,
CSV, mbox fragments, emoji, directional marks); every real sample in ``../shared`` cut at
random offsets, with bytes flipped/inserted/deleted, with tokens (numbers, strings, XML
attributes, CSV cells) replaced by odd values, and its JSON with fields deleted or replaced by
values of the wrong type; the Slack folder (copied) with its files damaged the same ways.
Each input is read with detection and with formats forced (generated inputs: every format or the
formats they imitate; samples: their own format, and for mutated ones a random other one too).

Examples are derandomized (the same every run) and bounded so the module runs in about 20 s
(well under a minute on two cores). ``TWIN_FUZZ_SCALE=10`` multiplies the examples and ``TWIN_FUZZ_RANDOM=1``
draws new ones each run, for a longer hunt by hand. The regression tests at the end pin every
bug the fuzzing found.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinlib.data import COLUMNS, FORMATS, KINDS, ExportError, SkippedLinesWarning, read_export

_SCALE = float(os.environ.get("TWIN_FUZZ_SCALE") or 1)
_RANDOM = os.environ.get("TWIN_FUZZ_RANDOM") == "1"
_STATS = {"inputs": 0, "reads": 0, "tables": 0, "errors": 0}


def fuzz(n: int):
    """hypothesis settings for one fuzz test: ``n`` examples (times TWIN_FUZZ_SCALE), no deadline."""
    return settings(
        max_examples=max(1, int(n * _SCALE)),
        deadline=None,
        derandomize=not _RANDOM,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture(scope="module", autouse=True)
def _report_count(request):
    yield
    line = (f"test_fuzz_readers: fuzzed {_STATS['inputs']} inputs with {_STATS['reads']} reads "
            f"({_STATS['tables']} tables, {_STATS['errors']} ExportErrors)")
    plugins = request.config.pluginmanager
    reporter, capman = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capman is None:
        print(line)
        return
    with capman.global_and_fixture_disabled():  # past pytest's output capture, like its own summary
        reporter.write_line("")
        reporter.write_line(line)


# ------------------------------------------------------------------------------------- the oracle


def check_read(path: Path, fmt: str | None = None) -> pd.DataFrame | None:
    """Read ``path``; the result must be a valid table or an ExportError naming the path."""
    _STATS["reads"] += 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = read_export(path, format=fmt)
        except ExportError as e:
            _STATS["errors"] += 1
            assert str(path) in str(e), f"ExportError without the path: {e}"
            df = None
    other = [w for w in caught if not issubclass(w.category, (SkippedLinesWarning, DeprecationWarning,
                                                               PendingDeprecationWarning, ResourceWarning))]
    assert not other, [f"{w.category.__name__}: {w.message}" for w in other]
    if df is None:
        return None
    _STATS["tables"] += 1
    assert list(df.columns) == COLUMNS
    assert len(df) > 0
    assert str(df["timestamp"].dtype) == "datetime64[ns]"
    assert df["timestamp"].notna().all()
    assert df["timestamp"].is_monotonic_increasing
    assert set(df["kind"]) <= set(KINDS)
    if df.attrs["format"] == "whatsapp":  # its dates are computed: none before 1970 (e.g. wrapped around)
        assert df["timestamp"].min() >= pd.Timestamp("1970-01-01"), df["timestamp"].min()
    for c in ("chat", "sender", "text", "kind"):
        assert all(isinstance(v, str) for v in df[c]), c
    return df


def check_all(path: Path, formats=None) -> None:
    """One input: read with detection, then with each format forced."""
    _STATS["inputs"] += 1
    check_read(path)
    for fmt in formats if formats is not None else FORMATS:
        check_read(path, fmt)


# ------------------------------------------------------------------------------------- the samples


def _real_root() -> Path | None:
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real-exports"
    root = Path(os.environ.get("TWIN_FIXTURES") or default)
    return root if root.is_dir() else None


_ROOT = _real_root()


def _sample_format(rel: str) -> str:
    top = rel.split("/", 1)[0]
    return {"sms-xml": "sms-xml", "wechat": "wechat-csv"}.get(top, top)


def _samples() -> list[tuple[str, str]]:
    """(path relative to the samples folder, its format) of every sample file (not the Slack folder)."""
    if _ROOT is None:
        return [("none", "none")]  # a placeholder; the tests skip through the real_exports fixture
    out = []
    for p in sorted(_ROOT.rglob("*")):
        rel = p.relative_to(_ROOT).as_posix()
        if p.is_dir() or rel.startswith("slack/") or "EXPECTED" in p.name or p.name == "SOURCES.md":
            continue
        out.append((rel, _sample_format(rel)))
    return out


SAMPLES = _samples()
JSON_SAMPLES = [s for s in SAMPLES if s[0].endswith(".json")]
SLACK = "slack/slack-export-viewer_testarchive"


def _place(tmp_path: Path, rel: str, data: bytes) -> Path:
    """Write ``data`` where the sample ``rel`` would be under ``tmp_path`` (same folders and name:
    the readers look at them, e.g. 'instagram' in the folders or the .csv suffix)."""
    dest = tmp_path / "x" / rel
    if dest.parent.exists():
        shutil.rmtree(tmp_path / "x")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data)
    return dest


# ------------------------------------------------------------------------------------- strategies

BOMS = [b"", b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]
SUFFIXES = [".txt", ".json", ".xml", ".csv", ".mbox", ".md", ""]

PIECES = [
    # WhatsApp headers, Android and iOS, many locales
    "12/03/2024, 14:05 - Name: ", "[3/12/24, 2:05:09 PM] ", "[3/12/24, 2:05:09\u202fPM] Bob: ",
    "23.03.22, 13:31 - ", "2024-03-12 14:05 - Ann: ", "[14:56:01, 3/18/22] Elon: ", "31/02/2024, 25:61 - X: ",
    "13/13/13, 13:13 - Y: ", "[R4/03/18 午後2:56:01] 太郎: ", "[18/3/2565 BE 14:56:01] ผม: ",
    "\u200e[3/18/22, 14:56:01] Elon: \u200eimage omitted", "<Media omitted>", "IMG-1.jpg (file attached)",
    "This message was deleted", "<This message was edited>", "Missed voice call", "null",
    "Location: https://maps.google.com/?q=1,2", "Messages and calls are end-to-end encrypted",
    "00/00/0000, 00:00 - ", "99/99/99, 99:99 - Z: ", "1/1/1, 1:00 - A:",
    # Signal
    "[2024-03-12 14:05] Me: ", "[2024-02-30, 14:05] Al: ", "> quoted", "(- Al: 👍 -)", "(( 😀 ))",
    "![photo.jpg](./media/photo.jpg)", "(This message was deleted)",
    # JSON
    "{", "}", "[", "]", ",", ":", '"', "null", "true", "0", "-1", "1e400", "1e308", "99999999999999999999",
    '"messages":', '"messages": [', '"text":', '"text": [{"type": "bold", "text": "x"}]', '"date":',
    '"date": "2024-01-01T10:00:00"', '"date": "9999-12-31T23:59:59"', '"date_unixtime": "1700000000"',
    '"date_unixtime": 1e30', '"from": null', '"from_id": "user1"', '"type": "message"', '"type": "service"',
    '"action": "phone_call"', '"name": "Chat"', '"id": 1', '"chats": {"list": [', '"personal_information": {}',
    '"sender_name": "A"', '"timestamp_ms": 1700000000000', '"timestamp_ms": -1e20', '"content": "hi"',
    '"participants": [{"name": 1}]', '"title": null', '"guild": {}', '"channel": {"name": "c"}',
    '"author": {"name": "a"}', '"timestamp": "2024-01-01T00:00:00+01:00"', '"timestamp": "0001-01-01T00:00:00Z"',
    '"attachments": [1]', '"is_unsent": true', '"call_duration": 5', '"media_type": "sticker"',
    '"forwarded_from": null', '"photo": "p.jpg"',
    # XML
    '<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0" encoding="bogus"?>', "<smses count=\"1\">",
    "</smses>", "<allsms>", "<calls>", '<sms address="+1 555" date="1700000000000" type="1" body="hi" '
    'contact_name="Al" />', '<sms date="abc" type="2" body="x"/>', '<sms date="1e30" type="1" body="x"/>',
    '<sms date="-99999999999999999" type="1" body="y"/>', '<mms date="1700000000" msg_box="1" address="1~2">',
    '<parts><part ct="text/plain" text="yo"/><part ct="image/png" data="AAAA"/></parts>',
    '<addrs><addr address="1" type="137"/></addrs>', "</mms>", "&#55357;&#56832;", "&#55357;", "&#56832;",
    "&#0;", "&amp;", "&bogus;", "<!DOCTYPE x [<!ENTITY a \"b\">]>", "<![CDATA[", "]]>",
    # CSV
    "timestamp,sender,text\n", "chat;timestamp;sender;text;kind\n", "timestamp\tsender\ttext\n",
    "2024-01-01 10:00,Bob,hi\n", "1700000000,Al,yo\n", "99999999999999,Al,yo\n", "2024-13-45,X,y\n",
    '"unterminated, quote\n', ",,,\n", "9999-12-31T23:59:59,A,b\n", "0001-01-01,A,b\n",
    "id,MsgSvrID,type_name,is_sender,talker,room_name,msg,src,CreateTime\n",
    "1,2,文本,1,wxid,Room,hi,,2024/10/4 11:42\n", "1,2,撤回消息,0,wxid,Room,<revokemsg>x</revokemsg>,,1700000000\n",
    "1,2,图片,0,,,,,99999999999\n",
    # mbox
    "From a@b Sat Jan  3 01:05:34 1996\n", "From \n", "Date: Sat, 3 Jan 1996 01:05:34 +0100\n",
    "Date: yesterday\n", "Date: Sat, 3 Jan 99999 01:05:34 +9999\n", "Subject: Re: Fwd: hi\n",
    "From: \"Ann\" <ann@x.org>\n", "From: =?utf-8?q?=E2=82=AC?= <a@b>\n", "Subject: =?bogus?b?AAAA?=\n",
    "Content-Type: text/plain; charset=bogus\n", "Content-Type: text/html\n", "Content-Type: multipart/mixed; "
    "boundary=XX\n", "--XX\n", "--XX--\n", "Content-Transfer-Encoding: base64\n", "Content-Transfer-Encoding: "
    "quoted-printable\n", "=E2=82\n", "<blockquote>q</blockquote>", "<p>para</p>", "On Mon, A wrote:\n", "-- \n",
    # glue
    "\n", "\n", "\n", "\r\n", "\r", " ", "\t", "\x00", "\ufeff", "😀", "👍🏽", "👨‍👩‍👧", "\u200e", "\u200f",
    "\u202e", "\u2066", "\u00a0", "\u202f", "٣/١٢/٢٤", "،", "Ã©", "\ud7ff", "\U0010ffff", "\\", "\\u0000",
    "\\ud83d", "Bob", ": ", " - ", "[" * 1200, '{"a":' * 1200, "9" * 4400,
]

text_strategy = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=40).map("".join)


@st.composite
def encoded_text(draw) -> bytes:
    text = draw(text_strategy)
    enc = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "utf-16-be", "latin-1"]))
    return text.encode(enc, errors="surrogatepass" if enc.startswith("utf") else "replace")


@st.composite
def mutated(draw, data: bytes, max_edits: int = 4) -> bytes:
    """``data`` with a few bytes flipped, inserted or deleted (or a span duplicated)."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, max_edits))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "dup", "cut"]))
        i = draw(st.integers(0, len(buf)))
        if op == "flip" and i < len(buf):
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and i < len(buf):
            buf[i] = draw(st.sampled_from([0, 0x0A, 0x22, 0x2C, 0x3C, 0x7B, 0x80, 0xC3, 0xFF]))
        elif op == "insert":
            buf[i:i] = draw(st.one_of(st.binary(min_size=1, max_size=6),
                                      st.sampled_from(PIECES).map(lambda s: s.encode("utf-8", "surrogatepass"))))
        elif op == "delete":
            del buf[i:i + draw(st.integers(1, 16))]
        elif op == "dup":
            j = draw(st.integers(i, min(len(buf), i + 200)))
            buf[j:j] = buf[i:j]
        elif op == "cut":
            del buf[i:]
    return bytes(buf)


# values that break assumptions about a field's type
ODD_VALUES = [None, [], [None], {}, {"text": 1}, 0, -1, 1.5, 1e30, -1e30, 10**25, True, "", " ", "x", "\u200e",
              "9999-12-31T23:59:59", "0001-01-01T00:00:00", "2024-02-30T10:00:00", "1700000000", "-1",
              "NaN", "inf", "2024-01-01T10:00:00+99:00", [["nested"]], {"list": None}, {"list": [1]}]
# fields the readers look up (so a random path often hits one)
HOT_KEYS = ["messages", "text", "date", "date_unixtime", "from", "from_id", "type", "id", "name", "chats", "list",
            "left_chats", "action", "actor", "sender_name", "timestamp_ms", "content", "participants", "title",
            "photos", "sticker", "share", "is_unsent", "call_duration", "guild", "channel", "author", "nickname",
            "timestamp", "attachments", "stickers", "embeds", "ts", "user", "user_profile", "subtype", "files",
            "bot_id", "bot_profile", "username", "members", "profile", "real_name", "media_type", "forwarded_from",
            "sticker_emoji", "text_entities"]


def _paths(obj, prefix=()):
    """Every (path) into a JSON document, containers included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@st.composite
def json_mutated(draw, doc):
    """``doc`` with 1-4 fields deleted, replaced by odd values, or given an odd extra field."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(doc)]
        hot = [p for p in paths if p and p[-1] in HOT_KEYS]
        if hot and draw(st.integers(0, 2)):  # a field a reader looks at: first the name, then one place
            key = draw(st.sampled_from(sorted({p[-1] for p in hot})))
            path = draw(st.sampled_from([p for p in hot if p[-1] == key]))
        else:
            path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if not path:  # the whole document
            if op == "replace":
                doc = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
            continue
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
        else:
            target = parent[key]
            if isinstance(target, dict):
                target[draw(st.sampled_from(HOT_KEYS))] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), copy.deepcopy(draw(st.sampled_from(ODD_VALUES))))
    return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8")


_TOKEN_RE = re.compile(rb'"(?:[^"\\\n]|\\.){0,60}"|-?\d[\d.:/ -]{0,30}\d|\d')
ODD_TOKENS = [b"", b"0", b"-1", b"1e400", b"99999999999999999999", b"9999-12-31T23:59:59", b"0001-01-01",
              b"2024-02-30 10:00", b"NaN", b'""', b"null", b"[]", b"{}", b"13/13/13", b"25:61", b"\xff\xfe",
              b"&#55357;", b"\x00", b'"', b",", b"\n", b"<", b">", b"\xe2\x80\x8e", "Ã©".encode()]


@st.composite
def token_mutated(draw, data: bytes) -> bytes:
    """``data`` with 1-4 tokens (quoted strings, numbers, dates, times) replaced by odd ones."""
    spans = [m.span() for m in _TOKEN_RE.finditer(data)]
    if not spans:
        return data
    chosen = sorted(set(draw(st.lists(st.sampled_from(spans), min_size=1, max_size=4))), reverse=True)
    out = bytearray(data)
    for a, b in chosen:
        quoted = data[a:a + 1] == b'"' and b - a >= 2
        new = draw(st.sampled_from(ODD_TOKENS))
        if quoted and draw(st.booleans()):
            new = b'"' + new.replace(b'"', b"") + b'"'
        out[a:b] = new
    return bytes(out)


MARKS = ["", "", "", "\u200e", "\u200f", "\u202a", "\u2066"]
AMPM_AFTER = ["AM", "PM", "am", "pm", "a. m.", "p.\u00a0m.", "ص", "م", "vorm.", "nachm.", "π.μ.", "μ.μ.", "SA", "CH",
              "ap.", "ip.", "fm", "em", "PM.", "xm"]
AMPM_BEFORE = ["午前", "午後", "上午", "下午", "오전", "오후", "ÖÖ", "ÖS", "ก่อนเที่ยง", "หลังเที่ยง"]
BODIES = ["hi", "", " ", "<Media omitted>", "IMG-1.jpg (file attached)", "\u200eimage omitted", "null",
          "This message was deleted", "Missed voice call", "hello <This message was edited>", "a\nb\n\nc",
          "Location: https://maps.google.com/?q=1,2", "Messages and calls are end-to-end encrypted.",
          "X created group \"G\"", "<attached: 1.jpg>", "😀", "\u200f", "12/03/2024, 14:05 - Y: pasted"]


def _number(draw, value: int, width: int) -> str:
    digits = str(value).zfill(width)
    if draw(st.integers(0, 19)) == 0:  # Arabic-Indic or other Unicode digits
        base = draw(st.sampled_from([0x660, 0x6F0, 0x966, 0xFF10]))
        digits = "".join(chr(base + int(c)) for c in digits)
    return digits


@st.composite
def whatsapp_style(draw) -> dict:
    """How one export writes its headers (frame, field order, separators, 12 h or 24 h ...)."""
    return {
        "ios": draw(st.booleans()), "year_first": draw(st.integers(0, 5)) == 0,
        "time_first": draw(st.integers(0, 9)) == 0,
        "sep": draw(st.sampled_from("/.-")), "year4": draw(st.booleans()), "pad": draw(st.booleans()),
        "secs": draw(st.booleans()), "ampm": draw(st.sampled_from(["", "", "after", "before"])),
        "ampm_after": draw(st.sampled_from(AMPM_AFTER)), "ampm_before": draw(st.sampled_from(AMPM_BEFORE)),
        "space": draw(st.sampled_from([" ", "\u202f", "\u00a0"])), "comma": draw(st.sampled_from([",", "", "،"])),
        "tsep": draw(st.sampled_from([":", ":", "."])), "dash": draw(st.sampled_from(["-", "-", "–"])),
        "marks": draw(st.integers(0, 3)) == 0, "era": draw(st.sampled_from(["", "", "", "", "R", "H", "BE"])),
    }


@st.composite
def whatsapp_header(draw, style: dict) -> str:
    """One header in ``style``; now and then a field is out of range or the style slips."""
    odd = draw(st.integers(0, 7)) == 0
    m = (lambda: draw(st.sampled_from(MARKS))) if style["marks"] else (lambda: "")  # noqa: E731
    day = draw(st.integers(0, 40) if odd else st.integers(1, 31))
    month = draw(st.integers(0, 14) if odd else st.integers(1, 12))
    year = draw(st.integers(0, 9999) if odd else st.integers(2009, 2030))
    w = 2 if style["pad"] else 1
    if style["era"] == "R":
        y = "R" + _number(draw, max(0, year - 2018) % 100, 1)
    elif style["era"] == "H":
        y = "H" + _number(draw, max(0, year - 1988) % 100, 1)
    else:
        y = _number(draw, year + (543 if style["era"] == "BE" else 0), 4) if style["year4"] \
            else _number(draw, year % 100, 2)
    sep = f"{m()}{style['sep']}{m()}"
    fields = [y, _number(draw, month, w), _number(draw, day, w)] if style["year_first"] \
        else [_number(draw, day, w), _number(draw, month, w), y]
    if not style["year_first"] and draw(st.booleans()):
        fields[0], fields[1] = fields[1], fields[0]  # month first (US)
    date = sep.join(fields) + (" BE" if style["era"] == "BE" else "")
    hour = draw(st.integers(0, 30) if odd else st.integers(0, 23))
    if style["ampm"]:
        hour = hour % 12 or 12
    tsep = style["tsep"]
    time = f"{_number(draw, hour, w)}{tsep}{_number(draw, draw(st.integers(0, 70) if odd else st.integers(0, 59)), 2)}"
    if style["secs"] != (odd and draw(st.booleans())):
        time += f"{tsep}{_number(draw, draw(st.integers(0, 59)), 2)}"
    if style["ampm"] == "after":
        time += style["space"] + style["ampm_after"]
    elif style["ampm"] == "before":
        time = style["ampm_before"] + time
    stamp = f"{time}{style['comma']} {m()}{date}" if style["time_first"] else f"{date}{style['comma']} {m()}{time}"
    frame = f"{m()}[{m()}{stamp}{m()}] " if style["ios"] else f"{m()}{stamp}{m()} {style['dash']} "
    sender = draw(st.one_of(st.sampled_from(["Ann", "Ann", "Bob Ray", "\u202a+1 555\u202c", "a: b", "~ X", ""]),
                            st.none(), st.text(max_size=6)))
    return frame + ("" if sender is None else f"{sender}: ")


@st.composite
def whatsapp_chat(draw) -> bytes:
    """A WhatsApp-like chat in one header style (now and then another), odd dates and bodies."""
    style = draw(whatsapp_style())
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        head = draw(whatsapp_header(draw(whatsapp_style()) if draw(st.integers(0, 9)) == 0 else style))
        lines.append(head + draw(st.one_of(st.sampled_from(BODIES), st.text(max_size=10))))
        if draw(st.integers(0, 4)) == 0:
            lines.append(draw(st.sampled_from(BODIES)))  # a continuation line
    text = draw(st.sampled_from(["", "", "", "preamble line\n", "\ufeff"])) + "\n".join(lines)
    text = text.replace("\n", draw(st.sampled_from(["\n", "\n", "\r\n"])))
    enc = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-16"]))
    return text.encode(enc, errors="surrogatepass")


CSV_COLUMNS = ["timestamp", "sender", "text", "chat", "kind", "Timestamp", " TEXT ", "extra", ""]
CSV_CELLS = ["2024-01-01 10:00", "2024-05-01T13:45:10Z", "2024-05-01T13:45:10+02:00", "1700000000",
             "1700000000000", "999999999999999999", "3/4/2021 10:00 PM", "NaT", "nan", "now", "-1", "0001-01-01",
             "9999-12-31", "2024-02-30", "", " ", "Bob", "hi", "a\nb", "text", "media", "TEXT", "bogus", "😀",
             '"quoted, comma"', '"open', 'x"y', "\u200e", ";", "\t", "|"]


CSV_CELLS_BY_COLUMN = {"timestamp": CSV_CELLS[:13], "kind": ["", "text", "media", "system", "TEXT", " call "]}


@st.composite
def csv_file(draw) -> bytes:
    """A CSV with a random header (the required columns, others, duplicates) and odd cells."""
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    cols = draw(st.lists(st.sampled_from(CSV_COLUMNS), min_size=1, max_size=7))
    if draw(st.integers(0, 3)):
        cols = list(dict.fromkeys(["timestamp", "sender", "text"] + cols))
        cols = draw(st.permutations(cols))
    rows = [delim.join(cols)]
    for _ in range(draw(st.integers(0, 8))):
        width = len(cols) + (draw(st.integers(-2, 2)) if draw(st.integers(0, 4)) == 0 else 0)
        names = [c.strip().lower() for c in cols] + [""] * 2
        rows.append(delim.join(draw(st.sampled_from(CSV_CELLS if draw(st.integers(0, 5)) == 0
                                                    else CSV_CELLS_BY_COLUMN.get(names[i], CSV_CELLS)))
                               for i in range(max(0, width))))
    text = "\n".join(rows) + draw(st.sampled_from(["", "\n", "\n\n"]))
    return draw(st.sampled_from(["", "\ufeff"])).encode() + text.encode("utf-8", errors="surrogatepass")


# ------------------------------------------------------------------------------------- the fuzz tests


@fuzz(120)
@given(data=st.data())
def test_random_bytes(tmp_path, data):
    raw = data.draw(st.sampled_from(BOMS)) + data.draw(st.binary(max_size=600))
    path = tmp_path / f"export{data.draw(st.sampled_from(SUFFIXES))}"
    path.write_bytes(raw)
    check_all(path)


@fuzz(300)
@given(data=st.data())
def test_export_like_text(tmp_path, data):
    raw = data.draw(encoded_text())
    name = data.draw(st.sampled_from(["WhatsApp Chat with Bob.txt", "_chat.txt", "chat.md", "result.json",
                                      "message_1.json", "sms-1.xml", "export.csv", "mail.mbox", "x"]))
    path = tmp_path / name
    path.write_bytes(raw)
    check_all(path)


@fuzz(300)
@given(data=st.data())
def test_whatsapp_like_chats(tmp_path, data):
    path = tmp_path / data.draw(st.sampled_from(["WhatsApp Chat with Bob.txt", "_chat.txt", "chat.md"]))
    path.write_bytes(data.draw(whatsapp_chat()))
    check_all(path, formats=["whatsapp", "signal"])


@fuzz(250)
@given(data=st.data())
def test_csv_files(tmp_path, data):
    path = tmp_path / data.draw(st.sampled_from(["chat.csv", "chat.tsv", "chat.txt"]))
    path.write_bytes(data.draw(csv_file()))
    check_all(path, formats=["csv", "wechat-csv"])


@fuzz(250)
@given(data=st.data())
def test_truncated_samples(real_exports, tmp_path, data):
    rel, fmt = data.draw(st.sampled_from(SAMPLES))
    raw = (real_exports / rel).read_bytes()
    cut = data.draw(st.integers(0, len(raw)))
    path = _place(tmp_path, rel, raw[:cut])
    check_all(path, formats=[fmt])


@fuzz(300)
@given(data=st.data())
def test_mutated_samples(real_exports, tmp_path, data):
    rel, fmt = data.draw(st.sampled_from(SAMPLES))
    raw = (real_exports / rel).read_bytes()
    raw = data.draw(st.one_of(mutated(raw), token_mutated(raw)))
    path = _place(tmp_path, rel, raw)
    check_all(path, formats=[fmt, data.draw(st.sampled_from(list(FORMATS)))])


_JSON_DOCS: dict[str, object] = {}


def _json_doc(rel: str):
    if rel not in _JSON_DOCS:
        _JSON_DOCS[rel] = json.loads((_ROOT / rel).read_text(encoding="utf-8-sig"))
    return _JSON_DOCS[rel]


@fuzz(500)
@given(data=st.data())
def test_json_fields_of_the_wrong_type(real_exports, tmp_path, data):
    rel, fmt = data.draw(st.sampled_from(JSON_SAMPLES))
    raw = data.draw(json_mutated(_json_doc(rel)))
    path = _place(tmp_path, rel, raw)
    check_all(path, formats=[fmt])


@fuzz(150)
@given(data=st.data())
def test_slack_folder_damaged(real_exports, tmp_path, data):
    root = tmp_path / "slack"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(real_exports / SLACK, root)
    for p in root.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    files = sorted(p for p in root.rglob("*.json"))
    for _ in range(data.draw(st.integers(1, 3))):
        f = data.draw(st.sampled_from(files))
        raw = f.read_bytes()
        how = data.draw(st.sampled_from(["cut", "bytes", "tokens", "json", "json", "remove"]))
        if how == "cut":
            raw = raw[: data.draw(st.integers(0, len(raw)))]
        elif how == "bytes":
            raw = data.draw(mutated(raw))
        elif how == "tokens":
            raw = data.draw(token_mutated(raw))
        elif how == "json":
            try:
                raw = data.draw(json_mutated(json.loads(raw)))
            except ValueError:  # damaged by an earlier round
                pass
        if how == "remove":
            f.unlink()
            files.remove(f)
            if not files:
                break
        else:
            f.write_bytes(raw)
    check_all(root, formats=["slack"])


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_folders_with_every_format(real_exports, tmp_path, fmt):
    """A folder (the Slack export, an empty one, one named like a file) forced to every format."""
    _STATS["inputs"] += 3
    check_read(real_exports / SLACK, fmt)
    for name in ("empty", "chat.mbox", "export.csv"):
        (tmp_path / name).mkdir()
        check_read(tmp_path / name, fmt)
        check_read(tmp_path / name)


# ------------------------------------------------------------------------------------- regressions
# Each test below pins one bug the fuzzing found (a traceback from inside a library, or wrong data).


def _discord(messages, channel=None) -> str:
    return json.dumps({"guild": {"id": "0"}, "channel": {"name": "c"} if channel is None else channel,
                       "messages": messages})


_DISCORD_MSG = {"id": "1", "type": "Default", "timestamp": "2020-01-01T10:00:00+00:00", "content": "hi",
                "author": {"name": "Ann"}}


def test_discord_fields_of_the_wrong_type(tmp_path):
    """author/channel not objects, id/type lists: were AttributeError / unhashable TypeError."""
    f = tmp_path / "dm.json"
    f.write_text(_discord([{**_DISCORD_MSG, "author": [None]},
                           {**_DISCORD_MSG, "id": ["2"], "content": "yo"},
                           {**_DISCORD_MSG, "id": "3", "type": ["Default"]}], channel=[1]))
    df = read_export(f)
    assert df["sender"].tolist() == ["Deleted User", "Ann", "Ann"]
    assert df["kind"].tolist() == ["text", "text", "system"]
    assert set(df["chat"]) == {"dm"}


def test_meta_fields_of_the_wrong_type(tmp_path):
    """content/sender_name/title not strings, participants not a list: were AttributeError/TypeError."""
    f = tmp_path / "message_1.json"
    f.write_text(json.dumps({"participants": 5, "title": ["x"], "messages": [
        {"sender_name": ["Ann"], "timestamp_ms": 1700000000000, "content": "hi"},
        {"sender_name": "Bob", "timestamp_ms": 1700000001000, "content": ["hi"], "photos": [{"uri": "p"}]},
    ]}))
    df = read_export(f, format="messenger")
    assert df["sender"].tolist() == ["Facebook user", "Bob"]
    assert df["kind"].tolist() == ["text", "media"]


def test_slack_fields_of_the_wrong_type(real_exports, tmp_path):
    """ids/names/subtypes/users as lists or dicts, profiles not objects: were unhashable TypeError."""
    root = tmp_path / "slack"
    shutil.copytree(real_exports / SLACK, root)
    users = json.loads((root / "users.json").read_text(encoding="utf-8"))
    users[0]["profile"], users[1]["id"], users[2]["real_name"] = [], ["U1"], {"x": 1}
    channels = json.loads((root / "channels.json").read_text(encoding="utf-8"))
    channels[0]["name"] = {"n": 1}
    channels.append({"id": "D1", "members": [["U1"], "U0BMM2FEH", None]})
    day = root / "enrique" / "2016-01-14.json"
    msgs = json.loads(day.read_text(encoding="utf-8"))
    msgs[0]["subtype"], msgs[0]["user"] = ["x"], ["U1"]
    msgs.append({"type": "message", "user": {"id": 1}, "user_profile": [], "bot_profile": 3, "text": "hey",
                 "ts": "1452837318.000002"})
    for f, data in ((root / "users.json", users), (root / "channels.json", channels), (day, msgs)):
        f.chmod(0o644)
        f.write_text(json.dumps(data), encoding="utf-8")
    df = read_export(root)
    assert "hey" in set(df["text"])
    assert all(isinstance(s, str) and s for s in df["sender"])


def test_sms_xml_with_an_unknown_encoding(tmp_path):
    """<?xml encoding="bogus"?> was a LookupError from expat."""
    f = tmp_path / "sms.xml"
    f.write_bytes(b'<?xml version="1.0" encoding="bogus"?><smses></smses>')
    with pytest.raises(ExportError, match="encoding"):
        read_export(f, format="sms-xml")


@pytest.mark.parametrize("fmt, content", [
    ("signal", "[3019-12-24 12:23] Jane: Hello\n[2020-01-17 21:49] John: Hi\n"),
    ("discord", _discord([{**_DISCORD_MSG, "timestamp": "9999-12-31T23:59:59"},
                          {**_DISCORD_MSG, "id": "2", "timestamp": "-1"},
                          {**_DISCORD_MSG, "id": "3", "content": "kept"}])),
    ("telegram", json.dumps({"name": "c", "type": "personal_chat", "messages": [
        {"id": 1, "type": "message", "date": "0001-01-01T00:00:00", "from": "A", "text": "x"},
        {"id": 2, "type": "message", "date": "2024-01-01T10:00:00", "from": "A", "text": "kept"}]})),
    ("csv", "timestamp,sender,text\n9999-12-31 10:00,A,x\n-1,A,y\n2024-01-01 10:00,A,kept\n"),
])
def test_dates_outside_what_a_table_holds_are_skipped(tmp_path, fmt, content):
    """Years like 9999, 3019, 1 or -1 were OutOfBoundsDatetime (or ValueError) from pandas."""
    f = tmp_path / {"signal": "chat.md", "csv": "chat.csv"}.get(fmt, "chat.json")
    f.write_text(content, encoding="utf-8")
    with pytest.warns(SkippedLinesWarning, match="outside the years"):
        df = read_export(f, format=fmt)
    assert len(df) == 1 and df["timestamp"].dt.year.tolist()[0] in (2020, 2024)


def test_only_dates_outside_what_a_table_holds(tmp_path):
    f = tmp_path / "chat.md"
    f.write_text("[3019-12-24 12:23] Jane: Hello\n", encoding="utf-8")
    with pytest.raises(ExportError, match="no message has a date between"), pytest.warns(SkippedLinesWarning):
        read_export(f, format="signal")


def test_whatsapp_years_after_2261_do_not_wrap_around(tmp_path):
    """'12/03/2300' came out as 1715-08-22 (nanoseconds overflowed), silently."""
    f = tmp_path / "WhatsApp Chat with Bob.txt"
    f.write_text("12/03/2300, 14:05 - Ann: hi\n12/03/2024, 14:06 - Bob: yo\n12/03/9999, 14:07 - Ann: x\n",
                 encoding="utf-8")
    with pytest.warns(SkippedLinesWarning):
        df = read_export(f)
    assert df["timestamp"].tolist() == [pd.Timestamp("2024-03-12 14:06")]


@pytest.mark.parametrize("fmt, name, content", [
    ("wechat-csv", "chat.csv", "type_name,is_sender,talker,room_name,msg,CreateTime\n文本,0,a,R,hi,NaT\n"
                               "文本,0,a,R,yo,2024/10/4 11:42\n"),
    ("discord", "chat.json", _discord([{**_DISCORD_MSG, "timestamp": "NaT"},
                                       {**_DISCORD_MSG, "id": "2", "content": "yo"}])),
])
def test_nat_and_nan_are_not_times(tmp_path, fmt, name, content):
    """'NaT'/'nan' read by pandas.Timestamp gave NaT time stamps in the table."""
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    with pytest.warns(SkippedLinesWarning):
        df = read_export(f, format=fmt)
    assert df["timestamp"].notna().all() and df["text"].tolist() == ["yo"]


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"messages": ' + b'{"a":' * 5000, b"9" * 5000,
                                 b'{"messages": [{"id": ' + b"1" * 5000 + b"}]}"])
@pytest.mark.parametrize("fmt", ["telegram", "messenger", "discord"])
def test_json_too_deep_or_numbers_too_long(tmp_path, raw, fmt):
    """Deep nesting was a RecursionError, a 5000-digit number a ValueError from the json module."""
    f = tmp_path / "result.json"
    f.write_bytes(raw)
    with pytest.raises(ExportError, match="JSON"):
        read_export(f, format=fmt)


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "slack"])
def test_a_folder_forced_to_a_file_format(real_exports, tmp_path, fmt):
    """A folder read as anything but Slack was an IsADirectoryError (also a folder named x.csv)."""
    with pytest.raises(ExportError, match="folder"):
        read_export(real_exports / SLACK, format=fmt)
    (tmp_path / "x.csv").mkdir()
    with pytest.raises(ExportError, match="folder"):
        read_export(tmp_path / "x.csv")


def test_telegram_chat_whose_messages_are_not_a_list(tmp_path):
    """In a whole-account export, a chat with "messages": 5 was a TypeError (int not iterable)."""
    f = tmp_path / "result.json"
    f.write_text(json.dumps({"chats": {"list": [
        {"name": "a", "messages": 5}, {"name": "b", "messages": {"x": 1}},
        {"name": "c", "messages": [{"id": 1, "type": "message", "date": "2024-01-01T10:00:00", "from": "A",
                                    "text": "hi"}]}]}}))
    df = read_export(f, format="telegram")
    assert df["chat"].tolist() == ["c"]
