"""Whether a new report is the same problem as an open ticket, only related to it, or neither.

A report joins a ticket only when it is the same problem at the same place:

- the same category, and no more severe (an urgent report never joins a calm ticket);
- the same place: the same household group, or the same building or address when
  both texts name one (``place_of``); otherwise the same grid, with no place named
  differently. Never across grids unless the building or address matches;
- the same sub-problem where the category has a vocabulary for it (``subtypes_of``:
  water is not power is not gas); and, when neither text names a sub-problem, text
  that looks alike: character-bigram Jaccard at least ``SIMILAR``. Between two
  household groups of a grid, a shared sub-problem alone is the same problem only for
  what serves them both (``AREA_WIDE``: an outage of one main, the street lighting);
  rubbish, a lift or a fire exit there must also be said alike.

A report that is not the same problem but is at the same place (or is the same
sub-problem of the same category in the same grid) is *related*: it opens its own
ticket and both tickets record the link. Staff-only tickets neither join nor link.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from bot.core.text import normalise

# Character-bigram Jaccard at or above which two reports that name no sub-problem are taken
# for the same problem. On the pairs in tests/test_sameness.py, reports of one problem in
# residents' words score 0.09-0.44 (the low ones, "楼下停水两天了" / "又停水了" 0.125, are
# settled by their sub-problem) and different problems of one category 0-0.125; the pairs
# with no sub-problem to go by score 0.167 and up ("小区门口井盖不见了" / "门口的井盖没了").
SIMILAR = 0.15

DANGER = 3  # the severity rank (high) from which a report in the same group upgrades another
MAX_RELATED = 3  # links a new ticket gets at most: the nearest ones

_NUM = r"(\d+|[零一二两三四五六七八九十百]+|[A-Za-z])"
_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7}
_CN_DIGITS |= {"八": 8, "九": 9}
_PLACE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("building", re.compile(_NUM + r"\s*(?:号楼|栋楼|栋|幢|座|号大楼)")),
    ("building", re.compile(r"(?:block|building|bldg\.?|blk\.?|tower)\s*#?\s*(\w?\d+\w?|\w)\b")),
    ("unit", re.compile(_NUM + r"\s*单元")),
    ("lane", re.compile(r"([\u4e00-\u9fff]{1,4}巷)")),
    ("address", re.compile(r"([\u4e00-\u9fff]{1,6}(?:路|街|巷|道))\s*(\d+)\s*号(?!楼)")),
)  # fmt: skip

# Sub-problems per category, by words in the normalised text (Simplified, lower case).
SUBTYPES: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "utilities": {
        "water": ("停水", "没水", "冇水", "无水", "断水", "自来水", "水压", "来水", "供水", "有水",
                  "水管", "水龙头", "水质", "黄水", "水喉", "water"),
        "power": ("停电", "没电", "冇电", "断电", "无电", "跳闸", "电闸", "来电", "供电", "复电",
                  "电压", "power", "electric", "blackout"),
        "gas": ("停气", "没气", "冇气", "断气", "煤气", "燃气", "天然气", "瓦斯", "gas"),
        "network": ("断网", "没网", "宽带", "网络", "信号", "wifi", "internet", "broadband"),
    },
    "public_facilities": {
        "light": ("路灯", "灯", "light"),
        "lift": ("电梯", "升降机", "lift", "elevator"),
        "road": ("路面", "坑", "井盖", "人行道", "台阶", "pothole", "manhole"),
        "fitness": ("健身", "器材", "秋千", "滑梯", "playground"),
        "seat": ("座椅", "长椅", "凳", "bench"),
    },
    "sanitation": {
        "rubbish": ("垃圾", "废品", "杂物", "rubbish", "garbage", "trash"),
        "sewage": ("下水道", "污水", "化粪池", "沙井", "渠", "sewage", "drain"),
        "pests": ("老鼠", "蟑螂", "蚊", "苍蝇", "rat", "cockroach"),
        "gas": ("煤气", "燃气", "天然气", "瓦斯", "gas"),
    },
    "safety_hazard": {
        "fire_exit": ("消防通道", "安全出口", "逃生通道", "楼梯间", "fire exit"),
        "wiring": ("电线", "飞线", "拉线", "充电", "电箱", "wire", "charging"),
        "structure": ("裂", "塌", "脱落", "掉落", "坠", "crack", "collapse"),
        "gas": ("煤气", "燃气", "天然气", "瓦斯", "gas"),
    },
    "noise": {
        "music": ("唱歌", "ktv", "卡拉ok", "音乐", "音响", "广场舞", "music", "karaoke"),
        "works": ("装修", "施工", "电钻", "打桩", "works", "drilling", "construction"),
        "animals": ("狗", "犬", "猫", "dog"),
    },
}  # fmt: skip

# Sub-problems that span the household groups of a grid (one water main, one lighting circuit).
AREA_WIDE: Mapping[str, frozenset[str]] = {
    "utilities": frozenset(SUBTYPES["utilities"]),
    "public_facilities": frozenset({"light"}),
}


class Kin(StrEnum):
    """How a report stands to an open ticket."""

    SAME = "same"  # join it
    RELATED = "related"  # open a ticket of its own, linked to it
    NONE = "none"


@dataclass(frozen=True)
class Problem:
    """What ``kin`` compares of a report or a ticket: plain values, no ticket needed."""

    category: str
    severity: int  # rank: 4 critical .. 1 low
    urgent: bool
    origin: str  # household group (or whatever node it was reported in)
    grid: str  # the grid above the origin (the origin itself when there is none)
    text: str
    staff_only: bool = False


def place_of(text: str) -> frozenset[tuple[str, str]]:
    """Return the building, unit, lane and address a text names, as (kind, value) pairs."""
    norm = normalise(text).lower()
    out: set[tuple[str, str]] = set()
    for kind, pattern in _PLACE_PATTERNS:
        for m in pattern.finditer(norm):
            value = "".join(_number(g) for g in m.groups() if g)
            out.add((kind, value))
    return frozenset(out)


def subtypes_of(category: str, text: str) -> frozenset[str]:
    """Return the sub-problems of ``category`` a text names (empty: none named)."""
    norm = normalise(text).lower()
    vocabulary = SUBTYPES.get(category, {})
    return frozenset(name for name, words in vocabulary.items() if any(w in norm for w in words))


def similarity(a: str, b: str) -> float:
    """Return the Jaccard index of the character bigrams of two texts (0 to 1)."""
    x, y = _bigrams(a), _bigrams(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


class Place(StrEnum):
    """How the places of two reports compare."""

    NAMED = "named"  # both name the same building or address
    GROUP = "group"  # the same household group, no place named differently
    UNKNOWN = "unknown"  # different groups, no place named by both
    OTHER = "other"  # both name a building or address, and they differ


def place_match(a: Problem, b: Problem) -> Place:
    """Return how the places of two problems compare."""
    pa, pb = place_of(a.text), place_of(b.text)
    shared = {k for k, _ in pa} & {k for k, _ in pb}
    for kind in shared:
        if not {v for k, v in pa if k == kind} & {v for k, v in pb if k == kind}:
            return Place.OTHER
    if shared:
        return Place.NAMED
    return Place.GROUP if a.origin == b.origin else Place.UNKNOWN


def kin(report: Problem, ticket: Problem) -> Kin:
    """Return whether ``report`` is the same problem as ``ticket``, related to it, or neither."""
    if report.staff_only or ticket.staff_only:
        return Kin.NONE
    place = place_match(report, ticket)
    graver = report.severity > ticket.severity or (report.urgent and not ticket.urgent)
    if place is Place.OTHER:
        near = report.category == ticket.category and report.grid == ticket.grid
        return Kin.RELATED if near and _same_subtype(report, ticket) else Kin.NONE
    if place is Place.UNKNOWN and report.grid != ticket.grid:
        return Kin.NONE
    here = place is not Place.UNKNOWN
    if report.category != ticket.category:
        # Another kind of problem: linked when a building is named by both, or when it is
        # graver, in the same group and grew from it (the smell that became a danger): the
        # older ticket's sub-problem named in both, or text that looks alike.
        danger = report.severity >= DANGER and report.severity > ticket.severity
        vocabulary = ticket.category  # what the older ticket's words call the trouble
        common = subtypes_of(vocabulary, report.text) & subtypes_of(vocabulary, ticket.text)
        grew = bool(common) or similarity(report.text, ticket.text) >= SIMILAR
        linked = place is Place.NAMED or (place is Place.GROUP and danger and grew)
        return Kin.RELATED if linked else Kin.NONE
    a, b = subtypes_of(report.category, report.text), subtypes_of(ticket.category, ticket.text)
    if a and b and not a & b:
        return Kin.RELATED if here else Kin.NONE
    area = AREA_WIDE.get(report.category, frozenset())
    shared = bool(a & b) and (here or bool(a & b & area))
    alike = shared or similarity(report.text, ticket.text) >= SIMILAR
    if alike and not graver:
        return Kin.SAME
    return Kin.RELATED if here or alike else Kin.NONE


def nearest(
    report: Problem, tickets: Iterable[tuple[str, Problem]]
) -> tuple[str | None, list[str]]:
    """Return the ticket ``report`` joins (or None) and the tickets it is related to.

    Candidates are ``(id, problem)`` pairs, oldest first; the oldest same problem wins.
    """
    same: str | None = None
    related: list[tuple[float, str]] = []
    for ticket_id, problem in tickets:
        found = kin(report, problem)
        if found is Kin.SAME and same is None:
            same = ticket_id
        elif found is Kin.RELATED:
            related.append((similarity(report.text, problem.text), ticket_id))
    if same is not None:
        return same, []
    related.sort(key=lambda r: -r[0])
    return None, [ticket_id for _, ticket_id in related[:MAX_RELATED]]


def _same_subtype(a: Problem, b: Problem) -> bool:
    return bool(subtypes_of(a.category, a.text) & subtypes_of(b.category, b.text))


def _bigrams(text: str) -> set[str]:
    chars = [c for c in normalise(text).lower() if c.isalnum()]
    return {a + b for a, b in itertools.pairwise(chars)}


def _number(value: str) -> str:
    """Return a building or unit number written in digits: 三 -> 3, 十二 -> 12."""
    if value.isdigit() or not all(c in _CN_DIGITS or c in "十百" for c in value):
        return value.upper() if len(value) == 1 else value
    total, current = 0, 0
    for c in value:
        if c == "百":
            total, current = total + (current or 1) * 100, 0
        elif c == "十":
            total, current = total + (current or 1) * 10, 0
        else:
            current = _CN_DIGITS[c]
    return str(total + current)
