"""The organisation tree: the sample street, routing and permission questions, every
validation error at its exact place, and ``lianhu org check | show``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.cli import main
from bot.core.errors import InvalidOrg
from bot.core.models import Lang, Tier
from bot.core.org import (
    HANDLER_ROLES,
    Node,
    NodeKind,
    OrgTree,
    Role,
    ancestors,
    build_org,
    check_against_rules,
    departments_for,
    handling_node,
    may_act,
    next_up,
    node_of_chat,
    person_of_account,
)
from bot.core.yamldoc import parse
from bot.sources import load_org

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "org" / "sample_street.yaml"
DEPARTMENT_KINDS = {
    "police", "judicial", "labour", "housing", "enforcement", "environment", "emergency",
    "civil_affairs", "land", "fire",
}  # fmt: skip


def sample() -> OrgTree:
    return load_org(SAMPLE)


def build(text: str) -> OrgTree:
    doc, problems = parse("org.yaml", text)
    assert doc is not None, problems
    return build_org(doc)


def errors(text: str) -> list[str]:
    """Build ``text``; return every problem, as printed."""
    with pytest.raises(InvalidOrg) as caught:
        build(text)
    return [str(p) for p in caught.value.problems]


@dataclass(frozen=True)
class Departments:
    departments: tuple[str, ...]


# ---------------------------------------------------------------- the sample street


def test_sample_loads() -> None:
    tree = sample()
    assert (len(tree.nodes), len(tree.people)) == (27, 45)
    kinds = [node.kind for node in tree.nodes.values()]
    assert kinds.count(NodeKind.STREET) == 1
    assert kinds.count(NodeKind.VILLAGE) == 2
    assert kinds.count(NodeKind.GRID) == 4
    assert kinds.count(NodeKind.HOUSEHOLD) == 10
    assert {n.department for n in tree.nodes.values() if n.department} == DEPARTMENT_KINDS
    assert {p.role for p in tree.people.values()} == set(Role)
    street = tree.nodes["S-01"]
    assert street.display_name() == "海湾街道"
    assert street.display_name(Lang.ZH_HANT) == "海灣街道"
    assert street.display_name(Lang.EN) == "Haiwan Street"
    assert tree.nodes["D-police"].tier is None
    assert tree.nodes["G-01"].tier is Tier.GRID


def test_sample_binds_every_ladder_node_to_telegram_and_the_simulator() -> None:
    for node in sample().nodes.values():
        assert [c.split(":")[0] for c in node.chats] == ["telegram", "sim"], node.id
        assert f"sim:{node.id}" in node.chats
        has_staff_chat = node.kind in {NodeKind.GRID, NodeKind.VILLAGE, NodeKind.STREET}
        assert (node.staff_chat is not None) == has_staff_chat, node.id


def test_sample_roster_covers_the_street() -> None:
    tree = sample()
    workers = {p.scope for p in tree.people.values() if p.role is Role.GRID_WORKER}
    assert workers == {"G-01", "G-02", "G-03", "G-04"}
    staffed = {p.scope for p in tree.people.values() if p.role is Role.DEPARTMENT_STAFF}
    assert staffed == {n.id for n in tree.nodes.values() if n.kind is NodeKind.DEPARTMENT}
    langs = {p.lang for p in tree.people.values() if p.role is Role.RESIDENT}
    assert langs == set(Lang)
    for person in tree.people.values():
        assert f"sim:{person.id}" in person.accounts


def test_node_of_chat() -> None:
    tree = sample()
    assert node_of_chat(tree, "telegram:-1001000000131") == tree.nodes["H-01"]
    assert node_of_chat(tree, "sim:V-02") == tree.nodes["V-02"]
    staff = node_of_chat(tree, "telegram:-1001000000221")  # the staff chat of G-01
    assert staff is not None and staff.id == "G-01"
    assert node_of_chat(tree, "telegram:-1009999999999") is None


def test_person_of_account() -> None:
    tree = sample()
    person = person_of_account(tree, "telegram:100001")
    assert person is not None and (person.id, person.role) == ("p-chen-zhiqiang", Role.RESIDENT)
    assert person_of_account(tree, "sim:p-admin-liu") == tree.people["p-admin-liu"]
    assert person_of_account(tree, "telegram:999999") is None


def test_ancestors_run_from_the_node_up_to_its_street() -> None:
    tree = sample()
    assert [n.id for n in ancestors(tree, "H-07")] == ["H-07", "G-03", "V-02", "S-01"]
    assert [n.id for n in ancestors(tree, "D-police")] == ["D-police", "S-01"]
    assert [n.id for n in ancestors(tree, "S-01")] == ["S-01"]
    with pytest.raises(KeyError):
        ancestors(tree, "X-9")


@pytest.mark.parametrize(
    ("tier", "expected"),
    [(Tier.HOUSEHOLD, "H-01"), (Tier.GRID, "G-01"), (Tier.VILLAGE, "V-01"), (Tier.STREET, "S-01")],
)
def test_handling_node_from_a_household(tier: Tier, expected: str) -> None:
    assert handling_node(sample(), tier, "H-01").id == expected


def test_handling_node_from_above_the_start_tier_is_the_origin() -> None:
    tree = sample()
    assert handling_node(tree, Tier.GRID, "V-02").id == "V-02"
    assert handling_node(tree, Tier.HOUSEHOLD, "G-03").id == "G-03"
    assert handling_node(tree, Tier.GRID, "S-01").id == "S-01"
    assert handling_node(tree, Tier.STREET, "V-02").id == "S-01"


def test_handling_node_at_a_department_is_the_department() -> None:
    tree = sample()
    for tier in Tier:
        assert handling_node(tree, tier, "D-fire").id == "D-fire"


def test_next_up_climbs_the_ladder_to_the_street() -> None:
    tree = sample()
    chain = []
    node: Node | None = tree.nodes["H-09"]
    while node is not None:
        chain.append(node.id)
        node = next_up(tree, node.id)
    assert chain == ["H-09", "G-04", "V-02", "S-01"]
    assert next_up(tree, "S-01") is None
    up = next_up(tree, "D-labour")
    assert up is not None and up.id == "S-01"


def test_departments_for_follows_the_category_order() -> None:
    tree = sample()
    emergency = Departments(("emergency", "fire", "police"))
    found = departments_for(tree, emergency, "H-06")
    assert [n.id for n in found] == ["D-emergency", "D-fire", "D-police"]
    assert departments_for(tree, emergency, "S-01") == found
    assert departments_for(tree, emergency, "D-land") == found
    assert departments_for(tree, Departments(()), "H-01") == ()
    assert departments_for(tree, Departments(("coast_guard",)), "H-01") == ()


def test_departments_for_stays_in_the_origin_street() -> None:
    tree = build(TWO_STREETS)
    assert [n.id for n in departments_for(tree, Departments(("police",)), "H-2")] == ["D-2"]
    assert [n.id for n in departments_for(tree, Departments(("police",)), "V-1")] == ["D-1"]


MAY_ACT = [
    ("p-chen-zhiqiang", "H-01", False),  # resident: only on their own tickets, decided elsewhere
    ("p-chen-zhiqiang", "G-01", False),
    ("p-luo-jiahao", "H-01", True),  # household leader: their household group only
    ("p-luo-jiahao", "H-02", False),
    ("p-luo-jiahao", "G-01", False),
    ("p-zhong-zhiwei", "G-01", True),  # grid worker: the grid and its households
    ("p-zhong-zhiwei", "H-03", True),
    ("p-zhong-zhiwei", "H-04", False),
    ("p-zhong-zhiwei", "V-01", False),
    ("p-xian-jianhua", "H-02", True),  # grid leader
    ("p-xian-jianhua", "G-02", False),
    ("p-yang-zixuan", "V-01", True),  # village cadre: the whole village
    ("p-yang-zixuan", "G-02", True),
    ("p-yang-zixuan", "H-05", True),
    ("p-yang-zixuan", "V-02", False),
    ("p-yang-zixuan", "H-06", False),
    ("p-yang-zixuan", "S-01", False),
    ("p-wen-runsheng", "H-03", True),  # mediator
    ("p-wen-runsheng", "H-07", False),
    ("p-peng-jiayi", "H-10", True),  # community police
    ("p-peng-jiayi", "G-01", False),
    ("p-luo-bingkun", "S-01", True),  # street staff: everything under the street
    ("p-luo-bingkun", "H-10", True),
    ("p-luo-bingkun", "D-police", True),
    ("p-tan-zhihui", "D-police", True),  # department staff: their department only
    ("p-tan-zhihui", "D-fire", False),
    ("p-tan-zhihui", "S-01", False),
    ("p-tan-zhihui", "H-01", False),
    ("p-admin-liu", "H-08", True),  # admin of the street: everything in it
    ("p-admin-liu", "D-fire", True),
    ("p-admin-liu", "X-9", False),  # no such node
]


@pytest.mark.parametrize(("person_id", "node_id", "allowed"), MAY_ACT)
def test_may_act(person_id: str, node_id: str, allowed: bool) -> None:
    tree = sample()
    assert may_act(tree, tree.people[person_id], node_id) is allowed


def test_may_act_covers_every_role() -> None:
    tree = sample()
    assert {tree.people[p].role for p, _, _ in MAY_ACT} == set(Role)
    assert set(Role) - HANDLER_ROLES == {Role.RESIDENT}


def test_street_staff_stay_in_their_street() -> None:
    tree = build(TWO_STREETS)
    assert may_act(tree, tree.people["p-1"], "H-1")
    assert not may_act(tree, tree.people["p-1"], "H-2")


def test_check_against_rules_names_missing_department_kinds() -> None:
    categories = {
        "emergency": Departments(("emergency", "fire", "coast_guard")),
        "flood": Departments(("coast_guard",)),
        "noise": Departments(()),
    }
    ruleset = SimpleNamespace(categories=categories)
    assert check_against_rules(sample(), ruleset) == [  # type: ignore[arg-type]
        "no department node provides 'coast_guard', named by categories emergency, flood"
    ]
    del categories["emergency"], categories["flood"]
    assert check_against_rules(sample(), ruleset) == []  # type: ignore[arg-type]


# ---------------------------------------------------------------- validation
# TREE is a valid tree of 21 lines; tests append nodes from line 22 on.

TREE = """\
nodes:
  - {id: S-1, name: 街道, kind: street}
  - id: V-1
    name: 村
    kind: village
    parent: S-1
    staff_chat: "sim:V-1-staff"
  - id: G-1
    name: 网格
    kind: grid
    parent: V-1
  - id: H-1
    name: 联户
    kind: household
    parent: G-1
    chats: ["sim:H-1"]
  - id: D-1
    name: 派出所
    kind: department
    parent: S-1
    department: police
