"""Readers of Chinese chat exports: WeChatMsg (留痕) CSV, WeFlow's WeClone CSV and JSON, ChatLab
JSON/JSONL, QQ's own .txt export, and qq-chat-exporter's TXT and JSON; GBK detection.

The fixtures in tests/fixtures/zh/ are written by hand in each tool's exact layout (the layouts
are the ones the tools' own code writes: see docs/formats.md), with made-up people."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from twinlib.data import ExportError, detect_format, find_exports, read_export, read_exports
from twinlib.privacy import Anonymizer

ZH = Path(__file__).parent / "fixtures" / "zh"
CHINA = timezone(timedelta(hours=8))


def local(stamp: str) -> pd.Timestamp:
    """A China-time clock reading as this machine's local time (what epoch-based readers give)."""
    instant = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    return pd.Timestamp(instant.astimezone().replace(tzinfo=None))


def table(df) -> list[tuple]:
    return [(r.sender, r.text, r.kind) for r in df.itertuples()]


def check_normal(df: pd.DataFrame) -> None:
    assert list(df.columns) == ["chat", "timestamp", "sender", "text", "kind"]
    assert df["timestamp"].is_monotonic_increasing


# ------------------------------------------------------------------------------ WeChatMsg (留痕) CSV

GROUP_CSV = ZH / "wechatmsg" / "羽毛球小分队" / "羽毛球小分队_utf8.csv"
PRIVATE_CSV = ZH / "wechatmsg" / "陈思远" / "陈思远_utf8.csv"


def test_wechatmsg_group_chat():
    df = read_export(GROUP_CSV)
    check_normal(df)
    assert df.attrs["format"] == "wechatmsg-csv"
    assert set(df["chat"]) == {"羽毛球小分队"}
    assert table(df) == [
        ("", '"刘洋"邀请你加入了群聊', "system"),
        ("刘洋", "周六上午打球，谁来？", "text"),      # the remark wins over the nickname
        ("Me", "我来我来~", "text"),
        ("王芳Fang", "", "media"),
        ("王芳Fang", "场地订好了\n三号馆", "text"),  # line breaks kept
        ("Me", "", "sticker"),
        ("刘洋", "", "other"),                       # a quote reply whose text WeChatMsg did not keep
        ("", '"王芳Fang" 撤回了一条消息', "deleted"),
        ("Me", "", "media"),                         # a file
        ("刘洋", "", "call"),
        ("Me", "哈哈哈好呀[旺柴]", "text"),
    ]
    assert df["timestamp"].iloc[1] == pd.Timestamp("2024-03-02 10:00:05")  # StrTime, as written
    # your own nickname and a member's other name are names for the anonymizer
    assert df.attrs["aliases"] == {"小雨点": "Me", "洋洋羽毛球": "刘洋"}


def test_wechatmsg_one_to_one_chat_has_nine_columns_a_row():
    df = read_export(PRIVATE_CSV)
    check_normal(df)
    assert set(df["chat"]) == {"陈思远"}  # from 陈思远_utf8.csv
    assert set(df["sender"]) == {"陈思远", "Me"}
    assert list(df["kind"]) == ["text", "text", "media", "text", "text", "deleted", "text", "text"]
    assert df.loc[5, "text"] == "你撤回了一条消息"  # the link markup is gone
    assert list(df["text"][6:]) == ["晚安", "晚安啦~"]


def test_wechatmsg_without_its_columns_names_the_fix(tmp_path):
    bad = tmp_path / "x_utf8.csv"
    bad.write_text("localId,TalkerId,Type,IsSender,StrContent\n1,2,1,0,hi\n", encoding="utf-8")
    with pytest.raises(ExportError, match="CreateTime") as err:
        read_export(bad, format="wechatmsg-csv")
    assert "WeChatMsg" in str(err.value) and err.value.line == 1


# ------------------------------------------------------------------------------ WeFlow

WEFLOW_CSV = ZH / "weflow" / "私聊_陈思远.csv"
WEFLOW_JSON = ZH / "weflow" / "周一鸣.json"


