"""Participants and who the person is."""

import pandas as pd
import pytest

from twinlib.people import AmbiguousMeError, infer_me, participants


def frame(rows):
    return pd.DataFrame(
        [dict(chat=c, timestamp=pd.Timestamp("2024-01-01") + pd.Timedelta(minutes=i), sender=s, text=t, kind=k)
         for i, (c, s, t, k) in enumerate(rows)])


THREE_CHATS = frame([
    ("Ben", "Anna Schmidt", "hi", "text"),
    ("Ben", "Ben Okafor", "hey", "text"),
    ("Ben", "Ben Okafor", "how are you", "text"),
    ("Family", "Carla", "dinner?", "text"),
    ("Family", "Anna Schmidt", "yes", "text"),
    ("Family", "Ben Okafor", "", "media"),
    ("Carla", "Carla", "call me", "text"),
    ("Carla", "Anna Schmidt", "ok", "text"),
    ("Carla", "", "Messages are end-to-end encrypted", "system"),
])


def test_participants_counts_chats_and_text_messages():
    p = participants(THREE_CHATS)
    assert list(p.columns) == ["sender", "chats", "messages"]
    assert p.to_dict("records") == [
        {"sender": "Anna Schmidt", "chats": 3, "messages": 3},
        {"sender": "Carla", "chats": 2, "messages": 2},
        {"sender": "Ben Okafor", "chats": 1, "messages": 2},  # the media message does not count
    ]


def test_infer_me_picks_the_participant_of_every_chat():
    assert infer_me(THREE_CHATS) == "Anna Schmidt"


def test_infer_me_checks_a_given_name():
    assert infer_me(THREE_CHATS, "Carla") == "Carla"
    assert infer_me(THREE_CHATS, "  anna   SCHMIDT ") == "Anna Schmidt"
    with pytest.raises(ValueError, match="not a sender") as err:
        infer_me(THREE_CHATS, "Anna Schmid")
    assert "'Anna Schmidt'" in str(err.value).split("Closest senders:")[1].split(",")[0]


def test_one_to_one_chat_is_ambiguous():
    chat = frame([("Ben", "Anna", "hi", "text"), ("Ben", "Ben", "hey", "text"), ("Ben", "Ben", "you?", "text")])
    with pytest.raises(AmbiguousMeError) as err:
        infer_me(chat)
    msg = str(err.value)
    assert "'Ben' (1 chat, 2 messages)" in msg and "'Anna' (1 chat, 1 message)" in msg
    assert "me=..." in msg and "--me NAME" in msg
    assert list(err.value.candidates["sender"]) == ["Ben", "Anna"]
    assert isinstance(err.value, ValueError)
    assert infer_me(chat, me="Anna") == "Anna"


def test_no_text_messages():
    with pytest.raises(ValueError, match="no text message"):
        infer_me(frame([("c", "A", "", "media")]))