"""

TWO_STREETS = """\
nodes:
  - {id: S-1, name: 一街, kind: street}
  - {id: V-1, name: 一村, kind: village, parent: S-1}
  - {id: G-1, name: 一格, kind: grid, parent: V-1}
  - {id: H-1, name: 一组, kind: household, parent: G-1}
  - {id: D-1, name: 一所, kind: department, parent: S-1, department: police}
  - {id: S-2, name: 二街, kind: street}
  - {id: V-2, name: 二村, kind: village, parent: S-2}
  - {id: G-2, name: 二格, kind: grid, parent: V-2}
  - {id: H-2, name: 二组, kind: household, parent: G-2}
  - {id: D-2, name: 二所, kind: department, parent: S-2, department: police}
people:
  - {id: p-1, name: 甲, role: street_staff, scope: S-1}
"""


def test_minimal_tree_is_valid() -> None:
    tree = build(TREE)
    assert list(tree.nodes) == ["S-1", "V-1", "G-1", "H-1", "D-1"]
    assert tree.people == {}
    assert node_of_chat(tree, "sim:H-1") == tree.nodes["H-1"]


def test_several_streets_are_allowed() -> None:
    tree = build(TWO_STREETS)
    assert [n.id for n in ancestors(tree, "H-2")] == ["H-2", "G-2", "V-2", "S-2"]


def test_unknown_node_field_is_located_at_its_key() -> None:
    text = TREE + "    colour: red\n"
    assert errors(text) == ["org.yaml:22:5: nodes[4].colour: unknown field"]


def test_unknown_top_level_section() -> None:
    text = TREE + "roster: []\n"
    assert errors(text) == ["org.yaml:22:1: roster: unknown field"]


def test_unknown_person_field() -> None:
    text = (
        TREE
        + "people:\n  - id: p-1\n    name: 甲\n    role: resident\n    scope: H-1\n    phone: 1\n"
    )
    assert errors(text) == ["org.yaml:27:5: people[0].phone: unknown field"]


def test_bad_values_are_located() -> None:
    text = TREE + (
        "  - id: 9-bad\n"  # 22
        "    name: ''\n"  # 23
        "    kind: hamlet\n"  # 24
        "    chats: [telegram]\n"  # 25
    )
    found = errors(text)
    assert [e.rsplit(": ", 1)[0] for e in found] == [
        "org.yaml:22:5: nodes[5].id",
        "org.yaml:23:5: nodes[5].name",
        "org.yaml:24:5: nodes[5].kind",
        "org.yaml:25:13: nodes[5].chats[0]",
    ]
    assert found[2].endswith(
        "Input should be 'household', 'grid', 'village', 'street' or 'department'"
    )


def test_duplicate_node_id() -> None:
    text = TREE + "  - id: V-1\n    name: 又一村\n    kind: village\n    parent: S-1\n"
    assert errors(text) == ["org.yaml:22:5: nodes[5].id: duplicate node id 'V-1' (line 3)"]


def test_duplicate_person_id() -> None:
    text = TREE + (
        "people:\n"  # 22
        "  - {id: p-1, name: 甲, role: resident, scope: H-1}\n"
        "  - id: p-1\n"  # 24
        "    name: 乙\n"
        "    role: resident\n"
        "    scope: H-1\n"
    )
    assert errors(text) == ["org.yaml:24:5: people[1].id: duplicate person id 'p-1' (line 23)"]


def test_unknown_parent() -> None:
    text = TREE + "  - id: G-2\n    name: 网格二\n    kind: grid\n    parent: X-9\n"
    assert errors(text) == ["org.yaml:25:5: nodes[5].parent: unknown node 'X-9'"]


@pytest.mark.parametrize(
    ("kind", "parent", "message"),
    [
        ("household", "V-1", "a household needs a parent grid, not village 'V-1'"),
        ("grid", "S-1", "a grid needs a parent village, not street 'S-1'"),
        ("grid", "G-1", "a grid needs a parent village, not grid 'G-1'"),
        ("village", "G-1", "a village needs a parent street, not grid 'G-1'"),
        ("department", "V-1", "a department needs a parent street, not village 'V-1'"),
        ("street", "S-1", "a street has no parent"),
    ],
)
def test_parent_of_the_wrong_kind(kind: str, parent: str, message: str) -> None:
    extra = "    department: fire\n" if kind == "department" else ""
    text = TREE + f"  - id: X-1\n    name: 某\n    kind: {kind}\n    parent: {parent}\n" + extra
    assert errors(text) == [f"org.yaml:25:5: nodes[5].parent: {message}"]


@pytest.mark.parametrize("kind", ["household", "grid", "village", "department"])
def test_missing_parent(kind: str) -> None:
    extra = "    department: fire\n" if kind == "department" else ""
    text = TREE + f"  - id: X-1\n    name: 某\n    kind: {kind}\n" + extra
    (found,) = errors(text)
    assert found.startswith(f"org.yaml:22:5: nodes[5].parent: field required: a {kind} needs")


def test_parent_loop() -> None:
    text = TREE + (
        "  - {id: V-8, name: 八村, kind: village, parent: V-9}\n"  # 22
        "  - {id: V-9, name: 九村, kind: village, parent: V-8}\n"  # 23
    )
    assert errors(text) == [
        "org.yaml:22:40: nodes[5].parent: a village needs a parent street, not village 'V-9'",
        "org.yaml:22:40: nodes[5].parent: parents form a loop: V-8 → V-9 → V-8",
        "org.yaml:23:40: nodes[6].parent: a village needs a parent street, not village 'V-8'",
    ]


def test_node_that_is_its_own_parent() -> None:
    text = TREE + "  - {id: G-7, name: 七格, kind: grid, parent: G-7}\n"
    assert "org.yaml:22:37: nodes[5].parent: parents form a loop: G-7 → G-7" in errors(text)


def test_no_street() -> None:
    text = "nodes:\n  - {id: V-1, name: 村, kind: village, parent: V-1}\n"
    assert "org.yaml:1:1: nodes: no street: the tree needs at least one" in errors(text)
    assert errors("") == ["org.yaml:1:1: nodes: no street: the tree needs at least one"]


def test_a_file_that_is_not_a_mapping() -> None:
    assert errors("- S-1\n") == [
        "org.yaml:1:1: -: an organisation file is a mapping of nodes and people"
    ]


def test_department_kind_required_and_only_on_departments() -> None:
    text = TREE + (
        "  - id: D-2\n"  # 22
        "    name: 司法所\n"
        "    kind: department\n"
        "    parent: S-1\n"
        "  - id: V-2\n"  # 26
        "    name: 二村\n"
        "    kind: village\n"
        "    parent: S-1\n"
        "    department: police\n"  # 30
        "  - id: D-3\n"  # 31
        "    name: 三所\n"
        "    kind: department\n"
        "    parent: S-1\n"
        "    department: Fire Brigade\n"  # 35
    )
    found = errors(text)
    assert found[:2] == [
        "org.yaml:22:5: nodes[5].department: field required for a department",
        "org.yaml:30:5: nodes[6].department: only a department names a department kind,"
        " not a village",
    ]
    assert found[2].startswith("org.yaml:35:5: nodes[7].department: String should match pattern")
    assert len(found) == 3


def test_duplicate_chats() -> None:
    text = TREE + (
        "  - id: H-2\n"  # 22
        "    name: 联户二\n"
        "    kind: household\n"
        "    parent: G-1\n"
        '    chats: ["sim:H-2", "sim:H-1", "sim:H-2"]\n'  # 26
        '    staff_chat: "sim:H-1"\n'  # 27
    )
    assert errors(text) == [
        "org.yaml:26:24: nodes[5].chats[1]: chat 'sim:H-1' already bound to node 'H-1'",
        "org.yaml:26:35: nodes[5].chats[2]: chat 'sim:H-2' listed twice",
        "org.yaml:27:5: nodes[5].staff_chat: chat 'sim:H-1' already bound to node 'H-1'",
    ]


def test_duplicate_accounts() -> None:
    text = TREE + (
        "people:\n"  # 22
        '  - {id: p-1, name: 甲, role: resident, scope: H-1, accounts: ["telegram:1"]}\n'
        "  - id: p-2\n"  # 24
        "    name: 乙\n"
        "    role: resident\n"
        "    scope: H-1\n"
        '    accounts: ["sim:p-2", "telegram:1", "sim:p-2"]\n'  # 28
    )
    assert errors(text) == [
        "org.yaml:28:27: people[1].accounts[1]: account 'telegram:1' already belongs to 'p-1'",
        "org.yaml:28:41: people[1].accounts[2]: account 'sim:p-2' listed twice",
    ]


def test_unknown_scope() -> None:
    text = TREE + "people:\n  - id: p-1\n    name: 甲\n    role: grid_worker\n    scope: G-9\n"
    assert errors(text) == ["org.yaml:26:5: people[0].scope: unknown node 'G-9'"]


@pytest.mark.parametrize(
    ("role", "good", "bad"),
    [
        ("resident", "H-1", "G-1"),
        ("household_leader", "H-1", "V-1"),
        ("grid_worker", "G-1", "H-1"),
        ("grid_leader", "G-1", "V-1"),
        ("village_cadre", "V-1", "S-1"),
        ("mediator", "V-1", "G-1"),
        ("community_police", "V-1", "D-1"),
        ("street_staff", "S-1", "V-1"),
        ("department_staff", "D-1", "S-1"),
    ],
)
def test_scope_of_the_wrong_kind(role: str, good: str, bad: str) -> None:
    person = "people:\n  - id: p-1\n    name: 甲\n    role: {role}\n    scope: {scope}\n"
    tree = build(TREE + person.format(role=role, scope=good))
    assert tree.people["p-1"].role == role
    found = errors(TREE + person.format(role=role, scope=bad))
    expected = build(TREE).nodes[good].kind
    actual = build(TREE).nodes[bad].kind
    message = f"a {role} serves a {expected}, not {actual} '{bad}'"
    assert found == [f"org.yaml:26:5: people[0].scope: {message}"]


@pytest.mark.parametrize("scope", ["S-1", "V-1", "G-1", "H-1", "D-1"])
def test_admin_may_sit_anywhere_and_acts_in_the_subtree(scope: str) -> None:
    text = TREE + f"people:\n  - {{id: p-1, name: 甲, role: admin, scope: {scope}}}\n"
    tree = build(text)
    below = {n for n in tree.nodes if scope in {a.id for a in ancestors(tree, n)}}
    assert {n for n in tree.nodes if may_act(tree, tree.people["p-1"], n)} == below


def test_an_admin_acts_in_their_street_unless_global() -> None:
    text = TWO_STREETS + (
        "  - {id: p-2, name: 乙, role: admin, scope: S-1}\n"
        "  - {id: p-3, name: 丙, role: admin, scope: S-1, global: true}\n"
    )
    tree = build(text)
    assert may_act(tree, tree.people["p-2"], "H-1") and may_act(tree, tree.people["p-2"], "D-1")
    assert not any(may_act(tree, tree.people["p-2"], n) for n in ("S-2", "H-2", "D-2"))
    assert all(may_act(tree, tree.people["p-3"], n) for n in tree.nodes)


def test_only_an_admin_can_be_global() -> None:
    text = TREE + "people:\n  - {id: p-1, name: 甲, role: street_staff, scope: S-1, global: true}\n"
    assert errors(text) == [
        "org.yaml:23:56: people[0].global: only an admin can be global, not a street_staff"
    ]


def test_an_invalid_node_hides_no_other_problem_and_adds_none() -> None:
    text = TREE + (
        "  - id: G-2\n"  # 22
        "    name: 网格二\n"
        "    kind: grid\n"
        "    parent: V-1\n"
        "    colour: red\n"  # 26
        "  - {id: H-2, name: 联户二, kind: household, parent: G-2}\n"  # 27: parent is G-2, invalid
        "  - {id: H-3, name: 联户三, kind: household, parent: G-3}\n"  # 28: unknown G-3
        "people:\n"
        "  - {id: p-1, name: 甲, role: grid_worker, scope: G-2}\n"  # 30
        "  - {id: p-2, name: 乙, role: grid_worker, scope: H-1}\n"  # 31
    )
    assert errors(text) == [
        "org.yaml:26:5: nodes[5].colour: unknown field",
        "org.yaml:28:43: nodes[7].parent: unknown node 'G-3'",
        "org.yaml:31:43: people[1].scope: a grid_worker serves a grid, not household 'H-1'",
    ]


def test_names_take_other_languages_only() -> None:
    text = TREE + "    names: {zh-Hans: 派出所, en: Police}\n"
    assert errors(text) == [
        "org.yaml:22:5: nodes[4].names: the zh-Hans name is `name`; list only other languages here"
    ]
    tree = build(TREE + "    names: {zh-Hant: 派出所, en: Police}\n")
    assert tree.nodes["D-1"].display_name(Lang.EN) == "Police"


# ---------------------------------------------------------------- the command line

RULES = """\
categories:
  emergency:
    names: {zh-Hans: 紧急险情}
    start_tier: street
    severity: critical
    departments: [fire, police, coast_guard]
