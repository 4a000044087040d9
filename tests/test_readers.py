"""Readers for every non-WhatsApp format, checked against the real sample exports in ../shared.

The samples come from other projects' test suites (see SOURCES.md there); where such a project
ships its expected parse (chat-miner's ``*_EXPECTED_target.json``) our text messages must agree.
"""

from __future__ import annotations

import calendar
import json
import os
import shutil
import warnings
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from twinlib.data import COLUMNS, KINDS, ExportError, SkippedLinesWarning, detect_format, read_export
from twinlib.data import csvfile, discord, mbox, meta, signal, slack, sms, telegram, wechat

# every non-WhatsApp sample -> the format detection must pick
FIXTURES = {
    "telegram/chatminer_single_export.json": "telegram",
    "telegram/chatminer_batch_export.json": "telegram",
    "telegram/chatanalytics_DM_2A_7M.json": "telegram",
    "messenger/chatanalytics_2A_7M.json": "messenger",
    "instagram/chatminer_instagram_export.json": "instagram",
    "discord/chatanalytics_DM_2A_2M.json": "discord",
    "discord/chatanalytics_GC_3A_5M.json": "discord",
    "discord/chatanalytics_SV_5A_5M.json": "discord",
    "signal/chatminer_signal_export.txt": "signal",
    "sms-xml/smsbr2_sms_and_mms.xml": "sms-xml",
    "sms-xml/smsbr2_sms_small.xml": "sms-xml",
    "sms-xml/smsbr2_sample_mms.xml": "sms-xml",
    "wechat/weclone_test_person_0_730.csv": "wechat-csv",
    "wechat/weclone_test_PII_labeled_0_730.csv": "wechat-csv",
    "mbox/scutes_test.mbox": "mbox",
    "slack/slack-export-viewer_testarchive": "slack",  # a folder
}
# our readers' sniff functions, by the module the format uses
SNIFFERS = {"telegram": telegram, "messenger": meta, "instagram": meta, "discord": discord, "signal": signal,
            "sms-xml": sms, "mbox": mbox, "wechat-csv": wechat, "slack": slack}


def _read(path) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedLinesWarning)  # the SMS sample is cut off (tested below)
        return read_export(path)


def _head(path: Path) -> str:
    return "" if path.is_dir() else path.read_bytes()[:65536].decode("utf-8", errors="replace")


def _utc_to_local(iso: str) -> datetime:
    """chat-miner converts epochs with utcfromtimestamp; our readers give this machine's local time."""
    return datetime.fromtimestamp(calendar.timegm(datetime.fromisoformat(iso).timetuple()))


def _squash(s: str) -> str:
    return "".join(s.split())


# ---------------------------------------------------------------- every sample reads


def test_every_sample_is_covered(real_exports):
    """A new non-WhatsApp sample in ../shared must be added to FIXTURES (and so get tested)."""
    on_disk = set()
    for p in real_exports.rglob("*"):
        rel = p.relative_to(real_exports).as_posix()
        if rel.startswith(("whatsapp", "slack/")) or p.is_dir() or "EXPECTED" in p.name or p.name == "SOURCES.md":
            continue
        on_disk.add(rel)
    on_disk |= {p.relative_to(real_exports).as_posix() for p in (real_exports / "slack").iterdir() if p.is_dir()}
    assert on_disk == set(FIXTURES)


@pytest.mark.parametrize("rel", sorted(FIXTURES))
def test_sample_reads_with_detection(real_exports, rel):
    path = real_exports / rel
    assert detect_format(path) == FIXTURES[rel]
    df = _read(path)
    assert list(df.columns) == COLUMNS
    assert df.attrs["format"] == FIXTURES[rel]
    assert set(df["kind"]) <= set(KINDS)
    assert df["timestamp"].notna().all()
    assert df["timestamp"].is_monotonic_increasing
    text = df[df["kind"] == "text"]
    assert len(text) > 0
    assert (text["text"].str.strip() != "").all()
    assert (df["sender"] != "").all() and (df["chat"] != "").all()


@pytest.mark.parametrize("rel", sorted(FIXTURES))
def test_sniffers_are_specific(real_exports, rel):
    """Only the right reader claims a sample (the CSV fallback goes by suffix and comes last)."""
    path = real_exports / rel
    head = _head(path)
    claims = {fmt for fmt, mod in SNIFFERS.items() if mod.sniff(path, head)}
    expected = {FIXTURES[rel]} | ({"messenger", "instagram"} if FIXTURES[rel] in ("messenger", "instagram") else set())
    assert claims == expected


