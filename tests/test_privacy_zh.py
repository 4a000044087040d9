"""Anonymization of text without word boundaries (Chinese), and the identifiers added with it:
resident IDs, SSN and NI numbers, wallets, WeChat IDs, QQ numbers, street addresses, ages."""

import csv

import pandas as pd
import pytest

from twinlib import privacy
from twinlib.data import read_export
from twinlib.privacy import Anonymizer


def frame(rows):
    """rows: (chat, sender, text)."""
    return pd.DataFrame([dict(chat=chat, timestamp=pd.Timestamp("2024-05-01 10:00") + pd.Timedelta(minutes=i),
                              sender=sender, text=text, kind="text") for i, (chat, sender, text) in enumerate(rows)])


def scrub(texts, me="Me", names=()):
    anon = Anonymizer(me, list(names))
    return list(anon.anonymize(frame([("c", me, t) for t in texts]))["text"]), anon


# ----------------------------------------------------------------------- WeClone's labelled PII file

WECLONE_PII = "wechat/weclone_test_PII_labeled_0_730.csv"
# the labels of the file's `talker` column that mark personal data (one more row, "666" -> "404", is none)
PII_LABELS = {"PHONE_NUMBER", "EMAIL_ADDRESS", "CREDIT_CARD", "IP_ADDRESS", "LOCATION", "IBAN_CODE", "CRYPTO",
              "AGE", "ID", "US_SSN"}


def _labelled(real_exports):
    path = real_exports / WECLONE_PII
    if not path.exists():
        pytest.skip(f"{path} is not there (WeClone's labelled PII test file, see SOURCES.md)")
    with open(path, encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["talker"] in PII_LABELS and r["is_sender"] == "0"]
    return path, rows


def _survives(value: str, anonymized: str, around: str = "") -> bool:
    """The value, or any 4-character piece of it, is still in the anonymized text (placeholders
    aside, and pieces that the words ``around`` it hold: "mail" of "gmail" in "my email:")."""
    rest = privacy.re.sub(r"<[A-Z_]+(?:_\d+)?>", "\0", anonymized)
    pieces = {value[i:i + 4] for i in range(max(1, len(value) - 3))}
    return any(p in rest and p not in around for p in pieces)


def test_weclone_labelled_pii_none_survives(real_exports):
    """All 30 labelled values of WeClone's PII test file, read by our WeChat reader, are replaced whole."""
    path, rows = _labelled(real_exports)
    assert len(rows) == 30
    messages = read_export(path)
    out = Anonymizer.from_messages(messages, me="Me").anonymize(messages)
    after = dict(zip(messages["text"], out["text"]))
    survivors = [(r["talker"], r["msg"], after[r["msg"]]) for r in rows if _survives(r["msg"], after[r["msg"]])]
    assert survivors == []
    assert all(privacy.re.fullmatch(r"<[A-Z_]+>", after[r["msg"]]) for r in rows)
    assert after["404"] == "404"  # the one row that is no personal data stays


@pytest.mark.parametrize("template", ["我的{label}{value}，记一下哈", "好的，{label}是{value}", "my {en}: {value}, thanks"])
def test_weclone_values_inside_sentences(real_exports, template):
    """The same 30 values glued into Chinese sentences (no spaces) and inside English ones."""
    _, rows = _labelled(real_exports)
    zh = {"PHONE_NUMBER": "电话", "EMAIL_ADDRESS": "邮箱", "CREDIT_CARD": "卡号", "IP_ADDRESS": "IP",
          "LOCATION": "地址", "IBAN_CODE": "账户", "CRYPTO": "钱包", "AGE": "年龄", "ID": "证件号", "US_SSN": "SSN"}
    en = {"PHONE_NUMBER": "phone", "EMAIL_ADDRESS": "email", "CREDIT_CARD": "card number", "IP_ADDRESS": "ip",
          "LOCATION": "address", "IBAN_CODE": "iban", "CRYPTO": "wallet", "AGE": "age", "ID": "id", "US_SSN": "ssn"}
    texts = [template.format(label=zh[r["talker"]], en=en[r["talker"]], value=r["msg"]) for r in rows]
    around = [template.format(label=zh[r["talker"]], en=en[r["talker"]], value="") for r in rows]
    out, _ = scrub(texts)
    leaks = [o for r, o, a in zip(rows, out, around) if _survives(r["msg"], o, a)]
    assert leaks == []


