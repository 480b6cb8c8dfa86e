"""The simulator's Redis keys, as templates (the ticket keys are in ``bot.storage.keys``)."""

from __future__ import annotations

from bot.storage.keys import PREFIX

SIM = f"{PREFIX}:sim"
LIVE = f"{SIM}:live"  # PUBSUB channel: every message stored in a simulator chat, as JSON


def chat(chat_id: str) -> str:
    """Return the ZSET of a simulator chat's messages (JSON), scored by message id."""
    return f"{SIM}:chat:{chat_id}"


def seq(chat_id: str) -> str:
    """Return the counter of a simulator chat's message ids."""
    return f"{SIM}:seq:{chat_id}"


def read(person: str) -> str:
    """Return the HASH chat -> id of the last message the person has seen there."""
    return f"{SIM}:read:{person}"
