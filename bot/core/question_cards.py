"""What the messages that asked a question show once it moves on (kept true as ticket cards are).

Every message that asks a question (a danger flag's cards, the resident's ask, the
leader's private ask) is sent as a card of the question (``card``, with the question's
id and version), and the sender records it with its message id (``bot.card_edits``).
When the question is answered or climbs a tier, one edit entry per platform carries the
question's *view*: the outcome to show (added to each card's own parameters, so that a
redacted or masked card stays so), the buttons still live, and the chats that keep them.

- answered: every card shows who answered and what came of it, and loses its buttons;
- a flag that climbed: the cards of the tiers below say where it went; only the cards
  of the node that may answer now, and of the grid (whose staff still may), keep theirs.

Names are passed through ``mask``, as everything a public card shows is.
"""

from __future__ import annotations

from typing import Any

from bot.core.models import platform_of
from bot.core.org import ancestors
from bot.core.privacy import mask
from bot.core.prompts import NO, YES, Prompt, PromptKind, flag_cards, grid_of
from bot.core.workflow import Context

CONFIRMED, REJECTED, REGISTERED, DECLINED, CLIMBED = (
    "confirmed", "rejected", "registered", "declined", "climbed",
)  # fmt: skip


def question_view(ctx: Context, prompt: Prompt, ticket: str | None = None) -> dict[str, Any]:
    """Return the view every message that asked ``prompt`` is brought to.

    ``ticket`` is the ticket the answer opened or joined, if any.
    """
    if prompt.answer is not None:
        return {"seq": prompt.seq, "params": _answered(ctx, prompt, ticket), "buttons": [],
                "live": []}  # fmt: skip
    node = ctx.tree.nodes[prompt.node]
    live = {r.chat for n in {node.id, grid_of(ctx.tree, prompt.origin).id}
            for r in flag_cards(ctx, prompt, ctx.tree.nodes[n])}  # fmt: skip
    buttons = [f"{prompt.kind.value}:{prompt.id}:{c}" for c in (YES, NO)]
    params = {
        "outcome": CLIMBED,
        "to_name": node.name,
        "to_names": {lang.value: name for lang, name in node.names.items()},
    }
    return {"seq": prompt.seq, "params": params, "buttons": buttons, "live": sorted(live)}


def question_platforms(ctx: Context, prompt: Prompt) -> list[str]:
    """Return the platforms that may hold a message asking ``prompt`` (each gets an entry)."""
    path = ancestors(ctx.tree, prompt.origin) if prompt.origin in ctx.tree.nodes else ()
    chats = [prompt.said.chat, *(c for n in path for c in (*n.chats, n.staff_chat) if c)]
    return sorted({platform_of(c) for c in chats})


def _answered(ctx: Context, prompt: Prompt, ticket: str | None) -> dict[str, Any]:
    by = mask(prompt.answered_by or "")
    if prompt.kind is PromptKind.DANGER:
        kind = CONFIRMED if prompt.answer == YES else REJECTED
        return {"outcome": kind, "outcome_by": by, "outcome_ticket": ticket}
    if prompt.answer == NO:
        kind, names = DECLINED, {}
    else:
        category = ctx.ruleset.categories.get(prompt.answer or "")
        kind, names = REGISTERED, dict(category.names) if category else {}
    return {
        "outcome": kind,
        "outcome_by": by,
        "outcome_ticket": ticket,
        "answer": prompt.answer,
        "answer_names": names,
        # who answered: the resident (no name shown) or the household leader (named)
        "by_resident": prompt.answered_account == prompt.said.account,
    }
