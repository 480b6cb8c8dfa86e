"""The simulator's chat rooms on Redis: every chat's messages, and what each person has read.

A message's id is its chat's counter (INCR), and the chat is a sorted set scored
by id, so that the unread count of a chat is one ZCOUNT above the last id the
person saw. Every stored message is also published on one channel for the
browsers that are open (``bot.web.live``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bot.ports import Clock
from bot.storage.raw import text_of
from bot.storage.redis import dumps
from bot.web import keys

BOT = "bot"
"""The sender of what Lianhu says; the page gives it its name in the reader's language."""

HISTORY_LIMIT = 2000  # per chat: older messages are dropped, as a phone would scroll them away
QUOTE_LENGTH = 60


@dataclass(frozen=True)
class Quote:
    """The message a reply answers, as shown above the reply."""

    id: str
    sender: str
    name: str
    text: str


@dataclass(frozen=True)
class ChatMessage:
    """One message in a simulator chat."""

    id: int
    chat: str
    at: float
    sender: str  # a "sim:" account, or BOT
    name: str
    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (label, callback data)
    reply_to: str | None = None
    quote: Quote | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the message as JSON-ready data."""
        return {
            "id": self.id,
            "chat": self.chat,
            "at": self.at,
            "sender": self.sender,
            "name": self.name,
            "text": self.text,
            "buttons": [list(b) for b in self.buttons],
            "reply_to": self.reply_to,
            "quote": vars(self.quote) if self.quote else None,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ChatMessage:
        """Return the message stored as ``raw``."""
        quote = raw.get("quote")
        return cls(
            id=int(raw["id"]),
            chat=str(raw["chat"]),
            at=float(raw["at"]),
            sender=str(raw["sender"]),
            name=str(raw["name"]),
            text=str(raw["text"]),
            buttons=tuple((str(a), str(b)) for a, b in raw.get("buttons") or ()),
            reply_to=raw.get("reply_to"),
            quote=Quote(**quote) if quote else None,
        )


class ChatHistory:
    """Append to, read and mark as read the simulator's chats."""

    def __init__(self, redis: Redis, clock: Clock = time.time) -> None:
        self.redis = redis
        self.clock = clock

    async def append(
        self,
        chat: str,
        sender: str,
        name: str,
        text: str,
        buttons: Sequence[tuple[str, str]] = (),
        reply_to: str | None = None,
    ) -> ChatMessage:
        """Store a message at the end of ``chat``, publish it, and return it."""
        message_id = int(await self.redis.incr(keys.seq(chat)))
        message = ChatMessage(
            message_id,
            chat,
            self.clock(),
            sender,
            name,
            text,
            tuple(buttons),
            reply_to,
            await self._quote(chat, reply_to),
        )
        raw = dumps(message.to_dict())
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(keys.chat(chat), {raw: message_id})
        pipe.zremrangebyrank(keys.chat(chat), 0, -HISTORY_LIMIT - 1)
        pipe.publish(keys.LIVE, raw)
        await pipe.execute()
        return message

    async def edit(
        self, chat: str, message_id: str, text: str, buttons: Sequence[tuple[str, str]]
    ) -> ChatMessage | None:
        """Replace a stored message's text and buttons and publish it again (a card edited).

        The page replaces the message it shows by id; None when the message is gone.
        """
        old = await self.get(chat, message_id)
        if old is None:
            return None
        new = dataclasses.replace(old, text=text, buttons=tuple(buttons))
        raw = dumps({**new.to_dict(), "edited": True})
        pipe = self.redis.pipeline(transaction=True)
        pipe.zremrangebyscore(keys.chat(chat), old.id, old.id)
        pipe.zadd(keys.chat(chat), {dumps(new.to_dict()): old.id})
        pipe.publish(keys.LIVE, raw)
        await pipe.execute()
        return new

    async def get(self, chat: str, message_id: str) -> ChatMessage | None:
        """Return one message of a chat by its id, or None."""
        if not message_id.isdigit():
            return None
        rows: Any = await self.redis.zrangebyscore(keys.chat(chat), message_id, message_id)
        return ChatMessage.from_dict(json.loads(rows[0])) if rows else None

    async def recent(
        self, chat: str, limit: int = 100, before: int | None = None
    ) -> list[ChatMessage]:
        """Return the last ``limit`` messages of a chat (before id ``before``), oldest first."""
        top: int | str = "+inf" if before is None else f"({before}"
        rows: Any = await self.redis.zrevrangebyscore(keys.chat(chat), top, "-inf", 0, limit)
        return [ChatMessage.from_dict(json.loads(r)) for r in reversed(rows)]

    async def last(self, chats: Iterable[str]) -> dict[str, ChatMessage]:
        """Return the last message of each chat that has one."""
        chats = list(chats)
        pipe = self.redis.pipeline(transaction=False)
        for chat in chats:
            pipe.zrange(keys.chat(chat), -1, -1)
        rows = await pipe.execute()
        return {
            chat: ChatMessage.from_dict(json.loads(found[0]))
            for chat, found in zip(chats, rows, strict=True)
            if found
        }

    async def mark_read(self, person: str, chat: str, upto: int | None = None) -> None:
        """Record that ``person`` has seen ``chat`` up to message ``upto`` (default: all)."""
        if upto is None:
            upto = int(await self.redis.get(keys.seq(chat)) or 0)
        seen = int(await self.redis.hget(keys.read(person), chat) or 0)
        if upto > seen:
            await self.redis.hset(keys.read(person), chat, upto)

    async def unread(self, person: str, chats: Iterable[str]) -> dict[str, int]:
        """Return how many messages of each chat ``person`` has not seen."""
        chats = list(chats)
        marks: dict[Any, Any] = await self.redis.hgetall(keys.read(person))
        seen = {text_of(k): int(v) for k, v in marks.items()}
        pipe = self.redis.pipeline(transaction=False)
        for chat in chats:
            pipe.zcount(keys.chat(chat), f"({seen.get(chat, 0)}", "+inf")
        return dict(zip(chats, (int(n) for n in await pipe.execute()), strict=True))

    async def _quote(self, chat: str, reply_to: str | None) -> Quote | None:
        quoted = await self.get(chat, reply_to) if reply_to else None
        if quoted is None:
            return None
        text = quoted.text.replace("\n", " ")
        if len(text) > QUOTE_LENGTH:
            text = text[: QUOTE_LENGTH - 1] + "…"
        return Quote(str(quoted.id), quoted.sender, quoted.name, text)
