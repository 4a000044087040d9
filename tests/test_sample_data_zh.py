"""The synthetic Chinese persona: reproducible files in WeFlow's layout, a distinctive style, context
habits, and planted personal data that the anonymizer removes."""

from pathlib import Path

import pytest

from twinlib.data import find_exports, read_exports
from twinlib.pairs import build_pairs
from twinlib.privacy import ME, Anonymizer
from twinlib.sample_data import all_habits, persona_habit_accuracy
from twinlib.sample_data_zh import (
    HABITS_ZH, PARTNERS, PERSONA_NAME, PLANTED, chat_filename, generate_sample, persona_style_score,
)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample-zh"


@pytest.fixture(scope="module")
def messages():
    return read_exports(find_exports([SAMPLE]))


def test_the_committed_sample_equals_a_fresh_generation(tmp_path):
    fresh = generate_sample(tmp_path)
    assert [p.name for p in fresh] == [chat_filename(t) for t in PARTNERS]
    assert sorted(p.name for p in SAMPLE.glob("*.csv")) == sorted(p.name for p in fresh)
    for p in fresh:
        assert p.read_bytes() == (SAMPLE / p.name).read_bytes(), f"{p.name}: regenerate data/sample-zh"
    assert fresh[0].read_bytes().startswith("\ufeffid,MsgSvrID,type_name,is_sender,talker,msg,src,CreateTime\r\n".encode())


def test_ensure_sample_generates_a_missing_chinese_sample(tmp_path, capsys):
    """On a fresh Colab runtime ``data/sample-zh`` is missing: the notebooks' ``ensure_sample`` writes it."""
    from twinlib.sample_data import ensure_sample

    target = tmp_path / "data" / "sample-zh"
    assert ensure_sample([str(target)]) == [str(target)]
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in SAMPLE.glob("*.csv"))
    for p in target.iterdir():  # byte for byte the bundled sample
        assert p.read_bytes() == (SAMPLE / p.name).read_bytes(), p.name
    assert "generated the synthetic Chinese sample persona (5 chats)" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in target.iterdir()}
    ensure_sample(target)  # an existing folder is left alone
    assert {p: p.stat().st_mtime_ns for p in target.iterdir()} == before
    assert capsys.readouterr().out == ""


def test_read_as_weflow_csv(messages):
    assert set(messages["chat"]) == set(PARTNERS)
    senders = set(messages["sender"])
    assert senders == {"Me"} | {m for ms in PARTNERS.values() for m in ms}
    assert messages.attrs["aliases"] == {PERSONA_NAME: "Me"}
    assert {"text", "media", "sticker"} <= set(messages["kind"])
    assert 7000 < len(messages) < 10000


def test_the_persona_writes_differently_from_everyone_else(messages):
    text = messages[messages["kind"] == "text"]
    mine = text[text["sender"] == "Me"]["text"]
    theirs = text[text["sender"] != "Me"]["text"]
    assert mine.map(persona_style_score).mean() > 0.5 > 0.3 > theirs.map(persona_style_score).mean()
    assert not mine.str.endswith("。").any() and theirs.str.endswith(("。", "？", "！")).mean() > 0.8
    assert mine.str.contains("哈哈").mean() > 0.15 and mine.str.contains(r"\[旺柴\]", regex=True).mean() > 0.1


def test_habits_hold_in_the_persona_replies(messages):
    anon = Anonymizer.from_messages(messages, me="Me")
    pairs = build_pairs(anon.anonymize(messages), me=ME)
    acc = persona_habit_accuracy(list(pairs["prompt"]), list(pairs["response"]), HABITS_ZH)
    assert acc["accuracy"] == 1.0 and acc["n"] > 400
    assert {name: d["n"] > 100 for name, d in acc["by_habit"].items()} == {
        "either_or_zh": True, "echo_day_zh": True, "good_night_zh": True}
    # the shared measure sees both personas' habits, and a reply that ignores the message misses them:
    # a fixed reply, or her own replies shuffled among the messages
    assert set(HABITS_ZH) <= set(all_habits())
    wrong = persona_habit_accuracy(list(pairs["prompt"]), ["好哒"] * len(pairs), HABITS_ZH)
    assert wrong["n"] == acc["n"] and wrong["accuracy"] == 0
    shuffled = list(pairs["response"].sample(frac=1.0, random_state=0))
    assert persona_habit_accuracy(list(pairs["prompt"]), shuffled, HABITS_ZH)["accuracy"] < 0.05


@pytest.mark.parametrize("message, reply, habit, shown", [
    ("纠结死了，烤肉还是火锅？", "火锅！必须的", "either_or_zh", True),
    ("火锅还是烤肉？", "火锅！必须的", "either_or_zh", True),      # the same pick in either order
    ("火锅还是烤肉？", "烤肉吧", "either_or_zh", False),
    ("快选：咖啡还是奶茶？", "奶茶咖啡都行", "either_or_zh", False),  # no choice made
    ("火锅还是寿司？", "火锅！必须的", None, None),                # not one of her pairs
    ("周四可以吗？", "周四可以呀", "echo_day_zh", True),
    ("对了\n周日可以吗？", "周日可以呀~", "echo_day_zh", True),    # the last line of a turn counts
    ("周四可以吗？", "周五可以呀", "echo_day_zh", False),
    ("周四怎么样？", "周四可以呀", None, None),                    # one wording: "<day>可以吗？"
    ("周四可以吗？", "周四周五都行", "echo_day_zh", False),         # the proposed day, and no other one
    ("<PERSON_2>，周四可以吗？", "周四可以呀", None, None),        # not the bare question: no habit
    ("星期四可以吗？", "周四可以呀", None, None),                  # one form of the days: 周一…周日
    ("早点睡，晚安。", "晚安啦[月亮]", "good_night_zh", True),
    ("晚安。", "好哒", "good_night_zh", False),
    ("Night!", "nighty night 🌙", "good_night", True),     # the English persona's, in the same measure
])
def test_each_habit(message, reply, habit, shown):
    from twinlib.sample_data import habit_of

    h = habit_of(message)
    assert (h.name if h else None) == habit
    if h:
        assert h.check(message, reply) is shown


def test_planted_personal_data_is_in_the_export_and_gone_after_anonymization(messages):
    raw = "\n".join(messages["text"])
    assert all(value in raw for value in PLANTED)
    out = Anonymizer.from_messages(messages, me="Me").anonymize(messages)
    clean = "\n".join(out["text"])
    names = {PERSONA_NAME, PERSONA_NAME[1:]} | {n for ms in PARTNERS.values() for n in ms} | {"思远", "晓峰"}
    assert [v for v in sorted(set(PLANTED) | names) if v in clean] == []
    assert set(out["sender"]) <= {"<ME>"} | {f"<PERSON_{i}>" for i in range(1, 10)}
