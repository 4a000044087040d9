"""A synthetic Chinese-speaking persona's WeChat history, written as WeFlow's WeClone CSV export.

The Chinese counterpart of :mod:`twinlib.sample_data`: this module invents :data:`PERSONA_NAME`
(林晓雨), four one-to-one chats and a group (:data:`PARTNERS`) over about four months, and writes
them the way WeFlow's "WeClone CSV" export does (one file per chat, ``私聊_<name>.csv`` /
``群聊_<name>.csv``, UTF-8 with a BOM, CRLF, times in UTC)::

    id,MsgSvrID,type_name,is_sender,talker,msg,src,CreateTime
    1,6012345678901234567,text,0,陈思远,周六有空吗？,,2024-03-04T04:12:00.000Z
    2,6012345678901234568,text,1,林晓雨,有空呀~去哪,,2024-03-04T04:13:00.000Z

Your own messages are ``is_sender`` 1 with your display name as ``talker``: the reader calls you
``Me`` (``--me Me``) and hands the name to the anonymizer. The persona writes short messages with
a laugh (哈哈哈), WeChat emoji codes ([旺柴] [捂脸] [耶]), a sentence-final particle (呀 啦 哒), a
tilde, and never a full stop (:data:`PERSONA_MARKERS`; :func:`persona_style_score` measures them);
the others write full sentences with 。 and ？. Three context habits (:data:`HABITS_ZH`) tie a reply
to the message it answers. The texts carry made-up personal data for the anonymizer, glued to the
Chinese text around it as people type it (:data:`PLANTED`): a mobile number in the 139 0000 block,
a Beijing landline in the 010-6555 01xx block, the resident ID printed as the example in the
national standard GB 11643-1999 (11010519491231002X), a UnionPay test card number (6200 0000 0000
0005), ``@example.com`` addresses, ``example.org`` links, a WeChat ID, a QQ number, an address on
an invented road (示例路), an age, and the names of people from other chats inside sentences.

Everything comes from ``random.Random`` seeded by the seed and the chat title, from a fixed start
date: the same seed gives byte-identical files. ``python -m twinlib.sample_data_zh --out data/sample-zh``
writes them.
"""

from __future__ import annotations

import csv
import io
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

from twinlib.sample_data import _last_line, plan_conversations, sample_cli, write_chats
from twinlib.style import ends_with_particle, ends_with_punct, find_emoji, has_laugh, has_tilde

PERSONA_NAME = "林晓雨"
PERSONA_GIVEN = "晓雨"
ME = "Me"  # what the WeChat readers call the exporting account

#: chat title -> the other members; one member: a one-to-one chat (私聊), more: a group (群聊)
PARTNERS: dict[str, tuple[str, ...]] = {
    "陈思远": ("陈思远",),
    "王芳": ("王芳",),
    "林晓峰": ("林晓峰",),
    "刘洋": ("刘洋",),
    "羽毛球小分队": ("刘洋", "赵晴", "孙浩"),
}

#: What makes the persona's messages recognisable (see :func:`persona_style_score`).
PERSONA_MARKERS: dict[str, object] = {
    "laughs": ("哈哈哈", "哈哈哈哈", "哈哈"),
    "codes": ("[旺柴]", "[捂脸]", "[耶]"),
    "phrases": ("冲鸭", "好哒", "稳了", "绝绝子", "可以可以"),
    "particles": "呀啦哒嘛",
    "no_full_stop": True,
    "max_chars": 18,
}

START = datetime(2024, 3, 4)
UTC_OFFSET = timedelta(hours=8)  # the persona lives in China (UTC+8, no daylight saving time)


def _opts(text: str) -> list[str]:
    """Split ``"a | b | c"`` into options; ``\\n`` inside an option is a line break."""
    return [o.strip().replace("\\n", "\n") for o in text.split(" | ")]


def _move(*intents: tuple[str, str]) -> list[tuple[list[str], list[str]]]:
    """One step of a topic: its intents, each ``(prompts, replies)``; a reply fits every prompt of its intent."""
    return [(_opts(p), _opts(r)) for p, r in intents]


