"""Offline anonymization of the message table, before anything is trained or written.

Names come from the export itself: every participant (and any extra names the user adds) is a
deny-list entry, replaced in ``sender`` and inside ``text`` by a stable pseudonym — ``<ME>`` for
the person, ``<PERSON_1>``, ``<PERSON_2>``, … for everyone else, the same token for the same
person in every chat. Chat names become ``chat_1``, ``chat_2``, …. Personal data in the text
becomes typed placeholders: ``<PHONE>``, ``<EMAIL>``, ``<URL>``, ``<IBAN>``, ``<CARD>``, ``<IP>``,
``<COORDS>``.

Detection runs Presidio's pattern recognizers (e-mail, IBAN with its checksum, cards with the
Luhn check, IP addresses) on its no-op NLP engine, next to our own recognizers for phone
numbers (``phonenumbers`` over several regions), URLs and coordinates. Nothing touches the
network: Presidio's e-mail check uses a ``tldextract`` that reads only its bundled suffix list.
Cheap regular expressions decide which texts the recognizers see at all, and each distinct text
is processed once, so a 100k-message export takes seconds.

The pseudonym and chat mappings live in memory only (:attr:`Anonymizer.mapping`); never write
them next to the anonymized data.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import Counter
from typing import Iterable, Mapping

import pandas as pd

from twinlib.data import COLUMNS

ME = "<ME>"
PLACEHOLDERS = ("ME", "PERSON", "PHONE", "EMAIL", "URL", "IBAN", "CARD", "IP", "COORDS")

# Regions whose national formats phone numbers without a country code are checked against.
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "PL", "PT", "SE", "IE",
                 "TR", "RU", "BR", "MX", "AR", "CO", "CL", "IN", "PK", "CN", "JP", "KR", "ID", "PH",
                 "AU", "ZA", "NG", "EG", "AE", "SA")

# Words that are also names ("Will", "Rose", "Brown"): such a first name is replaced only when
# written with the capitals of the display name; such a last name is not replaced on its own.
NAME_WORDS = frozenset("""
al will may mark bill rose hope grace joy faith sunny summer autumn april june august dawn eve
art rich sue pat jack frank guy ray chase hunter miles glen dale lily ruby amber jade crystal pearl
violet iris ivy holly heather daisy sky rain storm river angel don gene bob rob drew sandy penny
ginger candy honey star kit nick rod carol norm jean wade reed stone cole dean earl duke
prince king young brown white black green gray grey long short hill wood woods field price bell
page hall wall love best bird fox wolf lamb baker cook mason turner walker fisher shepherd
porter cash banks lane street rivers waters knight moon snow frost winter spring summers west
north south east little strong sharp swift bush rice ford case bond power major marsh park pope
wise good dear land cross fair hardy free hunt rock sweet gold silver bishop church march bank
""".split())
# Words that are no names ("The Boss", "Mom Cell"): never matched on their own, except when they
# are the whole display name, and then only with its capitals.
STOP_WORDS = frozenset("""
a i an am as at be by do go he if in is it me my no of oh ok on or so to up us we yo ya ha hi
la le el de da di du en et un il der die das und von van den ten ter del dos des les los
the and but for not you all any can had her was one our out day get has him his how man new now
old see two way who boy did its let put say she too use yes yeah yep nope lol omg haha hey
mum mom mama mommy dad papa daddy baby babe bro sis mate boss home work team cell mobile office
""".split())
_TITLES = frozenset("mr mrs ms miss dr prof sir herr frau mme mlle sr sra dott".split())
_NAME_PART = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")

# Cheap tests that decide which recognizers a text needs (most chat messages need none).
_HINT = re.compile(r"[\d@]|www|http|\w\.\w+/", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"\+?\(?\d[\d \-().\/]*\d")
_IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}")
_IP_HINT = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d|[0-9A-Fa-f]*:[0-9A-Fa-f]*:")
_URL_HINT = re.compile(r"www|http|\w\.\w+/", re.IGNORECASE)
_COORDS_HINT = re.compile(r"\d\.\d{4}")

_URL_END = r"[^\s<>\"'`]*[^\s<>\"'`.,;:!?)\]}*]"
_URL_PATTERNS = (
    r"(?i)\b(?:https?://|www\d{0,3}\.)" + _URL_END,
    # a bare domain followed by a path: bit.ly/xyz, maps.app.goo.gl/abc
    r"(?i)(?<![\w@.])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}/(?:" + _URL_END + ")?",
)
_COORDS_PATTERN = (r"(?<![\w.+-])([-+]?\d{1,2}\.\d{4,})°?(?:\s?[NSns])?(?:\s*[,;]\s*|\s+)"
                   r"([-+]?\d{1,3}\.\d{4,})°?(?:\s?[EWew])?(?![\w.])")
_CARD_PATTERN = r"(?<![\d+.,])[1-9](?:[ -]?\d){12,18}(?![\d]|[.,]\d)"
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?<!\d[.,])(?:\+|00)?\(?\d[\d \-().\/]{5,}\d\)?")
_PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])(?:\+|00)[1-9][\d \-().\/]{5,}\d")
_PHONE_NANP = re.compile(r"(?<![\w+])\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}(?!\w)")

# Presidio entity type -> our placeholder; the order breaks ties between equally long matches.
# Phone numbers are looked for afterwards, in the text the others left.
_KIND = {"URL": "URL", "EMAIL_ADDRESS": "EMAIL", "IBAN_CODE": "IBAN", "CREDIT_CARD": "CARD",
         "IP_ADDRESS": "IP", "COORDINATES": "COORDS", "PHONE_NUMBER": "PHONE"}
_PRIORITY = {k: i for i, k in enumerate(_KIND)}
# A placeholder already in the text, skipped by the name pass.
_PLACEHOLDER = r"<(?:ME|PERSON_\d+|PHONE|EMAIL|URL|IBAN|CARD|IP|COORDS)>"


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def _in_decimal(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` is the tail or head of a decimal number ("2.0156416")."""
    return bool(re.fullmatch(r"\d[.,]", text[max(0, start - 2):start]) or re.match(r"[.,]\d", text[end:end + 2]))


