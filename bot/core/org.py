"""The organisation tree: streets, villages, grids, household groups and departments.

One YAML file lists the ``nodes`` of the tree and the ``people`` of the roster
(see ``bot.core.roster``). ``build_org`` checks it whole, reporting every
problem as ``file:line:column: field: message``, and returns an immutable
OrgTree; the functions below answer routing and permission questions on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bot.core.errors import InvalidOrg, Problem
from bot.core.models import Lang, Tier
from bot.core.roster import (
    HANDLER_ROLES,
    ChatId,
    NodeId,
    Person,
    PersonSpec,
    Role,
    check_people,
)
from bot.core.rules import RuleSet
from bot.core.yamldoc import Document, Path

__all__ = [
    "HANDLER_ROLES",
    "Node",
    "NodeKind",
    "NodeSpec",
    "OrgTree",
    "Person",
    "Role",
    "ancestors",
    "build_org",
    "check_against_rules",
    "departments_for",
    "handling_node",
    "may_act",
    "next_up",
    "node_of_chat",
    "person_of_account",
    "staff_chat",
]


class NodeKind(StrEnum):
    """What a node of the tree is: a rung of the ladder, or a street department."""

    HOUSEHOLD = "household"
    GRID = "grid"
    VILLAGE = "village"
    STREET = "street"
    DEPARTMENT = "department"

    @property
    def tier(self) -> Tier | None:
        """Return the ladder tier of this kind; None for a department, which is beside it."""
        return None if self is NodeKind.DEPARTMENT else Tier(self.value)


# The kind each kind's parent must be; a street is a root.
PARENT_KIND: Mapping[NodeKind, NodeKind | None] = MappingProxyType(
    {
        NodeKind.HOUSEHOLD: NodeKind.GRID,
        NodeKind.GRID: NodeKind.VILLAGE,
        NodeKind.VILLAGE: NodeKind.STREET,
        NodeKind.STREET: None,
        NodeKind.DEPARTMENT: NodeKind.STREET,
    }
)

DepartmentKind = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeSpec(_Strict):
    """One node as written in the file."""

    id: NodeId
    name: Annotated[str, Field(min_length=1)]
    names: dict[Lang, Annotated[str, Field(min_length=1)]] = {}
    kind: NodeKind
    parent: NodeId | None = None
    department: DepartmentKind | None = None
    chats: list[ChatId] = []
    staff_chat: ChatId | None = None

    @field_validator("names")
    @classmethod
    def _no_second_simplified(cls, names: dict[Lang, str]) -> dict[Lang, str]:
        if Lang.ZH_HANS in names:
            raise ValueError("the zh-Hans name is `name`; list only other languages here")
        return names


class _OrgFile(_Strict):
    # Items are validated one by one, so one bad node does not hide the rest.
    nodes: list[Any] = []
    people: list[Any] = []


@dataclass(frozen=True)
class Node:
    """A group of the tree and the chats bound to it."""

    id: str
    name: str
    names: Mapping[Lang, str]
    kind: NodeKind
    tier: Tier | None
    parent: str | None
    department: str | None
    chats: tuple[str, ...]
    staff_chat: str | None
    # ``names`` keyed by language code, as templates read them: built once, for every card
    # and notice asks (a sweep escalating thousands of tickets: tens of thousands of times).
    coded_names: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        coded = MappingProxyType({lang.value: name for lang, name in self.names.items()})
        object.__setattr__(self, "coded_names", coded)

    def display_name(self, lang: Lang = Lang.ZH_HANS) -> str:
        """Return the name in ``lang``, falling back to Simplified Chinese."""
        return self.names.get(lang) or self.name


@dataclass(frozen=True)
class OrgTree:
    """Every node and person of one file, with indexes by chat and by account."""

    nodes: Mapping[str, Node]
    people: Mapping[str, Person]
    children: Mapping[str, tuple[str, ...]]
    chats: Mapping[str, str]
    accounts: Mapping[str, str]


class _HasDepartments(Protocol):
    @property
    def departments(self) -> Sequence[str]: ...


_M = TypeVar("_M", bound=BaseModel)


def build_org(doc: Document) -> OrgTree:
    """Validate a parsed organisation file; raise InvalidOrg listing every problem."""
    if not isinstance(doc.data, dict):
        raise InvalidOrg([doc.problem((), "an organisation file is a mapping of nodes and people")])
    try:
        top = _OrgFile.model_validate(doc.data)
    except ValidationError as exc:
        raise InvalidOrg(doc.validation_problems(exc)) from None
    problems: list[Problem] = []
    node_specs, broken_nodes = _validate_items(doc, "nodes", top.nodes, NodeSpec, problems)
    person_specs, _ = _validate_items(doc, "people", top.people, PersonSpec, problems)
    index = _check_nodes(doc, node_specs, broken_nodes, problems)
    kinds = {node_id: spec.kind.value for node_id, (_, spec) in index.items()}
    people = check_people(doc, person_specs, kinds, broken_nodes, problems)
    if problems:
        raise InvalidOrg(problems)
    return _assemble([spec for _, spec in node_specs], people)


def _validate_items(
    doc: Document, section: str, items: Sequence[Any], model: type[_M], problems: list[Problem]
) -> tuple[list[tuple[int, _M]], set[str]]:
    """Validate each item; return the valid ones and the ids of the invalid ones."""
    valid: list[tuple[int, _M]] = []
    broken: set[str] = set()
    for i, item in enumerate(items):
        try:
            valid.append((i, model.model_validate(item)))
        except ValidationError as exc:
            problems.extend(doc.validation_problems(exc, (section, i)))
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                broken.add(item["id"])
    return valid, broken


def _check_nodes(
    doc: Document, specs: Sequence[tuple[int, NodeSpec]], broken: set[str], problems: list[Problem]
) -> dict[str, tuple[int, NodeSpec]]:
    """Check ids, parents, departments and chats; return the nodes by id."""
    index: dict[str, tuple[int, NodeSpec]] = {}
    for i, spec in specs:
        if spec.id in index:
            line, _ = doc.locate(("nodes", index[spec.id][0]))
            problems.append(
                doc.problem(("nodes", i, "id"), f"duplicate node id {spec.id!r} (line {line})")
            )
        else:
            index[spec.id] = (i, spec)
    bound: dict[str, str] = {}
    for i, spec in specs:
        at: Path = ("nodes", i)
        if spec.kind is NodeKind.DEPARTMENT and spec.department is None:
            problems.append(doc.problem((*at, "department"), "field required for a department"))
        elif spec.kind is not NodeKind.DEPARTMENT and spec.department is not None:
            message = f"only a department names a department kind, not a {spec.kind}"
            problems.append(doc.problem((*at, "department"), message))
        _check_parent(doc, at, spec, index, broken, problems)
        places: list[tuple[Path, str]] = [((*at, "chats", j), c) for j, c in enumerate(spec.chats)]
        if spec.staff_chat is not None:
            places.append(((*at, "staff_chat"), spec.staff_chat))
        for path, chat in places:
            if chat in bound:
                owner = bound[chat]
                where = "listed twice" if owner == spec.id else f"already bound to node {owner!r}"
                problems.append(doc.problem(path, f"chat {chat!r} {where}"))
            else:
                bound[chat] = spec.id
    if not broken and not any(spec.kind is NodeKind.STREET for _, spec in specs):
        problems.append(doc.problem(("nodes",), "no street: the tree needs at least one"))
    problems.extend(_cycles(doc, index))
    return index


def _check_parent(
    doc: Document,
    at: Path,
    spec: NodeSpec,
    index: Mapping[str, tuple[int, NodeSpec]],
    broken: set[str],
    problems: list[Problem],
) -> None:
    """Check that a node's parent exists and is of the kind its own kind needs."""
    expected = PARENT_KIND[spec.kind]
    path = (*at, "parent")
    if expected is None:
        if spec.parent is not None:
            problems.append(doc.problem(path, f"a {spec.kind} has no parent"))
    elif spec.parent is None:
        problems.append(
            doc.problem(path, f"field required: a {spec.kind} needs a parent {expected}")
        )
    elif spec.parent not in index:
        if spec.parent not in broken:  # an invalid node was already reported
            problems.append(doc.problem(path, f"unknown node {spec.parent!r}"))
    else:
        parent = index[spec.parent][1]
        if parent.kind is not expected:
            message = f"a {spec.kind} needs a parent {expected}, not {parent.kind} {parent.id!r}"
            problems.append(doc.problem(path, message))


