"""Who is in which simulator chat: the roster's people and the groups each of them sees.

A resident sees their household group. A handler sees every group of their scope
and the group just above it, which is where the four-level model seats them
(household leaders sit in their grid's group, grid workers in the village's,
village cadres in the street's, department liaisons in the street's). Street
staff and the administrator see every group. Everyone also has a private chat
with the bot, whose id is their own account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.core.org import Node, NodeKind, OrgTree, Person, Role, ancestors

PLATFORM = "sim"

# The order of the sections of the chat list, and of the people in the switcher.
KIND_ORDER = (
    NodeKind.HOUSEHOLD,
    NodeKind.GRID,
    NodeKind.VILLAGE,
    NodeKind.STREET,
    NodeKind.DEPARTMENT,
)
ROLE_ORDER = (
    Role.RESIDENT,
    Role.HOUSEHOLD_LEADER,
    Role.GRID_WORKER,
    Role.GRID_LEADER,
    Role.VILLAGE_CADRE,
    Role.MEDIATOR,
    Role.COMMUNITY_POLICE,
    Role.STREET_STAFF,
    Role.DEPARTMENT_STAFF,
    Role.ADMIN,
)


@dataclass(frozen=True)
class Room:
    """A simulator chat a person sees: a node's group, or their private chat with the bot."""

    chat: str
    node: Node | None  # None for the private chat
    kind: str  # a NodeKind value, or "private"


def sim_chat(node: Node) -> str | None:
    """Return the node's simulator chat, or None when it has none."""
    return next((c for c in node.chats if c.startswith(f"{PLATFORM}:")), None)


def sim_account(person: Person) -> str | None:
    """Return the person's simulator account, or None."""
    return next((a for a in person.accounts if a.startswith(f"{PLATFORM}:")), None)


def people(tree: OrgTree) -> list[Person]:
    """Return the people who have a simulator account, by role, in the file's order."""
    found = [p for p in tree.people.values() if sim_account(p)]
    return sorted(found, key=lambda p: ROLE_ORDER.index(p.role))


def visible_nodes(tree: OrgTree, person: Person) -> list[Node]:
    """Return the nodes whose groups ``person`` sees (see the module docstring)."""
    if person.role is Role.ADMIN:
        return list(tree.nodes.values())
    if person.role is Role.RESIDENT:
        return [tree.nodes[person.scope]]
    below = [n for n in tree.nodes.values() if _within(tree, n, person.scope)]
    parent = tree.nodes[person.scope].parent
    return ([tree.nodes[parent]] if parent else []) + below


def _within(tree: OrgTree, node: Node, scope: str) -> bool:
    return any(a.id == scope for a in ancestors(tree, node.id))


def rooms(tree: OrgTree, person: Person) -> list[Room]:
    """Return the chats ``person`` sees: groups by tier, lowest first, then the private chat."""
    nodes = visible_nodes(tree, person)
    out = []
    for kind in KIND_ORDER:
        for node in nodes:
            chat = sim_chat(node)
            if node.kind is kind and chat is not None:
                out.append(Room(chat, node, kind.value))
    account = sim_account(person)
    if account is not None:
        out.append(Room(account, None, "private"))
    return out


def own_chat(tree: OrgTree, person: Person) -> str | None:
    """Return the chat a person works in: their scope node's group, or its staff chat.

    A resident's is their household group; staff's is the group of the node they serve.
    """
    node = tree.nodes.get(person.scope)
    if node is None:
        return None
    staff = (
        node.staff_chat if node.staff_chat and node.staff_chat.startswith(f"{PLATFORM}:") else None
    )
    return sim_chat(node) or staff


def by_activity(
    tree: OrgTree, person: Person, found: Sequence[Room], last_at: Mapping[str, float]
) -> tuple[Room | None, list[Room]]:
    """Return the person's own group, and the other chats, most recently active first.

    Chats with no message yet follow, in the order of ``rooms`` (lowest tier first).
    """
    mine = own_chat(tree, person)
    own = next((r for r in found if r.chat == mine), None)
    rest = [r for r in found if r is not own]
    order = {r.chat: i for i, r in enumerate(rest)}
    rest.sort(key=lambda r: (-last_at.get(r.chat, 0.0), order[r.chat]))
    return own, rest