def test_sniffers_leave_whatsapp_alone(real_exports):
    """WhatsApp chats (another reader's job) must not be claimed by any of these readers."""
    files = sorted((real_exports / "whatsapp").rglob("*.txt"))
    assert files
    for path in files:
        head = _head(path)
        claims = [fmt for fmt, mod in SNIFFERS.items() if mod.sniff(path, head)]
        assert not claims, (path.name, claims)
        assert not csvfile.sniff(path, head), path.name


# ---------------------------------------------------------------- agreement with chat-miner's expected output


@pytest.mark.parametrize("rel", ["telegram/chatminer_single_export.json", "telegram/chatminer_batch_export.json"])
def test_telegram_matches_chatminer(real_exports, rel):
    expected = json.loads((real_exports / "telegram/chatminer_EXPECTED_target.json").read_text(encoding="utf-8"))
    df = _read(real_exports / rel)
    text = df[df["kind"] == "text"].reset_index(drop=True)
    assert len(text) == len(expected)
    for row, exp in zip(text.itertuples(), sorted(expected, key=lambda e: e["timestamp"])):
        assert row.sender == exp["author"]
        # chat-miner joins text entities with " "; we concatenate them as Telegram does
        # ("Link:" + "https://telegram.org/"), so compare without whitespace
        assert _squash(row.text) == _squash(exp["message"])
        assert row.timestamp == pd.Timestamp(_utc_to_local(exp["timestamp"]))
    assert text.loc[1, "text"] == "Link:https://telegram.org/"
    # the single-chat sample has no name: the file name stands in
    assert set(df["chat"]) == ({"Chatname"} if "batch" in rel else {"chatminer_single_export"})


def test_instagram_matches_chatminer(real_exports):
    expected = json.loads((real_exports / "instagram/chatminer_EXPECTED_target.json").read_text(encoding="utf-8"))
    df = _read(real_exports / "instagram/chatminer_instagram_export.json")
    text = df[df["kind"] == "text"].reset_index(drop=True)
    assert len(text) == len(expected)
    for row, exp in zip(text.itertuples(), sorted(expected, key=lambda e: e["timestamp"])):  # file: newest first
        assert (row.sender, row.text) == (exp["author"], exp["message"])
        assert row.timestamp == pd.Timestamp(_utc_to_local(exp["timestamp"]))


def test_signal_matches_chatminer(real_exports):
    expected = json.loads((real_exports / "signal/chatminer_EXPECTED_target.json").read_text(encoding="utf-8"))
    df = _read(real_exports / "signal/chatminer_signal_export.txt")
    text = df[df["kind"] == "text"].reset_index(drop=True)
    assert len(text) == len(expected)
    for row, exp in zip(text.itertuples(), sorted(expected, key=lambda e: e["timestamp"])):
        # chat-miner joins a multi-line message with spaces; we keep the line break
        assert (row.sender, row.text.replace("\n", " ")) == (exp["author"], exp["message"])
        assert row.timestamp == pd.Timestamp(exp["timestamp"])  # written as local time: no conversion
    assert "Hello\nJane!" in set(text["text"])


# ---------------------------------------------------------------- format details


def test_telegram_kinds_and_service_messages(real_exports):
    df = _read(real_exports / "telegram/chatanalytics_DM_2A_7M.json")
    assert df["kind"].tolist() == ["system", "text", "text", "text", "text", "media", "media", "call"]
    assert df.loc[1, "text"] == "https://google.com 👀"  # entity + plain string concatenated
    assert df.loc[0, "timestamp"] == pd.Timestamp("2019-07-05 16:55:32")  # "date" is used as written
    assert set(df["chat"]) == {"Bob"}