def _cycles(doc: Document, index: Mapping[str, tuple[int, NodeSpec]]) -> list[Problem]:
    """Return one problem per loop of parents, at the loop's first node in the file."""
    problems = []
    done: set[str] = set()
    for start in index:
        chain: list[str] = []
        node_id: str | None = start
        while node_id is not None and node_id in index and node_id not in done:
            if node_id in chain:
                loop = chain[chain.index(node_id) :]
                first = min(loop, key=lambda n: index[n][0])
                turn = loop.index(first)
                shown = " → ".join([*loop[turn:], *loop[:turn], first])
                at = ("nodes", index[first][0], "parent")
                problems.append(doc.problem(at, f"parents form a loop: {shown}"))
                break
            chain.append(node_id)
            node_id = index[node_id][1].parent
        done.update(chain)
    return problems


def _assemble(specs: Iterable[NodeSpec], people: Iterable[Person]) -> OrgTree:
    """Build the immutable tree from checked specs."""
    nodes: dict[str, Node] = {}
    children: dict[str, list[str]] = {}
    chats: dict[str, str] = {}
    for spec in specs:
        names = MappingProxyType({Lang.ZH_HANS: spec.name, **spec.names})
        nodes[spec.id] = Node(
            id=spec.id, name=spec.name, names=names, kind=spec.kind, tier=spec.kind.tier,
            parent=spec.parent, department=spec.department, chats=tuple(spec.chats),
            staff_chat=spec.staff_chat,
        )  # fmt: skip
        if spec.parent is not None:
            children.setdefault(spec.parent, []).append(spec.id)
        for chat in (*spec.chats, *([spec.staff_chat] if spec.staff_chat else [])):
            chats[chat] = spec.id
    roster = {person.id: person for person in people}
    accounts = {account: person.id for person in roster.values() for account in person.accounts}
    return OrgTree(
        nodes=MappingProxyType(nodes),
        people=MappingProxyType(roster),
        children=MappingProxyType({k: tuple(v) for k, v in children.items()}),
        chats=MappingProxyType(chats),
        accounts=MappingProxyType(accounts),
    )