# ----------------------------------------------------------------------- glued to Chinese text

@pytest.mark.parametrize("text, expected", [
    ("电话13812345678好的", "电话<PHONE>好的"),
    ("我手机是138 1234 5678，你存一下", "我手机是<PHONE>，你存一下"),
    ("打我+86 139-0000-1234", "打我<PHONE>"),
    ("座机021-62345678或者（010）65550123", "座机<PHONE>或者<PHONE>"),
    ("电话１３９０００１２３４５", "电话<PHONE>"),  # full-width digits from a Chinese input method
    ("身份证号11010519491231002X收到吗", "身份证号<ID>收到吗"),
    ("老身份证是110105491231002也行", "老身份证是<ID>也行"),
    ("卡号6200 0000 0000 0005，别告诉别人", "卡号<CARD>，别告诉别人"),
    ("邮箱zhang.wei@163.com好的", "邮箱<EMAIL>好的"),
    ("链接https://example.org/zh/abc?x=1看一下", "链接<URL>看一下"),
    ("加我微信wxid_abc123xyz哦", "加我微信<WECHAT_ID>哦"),
    ("我微信号是linxy_2024，加我", "我微信号是<WECHAT_ID>，加我"),
    ("加我vx linxy2024呀", "加我vx <WECHAT_ID>呀"),
    ("微信号：linxiaoyu", "微信号：<WECHAT_ID>"),
    ("my WeChat ID is lin_xy88", "my WeChat ID is <WECHAT_ID>"),
    ("我QQ是800012345", "我QQ是<QQ>"),
    ("扣扣：123456", "扣扣：<QQ>"),
    ("转我0x52908400098527886E0F7030069857D2E4169EE7就行", "转我<CRYPTO>就行"),
    ("我住在北京市东城区示例路12号3单元501室，来玩", "我住在<ADDRESS>，来玩"),
    ("寄到广东省深圳市南山区示例大道88号", "寄到<ADDRESS>"),
    ("就在示例路12号门口", "就在<ADDRESS>门口"),
    ("我今年28岁了", "我今年<AGE>了"),
    ("她二十五岁", "她<AGE>"),
    ("IP是192.168.1.100吧", "IP是<IP>吧"),
    ("坐标39.9042,116.4074这里", "坐标<COORDS>这里"),
    ("IBAN是GB33BUKB20201555555555谢谢", "IBAN是<IBAN>谢谢"),
])
def test_identifiers_glued_to_chinese_text(text, expected):
    out, anon = scrub([text])
    assert out == [expected]
    kinds = [k for k in privacy.PLACEHOLDERS if f"<{k}>" in expected]
    assert {k: v for k, v in anon.summary["replaced"].items() if v} == {k: expected.count(f"<{k}>") for k in kinds}


@pytest.mark.parametrize("text", [
    "我去超市买菜", "我知道路怎么走", "上海市区好堵", "我在北京市", "岁月静好", "三点见，老地方", "2024年5月1日见",
    "第3号选手加油", "订单在路上了", "我们小区门口", "哈哈哈哈[旺柴]", "晚安啦~", "这条路好长", "版本2.3.1了",
    "一共38块5", "明天下午3点", "万岁万岁", "他几岁了", "号码不对", "我QQ坏了", "微信上说",
])
def test_ordinary_chinese_text_is_untouched(text):
    out, anon = scrub([text])
    assert out == [text]
    assert sum(anon.summary["replaced"].values()) == 0


# ----------------------------------------------------------------------- names without spaces

