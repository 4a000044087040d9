"""Offline anonymization of the message table, before anything is trained or written.

Names come from the export itself: every participant (and any extra names the user adds) is a
deny-list entry, replaced in ``sender`` and inside ``text`` by a stable pseudonym — ``<ME>`` for
the person, ``<PERSON_1>``, ``<PERSON_2>``, … for everyone else, the same token for the same
person in every chat. Chat names become ``chat_1``, ``chat_2``, …. Personal data in the text
becomes typed placeholders: ``<PHONE>``, ``<EMAIL>``, ``<URL>``, ``<IBAN>``, ``<CARD>``, ``<IP>``,
``<COORDS>``, ``<ID>`` (national ID numbers), ``<CRYPTO>`` (wallet addresses), ``<ADDRESS>``,
``<AGE>``, ``<WECHAT_ID>``, ``<QQ>`` and ``<NUMBER>`` (a long number sent on its own); see
:data:`PLACEHOLDERS` and docs/stage1.md.

Detection runs Presidio's pattern recognizers (e-mail, IBAN with its checksum, cards with the
Luhn check, IP addresses) on its no-op NLP engine, next to our own recognizers for phone
numbers (``phonenumbers`` over several regions), URLs and coordinates. Nothing touches the
network: Presidio's e-mail check uses a ``tldextract`` that reads only its bundled suffix list.
Cheap regular expressions decide which texts the recognizers see at all, and each distinct text
is processed once, so a 100k-message export takes seconds.

**Text without spaces.** Chinese and Japanese put no space between words, and Python counts
their characters as word characters: ``\b`` never fires between ``话`` and ``1``, so
``电话13812345678好的`` hides a number from any ``\b``-bounded pattern. Every pattern here draws
its edges with "not a word character other than CJK" instead (:data:`CJK`), so a number,
an e-mail address or a URL glued to Chinese text is found, and a URL stops where the Chinese
text starts again. Names that contain CJK characters are matched as plain substrings (longest
first), and a three- or four-character Chinese name also gives its given name (林晓雨 → 晓雨).
Our own recognizers (plain regular expressions with validation, not Presidio: they need these
edges and run on every message that has a digit or an address character, so they are kept cheap)
find Chinese mobile and landline numbers, the resident ID (18 digits with its ISO 7064 checksum,
and the 15-digit legacy form), the US SSN and the UK National Insurance number, Bitcoin and
Ethereum addresses (Bitcoin's checksums via Presidio's validator), WeChat IDs, QQ numbers where
the text says "QQ", street addresses (Chinese 省/市/区/县/路/街/号 patterns; English house number
+ street type, UK postcodes, US ZIP codes after a state) and ages (25岁, 32 years old).

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
PLACEHOLDERS = ("ME", "PERSON", "PHONE", "EMAIL", "URL", "IBAN", "CARD", "IP", "COORDS",
                "ID", "CRYPTO", "ADDRESS", "AGE", "WECHAT_ID", "QQ", "NUMBER")

# Scripts written without spaces between words: CJK ideographs (and radicals, compatibility
# ideographs, the supplementary planes), kana, bopomofo and Hangul. A character class body.
CJK = ("\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
       "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# "A word character that is not CJK": the edge of a token in text that may have no spaces.
_W = f"[^\\W{CJK}]"
_HAS_CJK = re.compile(f"[{CJK}]")
_ALL_HAN = re.compile(f"[{_HAN}]+")

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
_HINT = re.compile(r"[\d@]|w(?:ww|xid|echat|eixin)|http|\w\.\w+/", re.IGNORECASE)
# ... and, in text with CJK characters, for the recognizers of text without digits: Chinese
# addresses, ages written in Chinese numerals, WeChat IDs (English-only text skips this test).
_EXTRA_HINT = re.compile("[省市区县旗镇乡路街巷弄号岁信]")
_DIGIT = re.compile(r"\d")
_DIGIT_RUN = re.compile(r"\+?\(?\d[\d \-().\/]*\d")
_IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}")
_IP_HINT = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d|[0-9A-Fa-f]*:[0-9A-Fa-f]*:")
_URL_HINT = re.compile(r"www|http|\w\.\w+/", re.IGNORECASE)
_COORDS_HINT = re.compile(r"\d\.\d{4}")
# Full-width ASCII (１３８…, ＠) as typed with a Chinese input method: looked at as ASCII.
_FULLWIDTH_HINT = re.compile("[\uff01-\uff5e\u3000]")
_FULLWIDTH = {**{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}, 0x3000: 0x20}

# A word boundary that treats CJK characters as non-word characters (\b does not).
_WB = f"(?:(?<!{_W})(?={_W})|(?<={_W})(?!{_W}))"
# URLs end at white space, quotes, CJK text and CJK or full-width punctuation (链接https://x.org/a看看).
_URL_STOP = f"\\s<>\"'`{CJK}\u3000-\u303f\uff01-\uff5e"
_URL_END = f"[^{_URL_STOP}]*[^{_URL_STOP}.,;:!?)\\]}}*]"
_URL_PATTERNS = (
    f"(?i)(?<!{_W})(?:https?://|www\\d{{0,3}}\\.)" + _URL_END,
    # a bare domain followed by a path: bit.ly/xyz, maps.app.goo.gl/abc
    f"(?i)(?<!{_W})(?<![@.])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\\.)+[a-z]{{2,24}}/(?:" + _URL_END + ")?",
)
# Presidio's e-mail pattern with CJK-aware edges: a character of the address is a word character
# that is not CJK, or one of the symbols RFC 5322 allows.
_EC = f"(?:(?![{CJK}])[\\w!#$%&'*+\\-/=?^`{{|}}~])"
_DC = f"(?:(?![{CJK}])\\w)"
_EMAIL_PATTERN = (f"(?<!{_W})(?:{_EC}|{_EC}(?:{_EC}|\\.)*{_EC})@{_DC}+(?:-+{_DC}+)*"
                  f"(?:\\.{_DC}+(?:-+{_DC}+)*)+(?!{_W})")
_COORDS_PATTERN = (f"(?<!{_W})(?<![.+-])([-+]?\\d{{1,2}}\\.\\d{{4,}})°?(?:\\s?[NSns])?(?:\\s*[,;]\\s*|\\s+)"
                   f"([-+]?\\d{{1,3}}\\.\\d{{4,}})°?(?:\\s?[EWew])?(?!{_W}|\\.)")
_CARD_PATTERN = r"(?<![\d+.,])[1-9](?:[ -]?\d){12,18}(?![\d]|[.,]\d)"
_PHONE_CANDIDATE = re.compile(f"(?<!{_W})(?<!\\+)(?<!\\d[.,])(?:\\+|00)?\\(?\\d[\\d \\-().\\/]{{5,}}\\d\\)?")
_PHONE_INTERNATIONAL = re.compile(f"(?<!{_W})(?<!\\+)(?:\\+|00)[1-9][\\d \\-().\\/]{{5,}}\\d")
_PHONE_NANP = re.compile(f"(?<!{_W})(?<!\\+)\\(?\\d{{3}}\\)?[-. ]\\d{{3}}[-. ]\\d{{4}}(?!{_W})")


def _cjk_aware(pattern: str) -> str:
    """A Presidio pattern with its ``\\b`` and ``\\w`` edges made CJK-aware (see :data:`_W`)."""
    return (pattern.replace(r"(?<![\w:])", f"(?<!{_W})(?<!:)").replace(r"(?![\w:]|\.\d)", f"(?!{_W}|:|\\.\\d)")
            .replace(r"(?![\w:])", f"(?!{_W}|:)").replace(r"\b", _WB))


def _ip_pattern(name: str, pattern: str) -> str:
    """Presidio's IP patterns with CJK-aware edges; an IPv4 address may follow a capital letter
    (IP192.168.1.100) and an IPv6 one any character but a hex digit or a colon."""
    if name == "IPv4" and pattern.startswith(r"\b"):
        pattern = r"(?<![\d.])(?<!(?-i:[a-z]))" + pattern[2:]  # Presidio matches ignoring case
    elif name == "IPv6" and pattern.startswith(r"(?<![\w:])"):
        pattern = r"(?<![0-9A-Fa-f:])" + pattern[len(r"(?<![\w:])"):]
    return _cjk_aware(pattern)


# ---- our own recognizers: (compiled pattern, entity) and a validator each, see _own_spans()

# Chinese mobile numbers, 1[3-9] and 9 more digits, also +86 and spaced or dashed (138 1234 5678).
_CN_MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
# Chinese landlines with an area code: 021-62345678, (010) 6555 0123, 0755 8601 3388.
# Area codes are 010, 02x and 0[3-9]xx; local numbers start with 2-8.
_CN_AREA = "0(?:10|2\\d|[3-9]\\d{2})"
_CN_LANDLINE = re.compile(f"(?<![\\d+])(?:\\({_CN_AREA}\\)\\s?|（{_CN_AREA}）|{_CN_AREA}[ -])[2-8]\\d{{2,3}}[ -]?\\d{{4}}(?!\\d)")
# Resident ID: 6-digit region, birth date, 3-digit sequence, check character (ISO 7064 MOD 11-2).
_CN_ID = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
                    r"(?![0-9A-Za-z])")
_CN_ID15 = re.compile(r"(?<![0-9A-Za-z])[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?![0-9A-Za-z])")
_CN_PROVINCES = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
                          "61 62 63 64 65 71 81 82 83 91".split())
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_KEYWORD = re.compile(r"(?:身份证|证件|居民身份|(?i:\bID\b|identity|passport))\D{0,6}$")
# US Social Security number (dashed or spaced; areas 000, 666 and 9xx are never issued).
_US_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])")
# UK National Insurance number (Presidio's pattern, CJK-aware edges).
_UK_NINO = re.compile(_cjk_aware(r"\b(?!bg|gb|nk|kn|nt|tn|zz|BG|GB|NK|KN|NT|TN|ZZ)([a-ceghj-pr-tw-zA-CEGHJ-PR-TW-Z]"
                                 r"[a-ceghj-npr-tw-zA-CEGHJ-NPR-TW-Z]) ?([0-9]{2}) ?([0-9]{2}) ?([0-9]{2}) ?([a-dA-D])\b"))
# A card number after 卡号/银行卡/card: some banks' cards fail the Luhn check, so none is asked for here.
# In English only "card no.", "card number" or "card:" (not "a card 4111 …", which may be a made-up number).
_CARD_CONTEXT = re.compile(f"(?:(?:卡号|银行卡|信用卡|储蓄卡|借记卡)\\s*(?:是|为|:|：)?"
                           f"|(?<!{_W})(?i:card)\\s?(?:(?i:no\\.?|number|#)\\s*[:：]?|[:：]))"
                           r"\s*((?:\d[ -]?){12,18}\d)(?!\d)")
# Bitcoin (legacy base58 and bech32; checksums checked by Presidio's CryptoRecognizer) and Ethereum.
_BTC = re.compile(r"(?<![A-Za-z0-9])(?:bc1[ac-hj-np-z02-9]{11,71}|[13][a-km-zA-HJ-NP-Z1-9]{25,34})(?![A-Za-z0-9])")
_ETH = re.compile(r"(?<![A-Za-z0-9])0x[0-9a-fA-F]{40}(?![A-Za-z0-9])")
# WeChat IDs: wxid_… anywhere; a custom ID (6-20 characters, a letter first) after 微信/vx/wx.
_LATIN_WECHAT = re.compile("wechat|weixin", re.IGNORECASE)
_WXID = re.compile(r"(?<![A-Za-z0-9_])wxid_[A-Za-z0-9_-]{4,40}")
# "vx"/"wx" only right after CJK text or at the start (加我vx linxy_2024), "wechat" as a word.
_WECHAT_ID = re.compile(f"(?:(?:微信|威信|薇信)|(?<=[{CJK}])(?i:vx|wx|v信)|^(?i:vx|wx|v信)(?=\\s*[:：号])"
                        f"|(?<!{_W})(?i:wechat|weixin))"
                        r"(?P<label>号|號|(?i:\s?id))?\s*(?:是|为|:|：|(?i:is))?\s*"
                        r"([A-Za-z][-_A-Za-z0-9]{5,19})(?![-_A-Za-z0-9])")


def _wechat_id_valid(m: re.Match) -> bool:
    """After 微信号 / "WeChat ID" any ID; after a bare 微信, vx or "wechat" only one with a digit, _ or -
    ("my wechat is awesome" names no ID)."""
    return bool(m.group("label")) or bool(re.search(r"[\d_-]", m.group(2)))
# QQ numbers, where the text says QQ: QQ号 12345678, 扣扣：123456, q号是123456.
_QQ = re.compile(r"(?:(?i:qq)|扣扣|企鹅|(?i:q)号)(?:号|號|号码|(?i:\s?no\.?))?\s*(?:是|为|:|：)?\s*(\d{5,11})(?!\d)")
# Ages: 25岁, 28周岁, 二十五岁, 32 years old, 32-year-old, aged 40, age: 28, 30yo, 30 y/o.
_AGE = re.compile(
    r"(?<![\d.])\d{1,3}\s?(?:周岁|岁)(?!月)"
    r"|(?<![一二三四五六七八九十两零百千万几])[一二三四五六七八九十两]{1,4}(?:周岁|岁)(?!月)"
    f"|(?<![\\d.])\\d{{1,3}}(?:\\s|-)?(?i:years?|yrs?)(?:\\s|-)?(?i:old)(?!{_W})"
    f"|(?<!{_W})(?i:aged?)(?::|\\s)\\s?\\d{{1,3}}(?:\\s?(?:周岁|岁)|(?:\\s|-)?(?i:years?|yrs?)(?:(?:\\s|-)?(?i:old))?)?"
    f"(?![\\d.])(?!{_W})"
    f"|(?<![\\d.])\\d{{1,3}}\\s?(?i:yo|y/o|y\\.o\\.)(?!{_W})")

# Chinese addresses: administrative units (省 市 区 县 …), a road (路 街 巷 …), house numbers
# (12号 3单元 501室), and a place name that ends the address (三里屯). The characters of a name
# are Han characters that are not pronouns or particles (which never occur in place names and
# keep "我知道路" from looking like one). At least two parts make an address: a city alone does not.
_PLACE_HAN = f"(?:(?![我你他她它们的了是在吗呢吧啊呀么哪这那也就还去到给跟说想要看和与及或])[{_HAN}])"
_CN_ADMIN = f"{_PLACE_HAN}{{1,7}}?(?:特别行政区|自治区|自治州|自治县|省|市|区|县|旗|镇|乡|街道)"
_CN_ROAD = f"{_PLACE_HAN}{{1,7}}?(?:大道|大街|路|街|巷|弄|胡同)"
_CN_NUMBER = "(?:[0-9一二三四五六七八九十百零〇]{1,5}(?:号院|号楼|号|號|栋|幢|座|单元|楼|层|室|弄|排|户))"
_CN_END = "(?=$|[\\s,，。！？!?、；;:：)）~～]|[0-9])"
_CN_ADDRESS = re.compile(
    f"(?P<admin>(?:{_CN_ADMIN}){{1,4}})(?P<road>{_CN_ROAD})?(?P<num>{_CN_NUMBER}*)(?P<tail>{_PLACE_HAN}{{1,6}}{_CN_END})?"
    f"|(?P<road2>{_CN_ROAD})(?P<num2>{_CN_NUMBER}+)")
_CN_ADMIN_SPLIT = re.compile(f"{_PLACE_HAN}*?(?:特别行政区|自治区|自治州|自治县|省|市|区|县|旗|镇|乡|街道)")
# Words that end like an administrative unit but are none: never a part of an address on their own.
_CN_NOT_PLACES = frozenset("""超市 城市 都市 门市 夜市 早市 股市 菜市 街市 上市 闹市 黑市 集市 花市 楼市 车市
地区 社区 小区 景区 郊区 市区 山区 园区 校区 专区 误区 灾区 禁区 辖区 片区 商区 老区 新区 城区 分区 战区 营区
县区 乡镇 城镇 小镇 古镇 坐镇 乡下 家乡 老乡 故乡 他乡 异乡 下乡""".split())
# English street addresses: a house number, one to four capitalized words, a street type; then
# a direction, a city with a state or postcode, a country. Lower-case ones only after "at",
# "live(s) at", "address" or "moved to", and never with stop words or units as the street name.
_STREET_TYPES = ("Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|"
                 "Terrace|Close|Crescent|Way|Parkway|Pkwy|Highway|Hwy|Gardens|Grove|Row|Mews|Walk|Hill")
_UK_POSTCODE = (r"(?:GIR ?0AA|[A-PR-UWYZ][0-9][ABCDEFGHJKPSTUW]? ?[0-9][ABD-HJLNP-UW-Z]{2}|[A-PR-UWYZ][0-9]{2} ?[0-9]"
                r"[ABD-HJLNP-UW-Z]{2}|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY]? ?[0-9][ABD-HJLNP-UW-Z]{2}|[A-PR-UWYZ]"
                r"[A-HK-Y][0-9]{2} ?[0-9][ABD-HJLNP-UW-Z]{2})")
_US_STATES = ("AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|"
              "NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY")
_EN_TAIL = (f"(?:\\s+(?:NW|NE|SW|SE|N|S|E|W)(?!{_W}))?"
            f"(?:,?\\s+(?:Apt|Flat|Unit|Suite)\\.?\\s*#?[0-9A-Za-z]{{1,5}})?"
            f"(?:,?\\s+(?:[A-Z][a-z]+\\s+){{0,2}}[A-Z][a-z]+,?\\s+"
            f"(?:(?:{_US_STATES})(?:\\s+\\d{{5}}(?:-\\d{{4}})?)?|{_UK_POSTCODE}|\\d{{5}}(?:-\\d{{4}})?)(?!{_W}))?"
            f"(?:,?\\s+(?:UK|USA|U\\.S\\.A\\.|U\\.S\\.|United Kingdom|United States|England|Scotland|Wales))?(?!{_W})")
_EN_ADDRESS = re.compile(
    f"(?P<addr>(?<!{_W})(?<![.:,/-])\\d{{1,5}}[A-Za-z]?,?(?P<name>(?:\\s+[A-Z][\\w'’.-]*){{1,4}}?)\\s+"
    f"(?:{_STREET_TYPES})\\.?(?!{_W}){_EN_TAIL})"
    f"|(?i:(?<!{_W})(?:at|address(?:\\s+is)?:?|moved\\s+to|live\\s+on)\\s+)(?P<laddr>(?-i:\\d{{1,5}}[a-z]?)"
    f"(?P<lname>(?:\\s+[a-z][\\w'’-]*){{1,3}}?)\\s+"
    f"(?:street|avenue|road|lane|drive|boulevard|terrace|crescent|close|court|place|square|gardens)(?!{_W}){_EN_TAIL})")
_STREET_NOT_NAMES = frozenset("min mins minute minutes hour hours hrs km miles mile people times more less "
                              "other same next last first very".split())
_UK_POSTCODE_ALONE = re.compile(f"(?<!{_W}){_UK_POSTCODE}(?!{_W})")
# A message that is nothing but a long number (an account, card, ID, order or phone number).
_LONE_NUMBER = re.compile(r"\s*[+＋]?\(?\d[\d \-()]*\d\)?\s*")

# Entity type -> our placeholder; the order breaks ties between equally long matches.
# Phone numbers are looked for afterwards, in the text the others left.
_KIND = {"URL": "URL", "EMAIL_ADDRESS": "EMAIL", "IBAN_CODE": "IBAN", "CN_ID": "ID", "CREDIT_CARD": "CARD",
         "IP_ADDRESS": "IP", "COORDINATES": "COORDS", "CRYPTO": "CRYPTO", "US_SSN": "ID", "UK_NINO": "ID",
         "WECHAT_ID": "WECHAT_ID", "QQ_NUMBER": "QQ", "ADDRESS": "ADDRESS", "AGE": "AGE", "CN_PHONE": "PHONE",
         "PHONE_NUMBER": "PHONE"}
_PRIORITY = {k: i for i, k in enumerate(_KIND)}
# A placeholder already in the text, skipped by the name pass.
_PLACEHOLDER = "<(?:PERSON_\\d+|" + "|".join(k for k in PLACEHOLDERS if k != "PERSON") + ")>"


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
    or common last names, not on their own. ``"林晓雨"`` gives itself and its given name ``晓雨``
    (a two-character name such as ``刘洋`` only itself: one character is no name to look for).
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
    # A Chinese name of three or four characters is a one- or two-character family name and a
    # two-character given name, which is what friends call each other: 林晓雨 -> 晓雨, 欧阳娜娜 -> 娜娜.
    out.extend((p[-2:], False, False) for p in parts if len(p) in (3, 4) and _ALL_HAN.fullmatch(p))
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


def _possible_international(raw: str) -> int:
    """The length of the longest start of ``raw`` (an international number as matched, ``+``/``00``
    first) that is a possible phone number, or 0. A possible number followed by more digits, such
    as the trunk digit of ``+44 7700 900123 (0)`` or an extension, is found without them."""
    import phonenumbers

    # every place where a group of digits ends, longest first
    for end in sorted((m.end() for m in re.finditer(r"\d(?!\d)", raw)), reverse=True):
        prefix = raw[:end]
        if _digits(prefix) < 7:
            break
        number = "+" + prefix[2:] if prefix.startswith("00") else prefix
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(number, None)):
                return end
        except phonenumbers.NumberParseException:
            pass
    return 0


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
        """Presidio's e-mail recognizer with CJK-aware edges (邮箱zhang.wei@163.com好的) and an offline TLD check."""

        def __init__(self):
            super().__init__(patterns=[Pattern("Email (CJK-aware)", _EMAIL_PATTERN, 0.5)])

        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld(pattern_text.rsplit("@", 1)[-1]).fqdn != ""

    class StrictIpRecognizer(IpRecognizer):
        def __init__(self):
            super().__init__(patterns=[Pattern(p.name, _ip_pattern(p.name, p.regex), p.score)
                                       for p in IpRecognizer.PATTERNS])

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
                    end = _possible_international(m.group())
                    if end:
                        found.add((m.start(), m.start() + end))
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


