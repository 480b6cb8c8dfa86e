"""The morning digest: each handling group's queue of open tickets, once a day.

A group that owes work gets one message a day listing it, overdue first; a
group that owes nothing hears nothing (a bot that talks too much gets muted).
The digest goes where the node's cards go: its staff chat when it has one
(full), otherwise its group chats (sensitive tickets show only their category).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.core.models import Reply, Visibility
from bot.core.ticket import Ticket
from bot.core.workflow import Context, node_params, ticket_params

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
        late = {t.id: t.overdue(now) for t in queue}
        ordered = queue_order(queue, now)
        chats = [node.staff_chat] if node.staff_chat else list(node.chats)
        for chat in chats:
            public = chat != node.staff_chat
            params = {
                **node_params(node),
                "day": day,
                "open": len(queue),
                "overdue": sum(v is not None for v in late.values()),
                "tickets": [
                    ticket_params(
                        ctx,
                        t,
                        masked=True,
                        late=late[t.id],
                        redacted=public and t.visibility == Visibility.STAFF,
                    )
                    for t in ordered[:LISTED]
                ],
                "more": max(len(queue) - LISTED, 0),
            }
            out.append(Reply(chat, "digest", params))
    return out


def queue_order(tickets: Sequence[Ticket], now: float) -> list[Ticket]:
    """Return tickets as a handler should work them: overdue first, then by what is due next."""
    return sorted(tickets, key=lambda t: (t.overdue(now) is None, _due(t), t.created_at))


def _due(ticket: Ticket) -> float:
    return ticket.due if ticket.due is not None else float("inf")
