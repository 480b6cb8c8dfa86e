"""Which reports are the same problem at the same place (pure functions on plain data)."""

from __future__ import annotations

import pytest

from bot.core.sameness import SIMILAR, Kin, Problem, kin, nearest, place_of, similarity, subtypes_of


def problem(
    text: str,
    category: str = "utilities",
    origin: str = "H-01",
    grid: str = "G-01",
    **extra: object,
) -> Problem:
    severity = {"emergency": 4, "safety_hazard": 3, "sanitation": 1, "noise": 1}.get(category, 2)
    return Problem(category, int(extra.get("severity", severity)), bool(extra.get("urgent", False)),
                   origin, grid, text, bool(extra.get("staff_only", False)))  # fmt: skip


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("3栋停电了", {("building", "3")}),
        ("三栋二单元楼道灯坏了", {("building", "3"), ("unit", "2")}),
        ("3號樓停氣了", {("building", "3")}),  # Traditional is normalised first
        ("No power in block 3 since this morning", {("building", "3")}),
        ("Building B lift is broken", {("building", "B")}),
        ("A座电梯坏了", {("building", "A")}),
        ("和平巷口垃圾没人收", {("lane", "和平巷")}),
        ("东湖路8号门口水管爆了", {("address", "东湖路8")}),
        ("十二栋停水", {("building", "12")}),
        ("我们这栋也停水了", set()),  # "this building": no place named
        ("5号停水", set()),  # a date, not an address
    ],
)
def test_place_of_names_buildings_units_lanes_and_addresses(text: str, place: set[object]) -> None:
    assert place_of(text) == place


def test_sub_problems_of_utilities_tell_water_power_and_gas_apart() -> None:
    assert subtypes_of("utilities", "楼下停水两天了") == {"water"}
    assert subtypes_of("utilities", "停电了，冰箱都停了") == {"power"}
    assert subtypes_of("utilities", "7号楼停气了，做不了饭") == {"gas"}
    assert subtypes_of("utilities", "家里宽带断网一天了") == {"network"}
    assert subtypes_of("noise", "楼上好吵") == set()  # nothing named: the text decides


# Reports of one problem in residents' words, and of different problems of one category.
ALIKE = [
    ("楼道灯坏了", "楼道的灯坏了好几天"),
    ("小区门口井盖不见了", "门口的井盖没了"),
    ("独居老人王伯两天没出门了，麻烦去看看", "王伯两天没出门，去看看吧"),
    ("河边的垃圾堆了好几天没人清理，很臭", "河边垃圾好臭没人清理"),
    ("消防通道被电动车堵死了", "消防通道又被堵了"),
    ("小区里流浪狗很多，晚上乱叫", "流浪狗晚上一直叫"),
]
UNLIKE = [
    ("河边的垃圾堆了好几天没人清理，很臭", "楼道里有股怪味"),
    ("健身器材坏了", "楼道灯坏了"),
    ("消防通道被电动车堵死了", "独居老人王伯两天没出门了，麻烦去看看"),
    ("小区门口井盖不见了", "路灯坏了好多天了"),
    ("楼下KTV每晚唱到凌晨三点", "隔壁装修电钻声太吵"),
    ("邻居家漏水到我家", "楼上天天吵架"),
]


def test_the_similarity_threshold_parts_the_measured_examples() -> None:
    assert min(similarity(a, b) for a, b in ALIKE) >= SIMILAR
    assert max(similarity(a, b) for a, b in UNLIKE) < SIMILAR


def test_a_gas_smell_in_a_stairwell_is_not_the_rubbish_by_the_river() -> None:
    rubbish = problem("河边的垃圾堆了好几天没人清理，很臭", "sanitation", "H-02")
    smell = problem("楼道里有股煤气味", "sanitation", "H-01")
    assert kin(smell, rubbish) is Kin.NONE
    # In the same household group it is another problem there: linked, not joined.
    assert kin(smell, problem(rubbish.text, "sanitation", "H-01")) is Kin.RELATED


