"""Questions the bot asked, and messages it keeps a few days so a leader can ticket them."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from bot.core.prompts import Prompt, Said
from bot.storage import keys
from bot.storage.redis import Record, dumps

PROMPT_TTL = 14 * 24 * 3600  # a question and its history, long after it was answered
SAID_TTL = 3 * 24 * 3600  # a message nobody ticketed: kept this long for 立案, then gone


class PromptStore:
    """Read questions and kept messages; they are written with commits (bot.storage.redis.Extra)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def next_id(self) -> str:
        """Return a new question id."""
        return f"p{await self.redis.incr(keys.PROMPT_SEQ)}"

    async def get(self, prompt_id: str) -> Prompt | None:
        """Return a question, or None."""
        raw = await self.redis.get(keys.prompt(prompt_id))
        return Prompt.from_dict(json.loads(raw)) if raw else None

    async def of_message(self, message_key: str) -> Prompt | None:
        """Return the question asked about a message, or None."""
        prompt_id = await self.redis.get(keys.prompt_of(message_key))
        if prompt_id is None:
            return None
        return await self.get(prompt_id.decode() if isinstance(prompt_id, bytes) else prompt_id)

    async def history(self, prompt_id: str) -> list[dict[str, object]]:
        """Return a question's history, oldest first."""
        raws = await self.redis.lrange(keys.prompt_events(prompt_id), 0, -1)
        return [json.loads(r) for r in raws]

    async def said(self, message_key: str) -> Said | None:
        """Return a kept message, or None when it was never kept or has expired."""
        raw = await self.redis.get(keys.said(message_key))
        return Said.from_dict(json.loads(raw)) if raw else None

    async def keep(self, said: Said) -> None:
        """Keep a message a few days (for 立案 by a leader replying to it)."""
        key = keys.said(f"{said.chat}/{said.message_id}")
        await self.redis.set(key, dumps(said.to_dict()), ex=SAID_TTL)


def prompt_record(prompt: Prompt) -> Record:
    """Return the record of a question's snapshot."""
    return Record(keys.prompt(prompt.id), dumps(prompt.to_dict()), PROMPT_TTL)


def pointer_record(message_key: str, prompt: Prompt) -> Record:
    """Return the record pointing from a message to its question."""
    return Record(keys.prompt_of(message_key), prompt.id, PROMPT_TTL)