def _is_common(word: str) -> bool:
    return word.lower() in NAME_WORDS or word.lower() in STOP_WORDS


def _name_variants(name: str) -> list[tuple[str, bool, bool]]:
    """The strings that refer to a participant, as ``(variant, case_sensitive, is_full_name)``.

    ``"Anna Schmidt"`` gives the full name, ``Anna`` and ``Schmidt``; a display name without
    letters (a phone number) gives itself. A one-letter name is not looked for in texts; a first
    name that is also a word (:data:`NAME_WORDS`) only with its capitals; stop words, and short
    or common last names, not on their own.
    """
    name = " ".join(str(name).split())
    parts = _NAME_PART.findall(name)
    if not parts:
        return [(name, False, True)] if len(name) >= 3 else []
    full = " ".join(parts)
    if len(full) < 2:
        return []
    out = [(full, len(parts) == 1 and _is_common(full), True)]
    if name != full and len(name) >= 3:   # "Anna 🌸", "Dr. Who" as written
        out.append((name, False, True))
    while len(parts) > 1 and parts[0].lower().rstrip(".") in _TITLES:
        parts = parts[1:]
    if len(parts) > 1:
        first = parts[0]
        if len(first) >= 2 and first.lower() not in STOP_WORDS:
            out.append((first, first.lower() in NAME_WORDS, False))
        out.extend((p, False, False) for p in parts[1:] if len(p) >= 3 and not _is_common(p))
    return out