def test_telegram_whole_account_layout(tmp_path):
    data = {
        "about": "Here is the data you requested. Remember: Telegram is ad free...",
        "personal_information": {"first_name": "Ann"},
        "chats": {"about": "", "list": [
            {"name": "Bob", "type": "personal_chat", "id": 1, "messages": [
                {"id": 1, "type": "message", "date": "2024-01-01T10:00:00", "from": "Bob", "from_id": "user1",
                 "text": ["see ", {"type": "bold", "text": "this"}, "\nnow"]},
                {"id": 2, "type": "message", "date": "2024-01-01T10:01:00", "from": None, "from_id": "user9",
                 "text": "from a deleted account"},
                {"id": 3, "type": "message", "date": "2024-01-01T10:02:00", "from": "Ann", "from_id": "user2",
                 "file": "stickers/x.webp", "media_type": "sticker", "sticker_emoji": "😀", "text": ""},
                {"id": 4, "type": "message", "date": "2024-01-01T10:03:00", "from": "Ann", "from_id": "user2",
                 "photo": "photos/p.jpg", "text": "my caption"},
                {"id": 5, "type": "message", "date": "2024-01-01T10:04:00", "from": "Ann", "from_id": "user2",
                 "forwarded_from": "News", "text": "somebody else's words"},
            ]},
        ]},
        "left_chats": {"list": [{"name": None, "type": "private_group", "id": 7, "messages": [
            {"id": 1, "type": "message", "date": "2023-01-01T09:00:00", "from": "Ann", "text": "old group"}]}]},
    }
    f = tmp_path / "result.json"
    f.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    df = read_export(f)
    assert df.attrs["format"] == "telegram"
    rows = list(zip(df["chat"], df["sender"], df["text"], df["kind"]))
    assert rows == [
        ("chat 7", "Ann", "old group", "text"),
        ("Bob", "Bob", "see this\nnow", "text"),
        ("Bob", "user9", "from a deleted account", "text"),
        ("Bob", "Ann", "😀", "sticker"),
        ("Bob", "Ann", "my caption", "text"),
        ("Bob", "Ann", "somebody else's words", "other"),
    ]


def test_messenger_sample(real_exports):
    df = _read(real_exports / "messenger/chatanalytics_2A_7M.json")  # UTF-8 BOM, newest first
    assert df["kind"].tolist() == ["media", "sticker", "media", "media", "text", "text", "text"]
    assert df[df["kind"] == "text"]["text"].tolist() == ["you what", "Whats up!", "Hello"]
    assert set(df["chat"]) == {"Alice"}
    assert df.loc[6, "timestamp"] == pd.Timestamp(datetime.fromtimestamp(1415147732.056))


def test_meta_mojibake_is_repaired(real_exports, tmp_path):
    for rel in ("messenger/chatanalytics_2A_7M.json", "instagram/chatminer_instagram_export.json"):
        df = _read(real_exports / rel)
        assert not df["text"].str.contains("Ã").any() and not df["sender"].str.contains("Ã").any()

    def mangle(s: str) -> str:  # what Meta does to every string
        return s.encode("utf-8").decode("latin-1")

    data = json.loads((real_exports / "messenger/chatanalytics_2A_7M.json").read_text(encoding="utf-8-sig"))
    data["title"] = mangle("Zoë & Jürgen")
    data["messages"][0]["content"] = mangle("Café? 😀 Ça va, ¿qué tal?")
    data["messages"][0]["sender_name"] = mangle("Zoë")
    data["messages"][1]["content"] = "déjà vu €"  # not double-encoded: must stay as it is
    data["messages"][2]["content"] = mangle("Reacted ❤️ to your message")
    f = tmp_path / "message_1.json"
    f.write_text(json.dumps(data), encoding="utf-8")
    assert "Ã" in f.read_text(encoding="utf-8") or "\\u00c3" in f.read_text(encoding="utf-8")
    df = read_export(f)
    assert df.attrs["format"] == "messenger"
    assert set(df["chat"]) == {"Zoë & Jürgen"}
    last = df.iloc[-1]
    assert (last["sender"], last["text"], last["kind"]) == ("Zoë", "Café? 😀 Ça va, ¿qué tal?", "text")
    assert "déjà vu €" in set(df["text"])
    assert df[df["text"].str.startswith("Reacted")]["kind"].tolist() == ["system"]
    assert meta.fix_mojibake("Ã©") == "é" and meta.fix_mojibake("é") == "é" and meta.fix_mojibake("€") == "€"