def test_chinese_names_inside_sentences():
    out, _ = scrub(["帮我跟刘洋说一声", "晓雨，周末有空吗", "林晓雨你好呀", "娜娜和洋洋去吗", "叫欧阳娜娜一起",
                    "跟Ben说一下", "Ben说好的"], names=["刘洋", "林晓雨", "欧阳娜娜", "Ben Okafor"])
    assert out == ["帮我跟<PERSON_1>说一声", "<PERSON_2>，周末有空吗", "<PERSON_2>你好呀", "<PERSON_3>和洋洋去吗",
                   "叫<PERSON_3>一起", "跟<PERSON_4>说一下", "<PERSON_4>说好的"]


def test_a_two_character_name_gives_no_one_character_name():
    out, _ = scrub(["洋洋得意", "刘洋来了"], names=["刘洋"])
    assert out == ["洋洋得意", "<PERSON_1>来了"]


def test_one_to_one_chat_titles_and_reader_aliases_name_their_sender():
    """A WeChat CSV calls a contact by their WeChat ID and titles the chat with their name; WeFlow
    writes your display name next to "Me". Both names are replaced with that sender's token."""
    messages = frame([
        ("刘洋", "wxid_liuyang01", "在吗"),
        ("刘洋", "Me", "在的，怎么了"),
        ("王芳", "wxid_wangfang9", "帮我跟刘洋说一声，晓雨也来"),
        ("王芳", "Me", "好哒，林晓雨收到"),
        ("羽毛球群", "wxid_liuyang01", "周六打球"),
        ("羽毛球群", "wxid_wangfang9", "好"),
        ("羽毛球群", "Me", "+1"),
    ])
    messages.attrs["aliases"] = {"林晓雨": "Me"}
    anon = Anonymizer.from_messages(messages, me="Me")
    out = anon.anonymize(messages)
    liu, wang = out["sender"][0], out["sender"][2]
    assert out["text"][2] == f"帮我跟{liu}说一声，<ME>也来"
    assert out["text"][3] == "好哒，<ME>收到"
    assert wang != liu and "羽毛球群" not in anon._lookup  # a group's title names nobody


# ----------------------------------------------------------------------- new kinds in English text

@pytest.mark.parametrize("text, expected", [
    ("my ssn is 078-05-1120 ok", "my ssn is <ID> ok"),
    ("NI number AB 12 34 56 C", "NI number <ID>"),
    ("send it to 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa please", "send it to <CRYPTO> please"),
    ("bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh is mine", "<CRYPTO> is mine"),
    ("we live at 221B Baker Street, London NW1 6XE now", "we live at <ADDRESS> now"),
    ("meet at 12 baker street tomorrow", "meet at <ADDRESS> tomorrow"),
    ("it's 1600 Pennsylvania Avenue NW, Washington, DC 20500", "it's <ADDRESS>"),
    ("postcode SW1A 2AA", "postcode <ADDRESS>"),
    ("he turns 32 years old", "he turns <AGE>"),
    ("a 2-year-old and a lady aged 40", "a <AGE> and a lady <AGE>"),
    ("4532123456789012", "<CARD>"),              # a long number sent on its own
    ("0012 3456 7890 12", "<NUMBER>"),
    ("card no. 4532 1234 5678 9012 thanks", "card no. <CARD> thanks"),
])
def test_new_kinds_in_english_text(text, expected):
    out, _ = scrub([text], me="Zed Quux")
    assert out == [expected]


@pytest.mark.parametrize("text", [
    "3 long road trips", "it's 5 more minutes walk", "at 3 the close was tight", "2 close friends", "top 10 street food",
    "we were 20 years younger", "version 1.2.3.4b", "not a card 4111 1111 1111 1112", "call at 10:30 on the 5th",
    "room 404", "123456", "score: 12-10", "my wechat is awesome", "微信 thanks",
])
def test_ordinary_english_text_stays(text):
    out, anon = scrub([text], me="Zed Quux")
    assert out == [text]
