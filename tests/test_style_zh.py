"""Style of Chinese chat text: tokens without spaces, laughs, WeChat emoji codes, particles, tildes;
English text is scored exactly as before."""

import pytest

from twinlib.style import (
    StyleProfile,
    count_words,
    ends_with_particle,
    ends_with_punct,
    find_emoji,
    signature_phrases,
    style_distance,
    style_features,
    tokenize,
)


def test_tokens_of_text_without_spaces():
    assert tokenize("哈哈哈哈好呀[旺柴]~") == ["哈哈哈哈", "好", "呀", "[旺柴]", "~"]
    assert tokenize("明天去吃火锅吗？") == ["明", "天", "去", "吃", "火", "锅", "吗"]
    assert tokenize("ok好的 See you～～") == ["ok", "好", "的", "see", "you", "~"]
    assert tokenize("hhhh笑死") == ["hhhh", "笑", "死"]
    assert count_words("哈哈哈哈好呀[旺柴]~") == 3       # a laugh is one word; codes and tildes none
    assert count_words("明天去吃火锅吗？") == 7
    # English text keeps its tokens: a tilde is punctuation there, brackets are no emoji
    assert tokenize("see you~ [Link]") == ["see", "you", "link"]


def test_wechat_emoji_codes_are_emoji():
    assert find_emoji("笑死[捂脸][旺柴]🌵") == ["[捂脸]", "[旺柴]", "🌵"]
    assert find_emoji("[Smile] is not one") == []


def test_final_punctuation_and_particles():
    assert ends_with_punct("好的。") and ends_with_punct("真的吗？") and ends_with_punct("好！[旺柴]")
    assert ends_with_punct("好的。", ".") and not ends_with_punct("好的！", ".")
    assert not ends_with_punct("好呀~")
    for text in ("好呀", "可以啦~", "走吧！", "是哦[旺柴]", "好哒哈哈哈"):
        assert ends_with_particle(text), text
    for text in ("好的", "明天见。", "吃饭了吗", "ok"):
        assert not ends_with_particle(text), text


ME = ["哈哈哈好呀[旺柴]", "可以可以~", "冲鸭", "好哒", "晚安啦~", "哈哈哈哈笑死", "行呀", "来啦来啦",
      "好滴[旺柴]", "火锅！哈哈哈"] * 6
OTHERS = ["明天一起吃饭吗？", "你几点下班。", "我到了，在门口。", "好的，收到。", "周末有空吗？",
          "那我们七点见。", "这家店评价不错。", "路上小心。"] * 6


def test_features_of_chinese_text():
    f = style_features(ME)
    assert f["laugh_rate"] == pytest.approx(0.3) and f["tilde_rate"] == pytest.approx(0.2)
    assert f["particle_rate"] == pytest.approx(0.6)  # 呀 哒 啦 呀 啦 滴
    assert f["emoji_share"] == pytest.approx(0.2)
    g = style_features(OTHERS)
    assert g["question_rate"] == pytest.approx(2 / 8) and g["final_period_rate"] == pytest.approx(6 / 8)
    assert g["laugh_rate"] == 0 and "laugh_rate" not in style_features(["see you soon"])
    # a reply set with no Chinese at all is far from the person on the Chinese shares too
    assert style_distance(f, style_features(["ok", "sure"])) > style_distance(f, style_features(ME[:10]))


def test_signature_phrases_of_chinese_text_are_written_without_spaces():
    phrases = signature_phrases(ME, OTHERS, k=8)
    assert "[旺柴]" in phrases and "~" in phrases
    assert any(p in phrases for p in ("哈哈哈", "哈哈哈哈"))
    assert all(" " not in p for p in phrases)


def test_a_chinese_profile_prefers_the_persons_way_of_writing():
    profile = StyleProfile.fit(ME, OTHERS)
    assert profile.weights is StyleProfile.CJK_WEIGHTS and set(profile.components("好")) == set(StyleProfile.CJK_WEIGHTS)
    assert profile.score("哈哈哈可以呀[旺柴]") > 0.8 > 0.3 > profile.score("好的，明天七点见。")
    again = StyleProfile.from_dict(profile.to_dict())
    assert again.score("冲鸭~") == profile.score("冲鸭~")


def test_an_english_profile_keeps_its_weights():
    profile = StyleProfile.fit(["haha no stress 🌵", "sounds mint"] * 5, ["Are you free?", "Thank you."] * 5)
    assert profile.weights is StyleProfile.WEIGHTS and "laugh" not in profile.person_stats