def test_instagram_is_told_apart_by_its_folder(real_exports, tmp_path):
    src = real_exports / "messenger/chatanalytics_2A_7M.json"
    dest = tmp_path / "your_instagram_activity" / "messages" / "inbox" / "alice_1" / "message_1.json"
    dest.parent.mkdir(parents=True)
    shutil.copy(src, dest)
    assert detect_format(src) == "messenger"
    assert detect_format(dest) == "instagram"


def test_discord_details(real_exports):
    df = _read(real_exports / "discord/chatanalytics_SV_5A_5M.json")
    assert len(df) == 4  # the same message id twice is kept once
    assert df.loc[0, "sender"] == "Deleted User"
    assert df.loc[1, "sender"] == "mlomb"  # no nickname -> name
    assert df.loc[0, "timestamp"] == pd.Timestamp("2018-05-20 16:09:44.209")
    gc = _read(real_exports / "discord/chatanalytics_GC_3A_5M.json")
    assert "theplant" in set(gc["sender"])  # nickname over name
    assert gc["kind"].tolist() == ["system", "text", "system", "text", "text", "call"]
    assert set(gc["chat"]) == {"a group chat"}


def test_discord_keeps_the_clock_of_the_offset(real_exports, tmp_path):
    data = json.loads((real_exports / "discord/chatanalytics_DM_2A_2M.json").read_text(encoding="utf-8"))
    data["messages"][0]["timestamp"] = "2021-06-01T23:30:00.123+02:00"
    data["messages"][1].update(content="", attachments=[{"id": "1", "url": "x.png", "fileName": "x.png"}])
    f = tmp_path / "dm.json"
    f.write_text(json.dumps(data), encoding="utf-8")
    df = read_export(f)
    assert pd.Timestamp("2021-06-01 23:30:00.123") in set(df["timestamp"])
    assert df["kind"].tolist().count("media") == 1


def test_signal_export_decorations(tmp_path):
    chat = tmp_path / "Alice" / "chat.md"
    chat.parent.mkdir()
    chat.write_text(
        "[2024-03-01 09:00:00] Alice: good morning  \n"
        "second line  \n"
        "[2024-03-01 09:01:00] Me: \n\n> good morning\n> second line\n\nmorning!  \n"
        "(- Alice: 👍 -)\n"
        "[2024-03-01 09:02:00] Alice: ![IMG_1.jpg](./media/IMG_1.jpg)  \n"
        "[2024-03-01 09:03:00] Alice: look [doc.pdf](./media/doc.pdf)  \n"
        "[2024-03-01 09:04:00] Me: (This message was deleted)\n"
        "[2024-03-01 09:05:00] Alice: Missed voice call  \n"
        "[2024-03-01 09:06:00] Alice: \n(( 😀 ))\n",
        encoding="utf-8",
    )
    df = read_export(chat)
    assert df.attrs["format"] == "signal"
    assert set(df["chat"]) == {"Alice"}
    assert list(zip(df["sender"], df["text"], df["kind"])) == [
        ("Alice", "good morning\nsecond line", "text"),
        ("Me", "morning!", "text"),
        ("Alice", "", "media"),
        ("Alice", "look", "text"),
        ("Me", "", "deleted"),
        ("Alice", "Missed voice call", "call"),
        ("Alice", "😀", "sticker"),
    ]


def test_sms_senders_and_chats(real_exports):
    path = real_exports / "sms-xml/smsbr2_sms_small.xml"
    df = _read(path)
    raw = path.read_text(encoding="utf-8")
    assert (df["sender"] == "Me").sum() == raw.count('type="2"')
    received = df[df["sender"] != "Me"]
    assert (received["sender"] == received["chat"]).all()  # a received SMS is from the contact
    assert set(df["chat"]) == {"Contact A", "Contact B", "Contact C"}
    assert "Body text 10\nBody text 11\nBody text 12" in set(df["text"])  # &#10; kept as line breaks
    assert df.loc[0, "timestamp"] == pd.Timestamp(datetime.fromtimestamp(1512226167.463))


