"""The simulator adapter: the web page's people and chats on the same ports as Telegram.

What a person types or presses becomes an ``IncomingMessage`` for
``Service.handle_message``, exactly as the Telegram adapter makes one from an
update; what the bot says reaches the page through ``SimGateway``, the
ChatGateway of platform "sim" that the outbox Sender drains into.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from bot.core.models import Actor, IncomingMessage
from bot.core.org import OrgTree, Person
from bot.ports import Clock, Render, Rendered, Sent
from bot.render import Renderer
from bot.services import Handled, Service
from bot.web.directory import PLATFORM, rooms, sim_account
from bot.web.history import BOT, ChatHistory, ChatMessage

MAX_TEXT = 4096  # what Telegram accepts in one message; the simulator holds to the same


class SimError(Exception):
    """Something a person asked the simulator that it cannot do; ``reason`` names why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class SimGateway:
    """Deliver the bot's messages into the simulator's chats (the ChatGateway of "sim")."""

    platform = PLATFORM

    def __init__(self, history: ChatHistory) -> None:
        self.history = history

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        """Store the message in its chat (which publishes it to open pages); return its id."""
        if not chat.startswith(f"{PLATFORM}:"):
            raise ValueError(f"not a simulator chat: {chat!r}")
        stored = await self.history.append(chat, BOT, "", message.text, message.buttons, reply_to)
        return Sent(str(stored.id))

    async def edit(self, chat: str, message_id: str, message: Rendered) -> None:
        """Update a card in its chat (open pages replace it); a card gone is left alone."""
        await self.history.edit(chat, message_id, message.text, message.buttons)


@dataclass(frozen=True)
class Said:
    """A message a person wrote, and what the bot made of it."""

    message: ChatMessage
    handled: Handled


class Simulator:
    """Turn what people do on the page into messages and button presses for the Service."""

    def __init__(
        self,
        service: Service,
        history: ChatHistory,
        clock: Clock = time.time,
        render: Render | None = None,
    ) -> None:
        self.service = service
        self.history = history
        self.clock = clock
        self.render: Render = render if render is not None else Renderer()  # press answers

    @property
    def tree(self) -> OrgTree:
        """Return the organisation tree in force."""
        return self.service.config.tree

    def person(self, person_id: str) -> Person:
        """Return a person of the roster who has a simulator account."""
        person = self.tree.people.get(person_id)
        if person is None or sim_account(person) is None:
            raise SimError("unknown_person", person_id)
        return person

    def actor(self, person: Person) -> Actor:
        """Return the person as the sender of a message."""
        account = sim_account(person)
        assert account is not None
        return Actor(account, person.name, person.id, person.lang)

    def check_chat(self, person: Person, chat: str) -> None:
        """Raise SimError unless ``person`` is in ``chat``."""
        if chat not in {room.chat for room in rooms(self.tree, person)}:
            raise SimError("not_member", chat)

    async def say(self, person_id: str, chat: str, text: str, reply_to: str | None = None) -> Said:
        """Post ``text`` in ``chat`` as the person, then let the bot handle it."""
        person = self.person(person_id)
        self.check_chat(person, chat)
        text = text.strip()
        if not text:
            raise SimError("empty")
        if len(text) > MAX_TEXT:
            raise SimError("too_long", str(len(text)))
        if reply_to is not None and await self.history.get(chat, reply_to) is None:
            raise SimError("no_such_message", reply_to)
        actor = self.actor(person)
        stored = await self.history.append(chat, actor.account, actor.name, text, (), reply_to)
        await self.history.mark_read(person.id, chat, stored.id)
        message = IncomingMessage(
            chat,
            str(stored.id),
            actor,
            text,
            stored.at,
            reply_to=reply_to,
            private=chat == actor.account,
        )
        return Said(stored, await self.service.handle_message(message))

    async def press(self, person_id: str, chat: str, message_id: str, data: str) -> Handled:
        """Press the button ``data`` of a message the bot sent in ``chat``."""
        person = self.person(person_id)
        self.check_chat(person, chat)
        card = await self.history.get(chat, message_id)
        if card is None:
            raise SimError("no_such_message", message_id)
        if data not in {d for _, d in card.buttons}:
            raise SimError("no_such_button", data)
        actor = self.actor(person)
        # A press is not a message in the chat: like a Telegram callback it has an id of its own.
        press = IncomingMessage(
            chat,
            f"press-{uuid.uuid4().hex}",
            actor,
            "",
            self.clock(),
            callback=data,
            private=chat == actor.account,
        )
        return await self.service.handle_message(press)