class _Span:
    """A match of one of our own recognizers, shaped like Presidio's ``RecognizerResult`` for :func:`_resolve`."""

    __slots__ = ("start", "end", "entity_type")

    def __init__(self, start: int, end: int, entity_type: str):
        self.start, self.end, self.entity_type = start, end, entity_type


@functools.lru_cache(maxsize=1)
def _btc_valid():
    """Presidio's Bitcoin checksum check (base58check, bech32/bech32m)."""
    from presidio_analyzer.predefined_recognizers import CryptoRecognizer

    return CryptoRecognizer().validate_result


def _cn_id_valid(number: str, text: str, start: int, end: int) -> bool:
    """A resident ID: a real province code and birth date, and the check character — or, when the
    check character is wrong, a number that stands alone or follows 身份证/证件/ID (a mistyped ID
    is still one)."""
    from datetime import date

    if number[:2] not in _CN_PROVINCES:
        return False
    birth = number[6:14] if len(number) == 18 else "19" + number[6:12]
    try:
        born = date(int(birth[:4]), int(birth[4:6]), int(birth[6:]))
    except ValueError:
        return False
    if not date(1880, 1, 1) <= born <= date.today():
        return False
    if len(number) == 18:
        total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS))
        if "10X98765432"[total % 11] == number[17].upper():
            return True
    alone = not text[:start].strip() and not text[end:].strip()
    return alone or bool(_ID_KEYWORD.search(text[max(0, start - 12):start]))