def test_sms_mms_groups_and_attachments(real_exports):
    path = real_exports / "sms-xml/smsbr2_sms_and_mms.xml"  # the sample itself is cut off at the end
    with pytest.warns(SkippedLinesWarning, match="ends early"):
        df = read_export(path)
    assert len(df) == 49
    group = df[df["chat"] == "group_8@rcs.google.com"]
    assert group["sender"].tolist() == ["+15550000009", "Me", "+15550000010"]  # "from" address (type 137)
    assert df[df["text"] == "Body text 46"]["sender"].tolist() == ["Me"]  # msg_box 2
    assert df[df["text"] == "Body text 54"]["kind"].tolist() == ["text"]  # image + text part
    mms = _read(real_exports / "sms-xml/smsbr2_sample_mms.xml")
    assert mms["text"].tolist() == ["Here is an image attachment", "Here is a video attachment",
                                    "Here is an audio attachment", "Here is a PDF attachment"]
    for frame in (df, mms):
        assert not frame["text"].str.contains("iVBOR|AAAAHGZ0|JVBERi|smil").any()  # no base64, no SMIL


def test_sms_media_only_mms_and_emoji_surrogates(tmp_path):
    f = tmp_path / "sms-20240101.xml"
    f.write_text(
        "<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n"
        '<smses count="3">\n'
        '  <sms protocol="0" address="+4912345" date="1704103200000" type="1" body="Hi &#55357;&#56832;!" '
        'contact_name="Bea" />\n'
        '  <sms protocol="0" address="+4912345" date="1704103260000" type="2" body="lone &#55357; half" '
        'contact_name="Bea" />\n'
        '  <mms date="1704103320000" msg_box="1" address="+4912345" contact_name="Bea"><parts>'
        '<part seq="0" ct="image/jpeg" name="a.jpg" data="/9j/4AAQSkZJRgABAQ==" /></parts>'
        '<addrs><addr address="+4912345" type="137" /></addrs></mms>\n'
        "</smses>\n",
        encoding="utf-8",
    )
    df = read_export(f)
    assert list(zip(df["sender"], df["text"], df["kind"])) == [
        ("Bea", "Hi 😀!", "text"), ("Me", "lone \ufffd half", "text"), ("Bea", "", "media")]


def test_mbox_sample(real_exports):
    df = _read(real_exports / "mbox/scutes_test.mbox")
    assert len(df) == 1
    row = df.iloc[0]
    assert row["sender"] == "Brockman, Kent"
    assert row["chat"] == "[WH Pool] Travel pool report #1: x-mailer Apple Mail"
    assert row["timestamp"] == pd.Timestamp("2022-10-31 15:17:37")
    assert row["text"].startswith("The motorcade ended its journey")
    assert "\nFrom the WH:" in row["text"]  # mbox ">From" escaping undone, not taken for a quote
    assert "unsubscribe" not in row["text"]  # the signature after "-- " is cut


def test_mbox_replies_keep_only_the_new_text(tmp_path):
    f = tmp_path / "mail.mbox"
    f.write_bytes(
        b"From ann@example.org Tue Mar  5 10:00:00 2024\n"
        b"From: Ann Example <ann@example.org>\nTo: bob@example.org\nSubject: Re: AW: Fwd: Lunch?\n"
        b"Date: Tue, 05 Mar 2024 10:00:00 +0100\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
        b"Sure, see you at noon =E2=80=93 caf=C3=A9 downstairs?\nAnn\n\n"
        b"On Mon, Mar 4, 2024 at 9:00 PM Bob <bob@example.org>\nwrote:\n> Lunch tomorrow?\n> Bob\n"
        b"\n"
        b"From bob@example.org Tue Mar  5 11:00:00 2024\n"
        b"From: bob@example.org\nSubject: Lunch?\nDate: Tue, 05 Mar 2024 11:00:00 -0500\nMIME-Version: 1.0\n"
        b"Content-Type: text/html; charset=utf-8\n\n"
        b"<html><head><style>p {}</style></head><body><p>Great&nbsp;idea!</p><div>Line two<br>three</div>"
        b"<blockquote>old quoted text</blockquote></body></html>\n"
    )
    df = read_export(f)
    assert df.attrs["format"] == "mbox"
    assert set(df["chat"]) == {"Lunch?"}
    assert df["sender"].tolist() == ["Ann Example", "bob@example.org"]
    assert df["text"].tolist() == ["Sure, see you at noon – café downstairs?\nAnn", "Great idea!\n\nLine two\nthree"]
    # the Date header's clock time is kept, the offset dropped
    assert df["timestamp"].tolist() == [pd.Timestamp("2024-03-05 10:00"), pd.Timestamp("2024-03-05 11:00")]


