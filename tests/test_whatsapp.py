"""The WhatsApp reader (``twinlib.data.whatsapp``): the real sample exports in ../shared, and small
hand-written files for the cases those samples do not cover."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from twinlib.data import ExportError, read_export, whatsapp
from twinlib.data._common import SkippedLinesWarning

MARKS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
CHATMINER = ["chatminer_android_ddmmyy_24h.txt", "chatminer_android_mmddyy_24h.txt",
             "chatminer_android_mmddyyyy_12h_es_ampm.txt", "chatminer_android_yyyymmdd_24h.txt",
             "chatminer_ios_brackets_mmddyy_24h.txt"]


@pytest.fixture(scope="module")
def wa(real_exports) -> Path:
    return real_exports / "whatsapp"


def read(path) -> pd.DataFrame:
    """Read with the WhatsApp reader through the dispatcher (dtypes normalized, sorted by time)."""
    return read_export(path, format="whatsapp")


def write(tmp_path: Path, text: str, name: str = "WhatsApp Chat with Test.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def row(df: pd.DataFrame, text: str) -> pd.Series:
    """The one row whose text is ``text``."""
    hits = df[df["text"] == text]
    assert len(hits) >= 1, f"no message {text!r} in {df['text'].tolist()}"
    return hits.iloc[0]


# --- every real sample ----------------------------------------------------------------------

def test_every_sample_reads_cleanly(wa):
    files = sorted(wa.rglob("*.txt"))
    assert files
    problems = []
    for path in files:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SkippedLinesWarning)
            df = read(path)
        head = path.read_text(encoding="utf-8")[:65536]
        checks = {
            "sniffed as WhatsApp": whatsapp.sniff(path, head),
            "has text messages": (df["kind"] == "text").any(),
            "no carriage return": not df["text"].str.contains("\r").any(),
            "no mark starts a text": not df["text"].str.match(f"[{MARKS}]").any(),
            "no mark in a sender": not df["sender"].str.contains(f"[{MARKS}]").any(),
            "no empty text message": not ((df["kind"] == "text") & (df["text"] == "")).any(),
            "times between 2009 and 2024": df["timestamp"].dt.year.between(2009, 2024).all(),
        }
        problems += [f"{path.name}: {name}" for name, ok in checks.items() if not ok]
    assert not problems, "\n".join(problems)


def test_chatminer_samples_match_chatminer_expected_output(wa):
    """chat-miner drops system lines and joins the lines of a message with a space; it lists
    the newest message first."""
    expected = json.loads((wa / "misc" / "chatminer_EXPECTED_target.json").read_text(encoding="utf-8"))
    want = [(e["timestamp"], e["author"], e["message"]) for e in reversed(expected)]
    for name in CHATMINER:
        df = read(wa / "misc" / name)
        texts = df[df["kind"] == "text"]
        got = [(t.isoformat(), s, x.replace("\n", " "))
               for t, s, x in zip(texts["timestamp"], texts["sender"], texts["text"])]
        assert got == want, name


# --- dates and times --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["whatsjson_calendars_Buddhist_iOS.txt",
                                  "whatsjson_calendars_Japanese_iOS.txt"])
def test_buddhist_and_japanese_era_years(wa, name):
    df = read(wa / "ios" / name)  # 2565 BE / R4 = 2022, 2566 BE / R5 = 2023
    assert df["timestamp"].iloc[0] == pd.Timestamp("2022-03-18 14:56:01")
    assert set(df["timestamp"].dt.year) == {2022, 2023}
    assert df["timestamp"].iloc[-1] == pd.Timestamp("2023-01-12 15:35:15")


def test_heisei_year(tmp_path):
    df = read(write(tmp_path, "[4/28/H31, 20:17:31] A: last Heisei day\n"))
    assert df["timestamp"].iloc[0] == pd.Timestamp("2019-04-28 20:17:31")


def test_twelve_hour_clocks(wa):
    spanish = read(wa / "misc" / "chatminer_android_mmddyyyy_12h_es_ampm.txt")
    assert row(spanish, "Lorem ipsum : dolor sit amet.")["timestamp"] == pd.Timestamp("2020-06-10 15:55")
    assert pd.Timestamp("2020-06-20 00:08") in set(spanish["timestamp"])      # 00:08 a. m.
    assert pd.Timestamp("2021-12-20 12:10") in set(spanish["timestamp"])      # 12:10 p. m.
    us = read(wa / "misc" / "chatistics_chat4_us_12h_endash.txt")            # en dash, "pm"
    assert us["timestamp"].tolist() == [pd.Timestamp("2019-09-17 08:30:52"),
                                        pd.Timestamp("2019-09-17 16:30:10"),
                                        pd.Timestamp("2019-09-18 16:50:32")]


def test_narrow_no_break_space_before_pm(tmp_path):
    df = read(write(tmp_path, "1/15/23, 9:05\u202fPM - Bo: hi\n1/15/23, 9:06\u202fPM - Bo: again\n"))
    assert df["timestamp"].iloc[0] == pd.Timestamp("2023-01-15 21:05")


@pytest.mark.parametrize("header, when", [
    ("18.03.22, 8:05 nachm. - ", "2022-03-18 20:05"),     # German
    ("18/3/22 8:05 μ.μ. - ", "2022-03-18 20:05"),         # Greek
    ("[18/3/22 8:05:00 CH] ", "2022-03-18 20:05"),        # Vietnamese
    ("2022/3/18 下午8:05 - ", "2022-03-18 20:05"),         # Chinese, before the time
    ("[3/18/22, 12:05:00 AM] ", "2022-03-18 00:05"),
])
def test_other_am_pm_words(tmp_path, header, when):
    df = read(write(tmp_path, header + "A: hi\n"))
    assert df["timestamp"].iloc[0] == pd.Timestamp(when)


def test_arabic_digits_marks_and_comma(wa):
    df = read(wa / "ios" / "whatsjson_languages_arabic_ios.txt")  # [١٨‏/٣‏/٢٠٢٢، ٢:٥٦:٠٠ م]
    assert df["timestamp"].iloc[0] == pd.Timestamp("2022-03-18 14:56:00")
    assert df["sender"].iloc[0] == "+40 521 028 61 88"


def test_time_before_date(wa):
    df = read(wa / "ios" / "whatsjson_ios_iOS_Vietnamese.txt")  # [14:56:01, 3/18/22]
    assert df["timestamp"].iloc[0] == pd.Timestamp("2022-03-18 14:56:01")


@pytest.mark.parametrize("dates, first", [
    (["13/01/2020"], "2020-01-13"),                      # a day above 12
    (["01/13/2020"], "2020-01-13"),
    (["05/01/2020", "06/01/2020", "01/02/2020"], "2020-01-05"),  # only day-first stays in order
    (["01/05/2020", "01/06/2020", "02/01/2020"], "2020-01-05"),
    (["01/05/2020", "02/01/2020"], "2020-01-05"),        # both fields change once: order decides
    (["01/03/2020", "02/03/2020"], "2020-03-01"),        # in order both ways: the day changes
    (["03/01/2020", "03/02/2020"], "2020-03-01"),
    (["01/02/2020"], "2020-02-01"),                      # no evidence: day first
    (["2020/02/01"], "2020-02-01"),                      # no evidence, year first: month next
])
def test_day_or_month_first(tmp_path, dates, first):
    text = "".join(f"{d}, 10:{i:02d} - A: message {i}\n" for i, d in enumerate(dates))
    df = read(write(tmp_path, text))
    assert df["timestamp"].iloc[0] == pd.Timestamp(first + " 10:00")


# --- text -------------------------------------------------------------------------------------

def test_multi_line_messages_keep_line_breaks(wa):
    df = read(wa / "misc" / "chatminer_android_ddmmyy_24h.txt")
    two_lines = "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit. Duis libero."
    assert row(df, two_lines)["sender"] == "Jahn Doe"
    df = read(wa / "android" / "chatistics_chat3_android_colon_in_names.txt")
    row(df, "this is a message which contains some dates and colons\n\n\n2/11/19: Arrival\n12/12/19: Departure")


def test_pasted_header_of_another_style_stays_in_its_message(wa):
    df = read(wa / "ios" / "chatistics_chat2_ios_d.m.yyyy_mixed.txt")
    assert len(df) == 4
    assert df["text"].iloc[0] == ("This is a message from Peter Doe\n"
                                  "[1.9.19, 00:00:00] Peter Doe: this is the second line of the first message")


def test_zwj_emoji_survive(wa):
    df = read(wa / "ios" / "chatistics_chat1_ios_dd.mm.yy_unicode_rtl_zalgo.txt")
    assert df["text"].str.contains("\U0001f468\u200d\U0001f9b0").any()
    df = read(wa / "android" / "chatanalytics_4A_11M_group.txt")
    assert row(df, "\U0001f469\U0001f3fb\u200d\u2696\ufe0f")["sender"] == "Trent"


def test_edited_marker_removed(tmp_path):
    android = read(write(tmp_path, "01/02/2020, 10:00 - A: see you at 6 <This message was edited>\n"
                                   "01/02/2020, 10:01 - B: fine\n", name="a.txt"))
    ios = read(write(tmp_path, "[01/02/2020, 10:00:00] A: see you at 6 \u200e<This message was edited>\r\n"
                               "[01/02/2020, 10:01:00] B: fine\r\n", name="b.txt"))
    for df in (android, ios):
        assert df["text"].tolist() == ["see you at 6", "fine"]
        assert set(df["kind"]) == {"text"}


def test_crlf_removed(wa):
    path = wa / "ios" / "whatsjson_languages_english_ios.txt"
    assert b"\r\n" in path.read_bytes()
    df = read(path)
    assert not df["text"].str.contains("\r").any() and not df["sender"].str.contains("\r").any()


def test_empty_message_left_out(tmp_path):
    df = read(write(tmp_path, "01/02/2020, 10:00 - A: hi\n01/02/2020, 10:01 - B:\n"))
    assert df["text"].tolist() == ["hi"]


def test_sender_with_colon_and_emoji(wa):
    df = read(wa / "android" / "chatistics_chat3_android_colon_in_names.txt")
    emoticons = "Even longer username with emoticons! \U0001f648 \U0001f648"
    assert row(df, "Maybe this will crash the parser?")["sender"] == emoticons
    assert row(df, "Does it work with colons?: Hallelujah!")["sender"] == "The final test"


# --- kinds ------------------------------------------------------------------------------------

def test_android_kinds(wa):
    df = read(wa / "android" / "whatsjson_android_WhatsApp_Chat_with_Dmitry_S_EN+Media_Android.txt")
    assert row(df, "Hello")["kind"] == "text"
    assert row(df, "<Media omitted>")["kind"] == "media"
    assert row(df, "<Media omitted>\nCaption")["kind"] == "media"
    assert row(df, "IMG-20220323-WA0002.jpg (file attached)")["kind"] == "media"
    assert row(df, "null")["kind"] == "media"                               # view once
    assert row(df, "This message was deleted")["kind"] == "deleted"
    assert row(df, "You deleted this message")["kind"] == "deleted"
    assert row(df, "Missed voice call")["kind"] == "call"
    notice = df[df["text"].str.startswith("Messages and calls are end-to-end encrypted")].iloc[0]
    assert (notice["kind"], notice["sender"]) == ("system", "")
    assert df["text"].str.startswith("location: https://maps.google.com").sum() == 2
    assert set(df[df["text"].str.startswith("location: ")]["kind"]) == {"other"}


@pytest.mark.parametrize("name, media, deleted", [
    ("android/whatsjson_languages_deutch_android_media_ACTUALLY_DUTCH_nl.txt", "<Media weggelaten>",
     "Dit bericht is verwijderd"),
    ("android/whatsjson_android_Chat_WhatsApp_s_u_ivatelem_Dmitry_S_CZ_Android.txt", "<Média vynechány>",
     "Tato zpráva byla odstraněna."),
    ("android/whatsjson_android_WhatsApp_Dmitry_S_RU_Android.txt", "<Без медиафайлов>",
     "Данное сообщение удалено"),
])
def test_localized_android_kinds(wa, name, media, deleted):
    df = read(wa / name)
    assert row(df, media)["kind"] == "media"
    assert row(df, deleted)["kind"] == "deleted"
    assert (df["kind"] == "call").sum() == 2
    assert df["kind"].iloc[0] == "text" and (df["kind"] == "system").sum() == 1


@pytest.mark.parametrize("omitted", ["<Multimedia omitido>", "<Médias omis>", "<media omitted>"])
def test_other_media_omitted_spellings(tmp_path, omitted):
    df = read(write(tmp_path, f"01/02/2020, 10:00 - A: {omitted}\n01/02/2020, 10:01 - A: ok\n"))
    assert df["kind"].tolist() == ["media", "text"]


def test_android_system_lines(wa):
    df = read(wa / "android" / "whatsjson_android_WhatsApp_Chat_with_Group_Chat_XXX_Android.txt")
    system = df[df["kind"] == "system"]
    assert len(system) == 16 and set(system["sender"]) == {""}
    assert 'Dmitry S created group "Group Chat"' in set(system["text"])
    df = read(wa / "android" / "whatstk_pokemon_dd.mm.yyyy_group.txt")  # notice in the chat's name
    assert df["kind"].iloc[0] == "system" and df["sender"].iloc[0] == "Pokemon Chat"


def test_ios_kinds(wa):
    df = read(wa / "ios" / "whatsjson_ios_WhatsApp_Chat_-_Elon_Musk_EN+Media.txt")
    assert row(df, "Hello World")["kind"] == "text"
    assert row(df, "<attached: 00000035-PHOTO-2022-03-27-21-41-55.jpg>")["kind"] == "media"
    assert row(df, "image omitted")["kind"] == "media"
    assert row(df, "You deleted this message.")["kind"] == "deleted"
    assert row(df, "This message was deleted.")["kind"] == "deleted"
    assert row(df, "Location: https://maps.google.com/?q=51.5021456,-0.127397")["kind"] == "other"
    assert df["kind"].iloc[0] == "system" and df["sender"].iloc[0] == "Elon Musk"  # encryption notice
    assert set(df[df["text"].str.startswith("Your security code")]["kind"]) == {"system"}


def test_ios_kinds_in_every_language(wa):
    for path in sorted((wa / "ios").glob("whatsjson_*.txt")):
        kinds = read(path)["kind"].value_counts()
        assert (kinds.get("media", 0), kinds.get("deleted", 0), kinds.get("text", 0)) >= (14, 2, 5), path.name
        assert kinds.get("system", 0) >= 1, path.name


def test_ios_info_line_and_marked_header(wa):
    df = read(wa / "ios" / "chatistics_chat1_ios_dd.mm.yy_unicode_rtl_zalgo.txt")
    info = row(df, "This is an info entry")
    assert (info["kind"], info["sender"]) == ("system", "")
    assert row(df, "This is a test answer from John Doe")["kind"] == "text"  # U+200E before "[", plain text


# --- bad input --------------------------------------------------------------------------------

def test_lines_before_the_first_message_warn(tmp_path):
    path = write(tmp_path, "garbage one\ngarbage two\n\nstill garbage\n"
                           "01/02/2020, 10:00 - A: hi\n01/02/2020, 10:01 - B: yo\n")
    with pytest.warns(SkippedLinesWarning, match=r"skipped 3 line\(s\).*line 1, 2, 4\b"):
        df = read(path)
    assert df["text"].tolist() == ["hi", "yo"]


def test_impossible_dates_and_times_warn(tmp_path):
    path = write(tmp_path, "13/02/2020, 10:00 - A: hi\n31/02/2020, 10:01 - A: no 31 February\n"
                           "13/02/2020, 25:00 - A: no 25 o'clock\n14/02/2020, 10:02 - B: yo\n")
    with pytest.warns(SkippedLinesWarning, match=r"skipped 2 line\(s\).*line 2, 3\b"):
        df = read(path)
    assert df["text"].tolist() == ["hi", "yo"]


def test_no_whatsapp_header_raises(tmp_path):
    path = write(tmp_path, "\nhello there\nthis is no chat\n")
    with pytest.raises(ExportError, match=r"no line looks like a WhatsApp message.*line 2 reads 'hello there'"):
        read(path)


def test_not_utf8_raises(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_bytes(b"01/02/2020, 10:00 - A: hi\n01/02/2020, 10:01 - A: caf\xe9\n")
    with pytest.raises(ExportError, match="not UTF-8") as err:
        read(path)
    assert err.value.line == 2


# --- names and detection ----------------------------------------------------------------------

@pytest.mark.parametrize("path, name", [
    ("WhatsApp Chat with Maya Okafor.txt", "Maya Okafor"),
    ("WhatsApp Chat - Elon Musk.txt", "Elon Musk"),
    ("WhatsApp Chat with Bo (2).txt", "Bo"),
    ("Chat WhatsApp s uživatelem Dmitry S.txt", "Dmitry S"),
    ("WhatsApp Chat - Dana/_chat.txt", "Dana"),
    ("export.txt", "export"),
])
def test_chat_name(path, name):
    assert whatsapp.chat_name(Path(path)) == name


def test_chat_column_from_file_name(tmp_path):
    df = read(write(tmp_path, "01/02/2020, 10:00 - A: hi\n", name="WhatsApp Chat with Maya Okafor.txt"))
    assert df["chat"].tolist() == ["Maya Okafor"]


def test_sniff(tmp_path, real_exports):
    assert whatsapp.sniff(tmp_path / "x.txt", "garbage\n12/9/20, 23:55 - Bob: hello\n")
    assert not whatsapp.sniff(tmp_path / "x.txt", "hello\nworld\n")
    assert not whatsapp.sniff(tmp_path, "")
    telegram = real_exports / "telegram" / "chatminer_single_export.json"
    assert not whatsapp.sniff(telegram, telegram.read_text(encoding="utf-8"))
