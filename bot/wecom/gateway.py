"""The ChatGateway of WeCom: three routes to a chat, tried in this order for each message.

1. The passive reply: while the callback that a message answers is still
   open (``bot.wecom.passive``, in Redis, so the sender may run in another
   process than the callback server), the message becomes its answer — a
   button ``template_card`` when it has buttons, else a finished ``stream``.
2. The callback's ``response_url`` (kept in Redis, one use, WeCom honours it
   for an hour): markdown, or a button card in a single chat (WeCom takes
   template cards there only in single chats).
3. The group robot webhook of the chat (``bot.wecom.webhooks``): text only,
   no buttons — the message says which command to @-mention the robot with —
   at most ``per_minute`` a minute per robot (WeCom's limit is 20), counted
   in Redis so that every process and restart shares the count.

A card is edited (``edit``) only while a press on it is held open: WeCom then
replaces the pressed card with the answer ``update_template_card`` (same
task_id). Any other card cannot be edited (``NotEditable``); the sender sends a
short follow-up instead (``bot.wecom.sending``). A button card's message id is
its task_id; a text's is the digest of its text (``quote_id``), so a quote of a
pushed card finds its ticket.

A single chat with neither an open callback nor an unused response_url cannot
be written to (an intelligent robot cannot start a conversation): the send
fails and the sender retries, so a user who writes again within the retries
still gets the message. Nothing is posted unless ``holding()`` says this
process is still the one sender (``bot.wecom.sending``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr
from redis.asyncio import Redis

from bot.ports import Rendered, Sent
from bot.storage import keys
from bot.wecom.adapter import PLATFORM, SETTLED_KEY, quote_id
from bot.wecom.passive import Passive, press_ref

log = logging.getLogger(__name__)

POST_TIMEOUT = 10.0  # seconds a request to WeCom may take
RESPONSE_URL_TTL = 3500  # WeCom honours a response_url for an hour; keep it a little less
WEBHOOK_PATH = "/cgi-bin/webhook/send"
RATE_LIMITED = 45009  # WeCom's errcode for "api freq out of limit"
MAX_BUTTONS = 6
TITLE_CHARS, SUBTITLE_CHARS, BUTTON_CHARS = 26, 112, 10  # what a template card shows of each

# Take a slot in a robot's window if one is free (return 0), else return ms until one frees.
_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + tonumber(ARGV[2]) - tonumber(ARGV[1]))
"""


class Undeliverable(Exception):
    """No route to the chat: no open callback, no unused response_url, no webhook key."""


class NotEditable(Exception):
    """WeCom cannot change this card now: no press on it is held open."""


class NotHolding(Exception):
    """This process is not (or no longer certainly) the one sender: nothing is posted."""


class WeComError(Exception):
    """WeCom answered a send with an error code."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeCom errcode {errcode}: {errmsg}")
        self.errcode = errcode


@dataclass(frozen=True)
class WeComRendered(Rendered):
    """A rendered reply: the @-mention commands that stand for its buttons, and for a card
    whose buttons are all gone, the label of the one inert button a card must keep."""

    hint: str = ""
    settled: str = ""


def hint_of(message: Rendered) -> str:
    """Return the @-mention hint of a message (none for a message without buttons)."""
    return message.hint if isinstance(message, WeComRendered) and message.buttons else ""


def stream(text: str) -> dict[str, Any]:
    """Return a finished stream message: the passive reply to a user's message."""
    return {
        "msgtype": "stream",
        "stream": {"id": uuid.uuid4().hex, "finish": True, "content": text},
    }


def markdown(text: str) -> dict[str, Any]:
    """Return a markdown message (what a response_url takes in a group)."""
    return {"msgtype": "markdown", "markdown": {"content": text}}


def text_message(text: str) -> dict[str, Any]:
    """Return a text message (a group robot webhook push)."""
    return {"msgtype": "text", "text": {"content": text}}


def template_card(message: Rendered) -> dict[str, Any]:
    """Return a button card: the first line as title, the rest as subtitle, the buttons."""
    return {"msgtype": "template_card", "template_card": card_body(message, new_task_id())}


def card_update(message: Rendered, task_id: str) -> dict[str, Any]:
    """Return the answer to a press that replaces the pressed card (for every viewer)."""
    return {"response_type": "update_template_card", "template_card": card_body(message, task_id)}


def new_task_id() -> str:
    """Return a task id no card of this robot had (WeCom refuses a repeated one)."""
    return f"lianhu-{uuid.uuid4().hex}"


def card_body(message: Rendered, task_id: str) -> dict[str, Any]:
    """Return a button_interaction card; with no button left, one inert button saying so."""
    head, _, rest = message.text.strip().partition("\n")
    buttons = [
        {"text": _cut(label, BUTTON_CHARS), "style": 1, "key": data}
        for label, data in message.buttons[:MAX_BUTTONS]
    ]
    if not buttons:  # WeCom requires one; style 4 is its grey, neutral one
        label = message.settled if isinstance(message, WeComRendered) else ""
        buttons = [{"text": _cut(label or "—", BUTTON_CHARS), "style": 4, "key": SETTLED_KEY}]
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": _cut(head, TITLE_CHARS)},
        "button_list": buttons,
        "task_id": task_id,
    }
    if rest.strip():
        card["sub_title_text"] = _cut(rest.strip(), SUBTITLE_CHARS)
    return card