# Slot fillers (places and films invented). Partner and persona templates share them, so a reply
# names the dish, place or time of the message it answers.
SLOTS: dict[str, list[str]] = {
    "day": ["周六", "周日", "周五晚上", "明天", "后天", "下周三", "这周末", "周六上午"],
    "time": ["七点", "八点", "八点半", "九点", "十点", "下午两点", "下午三点", "晚上六点", "晚上七点半"],
    "place": ["老街火锅", "青禾小馆", "半山咖啡", "云朵烘焙", "巷子面馆", "南门烤肉", "星野寿司", "拾光书店",
              "河畔茶室", "知味小厨"],
    "dish": ["火锅", "烤鱼", "麻辣烫", "小龙虾", "寿司", "牛肉面", "煲仔饭", "酸菜鱼", "烧烤", "螺蛳粉", "饺子", "炸鸡"],
    "film": ["《星河旅人》", "《夏日回声》", "《雾港》", "《第七盏灯》", "《纸飞机》", "《海边的信》", "《无声列车》"],
    "town": ["青岛", "大理", "厦门", "成都", "杭州", "西安", "桂林"],
    "project": ["季度报告", "新版海报", "客户提案", "年会方案", "品牌手册", "活动页面"],
    "meeting": ["周会", "评审会", "下午的站会", "客户电话会"],
    "item": ["充电宝", "雨伞", "羽毛球拍", "帐篷", "投影仪", "行李箱", "相机"],
    "gift": ["香薰", "围巾", "保温杯", "绿植", "耳机", "拼图"],
}