def _trie_regex(words: Iterable[str]) -> str:
    """One regular expression matching any of ``words``, as a trie (fast for hundreds of names)."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        branches = [(r"\s+" if ch == " " else re.escape(ch)) + build(child)
                    for ch, child in sorted(node.items()) if ch != ""]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return build(trie)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@functools.lru_cache(maxsize=4)
def _analyzer(phone_regions: tuple[str, ...]):
    """A Presidio AnalyzerEngine with pattern recognizers only (no NLP model, no network)."""
    import tldextract
    from presidio_analyzer import (AnalyzerEngine, EntityRecognizer, LocalRecognizer, Pattern,
                                   PatternRecognizer, RecognizerRegistry, RecognizerResult)
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (CreditCardRecognizer, EmailRecognizer,
                                                          IbanRecognizer, IpRecognizer)
    import phonenumbers

    # The bundled public-suffix snapshot only: no download, no cache on disk.
    offline_tld = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld(pattern_text.rsplit("@", 1)[-1]).fqdn != ""

    class StrictIpRecognizer(IpRecognizer):
        def invalidate_result(self, pattern_text: str) -> bool:
            try:
                ip = ipaddress.ip_address(pattern_text.split("/")[0].split("%")[0])
            except ValueError:
                return True
            if ip.version == 6:  # "a::b", "abc::" are not worth a placeholder; real ones have digits
                groups = [g for g in re.split(r":+", pattern_text) if g]
                return len(groups) < 2 or not any(c.isdigit() for c in pattern_text)
            return False

    class CardRecognizer(CreditCardRecognizer):
        """Any Luhn-valid run of 13–19 digits, spaced or dashed (Presidio's own pattern misses Amex)."""

        def __init__(self):
            super().__init__(patterns=[Pattern("card digits", _CARD_PATTERN, 0.5)])

        def validate_result(self, pattern_text: str) -> bool:
            digits = re.sub(r"\D", "", pattern_text)
            return 13 <= len(digits) <= 19 and len(set(digits)) > 1 and _luhn_ok(digits)

    class CoordinatesRecognizer(PatternRecognizer):
        def __init__(self):
            super().__init__(supported_entity="COORDINATES", name="CoordinatesRecognizer",
                             patterns=[Pattern("lat, long", _COORDS_PATTERN, 0.6)])

        def validate_result(self, pattern_text: str) -> bool:
            lat, lon = (float(x) for x in re.findall(r"[-+]?\d+\.\d+", pattern_text)[:2])
            return abs(lat) <= 90 and abs(lon) <= 180

    class PhoneRecognizer(LocalRecognizer):
        """Phone numbers: international (+/00) numbers that are possible, national ones that are
        valid in one of ``phone_regions``, and formatted North-American numbers."""

        def __init__(self):
            super().__init__(supported_entities=["PHONE_NUMBER"], name="PhoneRecognizer")

        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            spans = set()
            for cand in _PHONE_CANDIDATE.finditer(text):
                if not 7 <= _digits(cand.group()) <= 17:
                    continue
                base, chunk = cand.start(), cand.group()
                found = set()
                for m in _PHONE_INTERNATIONAL.finditer(chunk):
                    raw = m.group()
                    number = "+" + raw[2:] if raw.startswith("00") else raw
                    try:
                        if phonenumbers.is_possible_number(phonenumbers.parse(number, None)):
                            found.add((m.start(), m.end()))
                    except phonenumbers.NumberParseException:
                        pass
                found.update((m.start(), m.end()) for m in _PHONE_NANP.finditer(chunk))
                # the digits from the first to the last: once one match covers them, stop
                first = next(i for i, c in enumerate(chunk) if c.isdigit())
                last = max(i for i, c in enumerate(chunk) if c.isdigit()) + 1
                for region in phone_regions:
                    if any(s <= first and e >= last for s, e in found):
                        break
                    found.update((m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(
                        chunk, region, leniency=phonenumbers.Leniency.VALID))
                spans.update((base + s, base + e) for s, e in found if not _in_decimal(text, base + s, base + e))
            return EntityRecognizer.remove_duplicates([
                RecognizerResult("PHONE_NUMBER", s, e, 0.7) for s, e in spans])

    nlp_engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "no_op"}]}).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (OfflineEmailRecognizer(), IbanRecognizer(), CardRecognizer(), StrictIpRecognizer(),
                       CoordinatesRecognizer(), PhoneRecognizer(),
                       PatternRecognizer(supported_entity="URL", name="UrlRecognizer",
                                         patterns=[Pattern(f"url {i}", p, 0.6) for i, p in enumerate(_URL_PATTERNS)])):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])


def _entities_for(text: str) -> list[str]:
    """The recognizers worth running on ``text``, from cheap tests."""
    if not _HINT.search(text):
        return []
    wanted = []
    if "@" in text:
        wanted.append("EMAIL_ADDRESS")
    if _URL_HINT.search(text):
        wanted.append("URL")
    if _IBAN_HINT.search(text):
        wanted.append("IBAN_CODE")
    if _IP_HINT.search(text):
        wanted.append("IP_ADDRESS")
    if _COORDS_HINT.search(text):
        wanted.append("COORDINATES")
    run = _longest_digit_run(text)
    if run >= 13:
        wanted.append("CREDIT_CARD")
    if run >= 7:
        wanted.append("PHONE_NUMBER")
    return wanted


def _longest_digit_run(text: str) -> int:
    """The most digits in one stretch of digits, spaces, dashes, dots, slashes and brackets
    (the shape of a phone or card number)."""
    return max((_digits(m.group()) for m in _DIGIT_RUN.finditer(text)), default=0)