def with_hint(message: Rendered) -> str:
    """Return the text of ``message``, and the @-mention hint when it had buttons."""
    hint = hint_of(message)
    return f"{message.text}\n\n{hint}" if hint else message.text


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class WeComGateway:
    """Deliver rendered messages to WeCom chats (the ChatGateway port)."""

    platform = PLATFORM

    def __init__(
        self,
        redis: Redis,
        session: aiohttp.ClientSession,
        base_url: str,
        webhooks: Callable[[], Mapping[str, SecretStr]],
        passive: Passive,
        *,
        per_minute: int = 20,
        window: float = 60.0,
        clock: Callable[[], float] = time.time,
        holding: Callable[[], bool] = lambda: True,
    ) -> None:
        self.redis = redis
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.webhooks = webhooks
        self.passive = passive
        self.per_minute = per_minute
        self.window = window
        self.clock = clock
        self.holding = holding
        self._slot = redis.register_script(_SLOT)

    async def remember(self, chat: str, msgid: str, response_url: str, single: bool) -> None:
        """Keep a callback's response_url for one later use (only URLs on WeCom's API host)."""
        if not response_url.startswith(f"{self.base_url}/"):
            log.warning("wecom: ignored a response_url outside %s", self.base_url)
            return
        record = json.dumps({"url": response_url, "single": single})
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.wecom_response_url(chat, msgid), record, ex=RESPONSE_URL_TTL)
        pipe.set(keys.wecom_latest(chat), msgid, ex=RESPONSE_URL_TTL)
        await pipe.execute()

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        """Deliver one message by the first route open to it; raise when there is none."""
        self._check_holding()
        msgid = reply_to.split("#", 1)[0] if reply_to else None
        if msgid is None:
            latest = await self.redis.get(keys.wecom_latest(chat))
            msgid = latest.decode() if isinstance(latest, bytes) else latest
        if msgid:
            slot = await self.passive.take(chat, msgid)
            if slot is not None:
                body = template_card(message) if message.buttons else stream(with_hint(message))
                await self.passive.put(chat, msgid, body)
                return _sent(message, body)
            sent = await self._respond(chat, msgid, message)
            if sent is not None:
                return sent
        key = self.webhooks().get(chat)
        if key is None:
            raise Undeliverable(f"{chat}: no open callback, no response_url, no webhook key")
        await self._push(key.get_secret_value(), text_message(with_hint(message)))
        return Sent(quote_id(message.text))

    async def edit(self, chat: str, message_id: str, message: Rendered) -> None:
        """Replace a card while a press on it is held open; else raise NotEditable."""
        self._check_holding()
        if await self.passive.take(chat, press_ref(message_id)) is None:
            raise NotEditable(f"{chat}: no press on card {message_id} is held open")
        await self.passive.put(chat, press_ref(message_id), card_update(message, message_id))

    def pushable(self, chat: str) -> bool:
        """Return whether ``chat`` has a group robot webhook (a follow-up can always go)."""
        return chat in self.webhooks()

    def _check_holding(self) -> None:
        if not self.holding():
            raise NotHolding(f"{PLATFORM}: this process is not the sender now")

    async def _respond(self, chat: str, msgid: str, message: Rendered) -> Sent | None:
        """Send through the callback's response_url if it is unused; return what was sent."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(keys.wecom_response_url(chat, msgid))
        pipe.delete(keys.wecom_response_url(chat, msgid))
        raw, _ = await pipe.execute()
        if raw is None:
            return None
        record = json.loads(raw)
        if message.buttons and record.get("single"):
            body = template_card(message)
        else:
            body = markdown(with_hint(message))
        await self._post(record["url"], body)
        return _sent(message, body)

    async def _push(self, key: str, body: dict[str, Any]) -> None:
        """Post to a group robot webhook within its rate limit."""
        robot = hashlib.sha1(key.encode()).hexdigest()[:16]  # the key never names a Redis key
        while True:
            now_ms = int(self.clock() * 1000)
            wait_ms = int(
                await self._slot(
                    keys=[keys.wecom_webhook_window(robot)],
                    args=[now_ms, int(self.window * 1000), self.per_minute, uuid.uuid4().hex],
                )
            )
            if wait_ms == 0:
                break
            log.info("wecom: robot %s at its limit; waiting %.1f s", robot, wait_ms / 1000)
            await asyncio.sleep(wait_ms / 1000)
        self._check_holding()  # the wait may have outlasted this process's lease
        url = f"{self.base_url}{WEBHOOK_PATH}"
        try:
            await self._post(url, body, params={"key": key})
        except WeComError as exc:
            if exc.errcode == RATE_LIMITED:  # someone else used the robot too: wait a window
                log.warning("wecom: robot %s refused for its rate limit", robot)
                await asyncio.sleep(self.window / 4)
            raise

    async def _post(
        self, url: str, body: dict[str, Any], params: Mapping[str, str] | None = None
    ) -> None:
        timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
        try:
            async with self.session.post(
                url, json=body, params=params, timeout=timeout
            ) as response:
                response.raise_for_status()
                answer = await response.json(content_type=None)
        except aiohttp.ClientResponseError as exc:
            # aiohttp's own message names the URL, which holds the webhook key or response code.
            raise WeComError(-exc.status, "HTTP error") from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise WeComError(-1, type(exc).__name__) from None
        errcode = int(answer.get("errcode", -1)) if isinstance(answer, dict) else -1
        if errcode != 0:
            errmsg = str(answer.get("errmsg", "")) if isinstance(answer, dict) else ""
            raise WeComError(errcode, errmsg)


def _sent(message: Rendered, body: dict[str, Any]) -> Sent:
    """Return a sent message's id: a card's task_id, else the digest of its text."""
    card = body.get("template_card")
    return Sent(str(card["task_id"])) if card else Sent(quote_id(message.text))
