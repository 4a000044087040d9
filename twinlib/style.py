"""Style of a person's replies: features, signature phrases and a per-reply style score.

Used by the automatic ranker (stage 3) to prefer candidates that sound like the person, and by
the evaluation (stage 5) to compare the twin's replies with the person's real ones.

* :func:`style_features` summarises many messages (length, emoji, casing, punctuation,
  vocabulary richness, signature phrases) as a flat ``dict`` of numbers.
* :func:`signature_phrases` finds the words, 2-3 word phrases and emoji the person uses far more
  than the people they talk to (weighted log-odds with an informative Dirichlet prior,
  Monroe, Colaresi & Quinn 2008).
* :class:`StyleProfile` holds both for one person and scores a single reply in ``[0, 1]``.
* :func:`style_distance` compares two feature dicts (``0`` = same style).

Pure Python and numpy. Emoji are found by Unicode ranges; a ZWJ sequence (``🧗‍♀️``), a flag,
a keycap or an emoji with a skin tone counts as one emoji.

**Chinese and Japanese** (text with CJK characters; text without them is handled exactly as
before). Such text has no spaces, so :func:`tokenize` makes every CJK character a token (a word
in :func:`count_words`), and keeps whole what marks a style: a laugh (``哈哈哈``, ``嘿嘿``, as
written), WeChat and QQ emoji codes (``[旺柴]``, ``[捂脸]``; they are emoji for :func:`find_emoji`
too) and a tilde (``~``/``～``, one token ``~``). Full-width ``。！？`` count as final punctuation, and
``。`` as a full stop. :func:`style_features` adds three shares when any text has CJK characters:
``laugh_rate``, ``tilde_rate`` and ``particle_rate`` (ending in a sentence-final particle such as
呀 啦 嘛 呢 吧 哦); :class:`StyleProfile` votes on them for a Chinese profile (:attr:`StyleProfile.CJK_WEIGHTS`,
where "no capitals" carries no weight), and signature phrases of characters are written without
spaces (``好哒``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

# One emoji "character": a pictograph from the emoji blocks, optionally followed by a variation
# selector / keycap mark, a skin tone and tag characters (subdivision flags such as 🏴󠁧󠁢󠁳󠁣󠁴󠁿).
_PICTO = (
    "\U0001F300-\U0001F5FF"  # symbols and pictographs
    "\U0001F600-\U0001F64F"  # emoticons
    "\U0001F680-\U0001F6FF"  # transport and map
    "\U0001F7E0-\U0001F7EB"  # coloured circles and squares
    "\U0001F900-\U0001F9FF"  # supplemental symbols and pictographs
    "\U0001FA70-\U0001FAFF"  # symbols and pictographs extended-A
    "\u2600-\u27BF"          # miscellaneous symbols, dingbats (☀ ♀ ✨ ❤)
    "\u231A\u231B\u2328\u23CF\u23E9-\u23F3\u23F8-\u23FA"
    "\u2B05-\u2B07\u2B1B\u2B1C\u2B50\u2B55\u3030\u303D\u3297\u3299"
)
_ONE = f"(?:[{_PICTO}][\uFE0F\uFE0E]?[\U0001F3FB-\U0001F3FF]?[\U000E0020-\U000E007F]*)"
# Scripts written without spaces (Han, kana): one token per character.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAS_CJK = re.compile(f"[{CJK_CHARS}]")
# WeChat and QQ emoji codes, which the apps show as pictures: [旺柴] [捂脸] [呲牙].
EMOJI_CODE = f"\\[[{CJK_CHARS}]{{1,5}}\\]"
EMOJI_PATTERN = (
    "(?:[\U0001F1E6-\U0001F1FF]{2}"            # flags: a pair of regional indicators
    "|[0-9#*]\uFE0F?\u20E3"                    # keycaps 1️⃣ #️⃣
    f"|{_ONE}(?:\u200D{_ONE})*"                # ZWJ sequences stay one emoji
    f"|{EMOJI_CODE})"                          # WeChat/QQ codes (only CJK inside: English text unaffected)
)
_EMOJI_RE = re.compile(EMOJI_PATTERN)
_WORD = r"[^\W_]+(?:['’][^\W_]+)*"
_WORD_RE = re.compile(_WORD)
_TOKEN_RE = re.compile(f"{EMOJI_PATTERN}|{_WORD}")
# In text with CJK characters: emoji, laughs (哈哈哈 as written), a tilde, words of other scripts, single characters.
LAUGH = "([哈呵嘿嘻嘤])\\1+|(?i:h{3,}|2333+)"
_LAUGH_RE = re.compile(LAUGH)
_WORD_NOT_CJK = f"[^\\W_{CJK_CHARS}]+(?:['’][^\\W_{CJK_CHARS}]+)*"
_TOKEN_CJK_RE = re.compile(f"{EMOJI_PATTERN}|(?:{LAUGH})|[~～]+|{_WORD_NOT_CJK}|[{CJK_CHARS}]")
_TAIL_EMOJI_RE = re.compile(f"(?:{EMOJI_PATTERN})$")
_FINAL_PUNCT = ".!?…"
# Full-width marks that count as their ASCII ones (they never occur in English text).
_FULL_WIDTH = {".": "。．", "!": "！", "?": "？", "…": "⋯"}
# Sentence-final particles of Mandarin chat: how a message ends, before punctuation and emoji.
PARTICLES = "呀啦嘛呢吧哦噢喔嗯啊哈咯哟呗捏滴哒嘞"
_TAIL_MARKS = f"[\\s~～.,!?…。，！？、]+$"
_TTR_WINDOW = 50

# Keys of style_features that are shares in [0, 1]; the others are unbounded averages.
RATE_FEATURES = (
    "emoji_share", "lowercase_rate", "final_punct_rate", "final_period_rate",
    "question_rate", "exclamation_rate", "type_token_ratio", "signature_rate",
    "laugh_rate", "tilde_rate", "particle_rate",
)
#: Shares that :func:`style_features` adds for text with CJK characters.
CJK_FEATURES = ("laugh_rate", "tilde_rate", "particle_rate")


def find_emoji(text: str) -> list[str]:
    """Return the emoji in ``text`` in order; a ZWJ sequence, flag or keycap is one item."""
    return _EMOJI_RE.findall(text)


def has_cjk(text: str) -> bool:
    """True when ``text`` holds a Han or kana character (a script written without spaces)."""
    return bool(_HAS_CJK.search(text))


def tokenize(text: str) -> list[str]:
    """Lower-cased words (apostrophes kept: ``i'm``) and emoji, in order; punctuation dropped.

    In text with CJK characters every such character is a token, and a laugh (``哈哈哈``), an
    emoji code (``[旺柴]``) and a tilde (``~``) are one token each."""
    if not _HAS_CJK.search(text):
        return [t.lower() for t in _TOKEN_RE.findall(text)]
    return ["~" if m.group()[0] in "~～" else m.group().lower() for m in _TOKEN_CJK_RE.finditer(text)]


def count_words(text: str) -> int:
    """Number of words in ``text`` (emoji and punctuation do not count); in text with CJK
    characters each character is a word, and a laugh one word."""
    if _HAS_CJK.search(text):
        return sum(1 for t in tokenize(text) if t != "~" and not _EMOJI_RE.fullmatch(t))
    return len(_WORD_RE.findall(_EMOJI_RE.sub(" ", text)))


def _strip_tail(text: str) -> str:
    """``text`` without trailing emoji and white space (``"Love you! 😊"`` -> ``"Love you!"``)."""
    text = text.rstrip()
    while True:
        stripped = _TAIL_EMOJI_RE.sub("", text).rstrip()
        if stripped == text:
            return text
        text = stripped


def is_lowercase(text: str) -> bool:
    """True when ``text`` has no upper-case letter."""
    return not any(c.isupper() for c in text)


def ends_with_punct(text: str, marks: str = _FINAL_PUNCT) -> bool:
    """True when the last character before trailing emoji/space is one of ``marks`` (or the
    full-width form of one of them: ``。！？``)."""
    tail = _strip_tail(text)
    return bool(tail) and (tail[-1] in marks or any(tail[-1] in _FULL_WIDTH.get(m, "") for m in marks))


def has_laugh(text: str) -> bool:
    """A laugh: 哈哈, 呵呵, 嘿嘿, 嘻嘻, hhh, 2333."""
    return bool(_LAUGH_RE.search(text))


def has_tilde(text: str) -> bool:
    return "~" in text or "～" in text


def ends_with_particle(text: str) -> bool:
    """True when the message ends in a sentence-final particle (呀 啦 嘛 呢 吧 哦 …), punctuation,
    tildes, laughs and emoji after it aside."""
    tail = re.sub(_TAIL_MARKS, "", _strip_tail(text))
    tail = re.sub(f"(?:{LAUGH})$", "", tail) if tail.endswith(("哈哈", "呵呵", "嘿嘿", "嘻嘻")) else tail
    tail = re.sub(_TAIL_MARKS, "", _strip_tail(tail))
    return bool(tail) and tail[-1] in PARTICLES


def _ngrams(tokens: Sequence[str], max_n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)}


def _join(gram: Sequence[str]) -> str:
    """A phrase from tokens: a space between them, except next to CJK characters or a tilde (好哒, 哈哈哈~)."""
    out = gram[0]
    for a, b in zip(gram, gram[1:]):
        glue = "" if (_HAS_CJK.search(a) or _HAS_CJK.search(b) or "~" in (a, b)) else " "
        out += glue + b
    return out


def _phrase_tuples(phrases: Iterable[str]) -> list[tuple[str, ...]]:
    return [t for t in (tuple(tokenize(p)) for p in phrases) if t]


def _has_phrase(tokens: Sequence[str], phrase_tuples: Sequence[tuple[str, ...]]) -> bool:
    if not phrase_tuples:
        return False
    grams = _ngrams(tokens, max(len(p) for p in phrase_tuples))
    return any(p in grams for p in phrase_tuples)


def _mattr(tokens: Sequence[str], window: int = _TTR_WINDOW) -> float:
    """Moving-average type/token ratio: comparable between samples of different sizes."""
    if not tokens:
        return 0.0
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    counts = Counter(tokens[:window])
    total = len(counts)
    for i in range(window, len(tokens)):
        new, old = tokens[i], tokens[i - window]
        if new != old:
            counts[new] += 1
            counts[old] -= 1
            if not counts[old]:
                del counts[old]
        total += len(counts)
    return total / (len(tokens) - window + 1) / window


def style_features(texts: Iterable[str], phrases: Iterable[str] | None = None) -> dict[str, float]:
    """Summarise the style of ``texts`` (one person's messages) as a dict of numbers.

    Keys: ``n`` (messages), ``mean_words``, ``mean_chars``, ``emoji_per_message``, ``emoji_share``
    (messages with at least one emoji), ``lowercase_rate`` (messages without capitals),
    ``final_punct_rate`` (ending in ``. ! ? …``, trailing emoji ignored), ``final_period_rate``
    (ending in a full stop), ``question_rate`` and ``exclamation_rate`` (containing ``?`` / ``!``),
    ``type_token_ratio`` (moving-average over 50-token windows, so sample size matters little),
    and ``signature_rate`` (messages containing one of ``phrases``) when ``phrases`` is given.
    When any text has CJK characters: ``laugh_rate``, ``tilde_rate`` and ``particle_rate``
    (:data:`CJK_FEATURES`; full-width ``？！`` count for the question and exclamation shares).
    """
    texts = [t for t in texts if t is not None]
    if not texts:
        raise ValueError("style_features needs at least one message.")
    n = len(texts)
    all_tokens: list[str] = []
    sums = Counter()
    phrase_t = _phrase_tuples(phrases) if phrases is not None else None
    for text in texts:
        tokens = tokenize(text)
        all_tokens.extend(tokens)
        emoji = find_emoji(text)
        sums["words"] += count_words(text)
        sums["chars"] += len(text)
        sums["emoji"] += len(emoji)
        sums["emoji_share"] += bool(emoji)
        sums["lower"] += is_lowercase(text)
        sums["punct"] += ends_with_punct(text)
        sums["period"] += ends_with_punct(text, ".")
        sums["question"] += "?" in text or "？" in text
        sums["exclamation"] += "!" in text or "！" in text
        if phrase_t is not None:
            sums["signature"] += _has_phrase(tokens, phrase_t)
        if _HAS_CJK.search(text):
            sums["cjk"] += 1
        sums["laugh"] += has_laugh(text)
        sums["tilde"] += has_tilde(text)
        sums["particle"] += ends_with_particle(text)
    out = {
        "n": float(n),
        "mean_words": sums["words"] / n,
        "mean_chars": sums["chars"] / n,
        "emoji_per_message": sums["emoji"] / n,
        "emoji_share": sums["emoji_share"] / n,
        "lowercase_rate": sums["lower"] / n,
        "final_punct_rate": sums["punct"] / n,
        "final_period_rate": sums["period"] / n,
        "question_rate": sums["question"] / n,
        "exclamation_rate": sums["exclamation"] / n,
        "type_token_ratio": _mattr(all_tokens),
    }
    if phrase_t is not None:
        out["signature_rate"] = sums["signature"] / n
    if sums["cjk"]:
        out.update(laugh_rate=sums["laugh"] / n, tilde_rate=sums["tilde"] / n, particle_rate=sums["particle"] / n)
    return out


def signature_phrases(person_texts: Iterable[str], other_texts: Iterable[str], k: int = 20,
                      min_count: int = 3, min_ratio: float = 3.0, max_n: int = 3) -> list[str]:
    """The ``k`` 1-3-grams and emoji most distinctive of the person versus the others.

    Counts are per message (a phrase repeated in one message counts once) and n-grams are
    lower-cased. Candidates must occur in at least ``min_count`` of the person's messages and be
    at least ``min_ratio`` times more frequent (per message) than in the others' messages.
    A candidate that is nearly always part of a longer candidate (``"stress"`` of ``"no stress"``)
    gives way to it, and one that contains a phrase already chosen adds nothing and is skipped.
    Ranking is by the z-score of the weighted log-odds ratio with the pooled counts as an
    informative Dirichlet prior (Monroe, Colaresi & Quinn 2008).
    """
    mine: Counter = Counter()
    theirs: Counter = Counter()
    n_mine = n_theirs = 0
    for text in person_texts:
        mine.update(_ngrams(tokenize(text), max_n))
        n_mine += 1
    for text in other_texts:
        theirs.update(_ngrams(tokenize(text), max_n))
        n_theirs += 1
    if not mine or not theirs:
        raise ValueError("signature_phrases needs messages from the person and from others.")
    cands = {g: c for g, c in mine.items()
             if c >= min_count and (c / n_mine) >= min_ratio * ((theirs.get(g, 0) + 0.5) / n_theirs)}
    subsumed = set()
    for g, c in cands.items():
        for n in range(1, len(g)):
            for i in range(len(g) - n + 1):
                part = g[i:i + n]
                if part in cands and c >= 0.8 * cands[part]:
                    subsumed.add(part)
    vocab = [g for g in cands if g not in subsumed]
    if not vocab:
        return []
    yi = np.array([mine[g] for g in vocab], dtype=float)
    yj = np.array([theirs.get(g, 0) for g in vocab], dtype=float)
    ni, nj = float(sum(mine.values())), float(sum(theirs.values()))
    prior = yi + yj
    a0 = ni + nj
    delta = (np.log((yi + prior) / (ni + a0 - yi - prior))
             - np.log((yj + prior) / (nj + a0 - yj - prior)))
    z = delta / np.sqrt(1.0 / (yi + prior) + 1.0 / (yj + prior))
    chosen: list[tuple[str, ...]] = []
    for idx in sorted(range(len(vocab)), key=lambda i: (-z[i], vocab[i])):
        if len(chosen) >= k:
            break
        gram = vocab[idx]
        if z[idx] > 0 and not any(_contains(gram, c) for c in chosen):
            chosen.append(gram)
    return [_join(g) for g in chosen]


def _contains(long_: tuple[str, ...], short: tuple[str, ...]) -> bool:
    """True when the token sequence ``short`` occurs inside ``long_``."""
    return any(long_[i:i + len(short)] == short for i in range(len(long_) - len(short) + 1))


def _rate(hits: int, n: int) -> float:
    """Laplace-smoothed share, never exactly 0 or 1."""
    return (hits + 1.0) / (n + 2.0)


@dataclass
class StyleProfile:
    """One person's style, learned from their messages against the messages of others.

    ``features`` is :func:`style_features` of the person's texts (with ``signature_rate``);
    ``phrases`` their signature phrases; ``person_stats`` / ``other_stats`` the per-message
    statistics :meth:`score` compares a reply with.
    """

    features: dict[str, float]
    phrases: list[str]
    person_stats: dict[str, float]
    other_stats: dict[str, float]

    # Weight of each per-feature vote in score(); they sum to 1.
    WEIGHTS = {"length": 0.2, "lowercase": 0.2, "final_punct": 0.2, "emoji": 0.1, "signature": 0.3}
    # ... for a profile learned from CJK text, where capitals say nothing and laughs, tildes and
    # sentence-final particles say much (used when the statistics hold them).
    CJK_WEIGHTS = {"length": 0.2, "final_punct": 0.15, "emoji": 0.1, "signature": 0.25, "laugh": 0.1,
                   "tilde": 0.1, "particle": 0.1}

    @property
    def weights(self) -> dict[str, float]:
        """The weights :meth:`score` uses: :attr:`CJK_WEIGHTS` for a profile of CJK text, else :attr:`WEIGHTS`."""
        return self.CJK_WEIGHTS if "laugh" in self.person_stats else self.WEIGHTS

    def __post_init__(self):
        self._phrase_t = _phrase_tuples(self.phrases)

    @classmethod
    def fit(cls, person_texts: Iterable[str], other_texts: Iterable[str], k: int = 20) -> "StyleProfile":
        """Learn the person's profile from their texts and the texts of the people they talk to."""
        person_texts, other_texts = list(person_texts), list(other_texts)
        if not person_texts or not other_texts:
            raise ValueError("StyleProfile.fit needs messages from the person and from others.")
        phrases = signature_phrases(person_texts, other_texts, k=k)
        # a profile of CJK text: when a tenth of the person's messages hold CJK characters
        cjk = sum(has_cjk(t) for t in person_texts) >= 0.1 * len(person_texts)
        return cls(
            features=style_features(person_texts, phrases),
            phrases=phrases,
            person_stats=_stats(person_texts, phrases, cjk),
            other_stats=_stats(other_texts, phrases, cjk),
        )

    def components(self, text: str) -> dict[str, float]:
        """Per-feature votes in [0, 1] for ``text``: P(person) / (P(person) + P(others)).

        ``length`` compares log word counts under a normal fit of each group; the binary
        features (no capitals, final punctuation, emoji, a signature phrase; for a profile of CJK
        text a laugh, a tilde and a final particle instead of capitals) compare how often each
        group shows the value ``text`` has. 0.5 means the feature does not tell them apart.
        """
        p, o = self.person_stats, self.other_stats
        lw = math.log1p(count_words(text))
        dp = _normal_pdf(lw, p["log_words_mean"], p["log_words_std"])
        do = _normal_pdf(lw, o["log_words_mean"], o["log_words_std"])
        votes = {"length": dp / (dp + do) if dp + do > 0 else 0.5}
        observed = {
            "lowercase": is_lowercase(text),
            "final_punct": ends_with_punct(text),
            "emoji": bool(find_emoji(text)),
            "signature": _has_phrase(tokenize(text), self._phrase_t),
        }
        if "laugh" in p:  # a profile of CJK text
            del observed["lowercase"]
            observed.update(laugh=has_laugh(text), tilde=has_tilde(text), particle=ends_with_particle(text))
        for name, value in observed.items():
            pp, po = p[name], o[name]
            if not value:
                pp, po = 1.0 - pp, 1.0 - po
            votes[name] = pp / (pp + po)
        return votes

    def score(self, text: str) -> float:
        """How much one reply looks like the person rather than the others, in [0, 1].

        The weighted mean (:attr:`weights`) of :meth:`components`; empty text scores 0.
        """
        if not text or not text.strip():
            return 0.0
        votes = self.components(text)
        weights = self.weights
        return float(sum(weights[name] * v for name, v in votes.items()))

    def score_many(self, texts: Iterable[str]) -> np.ndarray:
        """:meth:`score` for each text, as an array."""
        return np.array([self.score(t) for t in texts], dtype=float)

    def to_dict(self) -> dict:
        """A JSON-ready dict (see :meth:`from_dict`)."""
        return {"features": dict(self.features), "phrases": list(self.phrases),
                "person_stats": dict(self.person_stats), "other_stats": dict(self.other_stats)}

    @classmethod
    def from_dict(cls, data: dict) -> "StyleProfile":
        """Rebuild a profile written by :meth:`to_dict`."""
        return cls(features=dict(data["features"]), phrases=list(data["phrases"]),
                   person_stats=dict(data["person_stats"]), other_stats=dict(data["other_stats"]))


def _normal_pdf(x: float, mean: float, std: float) -> float:
    return math.exp(-0.5 * ((x - mean) / std) ** 2) / std


def _stats(texts: Sequence[str], phrases: Sequence[str], cjk: bool = False) -> dict[str, float]:
    """Per-message statistics one group's texts give :meth:`StyleProfile.components` (with
    ``cjk``, also the shares of laughs, tildes and final particles)."""
    phrase_t = _phrase_tuples(phrases)
    log_words = np.array([math.log1p(count_words(t)) for t in texts])
    n = len(texts)
    out = {
        "log_words_mean": float(log_words.mean()),
        "log_words_std": float(max(log_words.std(), 0.25)),
        "lowercase": _rate(sum(is_lowercase(t) for t in texts), n),
        "final_punct": _rate(sum(ends_with_punct(t) for t in texts), n),
        "emoji": _rate(sum(bool(find_emoji(t)) for t in texts), n),
        "signature": _rate(sum(_has_phrase(tokenize(t), phrase_t) for t in texts), n),
    }
    if cjk:
        out.update(laugh=_rate(sum(has_laugh(t) for t in texts), n), tilde=_rate(sum(has_tilde(t) for t in texts), n),
                   particle=_rate(sum(ends_with_particle(t) for t in texts), n))
    return out


def style_distance(a: dict[str, float], b: dict[str, float]) -> float:
    """Distance in [0, 1] between two :func:`style_features` dicts (0 = same style).

    The mean over the keys both share (``n`` excluded) of ``|a - b|`` for shares and of
    ``|a - b| / max(|a|, |b|)`` for averages such as ``mean_words``. A CJK share
    (:data:`CJK_FEATURES`) that only one side has counts as 0 on the other.
    """
    keys = [key for key in a if key in b and key != "n"]
    # a CJK share only one side has: the other side's text had no CJK character, so it has none of it
    keys += [key for key in CJK_FEATURES if (key in a) != (key in b)]
    if not keys:
        raise ValueError("the two feature dicts share no feature.")
    diffs = []
    for key in keys:
        x, y = float(a.get(key, 0.0)), float(b.get(key, 0.0))
        if key in RATE_FEATURES:
            diffs.append(min(abs(x - y), 1.0))
        else:
            scale = max(abs(x), abs(y))
            diffs.append(abs(x - y) / scale if scale > 0 else 0.0)
    return float(np.mean(diffs))
