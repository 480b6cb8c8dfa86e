"""A fake WeCom on 127.0.0.1: signs and encrypts callbacks like the real one and records sends.

It plays both sides WeCom plays: it posts encrypted, signed callbacks to the
bot's callback URL (and decrypts the passive reply), and it serves the two
APIs the bot calls — ``/cgi-bin/webhook/send?key=`` (group robot webhooks,
20 a minute per key like WeCom) and ``/cgi-bin/aibot/response?response_code=``
(one use per code). A request to anything else is recorded in ``unexpected``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
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

    def __post_init__(self) -> None:
        self.cipher = WeComCipher.of(self.token, self.aes_key)
        self._ids = itertools.count(1)
        self._codes: set[str] = set()
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

    def button(self, userid: str, key: str, chatid: str | None = None) -> dict[str, Any]:
        """Return a template_card_event: ``userid`` pressed the button ``key``."""
        msg = self._base(userid, chatid)
        msg.update(
            msgtype="event",
            event={
                "eventtype": "template_card_event",
                "template_card_event": {
                    "card_type": "button_interaction", "event_key": key, "task_id": "lianhu-x",
                },
            },
        )  # fmt: skip
        return msg

    def _base(self, userid: str, chatid: str | None) -> dict[str, Any]:
        code = secrets.token_hex(8)
        self._codes.add(code)
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
            return Answer(200, json.loads(self.cipher.decrypt(envelope_["encrypt"])), text)

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
        recent = [p for p in self.pushes if p.key == key and now - p.at < 60]
        if len(recent) >= self.per_minute:
            self.refused.append(45009)
            return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        self.pushes.append(Push(key, await request.json(), now))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _response(self, request: web.Request) -> web.Response:
        code = request.query.get("response_code", "")
        if code not in self._codes or code in self.responses:
            return web.json_response({"errcode": 40001, "errmsg": "invalid response_code"})
        self.responses[code] = await request.json()
        return web.json_response({"errcode": 0, "errmsg": "ok"})

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
