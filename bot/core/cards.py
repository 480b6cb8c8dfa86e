"""What a ticket's cards show as it moves on: state, handler, reporters and the live buttons.

A card is rendered once from the parameters of its moment (``workflow._cards``).
When the ticket changes, every card already sent is edited to the ticket's
*view*: the card's own parameters with the fields below replaced, and only the
buttons that still apply, and only where they apply (the chats of the node that
handles the ticket now, and the assignee's private chat). A card at a tier the
ticket has left, or of a settled ticket, keeps its text and loses its buttons.

Each stage of a ticket (opened, reopened, moved to a node) sends the handling node a
new card; an older card of the ticket in a chat that got one (``renewed``) keeps its
text and loses its buttons, so that one card of a ticket per chat offers them.
"""

from __future__ import annotations

from typing import Any

from bot.core.models import Visibility, platform_of
from bot.core.org import Node, OrgTree, ancestors, next_up
from bot.core.ticket import Ticket, TicketState

# The buttons a handler's card offers in each state; a state not listed offers none.
LIVE_BUTTONS = {
    TicketState.OPEN: ("ack", "resolve", "escalate"),
    TicketState.ESCALATED: ("ack", "resolve", "escalate"),
    TicketState.REOPENED: ("ack", "resolve", "escalate"),
    TicketState.ACKNOWLEDGED: ("resolve", "escalate"),
}


def reporter_buttons(ticket: Ticket) -> tuple[str, ...]:
    """Return what a reporter's notice may still offer: 确认/重开 while resolved, then a rating."""
    out: tuple[str, ...] = ()
    if ticket.state is TicketState.RESOLVED:
        out += ("confirm", "reopen")
    if ticket.state in (TicketState.RESOLVED, TicketState.CLOSED) and ticket.rating is None:
        out += ("rate",)
    return out


def co_reporter_buttons(ticket: Ticket) -> tuple[str, ...]:
    """Return what a co-reporter's notice may still offer: their own 重开 (a ticket of their
    own) while the ticket is resolved or closed, not while it is being handled again."""
    return ("reopen",) if ticket.state in (TicketState.RESOLVED, TicketState.CLOSED) else ()


def live_buttons(tree: OrgTree, ticket: Ticket) -> tuple[str, ...]:
    """Return the buttons that apply to the ticket now (no escalate at the top)."""
    buttons = LIVE_BUTTONS.get(ticket.state, ())
    if next_up(tree, ticket.node) is None:
        buttons = tuple(b for b in buttons if b != "escalate")
    return buttons


# A department asked to report in has its own two steps (到场, 协办完成), each pressed once.
DEPARTMENT_BUTTONS = ("arrive", "assisted")
_STEP_OF = {"arrive": "arrived", "assisted": "assisted"}


def live_chats(tree: OrgTree, ticket: Ticket) -> list[str]:
    """Return the chats whose cards keep the handler's buttons.

    The handling node's and the assignee's private chats (the departments' cards have
    buttons of their own: ``department_buttons``).
    """
    chats = _chats(tree, ticket.node)
    person = tree.people.get(ticket.assignee) if ticket.assignee else None
    return chats + (list(person.accounts) if person else [])


def department_buttons(ticket: Ticket, department: str) -> tuple[str, ...]:
    """Return the steps a department asked to report in may still press (none once settled)."""
    if not ticket.state.active:
        return ()
    done = ticket.department_steps.get(department, {})
    return tuple(b for b in DEPARTMENT_BUTTONS if _STEP_OF[b] not in done)


def card_chats(node: Node, staff_only: bool) -> list[str]:
    """Return the chats a node's cards of a ticket go to: its groups, and its staff chat
    for a staff-only ticket."""
    staff = [node.staff_chat] if staff_only and node.staff_chat else []
    return [*staff, *node.chats]


def card_view(
    tree: OrgTree, ticket: Ticket, params: dict[str, Any], renewed: bool = True
) -> dict[str, Any]:
    """Return the view every card of the ticket is brought to.

    ``params`` are the ticket's template parameters (``workflow.ticket_params``); only
    the fields that change as the ticket moves are taken, so that a redacted card
    stays redacted and a masked one masked. ``renewed`` is False when the current
    stage's cards were held by quiet hours (``quiet.stage_held``): the older cards
    are then the only ones with buttons in their chats.
    """
    changing = (
        "state", "assignee", "assignee_id", "reporters", "node", "node_name", "node_names",
        "ack_due", "resolve_due", "escalations", "resolution", "flagged",
        "department_steps", "related",
    )  # fmt: skip
    node = tree.nodes.get(ticket.node)
    staff_only = ticket.visibility == Visibility.STAFF
    return {
        "seq": ticket.seq,
        "stage": ticket.stage,
        # the chats that got a card at this stage: their older cards' buttons go
        "renewed": card_chats(node, staff_only) if renewed and node and not node.department else [],
        "params": {k: params[k] for k in changing},
        "buttons": list(live_buttons(tree, ticket)),
        "live": live_chats(tree, ticket),
        "reporter": list(reporter_buttons(ticket)),  # the first reporter's notices
        "co_reporter": list(co_reporter_buttons(ticket)),
        # the departments' cards: chat -> the steps still to press
        "chat_buttons": {
            chat: list(department_buttons(ticket, node_id))
            for node_id in ticket.departments
            for chat in _chats(tree, node_id)
        },
    }


def card_platforms(tree: OrgTree, ticket: Ticket) -> list[str]:
    """Return the platforms that may hold a card of the ticket (each gets an edit entry)."""
    path = ancestors(tree, ticket.origin) if ticket.origin in tree.nodes else ()
    nodes = {*(n.id for n in path), ticket.node, *ticket.departments}
    chats = [c for node_id in nodes for c in _chats(tree, node_id)]
    person = tree.people.get(ticket.assignee) if ticket.assignee else None
    chats += list(person.accounts) if person else []
    return sorted({platform_of(c) for c in chats})


def _chats(tree: OrgTree, node_id: str) -> list[str]:
    """Return a node's group chats and its staff chat."""
    node = tree.nodes.get(node_id)
    if node is None:
        return []
    return [*node.chats, *([node.staff_chat] if node.staff_chat else [])]