def _cn_address_valid(m: re.Match) -> bool:
    """At least two parts (units that are not ordinary words such as 超市 or 小区, a road, house
    numbers): a city or district alone is no address, and neither is a city and whatever follows
    it (上海市区好堵). A closing place name (三里屯) only extends an address."""
    if m.group("road2") is not None:
        return True
    units = [u for u in _CN_ADMIN_SPLIT.findall(m.group("admin")) if u not in _CN_NOT_PLACES]
    return bool(units) and len(units) + bool(m.group("road")) + bool(m.group("num")) >= 2


def _en_address_valid(m: re.Match) -> bool:
    """The street name is no stop word or unit ("5 more minutes road", "at 3 the close")."""
    words = (m.group("name") or m.group("lname") or "").split()
    return bool(words) and not any(w.lower().strip(".,") in STOP_WORDS or w.lower() in _STREET_NOT_NAMES
                                   for w in words)


def _own_spans(text: str, cjk: bool = True) -> list[_Span]:
    """What our own recognizers find in ``text`` (see the module doc); cheap tests first.
    ``cjk``: whether the text has CJK characters (the recognizers of Chinese words need them)."""
    out: list[_Span] = []

    def add(pattern: re.Pattern, entity: str, valid=None, group: int | str = 0) -> None:
        for m in pattern.finditer(text):
            if valid is None or valid(m):
                g = group if group != "lastgroup" else ("addr" if m.group("addr") is not None else "laddr")
                out.append(_Span(m.start(g), m.end(g), entity))

    if _DIGIT.search(text):
        add(_CN_MOBILE, "CN_PHONE", lambda m: not _in_decimal(text, m.start(), m.end()))
        add(_CN_LANDLINE, "CN_PHONE")
        add(_CN_ID, "CN_ID", lambda m: _cn_id_valid(m.group(), text, m.start(), m.end()))
        add(_CN_ID15, "CN_ID", lambda m: _cn_id_valid(m.group(), text, m.start(), m.end()))
        if "-" in text or " " in text:
            add(_US_SSN, "US_SSN")
        add(_UK_NINO, "UK_NINO")
        add(_BTC, "CRYPTO", lambda m: _btc_valid()(m.group()))
        if "0x" in text:
            add(_ETH, "CRYPTO")
        add(_QQ, "QQ_NUMBER", group=1)
        add(_CARD_CONTEXT, "CREDIT_CARD", group=1)
        add(_EN_ADDRESS, "ADDRESS", _en_address_valid, group="lastgroup")
        add(_UK_POSTCODE_ALONE, "ADDRESS")
        add(_AGE, "AGE")
    elif cjk and "岁" in text:
        add(_AGE, "AGE")
    if cjk and _EXTRA_HINT.search(text):
        add(_CN_ADDRESS, "ADDRESS", _cn_address_valid)
    if "wxid" in text:
        add(_WXID, "WECHAT_ID")
    if cjk or _LATIN_WECHAT.search(text):
        add(_WECHAT_ID, "WECHAT_ID", _wechat_id_valid, group=2)
    return out


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


