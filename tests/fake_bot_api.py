"""A fake Telegram Bot API server on aiohttp: records every request with its own clock.

It serves what the bot calls (getMe, getUpdates, sendMessage, editMessageText,
answerCallbackQuery, setWebhook, deleteWebhook, setMyCommands, ...), answers
an unknown method with 404 and lists it in ``unexpected``. ptb posts form
fields whose structured values are JSON text; ``Call.json`` decodes one.
Faults on demand: a storm of 429s with ``retry_after``, 5xx answers, users
who blocked the bot, ``hold()`` to keep sends waiting unrecorded, and
``latency`` between accepting a send and answering it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

TOKEN = "123456:TEST-fake-token"
BOT = {"id": 123456, "is_bot": True, "first_name": "Lianhu", "username": "LianhuTestBot",
       "can_join_groups": True, "can_read_all_group_messages": True, "supports_inline_queries": False}  # fmt: skip
SENDS = {"sendMessage", "editMessageText"}


@dataclass
class Call:
    """One request as the server saw it."""

    method: str
    params: dict[str, str]
    at: float  # the server's monotonic clock
    status: int = 200
    result: Any = None

    def json(self, name: str) -> Any:
        """Return a structured field (sent as JSON text)."""
        return json.loads(self.params[name])

    @property
    def chat(self) -> int:
        return int(self.params["chat_id"])

    @property
    def text(self) -> str:
        return self.params.get("text", "")

    @property
    def reply_to(self) -> int | None:
        raw = self.params.get("reply_parameters")
        return int(json.loads(raw)["message_id"]) if raw else None

    @property
    def buttons(self) -> list[str]:
        raw = self.params.get("reply_markup")
        if not raw:
            return []
        rows = json.loads(raw).get("inline_keyboard", [])  # a ForceReply has none
        return [b["callback_data"] for row in rows for b in row]


@dataclass
class FakeBotApi:
    """The server and what it saw; ``url`` is what LIANHU_TELEGRAM_BASE_URL points at."""

    calls: list[Call] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)
    storm: int = 0  # the next this many sends get 429
    retry_after: int = 1
    failures: int = 0  # the next this many sends get 502
    latency: float = 0.0  # seconds between accepting a send and answering it
    webhook: dict[str, str] = field(default_factory=dict)
    shown: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # as chats show
    webhook_target: str = ""  # where deliver() posts (the bot's local listener)
    url: str = ""
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _messages: defaultdict[int, itertools.count[int]] = field(
        default_factory=lambda: defaultdict(lambda: itertools.count(5000))
    )
    _news: asyncio.Event = field(default_factory=asyncio.Event)
    _open: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        self._open.set()
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession()
        return self.url

    async def close(self) -> None:
        self._open.set()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what happened ---------------------------------------------------------------

    @property
    def sent(self) -> list[Call]:
        """Return the messages delivered (accepted sendMessage calls), in order."""
        return [c for c in self.calls if c.method == "sendMessage" and c.status == 200]

    @property
    def edits(self) -> list[Call]:
        """Return the accepted editMessageText calls, in order."""
        return [c for c in self.calls if c.method == "editMessageText" and c.status == 200]

    def showing(self, card: Call) -> tuple[str, list[str]]:
        """Return the text and buttons a sent message shows now, after its edits."""
        shown = self.shown[(card.chat, card.result["message_id"])]
        raw = shown.get("markup_raw") or ""
        rows = json.loads(raw)["inline_keyboard"] if raw else []
        return shown["text"], [b["callback_data"] for row in rows for b in row]

    def sent_to(self, chat: int) -> list[Call]:
        return [c for c in self.sent if c.chat == chat]

    def methods(self) -> set[str]:
        return {c.method for c in self.calls}

    # -- faults ------------------------------------------------------------------------

    def hold(self) -> None:
        """Keep sends waiting until ``release``; a send that waited is never received.

        For a client killed while its sends wait: when released, those requests must
        not count as delivered, whether or not the server has noticed the closed socket
        yet (checking the transport alone raced with the event loop).
        """
        self._open.clear()

    async def release(self, settle: float = 0.5) -> None:
        """Let sends through again, after ``settle`` seconds still held.

        A request a killed client wrote just before it died can still sit unread in
        its socket; were sends let through before the server reads it, it would count
        as delivered. While held, the event loop reads it, and it is dropped.
        """
        await asyncio.sleep(settle)
        self._open.set()

    # -- updates -----------------------------------------------------------------------

    def push(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates; return it."""
        self._pending.append(update)
        self._news.set()
        return update

    def message(
        self, chat: int, user: int, text: str, *, name: str = "居民", reply_to: int | None = None,
        edited: bool = False, message_id: int | None = None, lang: str = "zh-hans", **extra: Any,
    ) -> dict[str, Any]:  # fmt: skip
        """Return an update carrying a message from ``user`` in ``chat``."""
        mid = message_id if message_id is not None else next(self._messages[chat])
        msg: dict[str, Any] = {
            "message_id": mid, "date": int(time.time()), "text": text,
            "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup", "title": "g"},
            "from": {"id": user, "is_bot": False, "first_name": name, "language_code": lang},
            **extra,
        }  # fmt: skip
        if chat > 0:
            msg["chat"] = {"id": chat, "type": "private", "first_name": name}
        if reply_to is not None:
            msg["reply_to_message"] = {
                "message_id": reply_to, "date": int(time.time()), "chat": msg["chat"],
                "from": BOT, "text": "…",
            }  # fmt: skip
        if edited:
            msg["edit_date"] = int(time.time())
        return {"update_id": next(self._ids), "edited_message" if edited else "message": msg}

    def callback(self, user: int, card: Call, data: str, name: str = "工作人员") -> dict[str, Any]:
        """Return an update for ``user`` pressing a button of a sent message."""
        message = dict(card.result)
        return {
            "update_id": next(self._ids),
            "callback_query": {
                "id": f"cq{next(self._ids)}", "chat_instance": "ci", "data": data,
                "from": {"id": user, "is_bot": False, "first_name": name},
                "message": message,
            },
        }  # fmt: skip

    async def deliver(self, update: dict[str, Any], secret: str | None = "default") -> int:
        """POST an update to the registered webhook as Telegram does; return the status."""
        assert self._session is not None and self.webhook_target
        headers = {}
        token = self.webhook.get("secret_token") if secret == "default" else secret
        if token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        async with self._session.post(self.webhook_target, json=update, headers=headers) as r:
            return r.status

    # -- the API -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            params = {
                k: v if isinstance(v, str) else json.dumps(v)
                for k, v in (await request.json()).items()
            }
        else:
            params = {k: str(v) for k, v in (await request.post()).items()}
        if request.match_info["token"] != TOKEN:
            return _error(401, "Unauthorized")
        if method in SENDS and not self._open.is_set():
            await self._open.wait()  # held until released, then dropped: never received
            return web.Response(status=499)
        call = Call(method, params, time.monotonic())
        self.calls.append(call)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            self.unexpected.append(method)
            call.status = 404
            return _error(404, "Not Found: method not found")
        if method in SENDS:
            if self.storm > 0:
                self.storm -= 1
                call.status = 429
                return _error(429, f"Too Many Requests: retry after {self.retry_after}",
                              {"retry_after": self.retry_after})  # fmt: skip
            if self.failures > 0:
                self.failures -= 1
                call.status = 502
                return _error(502, "Bad Gateway")
        result = await handler(params)
        if isinstance(result, web.Response):
            call.status = result.status
            return result
        call.result = result
        if method in SENDS and self.latency:
            await asyncio.sleep(self.latency)  # accepted and recorded: delivered whatever happens
        return web.json_response({"ok": True, "result": result})

    async def _api_getMe(self, params: dict[str, str]) -> Any:
        return BOT

    async def _api_getUpdates(self, params: dict[str, str]) -> Any:
        offset = int(params.get("offset") or 0)
        self._pending = [u for u in self._pending if u["update_id"] >= offset]
        if not self._pending:
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), float(params.get("timeout") or 0))
        return self._pending[: int(params.get("limit") or 100)]

    async def _api_sendMessage(self, params: dict[str, str]) -> Any:
        chat = int(params["chat_id"])
        if chat in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        message: dict[str, Any] = {
            "message_id": next(self._messages[chat]), "date": int(time.time()),
            "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup"},
            "from": BOT, "text": params["text"],
        }  # fmt: skip
        markup = json.loads(params.get("reply_markup") or "{}")
        if "inline_keyboard" in markup:  # Telegram returns inline keyboards alone (no ForceReply)
            message["reply_markup"] = markup
        if "message_thread_id" in params:
            message["message_thread_id"] = int(params["message_thread_id"])
        self.shown[(chat, message["message_id"])] = {
            **message, "markup_raw": params.get("reply_markup", "")
        }  # fmt: skip
        return message

    async def _api_editMessageText(self, params: dict[str, str]) -> Any:
        key = (int(params["chat_id"]), int(params["message_id"]))
        shown = self.shown.get(key)
        if shown is None:
            return _error(400, "Bad Request: message to edit not found")
        now = (params["text"], params.get("reply_markup") or "")
        if now == (shown["text"], shown["markup_raw"]):
            return _error(400, "Bad Request: message is not modified: specified new message "
                               "content and reply markup are exactly the same")  # fmt: skip
        shown["text"], shown["markup_raw"] = now
        return {k: v for k, v in shown.items() if k != "markup_raw"} | {
            "edit_date": int(time.time())
        }

    async def _api_answerCallbackQuery(self, params: dict[str, str]) -> Any:
        return True

    async def _api_setMyCommands(self, params: dict[str, str]) -> Any:
        return True

    async def _api_deleteWebhook(self, params: dict[str, str]) -> Any:
        self.webhook = {}
        return True

    async def _api_setWebhook(self, params: dict[str, str]) -> Any:
        self.webhook = dict(params)
        return True


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


async def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
