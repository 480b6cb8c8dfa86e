"""The callback URL of the intelligent robot: checked, decrypted, stored, then answered.

GET is WeCom's URL verification: the echostr's signature is checked and its
plaintext answered. POST carries ``{"encrypt": ...}``; it is refused with a
4xx, and never reaches the inbox, when the body is oversized (413) or not that
JSON (400), the signature is wrong (403), the timestamp is outside the replay
window or the nonce was seen within it (403), or the text does not decrypt to
a JSON message of this robot (400/403). An accepted callback is in the inbox
(de-duplicated on msgid) before it is answered; a user's message then waits up
to ``wait`` seconds for its passive reply (``bot.wecom.passive``, from whichever
process sends) and is otherwise answered empty, its replies going to the
response_url instead. A press of a ticket's or a question's button waits up to ``PRESS_WAIT``
for the pressed card's replacement (WeCom gives a press one request, five
seconds).
Nothing secret (token, key, response_url) is logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from bot.inbox import Inbox
from bot.storage import keys
from bot.wecom.adapter import GROUP, chat_of, pressed_card, pressed_key
from bot.wecom.crypto import BadCiphertext, BadSignature, WeComCipher
from bot.wecom.gateway import WeComGateway
from bot.wecom.passive import Passive, Slot, press_ref

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a callback is a few kilobytes of base64
PRESS_WAIT = 4.0  # WeCom drops a press's callback unanswered after five seconds
USER_MESSAGES = frozenset({"text", "mixed", "image", "voice", "file"})


class Refused(Exception):
    """A callback refused before it touched anything; ``status`` is the answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class CallbackReceiver:
    """Check, decrypt and store callbacks; answer with a passive reply when one is ready."""

    def __init__(
        self,
        cipher: WeComCipher,
        redis: Redis,
        inbox: Inbox,
        gateway: WeComGateway,
        passive: Passive,
        *,
        bot_id: str | None = None,
        window: int = 300,
        wait: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cipher = cipher
        self.redis = redis
        self.inbox = inbox
        self.gateway = gateway
        self.passive = passive
        self.bot_id = bot_id
        self.window = window
        self.wait = wait
        self.clock = clock

    def app(self, path: str) -> web.Application:
        """Return an aiohttp application serving the callback URL at ``path``."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_get(path, self.verify_url)
        app.router.add_post(path, self.receive)
        return app

    async def verify_url(self, request: web.Request) -> web.StreamResponse:
        """Answer WeCom's URL verification with the echostr's plaintext."""
        try:
            sig, timestamp, nonce = self._query(request)
            # A '+' read as a space by a form decoder is the commonest echostr mistake.
            echostr = request.query.get("echostr", "").replace(" ", "+")
            if not echostr:
                raise Refused(400, "no echostr")
            self._check(sig, timestamp, nonce, echostr)
            plain = self._decrypt(echostr)
        except Refused as exc:
            return self._refuse(request, exc)
        return web.Response(text=plain.decode("utf-8", "replace"))

    async def receive(self, request: web.Request) -> web.StreamResponse:
        """Store one callback and answer it."""
        try:
            sig, timestamp, nonce = self._query(request)
            encrypted = await self._encrypted(request)
            self._check(sig, timestamp, nonce, encrypted)
            msg = self._message(self._decrypt(encrypted))
        except Refused as exc:
            return self._refuse(request, exc)
        # Only now, for a callback that is WeCom's, does its nonce count as used.
        if not await self.redis.set(keys.wecom_nonce(nonce), "1", nx=True, ex=self.window * 2):
            return self._refuse(request, Refused(403, "nonce seen before"))
        msgid: str = msg["msgid"]
        chat = chat_of(msg)
        ref, slot, wait = self._slot(msg, chat)
        opened = False
        if chat is not None and ref is not None and slot is not None:
            opened = await self.passive.open(chat, ref, slot, wait)
        try:
            record = json.dumps({"msg": msg, "at": self.clock()}, ensure_ascii=False)
            new = await self.inbox.put(msgid, record)
            response_url = msg.get("response_url")
            if new and chat is not None and isinstance(response_url, str) and response_url:
                await self.gateway.remember(chat, msgid, response_url, slot_single(msg))
        except Exception:
            await self.redis.delete(keys.wecom_nonce(nonce))  # WeCom's retry must get through
            if opened and chat is not None and ref is not None:
                await self.passive.close(chat, ref)
            raise  # 500: WeCom retries
        if not opened or chat is None or ref is None:
            return web.Response(text="")
        if not new:
            await self.passive.close(chat, ref)
            return web.Response(text="")
        try:
            answer = await self.passive.wait(chat, ref, wait)
        except Exception:  # stored already: the replies take the response_url or webhook
            log.exception("wecom: waiting for a passive reply failed")
            return web.Response(text="")
        if answer is None:
            return web.Response(text="")  # the replies take the response_url
        return web.json_response(self._encrypt(answer))

    def _slot(self, msg: dict[str, Any], chat: str | None) -> tuple[str | None, Slot | None, float]:
        """Return what a callback may be answered with: its slot reference, slot, wait."""
        if chat is None:
            return None, None, 0.0
        if msg.get("msgtype") in USER_MESSAGES:
            return str(msg["msgid"]), Slot(slot_single(msg)), self.wait
        key, task_id = pressed_key(msg), pressed_card(msg)
        if key is None or task_id is None:
            return None, None, 0.0
        # A ticket's or a question's button: the pressed card is replaced if its edit comes
        # in time (bot.card_edits, bot.core.question_cards).
        return press_ref(task_id), Slot(slot_single(msg), task_id), PRESS_WAIT

    # -- the checks ------------------------------------------------------------------------

    def _query(self, request: web.Request) -> tuple[str, str, str]:
        q = request.query
        sig, timestamp, nonce = (q.get(n, "") for n in ("msg_signature", "timestamp", "nonce"))
        if not (sig and timestamp and nonce) or len(nonce) > 64 or len(timestamp) > 16:
            raise Refused(400, "msg_signature, timestamp and nonce are required")
        return sig, timestamp, nonce

    async def _encrypted(self, request: web.Request) -> str:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise Refused(413, "body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise Refused(413, "body too large") from exc
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refused(400, "not JSON") from exc
        encrypted = data.get("encrypt") if isinstance(data, dict) else None
        if not isinstance(encrypted, str) or not encrypted:
            raise Refused(400, "no encrypt field")
        return encrypted

    def _check(self, sig: str, timestamp: str, nonce: str, encrypted: str) -> None:
        try:
            self.cipher.verify(sig, timestamp, nonce, encrypted)
        except BadSignature as exc:
            raise Refused(403, "bad signature") from exc
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > self.window:
            raise Refused(403, "timestamp outside the replay window")

    def _decrypt(self, encrypted: str) -> bytes:
        try:
            return self.cipher.decrypt(encrypted)
        except BadCiphertext as exc:
            raise Refused(400, f"does not decrypt: {exc}") from exc

    def _message(self, plain: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(plain)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refused(400, "the plaintext is not JSON") from exc
        if not isinstance(msg, dict) or not isinstance(msg.get("msgid"), str) or not msg["msgid"]:
            raise Refused(400, "no msgid")
        if self.bot_id and msg.get("aibotid") != self.bot_id:
            raise Refused(403, "another robot's callback")
        return msg

    def _encrypt(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Return the passive reply envelope: encrypted, signed, with its own nonce."""
        timestamp = str(int(self.clock()))
        nonce = str(secrets.randbelow(10**10))
        encrypted = self.cipher.encrypt(json.dumps(answer, ensure_ascii=False).encode())
        return {
            "encrypt": encrypted,
            "msgsignature": self.cipher.sign(timestamp, nonce, encrypted),
            "timestamp": int(timestamp),
            "nonce": nonce,
        }

    @staticmethod
    def _refuse(request: web.Request, exc: Refused) -> web.Response:
        with contextlib.suppress(Exception):
            log.warning("wecom: refused a callback from %s: %s", request.remote, exc.reason)
        return web.Response(status=exc.status, text=exc.reason)


def slot_single(msg: dict[str, Any]) -> bool:
    """Return whether a callback came from a single chat."""
    return msg.get("chattype") != GROUP