def _aliases(messages: pd.DataFrame, me: str) -> dict[str, str]:
    """``{name: sender}`` for the names an export gives its senders besides the sender column:
    the readers' ``attrs["aliases"]``, and one-to-one chat titles (a chat with one sender besides
    ``me``, or only one sender) for that sender."""
    out = {str(k): str(v) for k, v in (messages.attrs.get("aliases") or {}).items() if str(k).strip()}
    texts = messages[messages["sender"].astype(str).str.strip() != ""]
    for chat, senders in texts.groupby(texts["chat"].astype(str))["sender"]:
        others = [s for s in pd.unique(senders.astype(str)) if s != me]
        if len(others) == 1 and chat.strip() and chat != others[0]:
            out.setdefault(chat, others[0])
    return out


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
        self._regex: tuple[re.Pattern, re.Pattern] | None = None
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
        first appearance; ``me`` is checked (or inferred) with :func:`twinlib.people.infer_me`.

        Two more sources of names come from the export itself: the names a reader found for a
        sender (``messages.attrs["aliases"]``, ``{name: sender}``: the display name WeFlow writes
        beside a WeChat ID, your own nickname beside "Me"), and the title of a one-to-one chat,
        which names the other person (WeChat CSVs call a contact by their WeChat ID but title the
        chat with their name). Both get that sender's token."""
        from twinlib.people import infer_me

        me = infer_me(messages, me)
        senders = [s for s in pd.unique(messages["sender"].astype(str)) if s.strip()]
        anon = cls(me, senders, **kwargs)
        for alias, person in _aliases(messages, me).items():
            token = anon._people.get(anon._fold(person))
            if token and anon._fold(alias) not in anon._people:
                anon._add_alias(alias, token)
        return anon

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

    def _name_regex(self) -> tuple[re.Pattern, re.Pattern]:
        """One regex for every name: placeholders (kept), names with CJK characters as plain
        substrings (Chinese has no spaces to mark where a name starts), the others as words —
        words whose edges are any character but a non-CJK word character, so ``跟Tom说`` finds Tom."""
        if self._regex is None:
            folded = {**self._parts, **self._full}
            exact = {k: v for k, v in self._exact.items() if self._key(k) not in folded}
            self._lookup, self._lookup_exact = folded, exact
            cjk = [k for k in folded if _HAS_CJK.search(k)]
            words = [k for k in folded if not _HAS_CJK.search(k)]

            def compile_(edge: str) -> re.Pattern:
                alternatives = [f"(?P<keep>{_PLACEHOLDER})"]
                if cjk:
                    alternatives.append("(?P<cjk>" + _trie_regex(cjk) + ")")
                if words:
                    alternatives.append(f"(?<!{edge})(?P<ci>" + _trie_regex(words) + f")(?!{edge})")
                if exact:
                    alternatives.append(f"(?<!{edge})(?-i:(?P<cs>" + _trie_regex(exact) + f"))(?!{edge})")
                return re.compile("|".join(alternatives), re.IGNORECASE)

            # text without CJK characters gets the plain \w edges: the same matches, found faster
            self._regex = (compile_(_W), compile_(r"\w"))
        return self._regex

    def _replace(self, text: str, probe: str, entities: list[str], counts: Counter,
                 own: list[_Span] = ()) -> tuple[str, str]:
        """Replace what the recognizers for ``entities`` (and ``own`` spans) find; ``probe`` is
        ``text`` with full-width ASCII made ASCII (same length), where the recognizers look.
        Returns both with the same placeholders in the same places; counts go to ``counts``."""
        results = list(own)
        if entities:
            results += _analyzer(self.phone_regions).analyze(probe, entities=entities, language="en")
        pieces, probe_pieces, last = [], [], 0
        for start, end, kind in _resolve(results):
            pieces += [text[last:start], f"<{kind}>"]
            probe_pieces += [probe[last:start], f"<{kind}>"]
            counts[kind] += 1
            last = end
        return "".join(pieces) + text[last:], "".join(probe_pieces) + probe[last:]

    def _scrub(self, text: str) -> tuple[str, Counter]:
        """Anonymize one text; return it and the placeholder counts."""
        counts: Counter = Counter()
        cjk = _HAS_CJK.search(text) is not None
        if _HINT.search(text) or (cjk and _EXTRA_HINT.search(text)):
            probe = text.translate(_FULLWIDTH) if cjk and _FULLWIDTH_HINT.search(text) else text
            entities = _entities_for(probe)
            others = [e for e in entities if e != "PHONE_NUMBER"]
            own = _own_spans(probe, cjk)
            if others or own:
                text, probe = self._replace(text, probe, others, counts, own)
            # phone numbers last, in what is left: the digits of a card, an IBAN or an IP are no phone
            if "PHONE_NUMBER" in entities and _longest_digit_run(probe) >= 7:
                text, probe = self._replace(text, probe, ["PHONE_NUMBER"], counts)
            if _LONE_NUMBER.fullmatch(probe) and _digits(probe) >= 9:
                # a message that is nothing but a long number: an account, card, ID or order number
                digits = re.sub(r"\D", "", probe)
                kind = "CARD" if 13 <= len(digits) <= 19 and digits[0] in "3456" else "NUMBER"
                counts[kind] += 1
                text = f"<{kind}>"

        def name(m: re.Match) -> str:
            if m.group("keep"):
                return m.group()
            if m.lastgroup == "cs":
                token = self._lookup_exact[m.group()]
            else:
                token = self._token_for(m.group())
            counts["ME" if token == ME else "PERSON"] += 1
            return token

        cjk_edges, plain_edges = self._name_regex()
        return (cjk_edges if cjk else plain_edges).sub(name, text), counts

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