TOPICS: dict[str, dict[str, list]] = {
    "plans": {
        "moves": [
            _move(("{day}有空吗？ | {day}出来聚聚？ | 好久没见了，{day}有时间吗？",
                   "有空呀 | {day}可以 | 有空有空 | 好呀好呀 | 必须有空 | 冲鸭 | {day}我在的"),
                  ("{day}你有什么安排？ | {day}干嘛呢？",
                   "在家躺平 | 还没想好 | 可能去打球 | 暂时没安排 | 睡到自然醒")),
            _move(("去{place}怎么样？ | {place}吃{dish}？ | 我订{place}的位子吧。",
                   "{place}可以 | 好哒就{place} | {dish}冲鸭 | 我超爱{place} | 可以可以 | 订订订"),
                  ("你想吃什么？ | 吃点什么好呢？",
                   "{dish} | 想吃{dish} | {dish}吧 | 都行，听你的 | 随便但不要太辣")),
            _move(("要不要叫上{friend}？ | {friend}也想来，可以吗？",
                   "叫上叫上 | 当然可以 | 好呀人多热闹 | 好久没见{friend}了")),
            _move(("我可能要晚到十分钟。 | 堵车了，稍等我一下。 | 地铁坐过站了。",
                   "没事不急 | 慢慢来 | 我也还没到 | 我先占座 | 哈哈哈淡定")),
            _move(("今天好开心，下次再约！ | 谢谢你今天请客。 | 吃得好撑。",
                   "下次我请 | 我也超开心 | 撑死了 | 下次继续 | 好哒下次见")),
        ],
        "me_open": _opts("{day}有人约吗 | 想吃{dish}了 | 好无聊出来玩 | 周末干嘛呀"),
    },
    "food": {
        "moves": [
            _move(("{place}的{dish}听说很好吃。 | 新开了一家{place}，你去过吗？ | 有人说{place}的{dish}是全城最好吃的。",
                   "还没去过，想去 | {dish}我可以 | 去过！{dish}绝绝子 | 真的吗那必须去 | 等你带我去"),
                  ("我今晚做{dish}，来吃吗？ | 我做了好多{dish}，要不要来拿点？",
                   "来来来 | 几点 | 给我留一份 | 你是神仙吧 | 马上到")),
            _move(("你晚饭吃什么？ | 中午吃了吗？",
                   "{dish} | 还没吃 | 点了{dish}外卖 | 减肥不吃了哈哈哈"),
                  ("推荐一家好吃的店。 | 附近有什么好吃的？",
                   "{place}！ | {place}的{dish} | 我也想知道")),
            _move(("{place}今天排队排了一个小时。 | {dish}太辣了，我不行了。",
                   "哈哈哈心疼 | 值得吗 | 下次早点去 | 喝点酸奶")),
        ],
        "me_open": _opts("好饿 | 想吃{dish} | 发现一家宝藏店 | 今晚吃啥"),
    },
    "badminton": {
        "moves": [
            _move(("{day}打球吗？ | {day}约球，谁来？ | 场地订好了，{day}{time}。",
                   "来 | 我来我来 | 报名 | 冲鸭 | 稳了 | {time}可以"),
                  ("最近手感怎么样？ | 你的拍子修好了吗？",
                   "手感一般 | 修好了 | 还没，借我一个 | 超好")),
            _move(("谁带球？ | 我没球了，谁有？ | 要带几筒球？",
                   "我带 | 我有两筒 | 我买新的 | 包在我身上")),
            _move(("今天输得好惨。 | 我的胳膊要废了。 | 明天肯定腰疼。",
                   "哈哈哈同 | 下次赢回来 | 贴个膏药 | 多拉伸")),
        ],
        "me_open": _opts("{day}打球吗 | 想打球了 | 谁去打球"),
    },
    "work": {
        "moves": [
            _move(("晓雨，{project}看了吗？ | {project}今天能给我吗？ | 客户对{project}有新意见。",
                   "在看了 | 下午给你 | 马上 | 收到，我改一下 | 好哒"),
                  ("{meeting}你参加吗？ | 别忘了{meeting}。",
                   "参加 | 马上到 | 晚两分钟 | 今天去不了")),
            _move(("这个周五能交吗？ | 截止时间是周五，来得及吗？",
                   "来得及 | 有点紧但可以 | 周一更稳"),
                  ("能把{meeting}挪到明天吗？",
                   "可以呀 | 我都行 | 好的我改日历")),
            _move(("谢谢你帮忙，辛苦了。 | 这次做得很好，客户很满意。",
                   "应该的 | 开心 | 终于过了哈哈哈 | 大家一起的")),
        ],
        "me_open": _opts("{project}我发你了 | 问一下{project} | {meeting}几点来着"),
    },
    "shows": {
        "moves": [
            _move(("你看{film}了吗？ | {film}好看吗？ | 最近在看{film}。",
                   "还没，别剧透 | 看了！绝绝子 | 在看了 | 结局哭死我了"),
                  ("{day}一起去看{film}？",
                   "好呀 | 走起 | 冲鸭 | {day}可以")),
            _move(("你觉得结局怎么样？ | 里面那首歌是什么？",
                   "意难平 | 我也想知道 | 还行吧 | 结局太好哭了")),
        ],
        "me_open": _opts("刚看完{film} | 推荐个剧 | {film}好好看"),
    },
    "travel": {
        "moves": [
            _move(("我们五一去{town}吧？ | {town}好玩吗？ | 我订了去{town}的票。",
                   "去去去 | {town}超好玩 | 羡慕 | 带上我")),
            _move(("住哪里比较方便？ | 你帮我看看攻略。",
                   "住市中心 | 我发你 | 我也不知道哈哈哈")),
            _move(("我到{town}了，天气超好。 | 发你几张照片。",
                   "好美 | 羡慕哭了 | 玩得开心 | 多拍点")),
        ],
        "me_open": _opts("想去{town} | 好想旅游 | 五一去哪"),
    },
    "family": {
        "moves": [
            _move(("姐，周末回家吃饭吗？ | 姐，妈问你什么时候回来。 | 姐，我明天来找你。",
                   "回 | 周日回 | 这周忙 | 好呀来吧"),
                  ("姐，借我{item}用一下。 | 姐，你的{item}还在吗？",
                   "在柜子里 | 自己拿 | 用完还我 | 可以呀")),
            _move(("给爸买什么生日礼物好？ | 妈生日快到了，送什么？",
                   "{gift}吧 | 我来买 | 我们一人一半 | {gift}怎么样")),
        ],
        "me_open": _opts("最近还好吗 | 周末回家吗 | 记得给妈打电话"),
    },
    "checkin": {
        "moves": [
            _move(("最近怎么样？ | 在忙什么呢？ | 好久没聊天了。",
                   "还行 | 忙死了 | 老样子 | 挺好的呀 | 想你了")),
            _move(("今天好累啊。 | 加班到现在。 | 我感冒了。",
                   "抱抱 | 早点休息 | 多喝热水哈哈哈 | 心疼")),
        ],
        "me_open": _opts("在干嘛 | 好无聊 | 今天好累"),
    },
}