def node_of_chat(tree: OrgTree, chat: str) -> Node | None:
    """Return the node a chat (public or staff) is bound to, or None."""
    node_id = tree.chats.get(chat)
    return None if node_id is None else tree.nodes[node_id]


def staff_chat(tree: OrgTree, chat: str) -> bool:
    """Return whether only staff read ``chat``: a node's staff chat, or a department's group."""
    node = node_of_chat(tree, chat)
    if node is None:
        return False
    return chat == node.staff_chat or node.kind is NodeKind.DEPARTMENT


def person_of_account(tree: OrgTree, account: str) -> Person | None:
    """Return the person a platform account belongs to, or None."""
    person_id = tree.accounts.get(account)
    return None if person_id is None else tree.people[person_id]


def ancestors(tree: OrgTree, node_id: str) -> tuple[Node, ...]:
    """Return the node and its parents up to its street; raise KeyError for an unknown id."""
    chain = [tree.nodes[node_id]]
    while (parent := chain[-1].parent) is not None:
        chain.append(tree.nodes[parent])
    return tuple(chain)


def handling_node(tree: OrgTree, start_tier: Tier, origin_id: str) -> Node:
    """Return the node at ``start_tier`` above the origin, or the origin if already higher."""
    # A department has no tier: what is reported there is handled there.
    return next(
        node
        for node in ancestors(tree, origin_id)
        if node.tier is None or node.tier.level >= start_tier.level
    )


def next_up(tree: OrgTree, node_id: str) -> Node | None:
    """Return the node a ticket climbs to from this one; None at a street."""
    parent = tree.nodes[node_id].parent
    return None if parent is None else tree.nodes[parent]


def departments_for(tree: OrgTree, category: _HasDepartments, origin_id: str) -> tuple[Node, ...]:
    """Return the departments of the origin's street that the category names, in its order."""
    street = ancestors(tree, origin_id)[-1]
    mine = [tree.nodes[n] for n in tree.children.get(street.id, ())]
    return tuple(node for kind in category.departments for node in mine if node.department == kind)


def may_act(tree: OrgTree, person: Person, node_id: str) -> bool:
    """Return whether the person may handle tickets at this node."""
    if node_id not in tree.nodes or person.role not in HANDLER_ROLES:
        return False
    if person.role is Role.ADMIN and person.everywhere:
        return True
    if person.role is Role.HOUSEHOLD_LEADER:
        return node_id == person.scope
    return any(node.id == person.scope for node in ancestors(tree, node_id))


def check_against_rules(tree: OrgTree, ruleset: RuleSet) -> list[str]:
    """Return one message per department kind the rules name that no node provides."""
    provided = {node.department for node in tree.nodes.values() if node.department}
    wanted: dict[str, list[str]] = {}
    for category_id, category in ruleset.categories.items():
        for kind in category.departments:
            wanted.setdefault(kind, []).append(category_id)
    return [
        f"no department node provides {kind!r}, named by categories {', '.join(users)}"
        for kind, users in sorted(wanted.items())
        if kind not in provided
    ]