# A "me" that matches no text, for texts scrubbed without knowing the person's name.
_NOBODY = "-"


@functools.lru_cache(maxsize=16)
def _text_anonymizer(me: str, names: tuple[str, ...]) -> Anonymizer:
    anon = Anonymizer(me, names)
    anon._name_regex()  # compiled once here, not by the first caller of scrub_text
    return anon


def scrub_text(text: str, me: str | None = None, names: Iterable[str] = ()) -> str:
    """One text with personal data and the given names replaced, without a message table.

    The pattern recognizers always run (phones, e-mails, URLs, IBANs, cards, IPs, coordinates, IDs,
    addresses...), as in :meth:`Anonymizer.anonymize`; ``me`` (if given) becomes ``<ME>`` and
    ``names`` become ``<PERSON_1>``, ``<PERSON_2>``, … in their order. Only those names are known:
    anyone else's name stays as written. For a live chat, where there is no export to take
    participants from::

        >>> scrub_text("Robin here, call me on +44 7700 900123", me="Robin Vale")
        '<ME> here, call me on <PHONE>'
    """
    me = str(me).strip() if me is not None else ""
    names = tuple(n for n in (str(x).strip() for x in names) if n)
    return _text_anonymizer(me or _NOBODY, names)._scrub(str(text))[0]