def test_slack_sample(real_exports):
    df = _read(real_exports / "slack/slack-export-viewer_testarchive")
    assert set(df["chat"]) == {"enrique"}
    joins = df[df["text"].str.endswith("has joined the channel")]
    assert len(joins) == 4 and set(joins["kind"]) == {"system"}
    assert "@Harry Potter: Created an issue for a setup.py so that it can be installed to a standard place" \
        in set(df["text"])  # <@U0BMYT2FL> -> @real name
    assert not df["text"].str.contains("<@U|<https?://", regex=True).any()
    assert set(df[df["sender"] == "B0JL6RASU"]["kind"]) == {"other"}  # bot posts are not a person
    assert df.loc[4, "timestamp"] == pd.Timestamp(datetime.fromtimestamp(1452837352.000006))


def test_wechat_sample(real_exports):
    df = _read(real_exports / "wechat/weclone_test_person_0_730.csv")
    assert set(df["chat"]) == {"test_person"}
    me = df[df["sender"] == "Me"]
    assert len(me) > 0 and "小马尔代夫" in set(me["text"])
    assert df.loc[0, "timestamp"] == pd.Timestamp("2024-10-04 11:42")
    assert {"text", "media", "sticker", "deleted"} <= set(df["kind"])
    quoted = df[df["text"].str.startswith("（我们两个人骑）")]
    assert quoted["text"].tolist() == ["（我们两个人骑）"]  # the quoted "[引用]..." tail is dropped
    assert not df[df["kind"] == "text"]["text"].str.contains("<revokemsg>").any()


# ---------------------------------------------------------------- plain CSV


def test_csv_reads_with_defaults(tmp_path):
    f = tmp_path / "my chat.csv"
    f.write_text('Timestamp,Sender,Text,kind\n2024-01-01 10:00,Ann,"hi\nthere",\n'
                 "2024-01-01T10:05:00+02:00,Bob,photo,media\n", encoding="utf-8")
    df = read_export(f)
    assert df.attrs["format"] == "csv"
    assert list(zip(df["chat"], df["sender"], df["text"], df["kind"])) == [
        ("my chat", "Ann", "hi\nthere", "text"), ("my chat", "Bob", "photo", "media")]
    assert df.loc[1, "timestamp"] == pd.Timestamp("2024-01-01 10:05")


def test_csv_missing_column_is_named(tmp_path):
    f = tmp_path / "chat.csv"
    f.write_text("timestamp,author,text\n2024-01-01 10:00,Ann,hi\n", encoding="utf-8")
    with pytest.raises(ExportError) as e:
        read_export(f)
    msg = str(e.value)
    assert "'sender'" in msg and str(f) in msg and "What to do" in msg


def test_csv_bad_timestamp_names_the_row(tmp_path):
    f = tmp_path / "chat.csv"
    f.write_text("timestamp,sender,text\n2024-01-01 10:00,Ann,hi\nyesterday-ish,Bob,yo\n", encoding="utf-8")
    with pytest.raises(ExportError) as e:
        read_export(f)
    assert e.value.line == 3 and "yesterday-ish" in str(e.value) and "What to do" in str(e.value)


# ---------------------------------------------------------------- bad input: clear errors, no tracebacks


def _assert_clear(err: ExportError, path: Path):
    msg = str(err)
    assert str(path) in msg
    assert "What to do:" in msg
    assert "Traceback" not in msg


def test_empty_file(tmp_path):
    f = tmp_path / "export.json"
    f.write_bytes(b"")
    with pytest.raises(ExportError) as e:
        read_export(f)
    _assert_clear(e.value, f)


def test_unknown_text_file(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("Shopping list\n- milk\n- bread\n\nCall the plumber on Tuesday.\n", encoding="utf-8")
    with pytest.raises(ExportError) as e:
        read_export(f)
    _assert_clear(e.value, f)


def test_binary_file(tmp_path):
    f = tmp_path / "export.json"
    f.write_bytes(bytes(range(256)) * 40 + os.urandom(2048) + b"\x00" * 64)
    with pytest.raises(ExportError) as e:
        read_export(f)
    _assert_clear(e.value, f)


@pytest.mark.parametrize("rel", [
    "telegram/chatanalytics_DM_2A_7M.json",
    "telegram/chatminer_batch_export.json",
    "messenger/chatanalytics_2A_7M.json",
    "instagram/chatminer_instagram_export.json",
    "discord/chatanalytics_GC_3A_5M.json",
])
def test_truncated_json(real_exports, tmp_path, rel):
    raw = (real_exports / rel).read_bytes()
    f = tmp_path / Path(rel).name
    f.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ExportError) as e:
        read_export(f)
    _assert_clear(e.value, f)
    assert "cut off" in str(e.value) and e.value.line is not None and e.value.line > 1


