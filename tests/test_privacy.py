"""Offline anonymization: pseudonyms for names, placeholders for personal data, nothing else touched."""

import socket

import pandas as pd
import pytest

from twinlib import privacy
from twinlib.privacy import Anonymizer

FAMILY = "👨\u200d👩\u200d👧"


def frame(rows):
    """rows: (chat, sender, text) or (chat, sender, text, kind)."""
    out = []
    for i, r in enumerate(rows):
        chat, sender, text, kind = r if len(r) == 4 else (*r, "text")
        out.append(dict(chat=chat, timestamp=pd.Timestamp("2024-05-01 10:00") + pd.Timedelta(minutes=i),
                        sender=sender, text=text, kind=kind))
    return pd.DataFrame(out)


MESSAGES = frame([
    ("Ben Okafor", "Ben Okafor", "Hi Anna, is Carla coming?"),
    ("Ben Okafor", "Anna Schmidt", "Yes! carla said so. Ben's car or mine?"),
    ("Family 🏡", "Carla Rossi", "ANNA, dinner at 7pm? Ask ben too"),
    ("Family 🏡", "Anna Schmidt", "Schmidt family dinner, Rossi style 😄"),
    ("Family 🏡", "+44 7911 123456", "who is this?"),
    ("Family 🏡", "Carla Rossi", "", "media"),
    ("Ben Okafor", "", "Messages are end-to-end encrypted", "system"),
])


@pytest.fixture(scope="module")
def anonymized():
    anon = Anonymizer.from_messages(MESSAGES, me="Anna Schmidt")
    return anon, anon.anonymize(MESSAGES)


def test_senders_become_stable_pseudonyms(anonymized):
    _, out = anonymized
    assert list(out["sender"]) == ["<PERSON_1>", "<ME>", "<PERSON_2>", "<ME>", "<PERSON_3>", "<PERSON_2>", ""]
    assert list(out["chat"]) == ["chat_1", "chat_1", "chat_2", "chat_2", "chat_2", "chat_2", "chat_1"]
    assert list(out.columns) == list(MESSAGES.columns)
    assert list(out["kind"]) == list(MESSAGES["kind"]) and out["timestamp"].equals(MESSAGES["timestamp"])


def test_names_in_text_use_the_same_token_in_every_chat(anonymized):
    _, out = anonymized
    assert list(out["text"][:5]) == [
        "Hi <ME>, is <PERSON_2> coming?",
        "Yes! <PERSON_2> said so. <PERSON_1>'s car or mine?",
        "<ME>, dinner at 7pm? Ask <PERSON_1> too",
        "<ME> family dinner, <PERSON_2> style 😄",
        "who is this?",
    ]
    assert out.loc[6, "text"] == "Messages are end-to-end encrypted"


def test_summary_counts_without_values(anonymized):
    anon, _ = anonymized
    s = anon.summary
    assert s["enabled"] is True and s["messages"] == 7 and s["messages_changed"] == 4
    assert s["participants"] == 4 and s["chats"] == 2
    assert s["replaced"] == {"ME": 3, "PERSON": 5, "PHONE": 0, "EMAIL": 0, "URL": 0, "IBAN": 0, "CARD": 0,
                             "IP": 0, "COORDS": 0, "ID": 0, "CRYPTO": 0, "ADDRESS": 0, "AGE": 0,
                             "WECHAT_ID": 0, "QQ": 0, "NUMBER": 0}
    flat = repr(s)
    for secret in ("Anna", "Ben", "Carla", "Schmidt", "7911", "Family"):
        assert secret not in flat


def test_the_mapping_stays_in_memory(anonymized):
    anon, _ = anonymized
    assert anon.mapping["people"]["anna schmidt"] == "<ME>"
    assert anon.mapping["chats"] == {"Ben Okafor": "chat_1", "Family 🏡": "chat_2"}


