"""Style features, signature phrases, the per-reply style score and the style distance."""

import json

import pytest

from twinlib.style import (
    StyleProfile,
    count_words,
    ends_with_punct,
    find_emoji,
    signature_phrases,
    style_distance,
    style_features,
    tokenize,
)

CLIMBER = "\U0001F9D7\u200d\u2640\ufe0f"  # person climbing + ZWJ + female sign + VS16


def test_find_emoji_keeps_sequences_whole():
    assert find_emoji("no emoji here.") == []
    assert find_emoji(f"off we go {CLIMBER}🌵") == [CLIMBER, "🌵"]
    assert find_emoji("family 👩\u200d👩\u200d👧 time") == ["👩\u200d👩\u200d👧"]
    assert find_emoji("flag 🇬🇧 wave 👋🏽 key 1️⃣ heart ❤️") == ["🇬🇧", "👋🏽", "1️⃣", "❤️"]


def test_tokenize_and_count_words():
    assert tokenize("Haha I'm IN! 🌵🌵") == ["haha", "i'm", "in", "🌵", "🌵"]
    assert count_words("Haha I'm IN! 🌵🌵") == 3
    assert count_words("🙌") == 0
    assert ends_with_punct("Love you! 😊") and not ends_with_punct("love you 😊")


def test_style_features_on_hand_made_texts():
    texts = ["haha no stress 🌵", "Are you free on Saturday?", "sounds mint", "Great. See you then!"]
    f = style_features(texts, phrases=["no stress", "sounds mint"])
    assert f["n"] == 4
    assert f["mean_words"] == pytest.approx((3 + 5 + 2 + 4) / 4)
    assert f["mean_chars"] == pytest.approx(sum(len(t) for t in texts) / 4)
    assert f["emoji_per_message"] == pytest.approx(0.25)
    assert f["emoji_share"] == pytest.approx(0.25)
    assert f["lowercase_rate"] == pytest.approx(0.5)
    assert f["final_punct_rate"] == pytest.approx(0.5)
    assert f["final_period_rate"] == pytest.approx(0.0)
    assert f["question_rate"] == pytest.approx(0.25)
    assert f["exclamation_rate"] == pytest.approx(0.25)
    assert f["signature_rate"] == pytest.approx(0.5)
    assert 0 < f["type_token_ratio"] <= 1
    assert "signature_rate" not in style_features(texts)
    assert style_features(["a a a a"])["type_token_ratio"] == pytest.approx(0.25)
    with pytest.raises(ValueError):
        style_features([])


def _corpus():
    """A person who plants "proper good" and 🦊 among sentences everybody uses."""
    common = ["see you at the station", "what time is the train", "I will bring the snacks",
              "the weather is nice today", "can you call me later", "where are we meeting"]
    person = [f"{c} proper good" if i % 3 == 0 else (f"{c} 🦊" if i % 3 == 1 else c)
              for i, c in enumerate(common * 10)]
    others = [c.capitalize() + "." for c in common * 10] + ["That is good news.", "Good morning!"] * 5
    return person, others


def test_signature_phrases_recover_planted_phrases():
    person, others = _corpus()
    phrases = signature_phrases(person, others, k=5)
    assert "proper good" in phrases and "🦊" in phrases
    assert "proper" not in phrases  # gives way to the phrase it is part of
    assert phrases.index("proper good") < 3
    with pytest.raises(ValueError):
        signature_phrases(person, [])


def test_profile_scores_persona_like_reply_above_formal_one():
    person = ["haha no stress 🌵", "sounds mint", "legend, see you at 7", "yeah free after 6 haha",
              "no stress, i'll bring snacks 🌵", "hahah classic", "sounds mint legend"] * 5
    others = ["Are you free on Saturday?", "Shall we say seven at the station?", "Thank you so much.",
              "I'm at the shop now. Do we need anything?", "Lovely to see you today!"] * 5
    profile = StyleProfile.fit(person, others, k=10)
    casual, formal = profile.score("haha sounds mint 🌵"), profile.score("Yes, that sounds lovely. See you then.")
    assert 0 <= formal < casual <= 1
    assert casual > 0.8 and formal < 0.4
    assert profile.score("") == 0.0
    assert set(profile.components("ok")) == set(StyleProfile.WEIGHTS)
    scores = profile.score_many(person + others)
    assert scores[: len(person)].mean() > scores[len(person):].mean() + 0.4
    again = StyleProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert again.score("no stress") == pytest.approx(profile.score("no stress"))


def test_style_distance():
    person, others = _corpus()
    a = style_features(person, ["proper good"])
    b = style_features(others, ["proper good"])
    assert style_distance(a, a) == 0.0
    d = style_distance(a, b)
    assert 0.1 < d <= 1 and d == pytest.approx(style_distance(b, a))
    near = style_features(person[:-3], ["proper good"])
    assert style_distance(a, near) < d
    with pytest.raises(ValueError):
        style_distance({"n": 1}, {"x": 2})