_ACKS = _opts("怎么啦？ | 在的。 | 说吧。 | 嗯？ | 我也是。")
_CLOSERS = _opts("好的，那就这么定了。 | 好，回头聊。 | 谢谢！ | 收到。 | 那先这样。")
_MY_CLOSERS = _opts("好哒 | 拜拜 | 回头聊 | [耶] | 冲鸭")
_MY_FOLLOW_UPS = _opts("哈哈哈 | [旺柴] | 好哒 | 等下 | 对了 | 哈哈哈哈 | [捂脸]")
_CHIMES = _opts("我也来。 | 算我一个。 | 这次去不了，下次吧。 | 我可能晚点到。 | 同意。")

# --------------------------------------------------------------------------- context habits
#
# Replies that depend on the message they answer in a fixed, checkable way, as the English
# persona's (twinlib.sample_data): a choice between two things, a proposed day, a good night. Each
# maps the message to its reply through a small closed set, never by copying an arbitrary string.
# They are kept few and in one wording each because the tiny profile's tokenizer, trained on this
# text, makes whole Chinese phrases single tokens ("周四可以吗", "猫还是狗"): every wording of every
# day or ordered pair is a symbol of its own that the model learns from its own examples. Measured
# after default SFT (validation and test messages, the most likely reply): with three wordings of
# the day question the day habit showed in 22 of 37 cases, with one wording in 38 or 39 of 39 (three
# seeds); with seven pairs the choice in 14, 41 and 27 of 44 (three seeds), with four pairs in 52 of
# 52 where training did not stall (bench/sft_zh_bench.py, README.zh-CN.md).

#: "A还是B？": the persona always makes the same choice within each pair, whichever comes first
#: in the question (the preferred option is the first of each pair).
PREFERENCES = (("火锅", "烤肉"), ("奶茶", "咖啡"), ("猫", "狗"), ("爬山", "看海"))
_CHOICE_ASKS = _opts("{a}还是{b}？ | 问你个事，{a}还是{b}？ | 快选：{a}还是{b}？ | 纠结死了，{a}还是{b}？")
_CHOICE_REPLY = "{pick}！必须的"
#: A day proposed for a plan (周一…周日, one form, one wording): the persona answers with that day.
DAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_DAY_ASK = "{day}可以吗？"
_DAY_REPLY = "{day}可以呀"
#: A good-night message: always the same sign-off.
GOOD_NIGHTS = _opts("晚安。 | 晚安！ | 睡了睡了，晚安。 | 早点睡，晚安。 | 困了，先睡了，晚安。")
_GOOD_NIGHT_REPLY = "晚安啦[月亮]"

_ITEMS = "|".join(x for pair in PREFERENCES for x in pair)
_CHOICE_RE = re.compile(f"(?:^|[，：:\\s])({_ITEMS})还是({_ITEMS})？$")
_PREFERRED = {frozenset(p): p[0] for p in PREFERENCES}
_DAY_RE = re.compile("^(" + "|".join(DAYS) + ")可以吗？$")
_ANY_DAY_RE = re.compile("|".join(DAYS))


def _choice(message: str) -> tuple[str, str] | None:
    """``(preferred, other)`` when ``message`` ends with one of the :data:`PREFERENCES` questions."""
    m = _CHOICE_RE.search(_last_line(message))
    if not m:
        return None
    pick = _PREFERRED.get(frozenset((m.group(1), m.group(2))))
    return (pick, m.group(2) if pick == m.group(1) else m.group(1)) if pick else None


def _choice_check(message: str, reply: str) -> bool:
    c = _choice(message)
    return bool(c) and c[0] in str(reply) and c[1] not in str(reply)


def _day(message: str) -> str | None:
    """The day a message proposes (one of :data:`DAYS`), when it ends with the persona's day question."""
    m = _DAY_RE.match(_last_line(message))
    return m.group(1) if m else None


