"""Setting groups up in chat: ``/bind``, ``/invite`` and ``/join``, and their overlay on the tree.

The organisation file stays the source of the initial tree and roster. What
administrators do in chat (bind a group to a node, enrol staff with one-time
codes) is stored beside it and laid over the file's tree by ``overlay``: a
binding adds a chat to a node (or makes it the node's staff chat), an
enrolment gives an account a role and a scope. The file wins where the two
disagree, so a chat bound in the file cannot be taken by ``/bind``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType

from bot.core.models import Lang
from bot.core.org import Node, OrgTree, Person, Role
from bot.core.roster import SCOPE_KIND


class AdminVerb(StrEnum):
    """The chat commands that change the tree or the roster."""

    BIND = "bind"
    INVITE = "invite"
    JOIN = "join"


@dataclass(frozen=True)
class AdminCommand:
    """A parsed ``/bind``, ``/invite`` or ``/join``."""

    verb: AdminVerb
    target: str = ""  # "grid:G-03"
    role: str = ""  # for /invite
    code: str = ""  # for /join
    staff: bool = False  # /bind ... staff: the node's staff-only chat


@dataclass(frozen=True)
class Binding:
    """A chat bound to a node in chat; ``thread`` is the forum topic cards go to."""

    chat: str
    node: str
    staff: bool = False
    thread: int | None = None


@dataclass(frozen=True)
class Enrolment:
    """An account given a role and a scope with a one-time code."""

    account: str
    name: str
    role: Role
    scope: str
    lang: Lang = Lang.ZH_HANS
    code: str = ""


@dataclass(frozen=True)
class Invite:
    """What a one-time code enrols its user as."""

    role: Role
    scope: str


@dataclass(frozen=True)
class AdminRefusal:
    """Why an admin command was not carried out; ``reason`` names a template."""

    reason: str
    params: Mapping[str, str]


_COMMAND = re.compile(r"^/(bind|invite|join)(?:@\w+)?(?:\s+(.*))?$", re.S | re.I)
_TARGET = re.compile(r"^([a-z]+):([A-Za-z][A-Za-z0-9_-]*)$")
_CODE = re.compile(r"^[A-Z2-9]{6,16}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
CODE_LENGTH = 8


def parse_admin(text: str) -> AdminCommand | AdminRefusal | None:
    """Return the admin command in a message, a usage refusal, or None for anything else."""
    m = _COMMAND.match(text.strip())
    if m is None:
        return None
    verb = AdminVerb(m.group(1).lower())
    args = (m.group(2) or "").split()
    if verb is AdminVerb.BIND:
        if len(args) in (1, 2) and _TARGET.match(args[0]) and args[1:] in ([], ["staff"]):
            return AdminCommand(verb, target=args[0], staff=args[1:] == ["staff"])
    elif verb is AdminVerb.INVITE:
        if len(args) == 2 and args[0] in set(Role) and _TARGET.match(args[1]):
            return AdminCommand(verb, role=args[0], target=args[1])
    elif len(args) == 1 and _CODE.match(args[0].upper()):
        return AdminCommand(verb, code=args[0].upper())
    return AdminRefusal(f"{verb.value}_usage", {})


def target_node(tree: OrgTree, target: str) -> Node | AdminRefusal:
    """Return the node ``kind:id`` names, or a refusal when there is none of that kind."""
    m = _TARGET.match(target)
    node = tree.nodes.get(m.group(2)) if m else None
    if m is None or node is None or node.kind.value != m.group(1):
        return AdminRefusal("unknown_node", {"target": target})
    return node


def _is_admin(person: Person | None) -> bool:
    return person is not None and person.role is Role.ADMIN


def decide_bind(
    file_tree: OrgTree, person: Person | None, chat: str, private: bool, command: AdminCommand
) -> Binding | AdminRefusal:
    """Return the binding ``/bind`` asks for, or why not (checked against the file's tree)."""
    if not _is_admin(person):
        return AdminRefusal("not_admin", {"verb": command.verb.value})
    if private:
        return AdminRefusal("bind_in_group", {})
    node = target_node(file_tree, command.target)
    if isinstance(node, AdminRefusal):
        return node
    owner = file_tree.chats.get(chat)
    if owner is not None and owner != node.id:
        return AdminRefusal("chat_bound_in_file", {"node": file_tree.nodes[owner].name})
    return Binding(chat, node.id, command.staff)


def decide_invite(
    tree: OrgTree, person: Person | None, private: bool, command: AdminCommand
) -> Invite | AdminRefusal:
    """Return what the code ``/invite`` asks for enrols, or why not."""
    if not _is_admin(person):
        return AdminRefusal("not_admin", {"verb": command.verb.value})
    if not private:  # a code posted in a group could be used by anyone who reads it
        return AdminRefusal("invite_in_private", {})
    return invite_for(tree, Role(command.role), command.target)


def invite_for(tree: OrgTree, role: Role, target: str) -> Invite | AdminRefusal:
    """Return the invite for ``role`` at the node ``target`` names, or why there is none."""
    node = target_node(tree, target)
    if isinstance(node, AdminRefusal):
        return node
    kind = SCOPE_KIND[role]
    if kind is not None and node.kind.value != kind:
        return AdminRefusal("role_scope", {"role": role.value, "kind": kind})
    return Invite(role, node.id)


def overlay(
    tree: OrgTree, bindings: Mapping[str, Binding], enrolments: Mapping[str, Enrolment]
) -> OrgTree:
    """Return the tree with the chat-made bindings and enrolments laid over it."""
    if not bindings and not enrolments:
        return tree
    nodes = dict(tree.nodes)
    for binding in bindings.values():
        node = nodes.get(binding.node)
        if node is None or binding.chat in tree.chats:  # node gone, or the file binds the chat
            continue
        if binding.staff:
            nodes[node.id] = replace(node, staff_chat=binding.chat)
        elif binding.chat not in node.chats:
            nodes[node.id] = replace(node, chats=(*node.chats, binding.chat))
    chats = {
        chat: node.id
        for node in nodes.values()
        for chat in (*node.chats, *([node.staff_chat] if node.staff_chat else []))
    }
    people = dict(tree.people)
    accounts = dict(tree.accounts)
    for e in enrolments.values():
        if e.scope not in nodes:
            continue
        person_id = f"enrolled:{e.account}"
        people[person_id] = Person(person_id, e.name, e.role, e.scope, (e.account,), e.lang)
        accounts[e.account] = person_id
    return replace(
        tree,
        nodes=MappingProxyType(nodes),
        people=MappingProxyType(people),
        chats=MappingProxyType(chats),
        accounts=MappingProxyType(accounts),
    )