def test_truncated_slack_day_file_is_named(real_exports, tmp_path):
    export = tmp_path / "slack"
    shutil.copytree(real_exports / "slack/slack-export-viewer_testarchive", export)
    day = export / "enrique" / "2016-01-15.json"
    day.write_bytes(day.read_bytes()[:700])
    with pytest.raises(ExportError) as e:
        read_export(export)
    _assert_clear(e.value, day)
    assert "cut off" in str(e.value)


def test_invalid_json_in_the_middle(real_exports, tmp_path):
    raw = (real_exports / "discord/chatanalytics_DM_2A_2M.json").read_text(encoding="utf-8")
    f = tmp_path / "dm.json"
    f.write_text(raw.replace('"content": "blah",', '"content": "blah",,', 1), encoding="utf-8")
    with pytest.raises(ExportError) as e:
        read_export(f)
    _assert_clear(e.value, f)
    assert e.value.line == raw[: raw.index('"content": "blah"')].count("\n") + 1


def test_truncated_sms_backup_without_messages(tmp_path):
    f = tmp_path / "sms.xml"
    f.write_text("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n<smses count=\"1\">\n  <sms addr",
                 encoding="utf-8")
    with pytest.raises(ExportError) as e:
        read_export(f)
    _assert_clear(e.value, f)
    assert "cut off" in str(e.value)


def test_forced_format_on_the_wrong_file(real_exports):
    """format= forces a reader; a file of another kind still gives an ExportError, not a KeyError."""
    path = real_exports / "discord/chatanalytics_DM_2A_2M.json"
    for fmt in ("telegram", "messenger", "slack", "signal", "sms-xml", "mbox", "wechat-csv", "csv"):
        with pytest.raises(ExportError) as e:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                read_export(path, format=fmt)
        _assert_clear(e.value, path)


# --------------------------------------------------------------------------- finding exports in folders


def test_find_exports_looks_into_sub_folders(real_exports, tmp_path):
    """A Messenger-style ``inbox/<chat>/message_1.json`` tree, a signal-export ``<chat>/chat.md``
    and a Slack folder are found; other files of the export (settings JSON, notes) are left out."""
    from twinlib.data import find_exports, read_exports

    root = tmp_path / "takeout"
    chat = root / "messages" / "inbox" / "robin_123"
    chat.mkdir(parents=True)
    shutil.copy(real_exports / "messenger" / "chatanalytics_2A_7M.json", chat / "message_1.json")
    (root / "messages" / "autofill_information.json").write_text('{"autofill": []}')
    (chat / "notes.md").write_text("my notes")
    (root / "README.md").write_text("what is in this folder")
    sig = root / "signal" / "Robin"
    sig.mkdir(parents=True)
    (sig / "chat.md").write_text("[2024-01-02 10:00] Robin: hi there\n[2024-01-02 10:01] Me: hello\n")
    shutil.copytree(real_exports / "slack" / "slack-export-viewer_testarchive", root / "work" / "slack")
    found = find_exports(root)
    assert [p.relative_to(root).as_posix() for p in found] == [
        "messages/inbox/robin_123/message_1.json", "signal/Robin/chat.md", "work/slack"]
    assert [detect_format(p) for p in found] == ["messenger", "signal", "slack"]
    assert len(read_exports(found)) > 0


def test_find_exports_names_an_empty_folder(tmp_path):
    from twinlib.data import find_exports

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "settings.json").write_text('{"theme": "dark"}')
    with pytest.raises(ExportError, match="holds no chat export") as err:
        find_exports(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_cut_off_json_error_reads_well(tmp_path):
    f = tmp_path / "result.json"
    f.write_text('{"name": "Robin", "messages": [{"text": "hel')
    with pytest.raises(ExportError, match="ends too early") as err:
        read_export(f, format="telegram")
    assert "at at" not in str(err.value)