def _day_check(message: str, reply: str) -> bool:
    """The reply names the proposed day and no other one."""
    day = _day(message)
    return bool(day) and set(_ANY_DAY_RE.findall(str(reply))) == {day}


def _habits() -> tuple:
    from twinlib.sample_data import Habit  # the lead's shared class: one measure for both personas

    return (
        Habit("either_or_zh", '"A还是B？" gets the same pick in either order: "火锅还是烤肉？" and "烤肉还是火锅？" -> '
              '"火锅！必须的" (see PREFERENCES)', lambda msg: _choice(msg) is not None, _choice_check),
        Habit("echo_day_zh", 'a proposed day is answered with that day: "周四可以吗？" -> "周四可以呀"',
              lambda msg: _day(msg) is not None, _day_check),
        Habit("good_night_zh", 'a good-night message gets the same sign-off: "晚安。" -> "晚安啦[月亮]"',
              lambda msg: _last_line(msg) in GOOD_NIGHTS, lambda msg, reply: "晚安啦" in str(reply)),
    )


#: The Chinese persona's context habits (:class:`twinlib.sample_data.Habit`), for
#: :func:`twinlib.sample_data.persona_habit_accuracy`.
HABITS_ZH = _habits()

# --------------------------------------------------------------------------- planted personal data

#: chat -> (speaker or None for the persona, message, the persona's or the partner's answers);
#: each kept in the chat's history twice. Every value here must leave the run directory unseen.
PII: dict[str, tuple[tuple[str | None, str, str], ...]] = {
    "陈思远": (("陈思远", "我换号了，新号码139 0000 1234，存一下。", "存了 | 好哒收到"),
              ("陈思远", "帮我跟刘洋说一声，明天不去打球了。", "好哒 | 收到"),
              (None, "我邮箱是xiaoyu.lin@example.com，照片发这里呀", "好的，晚上发你。"),
              ("陈思远", "机票帮我订一下，身份证号11010519491231002X。", "订好啦 | 好哒")),
    "王芳": (("王芳", "报销单发我邮箱wangfang@example.org，谢谢。", "发啦 | 好哒"),
            ("王芳", "有急事打我座机010-6555 0123。", "好的 | 收到"),
            ("王芳", "客户资料在这里：https://example.org/share/brand-kit?id=88", "收到 | 在看了")),
    "林晓峰": (("林晓峰", "姐，转我点钱呗，卡号6200 0000 0000 0005。", "转啦 | 又没钱了？哈哈哈"),
              (None, "快递寄到北京市东城区示例路12号3单元501室，我家", "好的，记下了。"),
              ("林晓峰", "姐你今年28岁了吧？", "哈哈哈别提了 | 是呀")),
    "刘洋": (("刘洋", "加我微信wxid_example2024，用这个号拉群。", "加啦 | 好哒"),
            ("刘洋", "我QQ号是800012345，有文件从这发。", "好的 | 收到")),
    "羽毛球小分队": (("赵晴", "报名链接：https://example.org/badminton/2024-spring", "报了 | 冲鸭"),
                   ("孙浩", "思远也来吗？晓雨你问问他。", "我问问 | 他说来")),
}

#: Every planted value as it appears in the export (what the run-directory scan looks for).
PLANTED = ("139 0000 1234", "xiaoyu.lin@example.com", "11010519491231002X", "wangfang@example.org",
           "010-6555 0123", "https://example.org/share/brand-kit?id=88", "6200 0000 0000 0005",
           "北京市东城区示例路12号3单元501室", "示例路", "28岁", "wxid_example2024", "800012345",
           "https://example.org/badminton/2024-spring")


@dataclass(frozen=True)
class _Plan:
    topics: dict[str, int]
    sessions: tuple[float, ...]           # weights for 0, 1, 2, ... conversations a day
    windows: tuple[tuple[int, int], ...]  # start windows, minutes after midnight
    weekdays_only: bool = False


_DAY = ((7 * 60 + 40, 8 * 60 + 40), (12 * 60, 12 * 60 + 50), (15 * 60, 15 * 60 + 40),
        (18 * 60, 19 * 60), (20 * 60 + 40, 22 * 60 + 40))