deadlines:
  critical: {ack: 15m, resolve: 2h}
  high: {ack: 2h, resolve: 24h}
  normal: {ack: 24h, resolve: 3d}
  low: {ack: 2d, resolve: 7d}
"""


def rules_dir(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "categories.yaml").write_text(text, encoding="utf-8")
    return directory


def test_cli_check_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = rules_dir(tmp_path, RULES.replace(", coast_guard", ""))
    assert main(["org", "check", str(SAMPLE), "--rules", str(rules)]) == 0
    assert capsys.readouterr().out == f"{SAMPLE}: 27 nodes, 45 people\n"


def test_cli_check_default_file_without_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIANHU_ORG_FILE", str(SAMPLE))
    monkeypatch.setenv("LIANHU_RULES_DIR", str(tmp_path / "none"))
    assert main(["org", "check"]) == 0
    assert capsys.readouterr().out == f"{SAMPLE}: 27 nodes, 45 people\n"


def test_cli_check_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(TREE + "    colour: red\n  - {id: S-1, name: 又, kind: street}\n", "utf-8")
    assert main(["org", "check", str(path), "--rules", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{path}:22:5: nodes[4].colour: unknown field",
        f"{path}:23:6: nodes[5].id: duplicate node id 'S-1' (line 2)",
        f"{path}: 2 errors",
    ]


def test_cli_check_departments_against_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = rules_dir(tmp_path, RULES)
    assert main(["org", "check", str(SAMPLE), "--rules", str(rules)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"{SAMPLE}: no department node provides 'coast_guard', named by categories emergency"
        f" (rules: {rules})",
        f"{SAMPLE}: 1 error",
    ]


def test_cli_check_invalid_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = rules_dir(tmp_path, RULES + "colour: red\n")
    assert main(["org", "check", str(SAMPLE), "--rules", str(rules)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{rules}/categories.yaml:12:1: colour: unknown field", f"{rules}: 1 error"]


def test_cli_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing.yaml"
    assert main(["org", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:1:1: -: cannot read:")


def test_cli_show_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["org", "show", str(SAMPLE), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    nodes = {n["id"]: n for n in data["nodes"]}
    assert len(nodes) == 27 and len(data["people"]) == 45
    assert nodes["S-01"]["names"] == {
        "zh-Hans": "海湾街道",
        "zh-Hant": "海灣街道",
        "en": "Haiwan Street",
    }
    assert nodes["D-police"] | {"names": None} == {
        "id": "D-police", "name": "海湾派出所警务联络", "names": None, "kind": "department",
        "tier": None, "parent": "S-01", "department": "police",
        "chats": ["telegram:-1001000000301", "sim:D-police"], "staff_chat": None,
    }  # fmt: skip
    assert nodes["H-01"]["tier"] == "household"
    assert data["people"][0] == {
        "id": "p-chen-zhiqiang", "name": "陈志强", "role": "resident", "scope": "H-01",
        "accounts": ["telegram:100001", "sim:p-chen-zhiqiang"], "lang": "zh-Hans",
        "global": False,
    }  # fmt: skip


def test_cli_show_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["org", "show", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    for text in ("东联村1组联户群", "department (fire)", "telegram:-1001000000221", "p-admin-liu"):
        assert text in out
