"""The synthetic persona's WhatsApp exports: deterministic, well-formed, styled and full of fake PII."""

import random
import re
import statistics
from pathlib import Path

import pytest

from twinlib.sample_data import (
    PARTNERS,
    PERSONA_MARKERS,
    PERSONA_NAME,
    chat_filename,
    generate_sample,
    main,
    persona_style_score,
)
from twinlib.style import find_emoji, tokenize

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
HEADER = re.compile(r"^(\d{2})/(\d{2})/(\d{4}), (\d{2}):(\d{2}) - (.*)$")
NOT_TEXT = ("<Media omitted>", "This message was deleted", "You deleted this message")
EDITED = " <This message was edited>"


def parse(path):
    """(sender or None, text) per message: headers start one, other lines continue it."""
    messages = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n")[:-1], 1):
        m = HEADER.match(line)
        if m is None:
            assert messages, f"{path.name}:{number} continues no message"
            sender, text = messages[-1]
            messages[-1] = (sender, text + "\n" + line)
            continue
        day, month = int(m.group(1)), int(m.group(2))
        assert 1 <= day <= 31 and 1 <= month <= 12 and int(m.group(4)) < 24 and int(m.group(5)) < 60
        sender, sep, text = m.group(6).partition(": ")
        messages.append((sender, text) if sep else (None, m.group(6)))
    return messages


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    paths = generate_sample(tmp_path_factory.mktemp("sample"))
    return {p: parse(p) for p in paths}


def texts(sample, persona):
    """Text messages (media, deletions and edit markers left out) of the persona or of the others."""
    return [t.replace(EDITED, "") for msgs in sample.values() for s, t in msgs
            if s is not None and t not in NOT_TEXT and (s == PERSONA_NAME) == persona]


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate_sample(tmp_path / "a", seed=7, n_days=15)
    b = generate_sample(tmp_path / "b", seed=7, n_days=15)
    c = generate_sample(tmp_path / "c", seed=8, n_days=15)
    assert [p.name for p in a] == [chat_filename(t) for t in PARTNERS]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.read_bytes() for p in a] != [p.read_bytes() for p in c]


def test_a_subset_of_chats_gives_the_same_files(tmp_path):
    full = generate_sample(tmp_path / "full", n_days=10)
    (one,) = generate_sample(tmp_path / "one", n_days=10, chats=["Climbing crew"])
    assert one.read_bytes() == full[list(PARTNERS).index("Climbing crew")].read_bytes()
    with pytest.raises(ValueError, match="unknown chat"):
        generate_sample(tmp_path / "bad", chats=["Nobody"])


def test_committed_sample_equals_a_fresh_generation(sample):
    committed = sorted(p.name for p in SAMPLE_DIR.glob("*.txt"))
    assert committed == sorted(p.name for p in sample), "regenerate: python -m twinlib.sample_data --out data/sample"
    for path in sample:
        assert (SAMPLE_DIR / path.name).read_bytes() == path.read_bytes(), (
            f"data/sample/{path.name} differs from generate_sample(); regenerate it")


def test_files_look_like_android_exports(sample):
    assert 4 <= len(sample) <= 5
    assert sum(p.stat().st_size for p in sample) < 1_500_000
    for path, msgs in sample.items():
        assert path.name.startswith("WhatsApp Chat with ") and path.suffix == ".txt"
        assert msgs[0][0] is None and msgs[0][1].startswith("Messages and calls are end-to-end encrypted")
        senders = {s for s, _ in msgs if s is not None}
        assert senders == {PERSONA_NAME, *PARTNERS[path.name[len("WhatsApp Chat with "):-4]]}
    everything = [t for msgs in sample.values() for _, t in msgs]
    for marker in NOT_TEXT:
        assert marker in everything
    assert any("\n" in t for t in texts(sample, True)) and any("\n" in t for t in texts(sample, False))
    assert 'Priya Nandakumar created group "Climbing crew"' in everything


def test_volume(sample):
    total = sum(len(msgs) for msgs in sample.values())
    mine = texts(sample, True)
    assert 8_000 <= total <= 12_000
    assert len(mine) >= 2_500
    assert len(set(mine)) >= 500  # hundreds of distinct replies, not a handful repeated


def test_persona_markers(sample):
    mine, theirs = texts(sample, True), texts(sample, False)
    assert statistics.mean(map(persona_style_score, mine)) >= 0.6
    assert statistics.mean(map(persona_style_score, theirs)) <= 0.3
    assert all(t == t.lower() and not t.rstrip().endswith(".") for t in mine)
    laughs, signature = PERSONA_MARKERS["laughs"], PERSONA_MARKERS["phrases"]
    for t in theirs:
        tokens = tokenize(t)
        assert not set(tokens) & set(laughs), t
        assert not any(p in " ".join(tokens) for p in signature), t
        assert not set(find_emoji(t)) & set(PERSONA_MARKERS["emoji"]), t
    assert sum(any(e in t for e in PERSONA_MARKERS["emoji"]) for t in mine) > len(mine) / 5
    assert sum(bool(set(tokenize(t)) & set(laughs)) for t in mine) > len(mine) / 5
    assert any(PERSONA_MARKERS["emoji"][2] in t for t in mine)  # the ZWJ climber