def test_weflow_weclone_csv():
    """No room_name column, English type names, display names as talker, UTC ISO times."""
    df = read_export(WEFLOW_CSV)
    check_normal(df)
    assert df.attrs["format"] == "wechat-csv"
    assert set(df["chat"]) == {"陈思远"}  # 私聊_ dropped from the file name
    assert table(df) == [
        ("陈思远", "周末去爬山吗？", "text"), ("Me", "去呀！几点？", "text"), ("陈思远", "", "media"),
        ("陈思远", "七点半，西门见", "text"), ("Me", "", "sticker"), ("Me", "好哒，小满准时到", "text"),
        ("陈思远", "", "media"), ("Me", "", "media"),
    ]
    assert df["timestamp"].iloc[0] == local("2024-03-09 08:30:00")  # an instant, in this machine's time
    assert df.attrs["aliases"] == {"林小满": "Me"}


def test_weflow_json():
    df = read_export(WEFLOW_JSON)
    check_normal(df)
    assert df.attrs["format"] == "weflow-json"
    assert set(df["chat"]) == {"周一鸣"}
    assert table(df) == [
        ("", "你已添加了周一鸣，现在可以开始聊天了。", "system"), ("周一鸣", "你好呀，我是一鸣", "text"),
        ("Me", "你好你好~", "text"), ("周一鸣", "", "media"), ("Me", "", "sticker"),
        ("Me", "哈哈哈哈好", "text"), ("周一鸣", "", "other"), ("", '"周一鸣" 撤回了一条消息', "deleted"),
    ]
    assert df["timestamp"].iloc[1] == pd.Timestamp("2024-04-01 12:01:00")  # formattedTime, as written
    assert df.attrs["aliases"] == {"林小满": "Me"}


# ------------------------------------------------------------------------------ ChatLab

def test_chatlab_json_with_an_owner():
    df = read_export(ZH / "chatlab" / "赵晴.json")
    check_normal(df)
    assert df.attrs["format"] == "chatlab"
    assert table(df) == [
        ("赵晴", "下班了吗", "text"), ("Me", "刚下班！累瘫", "text"), ("赵晴", "", "media"),
        ("赵晴", "今晚吃这个？", "text"), ("Me", "", "sticker"), ("Me", "好耶[旺柴]", "text"),
        ("赵晴", "", "call"), ("赵晴", "赵晴撤回了一条消息", "deleted"),
    ]
    assert df["timestamp"].iloc[0] == local("2024-04-10 19:00:00")
    assert df.attrs["aliases"] == {"林小满": "Me"}


def test_chatlab_jsonl_group_without_an_owner():
    df = read_export(ZH / "chatlab" / "读书会.jsonl")
    check_normal(df)
    assert df.attrs["format"] == "chatlab"
    assert set(df["chat"]) == {"读书会"}
    assert table(df) == [
        ("孙老师", "这周读到第几章了？", "text"), ("Moon", "第五章\n刚看完", "text"), ("", "Moon 修改了群名称", "system"),
        ("Moon", "", "media"), ("孙老师", "好的，周日聊", "text"),
    ]
    assert df.attrs["aliases"] == {"书虫": "孙老师"}


def test_chatlab_jsonl_bad_line_names_the_line(tmp_path):
    bad = tmp_path / "x.jsonl"
    lines = (ZH / "chatlab" / "读书会.jsonl").read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4][:30]
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ExportError) as err:
        read_export(bad)
    assert err.value.line == 5 and "JSON" in err.value.problem


# ------------------------------------------------------------------------------ QQ

def test_qq_classic_txt_with_two_chats():
    df = read_export(ZH / "qq" / "全部消息记录.txt")
    check_normal(df)
    assert df.attrs["format"] == "qq-txt"
    assert list(df["chat"]) == ["周末骑行群"] * 6 + ["阿杰"] * 3
    assert table(df) == [
        ("骑行老张", "明天早上七点集合", "text"),     # title 【群主】 and QQ number dropped
        ("小满", "收到！\n我带水", "text"), ("阿杰", "", "media"), ("", "阿杰 撤回了一条消息", "deleted"),
        ("阿杰", "", "sticker"), ("小满", "路线在这", "text"),  # [图片] taken out of a text
        ("阿杰", "到家没", "text"), ("小满", "到啦，累死了哈哈哈", "text"), ("阿杰", "早点睡", "text"),
    ]
    assert df["timestamp"].iloc[0] == pd.Timestamp("2015-06-06 08:05:12")
    assert df["timestamp"].iloc[6] == pd.Timestamp("2015-06-07 21:43:38")  # 9:43:38 PM


