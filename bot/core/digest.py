"""The morning digest: each handling group's queue of open tickets, once a day.

A group that owes work gets one message a day listing it, overdue first; a
group that owes nothing hears nothing (a bot that talks too much gets muted).
The digest goes where the node's cards go: its staff chat when it has one
(full), otherwise its group chats (sensitive tickets show only their category).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.models import Reply, Visibility
from bot.core.ticket import Ticket
from bot.core.workflow import Context, ticket_params

LISTED = 8  # tickets named in a digest; the rest are counted ("待办" lists them all)


def digest_replies(
    ctx: Context, queues: Mapping[str, Sequence[Ticket]], now: float, day: str
) -> list[Reply]:
    """Return the digest of each node with open tickets (``queues``: node id -> its tickets)."""
    out: list[Reply] = []
    for node_id, queue in queues.items():
        node = ctx.tree.nodes.get(node_id)
        if node is None or not queue:
            continue
        ordered = sorted(queue, key=lambda t: (t.overdue(now) is None, _due(t), t.created_at))
        late = sum(t.overdue(now) is not None for t in queue)
        chats = [node.staff_chat] if node.staff_chat else list(node.chats)
        for chat in chats:
            staff = chat == node.staff_chat

            def listed(t: Ticket, staff: bool = staff) -> dict[str, Any]:
                hide = t.visibility == Visibility.STAFF and not staff
                return ticket_params(ctx, t, masked=True, redacted=hide, late=t.overdue(now))

            params = {
                "day": day,
                "node": node.id,
                "node_name": node.name,
                "node_names": {lang.value: name for lang, name in node.names.items()},
                "kind": node.kind.value,
                "open": len(queue),
                "overdue": late,
                "tickets": [listed(t) for t in ordered[:LISTED]],
                "more": max(len(queue) - LISTED, 0),
            }
            out.append(Reply(chat, "digest", params))
    return out


def _due(ticket: Ticket) -> float:
    due = ticket.ack_due if ticket.state.awaiting_ack else ticket.resolve_due
    return due if due is not None else float("inf")