@pytest.mark.parametrize("text, expected", [
    ("call me on +44 20 7946 0958 tonight", "call me on <PHONE> tonight"),
    ("office (555) 123-4567", "office <PHONE>"),
    ("Handy 0171 1234567", "Handy <PHONE>"),
    ("mon portable: 06 12 34 56 78", "mon portable: <PHONE>"),
    ("ring 020 7946 0958 or 0049 171 1234567", "ring <PHONE> or <PHONE>"),
    ("US cell 415-555-2671, India +91 98765 43210", "US cell <PHONE>, India <PHONE>"),
    ("微信 13812345678", "微信 <PHONE>"),
    ("write to anna.schmidt@example.co.uk!", "write to <EMAIL>!"),
    ("see https://example.com/path?a=1. And www.example.org", "see <URL>. And <URL>"),
    ("short link bit.ly/3xYz", "short link <URL>"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN <IBAN> please"),
    ("card 4111 1111 1111 1111 exp 12/27", "card <CARD> exp 12/27"),
    ("amex 3782 822463 10005", "amex <CARD>"),
    ("router 192.168.0.1 and 2001:db8::8a2e:370:7334", "router <IP> and <IP>"),
    ("we are at 52.5200, 13.4050 now", "we are at <COORDS> now"),
    ("pin https://maps.google.com/?q=52.5200,13.4050", "pin <URL>"),
])
def test_each_kind_of_personal_data_is_replaced(text, expected):
    anon = Anonymizer("Zed Quux", [])
    out = anon.anonymize(frame([("c", "Zed Quux", text)]))
    assert out.loc[0, "text"] == expected
    kinds = [k for k in privacy.PLACEHOLDERS if f"<{k}>" in expected]
    assert {k: v for k, v in anon.summary["replaced"].items() if v} == {k: expected.count(f"<{k}>") for k in kinds}


@pytest.mark.parametrize("text", [
    "see you at 10:30, not 3pm", "2 of them", "back in 2019", "on 12.05.2023", "from 2019-2020",
    "it costs 1.000.000 or 1,000,000", "version 1.2.3", "score 3-2 at 21:45:10", "room 1234",
    f"family {FAMILY} 😀👍🏽🇬🇧", "invalid IBAN DE89 3704 0044 0532 0130 01", "not a card 4111 1111 1111 1112",
    "ok.so what", "will you? I may, mark my words", "a::b abc::", "ratio 2.0156416",
])
def test_ordinary_text_is_untouched(text):
    anon = Anonymizer("Will Turner", ["May Brown", "Mark Rossi"])
    assert anon.anonymize(frame([("c", "Will Turner", text)])).loc[0, "text"] == text
    assert sum(anon.summary["replaced"].values()) == 0


def test_common_word_names_only_with_capitals():
    anon = Anonymizer("Will Turner", ["Grace Brown"])
    out = anon.anonymize(frame([("c", "Grace Brown", "Will, will you say grace? Grace's turn. Brown bread")]))
    assert out.loc[0, "text"] == "<ME>, will you say grace? <PERSON_1>'s turn. Brown bread"


def test_stop_words_and_initials_in_display_names_are_not_names():
    anon = Anonymizer("Anna Schmidt", ["The Boss", "J", "Mom", "Dr. Lena Vogel"])
    out = anon.anonymize(frame([("c", "J", "The plan: ask Mom, then the boss. J. said Lena and Vogel agree")]))
    assert out.loc[0, "text"] == "The plan: ask <PERSON_3>, then <PERSON_1>. J. said <PERSON_4> and <PERSON_4> agree"
    assert out.loc[0, "sender"] == "<PERSON_2>"


def test_extra_names_and_nicknames():
    anon = Anonymizer("Anna Schmidt", ["Benjamin Okafor"], extra_names={"Benji": "Benjamin Okafor", "Lotte": "Lotte"})
    out = anon.anonymize(frame([("c", "Anna Schmidt", "benji and Lotte met Benjamin")]))
    assert out.loc[0, "text"] == "<PERSON_1> and <PERSON_2> met <PERSON_1>"
    anon = Anonymizer("Anna Schmidt", [], extra_names=["Lotte Meyer"])
    assert anon.anonymize(frame([("c", "Anna Schmidt", "Lotte!")])).loc[0, "text"] == "<PERSON_1>!"


def test_unknown_senders_are_numbered_on_the_fly():
    anon = Anonymizer("Anna", ["Ben"])
    out = anon.anonymize(frame([("c", "Zoe", "hi Ben"), ("c", "ben", "hi zoe")]))
    assert list(out["sender"]) == ["<PERSON_2>", "<PERSON_1>"]
    assert list(out["text"]) == ["hi <PERSON_1>", "hi <PERSON_2>"]


def test_disabled_returns_the_input_unchanged():
    anon = Anonymizer("Anna Schmidt", ["Ben Okafor"], enabled=False)
    out = anon.anonymize(MESSAGES)
    pd.testing.assert_frame_equal(out, MESSAGES)
    assert anon.summary["enabled"] is False and "off" in anon.summary["note"]


def test_no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    privacy._analyzer.cache_clear()  # build the recognizers again, with the network blocked
    anon = Anonymizer("Anna", [])
    out = anon.anonymize(frame([("c", "Anna", "mail ben@example.de or ben@mail.example.co.uk, +49 30 12345678")]))
    assert out.loc[0, "text"] == "mail <EMAIL> or <EMAIL>, <PHONE>"
    assert attempts == []


@pytest.mark.parametrize("after", [" (0)", " ok", " (home)", " (12)", "(0)", " (0) after six", " (1) ext. 4"])
def test_a_phone_number_is_found_whatever_follows_it(after):
    """An international number followed by digits in brackets (the trunk digit, as in
    ``+44 (0)…``, or an extension) was stored verbatim: the longest possible number is taken."""
    anon = Anonymizer("Zed Quux", [])
    for number in ("+44 7700 900123", "0044 7700 900123", "+1 555-010-2288"):
        out = anon.anonymize(frame([("c", "Zed Quux", f"ring {number}{after}"), ("c", "Zed Quux", number + after)]))
        assert list(out["text"]) == [f"ring <PHONE>{after}", f"<PHONE>{after}"], number
        assert anon.summary["replaced"]["PHONE"] == 2


def test_scrub_text_is_the_anonymizer_for_one_text():
    text = "Robin here: text Sam on +44 7700 900123 (0) or sam.carter@example.com, 林晓雨说13912345678好的"
    out = privacy.scrub_text(text, me="Robin Vale", names=["Sam Carter", "林晓雨"])
    assert out == "<ME> here: text <PERSON_1> on <PHONE> (0) or <EMAIL>, <PERSON_2>说<PHONE>好的"
    table = Anonymizer("Robin Vale", ["Sam Carter", "林晓雨"]).anonymize(frame([("c", "Robin Vale", text)]))
    assert table.loc[0, "text"] == out  # the same as a message table gets
    # without names only the patterns apply, and a name nobody gave stays
    assert privacy.scrub_text(text) == ("Robin here: text Sam on <PHONE> (0) or <EMAIL>, 林晓雨说<PHONE>好的")
    assert privacy.scrub_text("- ok -", me=" ", names=["", "  "]) == "- ok -"
    assert privacy.scrub_text("hi Sam", names=("Sam Carter",)) == "hi <PERSON_1>"


def test_bad_input():
    with pytest.raises(ValueError, match="no .*'kind'"):
        Anonymizer("Anna").anonymize(MESSAGES.drop(columns="kind"))
    with pytest.raises(ValueError, match="me is empty"):
        Anonymizer(" ")
