"""A fake WeCom on 127.0.0.1: signs and encrypts callbacks like the real one and records sends.

It plays both sides WeCom plays: it posts encrypted, signed callbacks to the
bot's callback URL (and decrypts the passive reply), and it serves the two
APIs the bot calls — ``/cgi-bin/webhook/send?key=`` (group robot webhooks,
20 a minute per key like WeCom) and ``/cgi-bin/aibot/response?response_code=``
(one use per code). A request to anything else is recorded in ``unexpected``.

Every body the bot sends is checked against the fields WeCom's documentation
requires (智能机器人 被动回复消息 / 主动回复消息 / 模板卡片类型, 消息推送): what may
answer which callback (a press only ``update_template_card`` of the pressed card,
same task_id; a message a stream or a template card), template cards only through
a single chat's response_url, button cards with 1-6 buttons of unique keys and a
new task_id of ``[A-Za-z0-9_@-]``, lengths. A body that breaks a rule is refused
(an API call gets WeCom's errcode) and the rule is recorded in ``problems``. The
cards it has shown are kept by task_id (``cards``): a press names a real card and
one of its buttons, and an update replaces the card.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.wecom.crypto import WeComCipher

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"  # the token of WeCom's own Python sample
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
OTHER_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
BOT_ID = "aibLianhuTest"


@dataclass
class Push:
    key: str
    body: dict[str, Any]
    at: float

    @property
    def text(self) -> str:
        return str(self.body.get(self.body["msgtype"], {}).get("content", ""))


@dataclass
class Answer:
    """What the bot answered a callback: the HTTP status and the decrypted passive reply."""

    status: int
    reply: dict[str, Any] | None = None
    text: str = ""


@dataclass
class FakeWeCom:
    token: str = TOKEN
    aes_key: str = AES_KEY
    per_minute: int = 20
    target: str = ""  # the bot's callback URL
    pushes: list[Push] = field(default_factory=list)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    window: float = 60.0  # the webhook limit's window (tests shrink it with per_minute)
    problems: list[str] = field(default_factory=list)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)  # task_id -> card shown

    def __post_init__(self) -> None:
        self.cipher = WeComCipher.of(self.token, self.aes_key)
        self._ids = itertools.count(1)
        self._codes: dict[str, bool] = {}  # response_code -> from a single chat
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self._webhook)
        app.router.add_post("/cgi-bin/aibot/response", self._response)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what users do ---------------------------------------------------------------------

    def message(
        self, userid: str, text: str, chatid: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        """Return a text callback: in a group when ``chatid`` is given, else a single chat."""
        msg = self._base(userid, chatid)
        msg.update(msgtype="text", text={"content": text}, **extra)
        return msg

    def button(
        self, userid: str, key: str, chatid: str | None = None, task_id: str | None = None
    ) -> dict[str, Any]:
        """Return a template_card_event: ``userid`` pressed the button ``key`` of a card.

        With ``task_id`` the card must be one this fake showed and ``key`` one of its buttons.
        """
        if task_id is not None:
            shown = self.cards.get(task_id)
            assert shown is not None, f"no card {task_id} was shown"
            assert key in [b["key"] for b in shown["button_list"]], f"{key} is not on the card"
        msg = self._base(userid, chatid)
        msg.update(
            msgtype="event",
            create_time=int(time.time()),
            event={
                "eventtype": "template_card_event",
                "template_card_event": {
                    "card_type": "button_interaction", "event_key": key,
                    "task_id": task_id or "lianhu-x",
                },
            },
        )  # fmt: skip
        return msg

    def _base(self, userid: str, chatid: str | None) -> dict[str, Any]:
        code = secrets.token_hex(8)
        self._codes[code] = chatid is None
        msg: dict[str, Any] = {
            "msgid": f"MSG{next(self._ids):06d}{secrets.token_hex(4)}",
            "aibotid": BOT_ID,
            "chattype": "group" if chatid else "single",
            "from": {"userid": userid},
            "response_url": f"{self.url}/cgi-bin/aibot/response?response_code={code}",
        }
        if chatid:
            msg["chatid"] = chatid
        return msg

    # -- calling the bot -------------------------------------------------------------------

    def envelope(
        self,
        msg: dict[str, Any],
        *,
        cipher: WeComCipher | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Return the query and the body of a callback, encrypted and signed."""
        cipher = cipher or self.cipher
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        encrypted = cipher.encrypt(json.dumps(msg, ensure_ascii=False).encode())
        query = {"msg_signature": cipher.sign(timestamp, nonce, encrypted),
                 "timestamp": timestamp, "nonce": nonce}  # fmt: skip
        return query, {"encrypt": encrypted}

    async def post(
        self,
        msg: dict[str, Any] | None = None,
        *,
        query: dict[str, str] | None = None,
        body: bytes | None = None,
        **envelope: Any,
    ) -> Answer:
        """Post a callback (or exactly ``query`` and ``body``); return the bot's answer."""
        if msg is not None:
            q, b = self.envelope(msg, **envelope)
            query = query or q
            body = body if body is not None else json.dumps(b).encode()
        async with self.session.post(self.target, params=query, data=body) as response:
            text = await response.text()
            if response.status != 200 or not text:
                return Answer(response.status, None, text)
            envelope_ = json.loads(text)
            self.cipher.verify(envelope_["msgsignature"], str(envelope_["timestamp"]),
                               envelope_["nonce"], envelope_["encrypt"])  # fmt: skip
            reply = json.loads(self.cipher.decrypt(envelope_["encrypt"]))
            if msg is not None:
                self._check_passive(msg, reply)
            return Answer(200, reply, text)

    async def verify_url(self, echo: str, **envelope: Any) -> Answer:
        """Do what WeCom does when the admin saves the callback URL."""
        timestamp = envelope.get("timestamp") or str(int(time.time()))
        nonce = envelope.get("nonce") or "12345"
        cipher = envelope.get("cipher") or self.cipher
        echostr = cipher.encrypt(echo.encode())
        query = {"msg_signature": envelope.get("signature") or cipher.sign(timestamp, nonce, echostr),
                 "timestamp": timestamp, "nonce": nonce, "echostr": echostr}  # fmt: skip
        async with self.session.get(self.target, params=query) as response:
            return Answer(response.status, None, await response.text())

    # -- the APIs the bot calls ------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.keys:
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        now = time.monotonic()
        recent = [p for p in self.pushes if p.key == key and now - p.at < self.window]
        if len(recent) >= self.per_minute:
            self.refused.append(45009)
            return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        body = await request.json()
        problem = _webhook_problem(body)
        if problem:
            self.problems.append(f"webhook: {problem}")
            return web.json_response({"errcode": 40008, "errmsg": problem})
        self.pushes.append(Push(key, body, now))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _response(self, request: web.Request) -> web.Response:
        code = request.query.get("response_code", "")
        if code not in self._codes or code in self.responses:
            return web.json_response({"errcode": 40001, "errmsg": "invalid response_code"})
        body = await request.json()
        kind = body.get("msgtype") if isinstance(body, dict) else None
        if kind == "markdown":
            problem = _text_problem(body, "markdown", 20480)
        elif kind == "template_card" and self._codes[code]:
            problem = self._new_card(body.get("template_card"))
        elif kind == "template_card":
            problem = "a template card through a group's response_url"
        else:
            problem = f"msgtype {kind!r} through a response_url"
        if problem:
            self.problems.append(f"response_url: {problem}")
            return web.json_response({"errcode": 40008, "errmsg": problem})
        self.responses[code] = body
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    # -- what WeCom's documentation requires of what the bot sends ----------------------

    def _check_passive(self, msg: dict[str, Any], reply: dict[str, Any]) -> None:
        """Check a passive reply against the callback it answers; record a shown card."""
        if msg.get("msgtype") == "event":
            event = msg["event"].get("template_card_event") or {}
            if reply.get("response_type") != "update_template_card":
                problem = "a press may only be answered with update_template_card"
            elif set(reply) - {"response_type", "userids", "template_card"}:
                problem = f"unknown fields {sorted(set(reply) - {'response_type', 'userids', 'template_card'})}"
            else:
                card = reply.get("template_card")
                problem = _card_problem(card)
                if not problem and card["task_id"] != event.get("task_id"):
                    problem = "an update must carry the pressed card's task_id"
                if not problem:
                    self.cards[card["task_id"]] = card
        elif reply.get("msgtype") == "stream":
            stream = reply.get("stream") or {}
            if not isinstance(stream.get("id"), str) or not stream["id"]:
                problem = "a first stream reply needs stream.id"
            else:
                problem = _text_problem(reply, "stream", 20480)
        elif reply.get("msgtype") == "template_card":
            problem = self._new_card(reply.get("template_card"))
        else:
            problem = f"msgtype {reply.get('msgtype')!r} as a passive reply to a message"
        if problem:
            self.problems.append(f"passive: {problem}")

    def _new_card(self, card: Any) -> str:
        """Check a card sent anew (its task_id unused); record it when it is right."""
        problem = _card_problem(card)
        if not problem and card["task_id"] in self.cards:
            problem = f"task_id {card['task_id']} used before"
        if not problem:
            self.cards[card["task_id"]] = card
        return problem

    async def _other(self, request: web.Request) -> web.Response:
        self.unexpected.append(f"{request.method} {request.path}")
        return web.Response(status=404)

    def code_of(self, msg: dict[str, Any]) -> str:
        return str(msg["response_url"]).rsplit("=", 1)[1]