_WORK = ((9 * 60 + 10, 9 * 60 + 50), (11 * 60, 11 * 60 + 30), (14 * 60, 14 * 60 + 30), (16 * 60 + 30, 17 * 60 + 20))
_PLANS: dict[str, _Plan] = {
    "陈思远": _Plan({"plans": 3, "food": 3, "shows": 2, "travel": 2, "checkin": 2, "badminton": 1},
                  (0.1, 0.25, 0.3, 0.2, 0.1, 0.05), _DAY),
    "王芳": _Plan({"work": 8, "food": 1, "checkin": 1}, (0.05, 0.2, 0.35, 0.25, 0.15), _WORK, weekdays_only=True),
    "林晓峰": _Plan({"family": 5, "food": 2, "checkin": 2, "shows": 1}, (0.15, 0.3, 0.3, 0.15, 0.1), _DAY),
    "刘洋": _Plan({"badminton": 4, "plans": 2, "food": 2, "shows": 1, "checkin": 1}, (0.15, 0.3, 0.3, 0.15, 0.1), _DAY),
    "羽毛球小分队": _Plan({"badminton": 6, "plans": 2, "food": 1, "travel": 1}, (0.1, 0.3, 0.3, 0.2, 0.1), _DAY),
}
# How partners write: (chance of an extra sentence, extras, chance of an emoji code, the code)
_STYLE: dict[str, tuple[float, tuple[str, ...], float, str]] = {
    "陈思远": (0.3, tuple(_opts("最近真的好忙。 | 你决定就好。 | 想死你了。 | 对了，{friend}问你好。")), 0.05, "[呲牙]"),
    "王芳": (0.35, tuple(_opts("辛苦了。 | 有问题随时找我。 | 不着急，这周内就行。 | 我先去开会了。")), 0.15, "[微笑]"),
    "林晓峰": (0.2, tuple(_opts("妈让我问你的。 | 别告诉妈。 | 我请你喝奶茶。")), 0.05, "[捂脸]"),
    "刘洋": (0.2, tuple(_opts("记得带水。 | 别迟到。 | 我可能晚点。")), 0.1, "[强]"),
    "赵晴": (0.2, tuple(_opts("我开车，可以捎两个人。 | 别忘了带球拍。")), 0.05, "[微笑]"),
    "孙浩": (0.15, tuple(_opts("我最近在练反手。 | 今天状态不错。")), 0.0, ""),
}
_MIN_GAP = timedelta(minutes=90)


def _given(name: str) -> str:
    """What friends call someone: the given name of a three-character name, else the name."""
    return name[1:] if len(name) == 3 else name