def test_nothing_joins_across_grids_unless_the_place_matches() -> None:
    fire_exit = problem("消防通道被电动车堵死了", "safety_hazard", "H-04", "G-02")
    assert kin(problem("消防通道又被堵了", "safety_hazard"), fire_exit) is Kin.NONE
    # A welfare check misclassified into the same category, in another grid: nothing.
    welfare = problem("独居老人王伯两天没出门了", "safety_hazard")
    assert kin(welfare, fire_exit) is Kin.NONE
    # The same building named in both: the same problem, whichever grid heard it.
    block = problem("5栋消防通道堵死了", "safety_hazard", "H-04", "G-02")
    assert kin(problem("五栋的消防通道又被堵了", "safety_hazard"), block) is Kin.SAME


def test_a_power_cut_is_not_another_buildings_gas_outage() -> None:
    gas = problem("7号楼停气了，做不了饭", origin="H-02")
    assert kin(problem("停电了"), gas) is Kin.NONE
    # Another building's gas in the same grid: maybe one main, so linked; never joined.
    assert kin(problem("3栋停气了"), gas) is Kin.RELATED
    assert kin(problem("7号楼也没有煤气"), gas) is Kin.SAME
    assert kin(problem("我们这栋也没气了", origin="H-02"), gas) is Kin.SAME
    # The same building, another utility: linked, so each team sees the other.
    assert kin(problem("7号楼停电了"), gas) is Kin.RELATED


def test_a_graver_report_never_joins_it_is_linked() -> None:
    smell = problem("3栋楼道有点异味", "sanitation")
    danger = problem("3栋楼道煤气味很重，怕会爆炸", "emergency", origin="H-02")
    assert kin(danger, smell) is Kin.RELATED  # the same building named
    urgent = problem("楼道灯坏了，老人摔倒了", "public_facilities", urgent=True)
    assert kin(urgent, problem("楼道灯坏了", "public_facilities")) is Kin.RELATED
    # Another kind of problem in the same group, no graver: neither joined nor linked.
    assert kin(problem("楼道灯坏了", "public_facilities"), smell) is Kin.NONE


def test_staff_only_problems_neither_join_nor_link() -> None:
    text = "我要跟老公离婚，他天天跟我吵架"
    family = problem(text, "family_dispute", staff_only=True)
    assert kin(problem(text, "family_dispute", staff_only=True), family) is Kin.NONE


def test_nearest_picks_the_oldest_same_problem_or_the_closest_related() -> None:
    report = problem("7号楼停电了")
    tickets = [
        ("1", problem("7号楼停气了")),
        ("2", problem("河边垃圾", "sanitation")),
        ("3", problem("7号楼停电，电梯也停了")),
        ("4", problem("7号楼又停电了")),
    ]
    assert nearest(report, tickets) == ("3", [])
    assert nearest(report, tickets[:2]) == (None, ["1"])


def test_a_shared_local_sub_problem_in_another_group_is_not_the_same_problem() -> None:
    # Walked in the demo: the rubbish station of one household group was "the same" as the
    # rubbish by the river of another, because both name rubbish (and nothing else matched).
    river = problem("后面那条河涌边上堆满了生活垃圾，臭气熏天", "sanitation", "H-03")
    station = problem("小区垃圾站的垃圾三天没人清运，臭得很", "sanitation", "H-02")
    assert kin(station, river) is Kin.NONE
    # Said alike, in another group of the grid: still the same problem.
    assert kin(problem("河涌边的生活垃圾堆满了好臭", "sanitation", "H-02"), river) is Kin.SAME
    # An outage spans the groups on one main: the sub-problem alone still joins.
    assert kin(problem("停水了", origin="H-02"), problem("楼下停水两天了")) is Kin.SAME


def test_a_danger_is_linked_to_the_lesser_problem_it_grew_from_not_to_every_one_nearby() -> None:
    """Walked in the demo: a gas leak in 4组 was linked to the group's building-site noise and
    to its e-bikes charging in the stairwell; it grew from neither."""
    leak = problem("厨房煤气味很重，好像漏气了", "emergency", "H-04", "G-02")
    noise = problem("隔壁工地周日也在施工，电锯声响个不停", "noise", "H-04", "G-02")
    bikes = problem("楼梯间堆满了电动车在充电，很危险", "safety_hazard", "H-04", "G-02")
    smell = problem("楼道里有股煤气味", "sanitation", "H-04", "G-02")
    assert kin(leak, noise) is Kin.NONE
    assert kin(leak, bikes) is Kin.NONE
    assert kin(leak, smell) is Kin.RELATED  # the smell that became a danger