def test_random_text_scores_low(sample):
    vocab = sorted({w for t in texts(sample, True) + texts(sample, False) for w in t.split()})
    rng = random.Random(0)
    soup = [" ".join(rng.choice(vocab) for _ in range(rng.randint(15, 40))) for _ in range(200)]
    assert statistics.mean(map(persona_style_score, soup)) < 0.35
    assert persona_style_score("") == 0.0


def _content_words(text):
    return {w for w in tokenize(text) if len(w) > 3 and not find_emoji(w)}


def test_replies_relate_to_the_message_they_answer(sample):
    pairs = []
    for msgs in sample.values():
        for (s1, t1), (s2, t2) in zip(msgs, msgs[1:]):
            if s1 not in (None, PERSONA_NAME) and s2 == PERSONA_NAME and t1 not in NOT_TEXT and t2 not in NOT_TEXT:
                pairs.append((t1, t2))
    shared = statistics.mean(bool(_content_words(p) & _content_words(r)) for p, r in pairs)
    rng = random.Random(0)
    prompts = [p for p, _ in pairs]
    rng.shuffle(prompts)
    by_chance = statistics.mean(bool(_content_words(p) & _content_words(r)) for p, (_, r) in zip(prompts, pairs))
    assert shared > 2 * by_chance


def test_fictional_pii_is_there_to_anonymize(sample):
    raw = "\n".join(p.read_text(encoding="utf-8") for p in sample)
    patterns = {
        "uk mobile": r"\+44 7700 900\d{3}", "uk national": r"\b07700 900\d{3}\b", "us": r"\(555\) 010-\d{4}",
        "us intl": r"\+1 555-010-\d{4}", "compact": r"\+447700900\d{3}", "email": r"[\w.]+@example\.com",
        "url": r"https://example\.org/\S+", "iban": r"GB82 WEST 1234 5698 7654 32", "card": r"4111 1111 1111 1111",
        "ip": r"\b192\.0\.2\.14\b", "coords": r"51\.5072, ?-0\.1276",
    }
    for kind, pattern in patterns.items():
        assert re.search(pattern, raw), kind
    for name in ("Maya", "Jonah", "Priya", "Olly", "Sam", "Dana", "Tess"):
        assert re.search(rf"- (?!{name})[^:]+: [^\n]*\b{name}\b", raw), f"nobody mentions {name}"


def test_main_writes_files(tmp_path, capsys):
    main(["--out", str(tmp_path), "--days", "3", "--seed", "1"])
    assert len(list(tmp_path.glob("WhatsApp Chat with *.txt"))) == len(PARTNERS)
    assert "wrote 5 chats" in capsys.readouterr().out


def test_whatsapp_reader_reads_the_sample(sample):
    pytest.importorskip("twinlib.data.whatsapp")
    from twinlib.data import read_export

    for path in sample:
        df = read_export(path)
        assert df.attrs["format"] == "whatsapp"
        assert PERSONA_NAME in set(df["sender"])
        assert (df["kind"] == "text").sum() > 100


# --------------------------------------------------------------------------- context habits


def test_habits_are_planted_and_the_real_replies_show_them(sample_stage1):
    """Every habit occurs in every split, and the persona's real replies always show it."""
    import pandas as pd

    from twinlib.sample_data import HABITS, persona_habit_accuracy

    pairs = pd.read_csv(sample_stage1 / "pairs.csv", keep_default_na=False)
    for split in ("train", "validation", "test"):
        g = pairs[pairs["split"] == split]
        res = persona_habit_accuracy(g["prompt"].tolist(), g["response"].tolist())
        assert set(res["by_habit"]) == {h.name for h in HABITS}, split
        assert res["accuracy"] == 1.0 and res["n"] >= 40, (split, res)
        assert res["ci_low"] > 0.9


def test_habit_accuracy_needs_the_message(sample_stage1):
    """Replies shuffled across messages (a twin that ignores the message) score near 0; so do
    replies that pick the wrong option or echo another time."""
    import pandas as pd

    from twinlib.sample_data import habit_of, persona_habit_accuracy

    pairs = pd.read_csv(sample_stage1 / "pairs.csv", keep_default_na=False)
    hab = pairs[[habit_of(p) is not None for p in pairs["prompt"]]]
    replies = hab["response"].tolist()
    shuffled = replies[1:] + replies[:1]
    res = persona_habit_accuracy(hab["prompt"].tolist(), shuffled)
    assert res["accuracy"] < 0.35, res
    assert persona_habit_accuracy(["Tea or coffee?"], ["tea, obviously"])["accuracy"] == 0.0
    assert persona_habit_accuracy(["Quick one: tea or coffee?"], ["coffee, obviously"])["accuracy"] == 1.0
    assert persona_habit_accuracy(["Coffee or tea?"], ["coffee, obviously"])["accuracy"] == 1.0  # either order
    assert persona_habit_accuracy(["Coffee or tea?"], ["coffee or tea"])["accuracy"] == 0.0  # no choice made
    assert persona_habit_accuracy(["Could you do Thursday?"], ["friday works"])["accuracy"] == 0.0
    assert persona_habit_accuracy(["Thursday any good for you?"], ["thursday works"])["accuracy"] == 1.0
    assert persona_habit_accuracy(["Perfect, see you then!\nNight!"], ["nighty night \U0001F319"])["accuracy"] == 1.0
    none = persona_habit_accuracy(["How are you?"], ["good"])
    assert none["n"] == 0 and none["accuracy"] is None
    with pytest.raises(ValueError, match="one reply per message"):
        persona_habit_accuracy(["a", "b"], ["x"])
