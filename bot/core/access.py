"""Who may see a ticket, and what each of its reporters is told.

The model (the README's Tickets section says the same to users):

- The first reporter owns the ticket: they hear every note, the resolution and
  the reasons, and they confirm, reopen or rate it (as may an administrator in
  scope). Silence for the quiet period closes it.
- A co-reporter joined by reporting the same public problem from the same
  village. They hear the ticket's progress (acknowledged, escalated, resolved,
  closed) but not what was written for the first reporter: no report text, no
  notes, no reasons, no resolution, and no one else's name. They may add notes
  about their own report; they cannot confirm, reopen or rate the ticket. If
  their own problem remains after it closes, they report it again.
- Staff-only tickets (sensitive categories) never gain co-reporters by
  matching: a matching report opens its own ticket.
- Anyone else who may not see a ticket is told only "not found or not yours",
  whatever the ticket is, so that ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.models import Visibility
from bot.core.org import HANDLER_ROLES, OrgTree, Person, Role, may_act
from bot.core.ticket import Reporter, Ticket

# Ticket parameters written for the first reporter (or by them) that a co-reporter never gets.
PRIVATE_FIELDS = ("text", "resolution", "note", "reason")


def staff_only(ticket: Ticket) -> bool:
    """Return whether the ticket is of a sensitive category, shown to staff only."""
    return ticket.visibility == Visibility.STAFF


def first_reporter(ticket: Ticket, account: str) -> bool:
    """Return whether ``account`` opened the ticket."""
    return ticket.reporter.account == account


def co_reporter(ticket: Ticket, account: str) -> bool:
    """Return whether ``account`` joined the ticket with a report of their own."""
    return ticket.reported_by(account) and not first_reporter(ticket, account)


def may_handle(tree: OrgTree, person: Person | None, ticket: Ticket) -> bool:
    """Return whether ``person`` may act on the ticket at its current node."""
    return (
        person is not None and person.role in HANDLER_ROLES and may_act(tree, person, ticket.node)
    )


def handled_earlier(tree: OrgTree, person: Person | None, ticket: Ticket) -> bool:
    """Return whether ``person`` could act on the ticket at a node that held it before."""
    return (
        person is not None
        and person.role in HANDLER_ROLES
        and any(may_act(tree, person, node) for node in ticket.handled_at)
    )


def assisting(tree: OrgTree, person: Person | None, ticket: Ticket) -> str | None:
    """Return the department node asked to report in on the ticket that ``person`` serves."""
    if person is None or person.role not in HANDLER_ROLES:
        return None
    return next((d for d in ticket.departments if may_act(tree, person, d)), None)


def covers_origin(tree: OrgTree, person: Person | None, ticket: Ticket) -> bool:
    """Return whether ``person`` is staff of the place where the ticket was reported.

    A household leader relays for neighbours, so they see their group's public
    tickets, but not a staff-only one: they are a neighbour too.
    """
    if person is None or person.role not in HANDLER_ROLES:
        return False
    if staff_only(ticket) and person.role is Role.HOUSEHOLD_LEADER:
        return False
    return may_act(tree, person, ticket.origin)


def may_view(tree: OrgTree, person: Person | None, account: str, ticket: Ticket) -> bool:
    """Return whether ``account`` may learn anything of the ticket, even that it exists."""
    return (
        ticket.reported_by(account)
        or may_handle(tree, person, ticket)
        or covers_origin(tree, person, ticket)
        or handled_earlier(tree, person, ticket)
        or assisting(tree, person, ticket) is not None
    )


def for_co_reporter(params: Mapping[str, Any], reporter: Reporter) -> dict[str, Any]:
    """Return ticket parameters for a co-reporter: their own name, nobody else's words."""
    out = dict(params)
    for key in PRIVATE_FIELDS:
        if key in out:
            out[key] = ""
    out["reporter"] = reporter.name
    out["co_reporter"] = True
    return out


def may_see(tree: OrgTree, person: Person | None, accounts: Sequence[str], ticket: Ticket) -> bool:
    """Return whether someone signed in with ``accounts`` (all of one person's) may see a ticket.

    The web console's rule is the chat's (``may_view``), for any of the person's accounts:
    staff see what their scope may handle or covers, a resident only what they reported.
    """
    return any(may_view(tree, person, account, ticket) for account in accounts)


def may_act_on(tree: OrgTree, person: Person | None, ticket: Ticket) -> bool:
    """Return whether the console offers a handler's actions on the ticket to ``person``."""
    return may_handle(tree, person, ticket) and not ticket.state.final
