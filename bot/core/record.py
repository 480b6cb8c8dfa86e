"""The deadlines a ticket was given, stage by stage, and whether each was met (the 办结单).

A stage begins when the ticket is opened, escalated, handed to a department or
reopened; each stage promises an acknowledgement and a resolution by its due
times. A promise is met when it was kept by its due time, missed when it was kept
late or its stage ended (or ``now`` passed it) without it, void when the ticket was
dismissed before it was due, and pending otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.ticket import EventKind, TicketEvent

STAGE_STARTS = (EventKind.OPENED, EventKind.ESCALATED, EventKind.HANDED, EventKind.REOPENED)
KEPT = {EventKind.ACKNOWLEDGED: "ack", EventKind.RESOLVED: "resolve"}


@dataclass(frozen=True)
class Promise:
    """One deadline of one stage and what became of it."""

    stage: int
    node: str
    kind: str  # "ack" | "resolve"
    due: float | None
    done_at: float | None
    outcome: str  # "met" | "late" | "missed" | "void" | "pending"


def promises(events: Sequence[TicketEvent], now: float) -> list[Promise]:
    """Return every deadline the ticket's history set, in order, with its outcome."""
    stages: list[dict[str, object]] = []
    final = dismissed = False
    for event in events:
        data = event.data
        if event.kind in STAGE_STARTS and data.get("ack_due") is not None:
            node = data.get("node") or (stages[-1]["node"] if stages else "")
            stages.append({"node": node, "ack": data.get("ack_due"),
                           "resolve": data.get("resolve_due"), "done": {}})  # fmt: skip
        elif event.kind in KEPT and stages:
            done = stages[-1]["done"]
            assert isinstance(done, dict)
            done.setdefault(KEPT[event.kind], event.at)
        elif event.kind in (EventKind.CLOSED, EventKind.DISMISSED, EventKind.CONFIRMED):
            final = True
            dismissed = dismissed or event.kind is EventKind.DISMISSED
            if dismissed and stages:
                stages[-1]["ended_at"] = event.at
    out = []
    for i, stage in enumerate(stages, start=1):
        ended = i < len(stages) or final
        done = stage["done"]
        assert isinstance(done, dict)
        for kind in ("ack", "resolve"):
            due = stage[kind]
            due_at = float(due) if isinstance(due, int | float) else None
            at = done.get(kind)
            if kind == "ack" and at is None and "resolve" in done:
                at = done["resolve"]  # resolved without a separate acknowledgement: both kept
            outcome = _outcome(due_at, at, ended, now)
            ended_at = stage.get("ended_at")
            if outcome == "missed" and isinstance(ended_at, float) and (due_at or 0) >= ended_at:
                outcome = "void"  # dismissed in time: nothing was owed any more
            out.append(Promise(i, str(stage["node"]), kind, due_at, at, outcome))
    return out


def _outcome(due: float | None, done_at: float | None, ended: bool, now: float) -> str:
    if done_at is not None:
        return "met" if due is None or done_at <= due else "late"
    if ended or (due is not None and now > due):
        return "missed"
    return "pending"
