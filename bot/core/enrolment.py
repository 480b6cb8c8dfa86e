"""Setting groups up in chat: ``/bind``, ``/invite``, ``/join`` and ``/revoke``, and their overlay.

The organisation file stays the source of the initial tree and roster. What
administrators do in chat (bind a group to a node, enrol staff with one-time
codes, revoke them) is stored beside it and laid over the file's tree by
``overlay``: a binding adds a chat to a node (or makes it the node's staff
chat), an enrolment gives an account a role and a scope. The file wins where
the two disagree: a chat bound in the file cannot be taken by ``/bind``, and an
enrolment never overrides a person the file names (to demote one, edit the
file). A revocation wins over every enrolment made before it.

An administrator acts within their scope's subtree (``bot.core.org.may_act``):
they bind, invite and revoke only there, unless the file makes them global.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from bot.core.models import Lang
from bot.core.org import Node, OrgTree, Person, Role, may_act
from bot.core.roster import SCOPE_KIND


class AdminVerb(StrEnum):
    """The chat commands that change the tree or the roster."""

    BIND = "bind"
    INVITE = "invite"
    JOIN = "join"
    REVOKE = "revoke"


@dataclass(frozen=True)
class AdminCommand:
    """A parsed ``/bind``, ``/invite``, ``/join`` or ``/revoke``."""

    verb: AdminVerb
    target: str = ""  # "grid:G-03"; for /revoke the account or person
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
    at: float = 0.0  # when it was made: a revocation after this time voids it


@dataclass(frozen=True)
class Invite:
    """What a one-time code enrols its user as."""

    role: Role
    scope: str


@dataclass(frozen=True)
class AdminRefusal:
    """Why an admin command was not carried out; ``reason`` names a template."""

    reason: str
    params: Mapping[str, Any]


_COMMAND = re.compile(r"^/(bind|invite|join|revoke)(?:@\w+)?(?:\s+(.*))?$", re.S | re.I)
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
    elif verb is AdminVerb.REVOKE:
        if len(args) == 1 and args[0].lstrip("@"):
            return AdminCommand(verb, target=args[0].lstrip("@"))
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
    file_tree: OrgTree,
    person: Person | None,
    chat: str,
    private: bool,
    command: AdminCommand,
    bound_to: str | None = None,
) -> Binding | AdminRefusal:
    """Return the binding ``/bind`` asks for, or why not (checked against the file's tree).

    ``bound_to`` is the node the chat is bound to now (in the file or in chat): an
    administrator may not take a chat away from a node outside their scope.
    """
    if not _is_admin(person):
        return AdminRefusal("not_admin", {"verb": command.verb.value})
    assert person is not None
    if private:
        return AdminRefusal("bind_in_group", {})
    node = target_node(file_tree, command.target)
    if isinstance(node, AdminRefusal):
        return node
    if not may_act(file_tree, person, node.id) or (
        bound_to is not None and not may_act(file_tree, person, bound_to)
    ):
        return AdminRefusal("node_out_of_scope", {"target": command.target})
    owner = file_tree.chats.get(chat)
    if owner is not None and owner != node.id:
        bound = file_tree.nodes[owner]
        names = {lang.value: name for lang, name in bound.names.items()}  # the `place` filter
        return AdminRefusal("chat_bound_in_file", {"node_name": bound.name, "node_names": names})
    return Binding(chat, node.id, command.staff)


def decide_invite(
    tree: OrgTree, person: Person | None, private: bool, command: AdminCommand
) -> Invite | AdminRefusal:
    """Return what the code ``/invite`` asks for enrols, or why not."""
    if not _is_admin(person):
        return AdminRefusal("not_admin", {"verb": command.verb.value})
    assert person is not None
    if not private:  # a code posted in a group could be used by anyone who reads it
        return AdminRefusal("invite_in_private", {})
    invite = invite_for(tree, Role(command.role), command.target)
    if isinstance(invite, Invite) and not may_act(tree, person, invite.scope):
        return AdminRefusal("node_out_of_scope", {"target": command.target})
    return invite


def decide_revoke(
    file_tree: OrgTree,
    person: Person | None,
    private: bool,
    command: AdminCommand,
    enrolments: Mapping[str, Enrolment],
    platform: str,
) -> Enrolment | AdminRefusal:
    """Return the enrolment ``/revoke`` ends, or why not.

    The target is an account (``telegram:123``, or ``123`` on the admin's platform),
    an enrolled person's id (``enrolled:telegram:123``) or their name. An account the
    file names is the file's to change; one outside the admin's scope is "not found".
    """
    if not _is_admin(person):
        return AdminRefusal("not_admin", {"verb": command.verb.value})
    assert person is not None
    if not private:
        return AdminRefusal("revoke_in_private", {})
    account = revoke_target(command.target, enrolments, platform)
    if account is None:
        if command.target in file_tree.accounts or command.target in file_tree.people:
            return AdminRefusal("revoke_in_file", {"target": command.target})
        return AdminRefusal("revoke_unknown", {"target": command.target})
    if account in file_tree.accounts:
        return AdminRefusal("revoke_in_file", {"target": command.target})
    enrolment = enrolments.get(account)
    if enrolment is None or not may_act(file_tree, person, enrolment.scope):
        return AdminRefusal("revoke_unknown", {"target": command.target})
    return enrolment


def revoke_target(target: str, enrolments: Mapping[str, Enrolment], platform: str) -> str | None:
    """Return the account ``target`` names among the enrolments (or as an account), or None."""
    target = target.removeprefix("enrolled:")
    if ":" in target:
        return target
    if target.isdigit():
        return f"{platform}:{target}"
    named = [e.account for e in enrolments.values() if e.name == target]
    return named[0] if len(named) == 1 else None


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
    tree: OrgTree,
    bindings: Mapping[str, Binding],
    enrolments: Mapping[str, Enrolment],
    revoked: Mapping[str, float] = MappingProxyType({}),
) -> OrgTree:
    """Return the tree with the chat-made bindings and enrolments laid over it.

    ``revoked`` holds when each account was last revoked: an enrolment made before
    that counts for nothing.
    """
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
        if e.scope not in nodes or e.account in tree.accounts:  # the file names this account
            continue
        if e.at <= revoked.get(e.account, float("-inf")):
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