async def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Wait until ``check()`` is truthy (a deadline for hangs, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


_TASK_ID = re.compile(r"[A-Za-z0-9_@-]{1,128}")


def _card_problem(card: Any) -> str:
    """Return what a button_interaction card lacks (模板卡片类型), or ''."""
    if not isinstance(card, dict) or card.get("card_type") != "button_interaction":
        return "only button_interaction cards are expected"
    title = (card.get("main_title") or {}).get("title")
    if not title and not card.get("sub_title_text"):
        return "main_title.title or sub_title_text is required"
    if not isinstance(card.get("task_id"), str) or not _TASK_ID.fullmatch(card["task_id"]):
        return "task_id: 1-128 of [A-Za-z0-9_@-] is required"
    buttons = card.get("button_list")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 6:
        return "button_list: 1 to 6 buttons"
    keys = [b.get("key") for b in buttons if isinstance(b, dict)]
    if len(keys) != len(buttons) or len(set(keys)) != len(keys):
        return "button keys must be unique"
    for b in buttons:
        if not isinstance(b.get("text"), str) or not b["text"]:
            return "a button needs its text"
        if not isinstance(b["key"], str) or not b["key"] or len(b["key"].encode()) > 1024:
            return "a button key is 1-1024 bytes"
        if b.get("style", 1) not in (1, 2, 3, 4):
            return "button style is 1-4"
    return ""


def _text_problem(body: dict[str, Any], kind: str, limit: int) -> str:
    content = (body.get(kind) or {}).get("content")
    if not isinstance(content, str) or not content:
        return f"{kind}.content is required"
    if len(content.encode()) > limit:
        return f"{kind}.content is over {limit} bytes"
    return ""


def _webhook_problem(body: Any) -> str:
    """Return what a group robot push gets wrong (消息推送: text 2048 bytes, markdown 4096)."""
    kind = body.get("msgtype") if isinstance(body, dict) else None
    if kind == "text":
        return _text_problem(body, "text", 2048)
    if kind == "markdown":
        return _text_problem(body, "markdown", 4096)
    return f"msgtype {kind!r} is not what Lianhu pushes"
