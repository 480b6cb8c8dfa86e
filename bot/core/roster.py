"""The roster: who serves where, and which platform accounts are theirs.

The ``people`` section of the organisation file. Each person has a role and a
scope, the node they serve; the role decides which kind of node that must be.
An administrator acts within their scope's subtree too, unless the file makes
them ``global: true`` (only the file can: an invite always has a scope).
``bot.core.org`` checks the scopes against the tree and holds the result.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from bot.core.errors import Problem
from bot.core.models import Lang
from bot.core.yamldoc import Document

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=64)]
ChatId = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]*:\S+$", max_length=128, description="<platform>:<id>"),
]


class Role(StrEnum):
    """What a person does in the ladder."""

    RESIDENT = "resident"
    HOUSEHOLD_LEADER = "household_leader"
    GRID_WORKER = "grid_worker"
    GRID_LEADER = "grid_leader"
    VILLAGE_CADRE = "village_cadre"
    MEDIATOR = "mediator"
    COMMUNITY_POLICE = "community_police"
    STREET_STAFF = "street_staff"
    DEPARTMENT_STAFF = "department_staff"
    ADMIN = "admin"


HANDLER_ROLES = frozenset(Role) - {Role.RESIDENT}
"""Roles that act on tickets of their scope; residents act only on their own tickets."""

# The node kind (a NodeKind value) each role's scope must be; an admin may sit anywhere.
SCOPE_KIND: Mapping[Role, str | None] = MappingProxyType(
    {
        Role.RESIDENT: "household",
        Role.HOUSEHOLD_LEADER: "household",
        Role.GRID_WORKER: "grid",
        Role.GRID_LEADER: "grid",
        Role.VILLAGE_CADRE: "village",
        Role.MEDIATOR: "village",
        Role.COMMUNITY_POLICE: "village",
        Role.STREET_STAFF: "street",
        Role.DEPARTMENT_STAFF: "department",
        Role.ADMIN: None,
    }
)


class PersonSpec(BaseModel):
    """One person as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NodeId
    name: Annotated[str, Field(min_length=1)]
    role: Role
    scope: NodeId
    accounts: list[ChatId] = []
    lang: Lang = Lang.ZH_HANS
    everywhere: bool = Field(
        False, alias="global", description="an administrator of every street (admins only)"
    )


@dataclass(frozen=True)
class Person:
    """Someone on the roster, with the node they serve and their platform accounts."""

    id: str
    name: str
    role: Role
    scope: str
    accounts: tuple[str, ...]
    lang: Lang
    everywhere: bool = False  # an administrator of every street, not only of their scope


def check_people(
    doc: Document,
    specs: Sequence[tuple[int, PersonSpec]],
    kinds: Mapping[str, str],
    broken_nodes: Collection[str],
    problems: list[Problem],
) -> list[Person]:
    """Check ids, accounts and scopes against the node kinds; return the people."""
    people: dict[str, tuple[int, Person]] = {}
    owners: dict[str, str] = {}
    for i, spec in specs:
        at = ("people", i)
        if spec.id in people:
            line, _ = doc.locate(("people", people[spec.id][0]))
            message = f"duplicate person id {spec.id!r} (line {line})"
            problems.append(doc.problem((*at, "id"), message))
        else:
            person = Person(
                spec.id, spec.name, spec.role, spec.scope, tuple(spec.accounts), spec.lang,
                spec.everywhere,
            )  # fmt: skip
            people[spec.id] = (i, person)
        for j, account in enumerate(spec.accounts):
            owner = owners.setdefault(account, spec.id)
            if owner != spec.id or account in spec.accounts[:j]:
                where = "listed twice" if owner == spec.id else f"already belongs to {owner!r}"
                problems.append(doc.problem((*at, "accounts", j), f"account {account!r} {where}"))
        if spec.everywhere and spec.role is not Role.ADMIN:
            message = f"only an admin can be global, not a {spec.role}"
            problems.append(doc.problem((*at, "global"), message))
        expected = SCOPE_KIND[spec.role]
        kind = kinds.get(spec.scope)
        if kind is None:
            if spec.scope not in broken_nodes:  # an invalid node was already reported
                problems.append(doc.problem((*at, "scope"), f"unknown node {spec.scope!r}"))
        elif expected is not None and kind != expected:
            message = f"a {spec.role} serves a {expected}, not {kind} {spec.scope!r}"
            problems.append(doc.problem((*at, "scope"), message))
    return [person for _, person in people.values()]