class _Writer:
    """Builds one chat: rows of (China time, talker, type_name, msg, src)."""

    def __init__(self, rng: random.Random, title: str):
        self.rng = rng
        self.title = title
        self.members = PARTNERS[title]
        self.plan = _PLANS[title]
        self.rows: list[tuple[datetime, str, str, str, str]] = []
        self.now = START

    def _slots(self, speaker: str) -> dict[str, str]:
        rng = self.rng
        slots = {k: rng.choice(v) for k, v in SLOTS.items()}
        others = [_given(m) for ms in PARTNERS.values() for m in ms if m != speaker]
        slots["friend"] = rng.choice(sorted(set(others)))
        return slots

    def _mine(self, template: str, slots: dict[str, str]) -> str:
        """The persona's version of a reply: no full stop, short, with her markers."""
        rng = self.rng
        base = template.format_map(slots).rstrip("。.， ")
        text = base
        if not has_laugh(text):
            r = rng.random()
            if r < 0.22:
                text = rng.choice(["哈哈哈", "哈哈哈哈", "哈哈哈"]) + text
            elif r < 0.32:
                text = text + rng.choice(["哈哈哈", "哈哈"])
        if not ends_with_particle(text) and not text.endswith(("！", "?", "？")) and rng.random() < 0.3:
            text += rng.choice("呀啦哒")
        r = rng.random()
        if r < 0.2:
            text += "[旺柴]"
        elif r < 0.27:
            text += "[捂脸]"
        elif r < 0.32:
            text += "[耶]"
        elif r < 0.5 and not has_tilde(text):
            text += "~"
        if len(text) > PERSONA_MARKERS["max_chars"]:
            text = base
        return text

    def _theirs(self, speaker: str, template: str, slots: dict[str, str], first: bool) -> list[str]:
        rng = self.rng
        extra_p, extras, code_p, code = _STYLE[speaker]
        text = template.format_map(slots)
        if first and rng.random() < 0.2 and speaker != "林晓峰":
            text = rng.choice([f"{PERSONA_GIVEN}，", "在吗？", f"{PERSONA_GIVEN}！"]) + text
        out = [text]
        if rng.random() < extra_p:
            extra = rng.choice(extras).format_map(slots)
            if rng.random() < 0.3:
                out.append(extra)
            else:
                out[0] = text + extra
        if code and rng.random() < code_p:
            out[-1] += code
        return out

    def _add(self, talker: str, msg: str, gap: int, kind: str = "text") -> None:
        self.now += timedelta(minutes=gap)
        rng = self.rng
        if rng.random() < 0.03:  # a picture now and then
            self.rows.append((self.now, talker, "image", "", f"images/{self.now:%Y-%m}/{rng.getrandbits(64):016x}.jpg"))
        self.rows.append((self.now, talker, kind, msg, ""))
        if talker == PERSONA_NAME and rng.random() < 0.04:  # she loves stickers
            self.rows.append((self.now, talker, "sticker", "", f"https://example.org/emoji/{rng.randint(1, 40)}.gif"))
        elif talker == "林晓峰" and rng.random() < 0.04:
            self.rows.append((self.now, talker, "voice", "", ""))

    def _they_say(self, speaker: str, template: str, slots: dict[str, str], first: bool = False) -> None:
        for i, text in enumerate(self._theirs(speaker, template, slots, first)):
            self._add(speaker, text, self.rng.choice([0, 1, 1, 2, 3, 5, 8]) if i == 0 else self.rng.choice([0, 1]))

    def _i_say(self, templates: Sequence[str], slots: dict[str, str]) -> None:
        rng = self.rng
        first = rng.choice(templates)
        self._add(PERSONA_NAME, self._mine(first, slots), rng.choice([0, 1, 1, 2, 2, 4, 6, 11]))
        if rng.random() < 0.15:
            pool = [t for t in templates if t != first] if rng.random() < 0.5 and len(templates) > 1 else _MY_FOLLOW_UPS
            self._add(PERSONA_NAME, self._mine(rng.choice(pool), slots), rng.choice([0, 1]))

    def _habits(self, speaker: str) -> None:
        rng = self.rng
        if rng.random() < 0.2:
            pair = rng.choice(PREFERENCES)
            a, b = pair if rng.random() < 0.5 else pair[::-1]
            self._add(speaker, rng.choice(_CHOICE_ASKS).format(a=a, b=b), rng.choice([1, 2, 3]))
            self._add(PERSONA_NAME, _CHOICE_REPLY.format(pick=pair[0]), rng.choice([0, 1, 2]))
        if rng.random() < 0.2:
            day = rng.choice(DAYS)
            self._add(speaker, _DAY_ASK.format(day=day), rng.choice([1, 2, 3]))
            self._add(PERSONA_NAME, _DAY_REPLY.format(day=day), rng.choice([0, 1, 2]))

    def conversation(self, start: datetime, pii: tuple[str | None, str, str] | None) -> None:
        rng = self.rng
        self.now = start
        group = len(self.members) > 1
        names = list(self.plan.topics)
        topic = rng.choices(names, weights=[self.plan.topics[n] for n in names])[0]
        moves = TOPICS[topic]["moves"]
        speaker = rng.choice(self.members)
        slots = self._slots(speaker)
        chosen = [0] + sorted(rng.sample(range(1, len(moves)), rng.randint(1, len(moves) - 1)))
        if rng.random() < 0.18:  # she starts it
            self._add(PERSONA_NAME, self._mine(rng.choice(TOPICS[topic]["me_open"]), slots), 0)
            self._they_say(speaker, rng.choice(_ACKS), slots)
            chosen = chosen[1:]
        for i, mi in enumerate(chosen):
            prompts, replies = rng.choice(moves[mi])
            if group and i:
                speaker = rng.choice(self.members)
            self._they_say(speaker, rng.choice(prompts), slots, first=(i == 0 and chosen[0] == 0))
            if group and i == 0 and rng.random() < 0.5:
                other = rng.choice([m for m in self.members if m != speaker])
                self._add(other, rng.choice(_CHIMES), rng.choice([0, 1, 2, 4]))
            if not group or rng.random() < 0.8:
                self._i_say(replies, slots)
            if i == 0 and pii is not None:
                who, text, answers = pii
                if who is None:
                    self._add(PERSONA_NAME, text, rng.choice([1, 2]))
                    self._they_say(rng.choice(self.members), rng.choice(_opts(answers)), slots)
                else:
                    self._add(who, text, rng.choice([1, 2, 3]))
                    self._i_say(_opts(answers), slots)
            if i == 0:
                self._habits(rng.choice(self.members))
        if start.hour >= 20 and rng.random() < 0.8:
            self._add(rng.choice(self.members), rng.choice(GOOD_NIGHTS), rng.choice([1, 2, 4]))
            self._add(PERSONA_NAME, _GOOD_NIGHT_REPLY, rng.choice([0, 1, 2]))
        elif rng.random() < 0.45:
            self._they_say(rng.choice(self.members), rng.choice(_CLOSERS), slots)
            if rng.random() < 0.5:
                self._add(PERSONA_NAME, self._mine(rng.choice(_MY_CLOSERS), slots), rng.choice([0, 1, 2]))

    def history(self, n_days: int) -> None:
        rng, plan = self.rng, self.plan
        starts, pii_at = plan_conversations(rng, plan, START, n_days, PII.get(self.title, ()))
        for i, start in enumerate(starts):
            self.conversation(max(start, self.now + _MIN_GAP), pii_at.get(i))

    def render(self) -> str:
        """The chat as WeFlow's WeClone CSV: BOM, CRLF, UTC times, your display name on your rows."""
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\r\n")
        out.writerow(["id", "MsgSvrID", "type_name", "is_sender", "talker", "msg", "src", "CreateTime"])
        server_id = self.rng.randrange(6 * 10**18, 7 * 10**18)
        for i, (when, talker, kind, msg, src) in enumerate(self.rows, start=1):
            utc = when - UTC_OFFSET
            out.writerow([i, server_id + i, kind, int(talker == PERSONA_NAME), talker, msg, src,
                          utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")])
        return "\ufeff" + buf.getvalue()


def chat_filename(title: str) -> str:
    """The name WeFlow gives an exported chat."""
    return f"{'群聊' if len(PARTNERS[title]) > 1 else '私聊'}_{title}.csv"


def generate_sample(out_dir, seed: int = 0, n_days: int = 120) -> list[Path]:
    """Write the persona's chats into ``out_dir`` and return their paths (deterministic per seed)."""
    return write_chats(out_dir, PARTNERS, lambda title: _Writer(random.Random(f"zh:{seed}:{title}"), title),
                       chat_filename, n_days, newline="")


def persona_style_score(text: str) -> float:
    """How much ``text`` carries the persona's markers (:data:`PERSONA_MARKERS`), in [0, 1].

    Weighted checks: no full stop (。) at the end (0.15), at most ``max_chars`` characters (0.15),
    a laugh or a signature phrase (0.3), a final particle or a tilde (0.2), one of her emoji
    codes (0.2). Her text messages in the sample average 0.56, the others' 0.22.
    """
    if not text or not text.strip():
        return 0.0
    marks = PERSONA_MARKERS
    score = 0.15 * (not ends_with_punct(text, "."))
    score += 0.15 * (len(text) <= marks["max_chars"])
    score += 0.3 * (has_laugh(text) or any(p in text for p in marks["phrases"]))
    score += 0.2 * (ends_with_particle(text) or has_tilde(text))
    score += 0.2 * any(c in find_emoji(text) for c in marks["codes"])
    return round(score, 6)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m twinlib.sample_data_zh --out data/sample-zh [--seed 0] [--days 120]``."""
    sample_cli(argv, generate_sample, "data/sample-zh", "Write the synthetic Chinese persona's WeChat (WeFlow CSV) exports.")


if __name__ == "__main__":
    main()