def test_qq_chat_exporter_txt():
    df = read_export(ZH / "qq" / "考研互助小组.txt")
    check_normal(df)
    assert df.attrs["format"] == "qq-txt"
    assert set(df["chat"]) == {"考研互助小组"}
    assert table(df) == [
        ("林同学", "今晚谁还在图书馆？", "text"),       # the group title [学委] dropped
        ("小满", "我在三楼 [微笑]", "text"),            # [[微笑]] -> [微笑]
        ("小满", "", "media"),
        ("老周", "我马上到\n带了咖啡", "text"),          # the quoted line and the 回复: note dropped
        ("老周", "", "media"), ("", "", "system"),
    ]


def test_qq_chat_exporter_json():
    df = read_export(ZH / "qq" / "自驾小队.json")
    check_normal(df)
    assert df.attrs["format"] == "qq-json"
    assert table(df) == [
        ("老周", "明天几点出发？", "text"), ("小满", "八点吧[呲牙]", "text"), ("老周", "", "sticker"),
        ("老周", "", "media"), ("小满", "那就八点半", "text"), ("老周", "", "deleted"),
        ("", "老周 修改了群名称", "system"),
    ]
    assert df["timestamp"].iloc[0] == pd.Timestamp("2024-05-03 19:00:00")
    assert df.attrs["aliases"] == {"Zhou": "老周"}


# ------------------------------------------------------------------------------ encodings, folders

@pytest.mark.parametrize("fixture", [GROUP_CSV, PRIVATE_CSV, WEFLOW_CSV, ZH / "qq" / "全部消息记录.txt"])
def test_gbk_copies_are_detected_and_read_the_same(fixture, tmp_path):
    """Older Chinese Windows tools (and Excel) save GBK: the same messages come out."""
    gbk = tmp_path / fixture.name
    gbk.write_bytes(fixture.read_text(encoding="utf-8-sig").encode("gbk"))
    want, got = read_export(fixture), read_export(gbk)
    assert detect_format(gbk) == detect_format(fixture)
    pd.testing.assert_frame_equal(got, want)


def test_a_latin1_file_is_not_taken_for_gbk(tmp_path):
    bad = tmp_path / "x_utf8.csv"
    bad.write_bytes("localId,TalkerId,Type,SubType,IsSender,CreateTime,Status,StrContent,StrTime\n"
                    "1,2,1,0,0,1709344805,2,Café crème à emporter,2024-03-02 10:00:05\n".encode("latin-1"))
    with pytest.raises(ExportError, match="not UTF-8 or GBK"):
        read_export(bad, format="wechatmsg-csv")


def test_the_whole_fixture_folder_is_found_and_read():
    files = find_exports([ZH])
    assert {f.suffix for f in files} == {".csv", ".json", ".jsonl", ".txt"} and len(files) == 9
    df = read_exports(files)
    check_normal(df.drop(columns="source"))
    assert len(df) == 70 and df["source"].nunique() == 9
    # the readers' other names of a sender travel with the table to the anonymizer
    assert df.attrs["aliases"]["小雨点"] == "Me" and df.attrs["aliases"]["林小满"] == "Me"


def test_readers_aliases_reach_the_anonymizer():
    messages = read_exports([WEFLOW_CSV])
    anon = Anonymizer.from_messages(messages, me="Me")
    out = anon.anonymize(messages)
    assert "<ME>准时到" in " ".join(out["text"])        # 小满 (林小满's given name) in a message
    assert "陈思远" not in " ".join(out["sender"]) + " ".join(out["chat"])


def test_weclone_pywxdump_sample_still_reads(real_exports):
    path = real_exports / "wechat" / "weclone_test_person_0_730.csv"
    df = read_export(path)
    check_normal(df)
    assert df.attrs["format"] == "wechat-csv" and len(df) > 50
    assert "aliases" not in df.attrs  # PyWxDump's talker on your rows is the contact: no alias of "Me"