def _resolve(results) -> list[tuple[int, int, str]]:
    """Non-overlapping spans: the longest match wins, ties by entity priority."""
    taken: list[tuple[int, int, str]] = []
    for r in sorted(results, key=lambda r: (-(r.end - r.start), _PRIORITY[r.entity_type], r.start)):
        if all(r.end <= s or r.start >= e for s, e, _ in taken):
            taken.append((r.start, r.end, _KIND[r.entity_type]))
    return sorted(taken)


class Anonymizer:
    """Replace names, chat titles and personal data in a message table; see the module doc.

    ``me`` is the person's name as the export spells it; ``names`` the other participants (their
    order fixes the numbering: ``<PERSON_1>`` is the first). ``extra_names`` adds names the
    export does not show as senders: an iterable (each a person of their own) or a mapping
    ``{nickname: participant}`` (the nickname gets that participant's token). Senders first seen
    in :meth:`anonymize` are numbered after the known ones. A first or last name shared by
    several people goes to the one registered first (the person, then ``names`` in order); a full
    name always goes to its owner. With ``enabled=False`` :meth:`anonymize` returns the messages
    unchanged. ``phone_regions``: the countries whose national number formats are recognized.
    """

    def __init__(self, me: str, names: Iterable[str] = (), extra_names: Iterable[str] | Mapping[str, str] = (),
                 enabled: bool = True, phone_regions: Iterable[str] = PHONE_REGIONS):
        if not str(me).strip():
            raise ValueError("me is empty: pass the person's name as it appears in the export.")
        self.enabled = enabled
        self.phone_regions = tuple(phone_regions)
        self.summary: dict = {}
        self._people: dict[str, str] = {}      # _fold(display name) -> token
        self._full: dict[str, str] = {}        # _key(full-name variant) -> token (wins over parts)
        self._parts: dict[str, str] = {}       # _key(first/last-name variant) -> token
        self._exact: dict[str, str] = {}       # case-sensitive variant -> token
        self._chats: dict[str, str] = {}
        self._count = 0
        self._regex: re.Pattern | None = None
        self._lookup: dict[str, str] = {}
        self._lookup_exact: dict[str, str] = {}
        self._add_person(me, ME)
        for name in names:
            self._add_person(name)
        if isinstance(extra_names, Mapping):
            for alias, person in extra_names.items():
                if not str(person).strip():
                    raise ValueError(f"extra_names maps {alias!r} to an empty name; map it to a participant.")
                self._add_alias(alias, self._add_person(person))
        else:
            for name in extra_names:
                self._add_person(name)

    @classmethod
    def from_messages(cls, messages: pd.DataFrame, me: str | None = None, **kwargs) -> "Anonymizer":
        """An anonymizer for these messages: every sender is a participant, numbered in order of
        first appearance; ``me`` is checked (or inferred) with :func:`twinlib.people.infer_me`."""
        from twinlib.people import infer_me

        me = infer_me(messages, me)
        senders = [s for s in pd.unique(messages["sender"].astype(str)) if s.strip()]
        return cls(me, senders, **kwargs)

    @staticmethod
    def _fold(name: str) -> str:
        """The key a participant is known by: whitespace collapsed, case folded."""
        return " ".join(str(name).split()).casefold()

    @staticmethod
    def _key(variant: str) -> str:
        """The key of a case-insensitive name variant (lower case, as the regex matches it)."""
        return " ".join(str(variant).split()).lower()

    def _token_for(self, matched: str) -> str:
        token = self._lookup.get(self._key(matched))
        if token is None:  # re's case-insensitive matching is looser than str.lower() for a few letters
            token = next(v for k, v in self._lookup.items()
                         if re.fullmatch(_trie_regex([k]), matched, re.IGNORECASE))
        return token

    def _add_person(self, name: str, token: str | None = None) -> str:
        """Register a participant (once) and return their token."""
        key = self._fold(name)
        if not key:
            return ""
        if key in self._people:
            return self._people[key]
        if token is None:
            self._count += 1
            token = f"<PERSON_{self._count}>"
        self._people[key] = token
        self._add_alias(name, token)
        return token

    def _add_alias(self, name: str, token: str) -> None:
        for variant, case_sensitive, is_full in _name_variants(name):
            if case_sensitive:
                self._exact.setdefault(variant, token)
            else:
                (self._full if is_full else self._parts).setdefault(self._key(variant), token)
        self._regex = None

    @property
    def mapping(self) -> dict:
        """``{"people": {name: token}, "chats": {chat: chat_n}}`` as far as seen — in memory only:
        print it to check the result, never save it with the data."""
        return {"people": dict(self._people), "chats": dict(self._chats)}

    def _name_regex(self) -> re.Pattern:
        if self._regex is None:
            folded = {**self._parts, **self._full}
            exact = {k: v for k, v in self._exact.items() if self._key(k) not in folded}
            self._lookup, self._lookup_exact = folded, exact
            alternatives = [f"(?P<keep>{_PLACEHOLDER})"]
            if folded:
                alternatives.append(r"(?<!\w)(?P<ci>" + _trie_regex(folded) + r")(?!\w)")
            if exact:
                alternatives.append(r"(?<!\w)(?-i:(?P<cs>" + _trie_regex(exact) + r"))(?!\w)")
            self._regex = re.compile("|".join(alternatives), re.IGNORECASE)
        return self._regex

    def _replace(self, text: str, entities: list[str], counts: Counter) -> str:
        """Replace what the recognizers for ``entities`` find in ``text``; count it in ``counts``."""
        results = _analyzer(self.phone_regions).analyze(text, entities=entities, language="en")
        pieces, last = [], 0
        for start, end, kind in _resolve(results):
            pieces += [text[last:start], f"<{kind}>"]
            counts[kind] += 1
            last = end
        return "".join(pieces) + text[last:]

    def _scrub(self, text: str) -> tuple[str, Counter]:
        """Anonymize one text; return it and the placeholder counts."""
        counts: Counter = Counter()
        entities = _entities_for(text)
        others = [e for e in entities if e != "PHONE_NUMBER"]
        if others:
            text = self._replace(text, others, counts)
        # phone numbers last, in what is left: the digits of a card, an IBAN or an IP are no phone
        if "PHONE_NUMBER" in entities and _longest_digit_run(text) >= 7:
            text = self._replace(text, ["PHONE_NUMBER"], counts)

        def name(m: re.Match) -> str:
            if m.group("keep"):
                return m.group()
            if m.group("ci") is not None:
                token = self._token_for(m.group())
            else:
                token = self._lookup_exact[m.group()]
            counts["ME" if token == ME else "PERSON"] += 1
            return token

        return self._name_regex().sub(name, text), counts

    def anonymize(self, messages: pd.DataFrame) -> pd.DataFrame:
        """Return a copy of ``messages`` with names, chat titles and personal data replaced;
        :attr:`summary` then holds the counts (never the values).

        Only the message columns are kept, plus ``source`` (the export's file name, which often
        holds a contact's name) as ``export_1``, ``export_2``, …; any other column is dropped."""
        missing = [c for c in COLUMNS if c not in messages.columns]
        if missing:
            raise ValueError(f"the message table has no {missing} column(s); expected {COLUMNS}.")
        if not self.enabled:
            self.summary = {"enabled": False, "messages": len(messages),
                            "note": "anonymization was off: names and personal data are kept as they are."}
            return messages.copy()
        out = messages[[c for c in (*COLUMNS, "source") if c in messages.columns]].copy()
        if "source" in out.columns:
            files = {f: f"export_{i}" for i, f in enumerate(pd.unique(out["source"].astype(str)), start=1)}
            out["source"] = out["source"].astype(str).map(files)
        senders = out["sender"].fillna("").astype(str)
        for s in pd.unique(senders):
            self._add_person(s)
        for c in pd.unique(out["chat"].fillna("").astype(str)):
            self._chats.setdefault(c, f"chat_{len(self._chats) + 1}")
        out["sender"] = senders.map(lambda s: self._people.get(self._fold(s), ""))
        out["chat"] = out["chat"].fillna("").astype(str).map(self._chats)

        texts = out["text"].fillna("").astype(str)
        frequency = texts.value_counts(sort=False)
        replaced: dict[str, str] = {}
        totals: Counter = Counter()
        changed = 0
        for text, n in frequency.items():
            new, counts = self._scrub(text)
            replaced[text] = new
            for kind, k in counts.items():
                totals[kind] += k * n
            changed += n if new != text else 0
        out["text"] = texts.map(replaced)
        self.summary = {
            "enabled": True,
            "messages": len(out),
            "messages_changed": int(changed),
            "participants": int(senders[senders.str.strip() != ""].map(self._fold).nunique()),
            "chats": int(out["chat"].nunique()),
            "replaced": {kind: int(totals.get(kind, 0)) for kind in PLACEHOLDERS},
        }
        return out
