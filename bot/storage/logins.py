"""Sign-in links and sessions of the web console, on Redis.

A person asks the bot for a link in a private chat (``/web``); the link carries a
random token whose grant (who asked, from which account) lives in Redis for a few
minutes and is taken with GETDEL, so that it works once. Taking it opens a
session: a random id whose record lives in Redis until it expires or is ended, so
that ending it (``/logout``, a revoked account) takes effect at once. Keys hold
the SHA-256 of tokens and ids, never the values a browser carries.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from bot.storage import keys
from bot.storage.raw import text_of

LINK_TTL = 600  # seconds a sign-in link works: long enough to open it, short if it leaks
SESSION_TTL = 12 * 3600  # a working day; then ask the bot for a new link


@dataclass(frozen=True)
class Grant:
    """Who a sign-in link or a session stands for."""

    account: str  # the chat account that asked for the link: "telegram:123", "sim:p-x"
    person: str | None  # their roster id when they are on the roster
    lang: str
    at: float  # when the link was issued, or the session opened


@dataclass(frozen=True)
class Session:
    """An open session: its grant and the token that forms must carry (CSRF)."""

    grant: Grant
    csrf: str
    digest: str  # the SHA-256 of the session id: the session's name in Redis


def digest(value: str) -> str:
    """Return the SHA-256 of a token or session id, as hex."""
    return hashlib.sha256(value.encode()).hexdigest()


class Logins:
    """Issue and redeem sign-in links; open, read and end sessions."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def issue(self, grant: Grant, ttl: int = LINK_TTL) -> str:
        """Return a new one-time token standing for ``grant`` for ``ttl`` seconds."""
        token = secrets.token_urlsafe(32)
        await self.redis.set(keys.web_login(digest(token)), _dumps(grant), ex=ttl)
        return token

    async def peek(self, token: str) -> Grant | None:
        """Return the grant of a token that still works, without using it up."""
        raw = await self.redis.get(keys.web_login(digest(token)))
        return _grant(raw) if raw else None

    async def redeem(self, token: str) -> Grant | None:
        """Use a token up and return its grant; None when it is unknown, used or expired."""
        raw = await self.redis.getdel(keys.web_login(digest(token)))
        return _grant(raw) if raw else None

    async def open(self, grant: Grant, ttl: int = SESSION_TTL) -> str:
        """Open a session for ``grant``; return its id (the browser's secret)."""
        session_id = secrets.token_urlsafe(32)
        name = digest(session_id)
        record = {"grant": asdict(grant), "csrf": secrets.token_urlsafe(24)}
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.web_session(name), json.dumps(record), ex=ttl)
        pipe.sadd(keys.web_sessions_of(grant.account), name)
        pipe.expire(keys.web_sessions_of(grant.account), ttl)
        await pipe.execute()
        return session_id

    async def session(self, session_id: str) -> Session | None:
        """Return the open session of an id, or None."""
        name = digest(session_id)
        raw = await self.redis.get(keys.web_session(name))
        if not raw:
            return None
        record = json.loads(raw)
        return Session(Grant(**record["grant"]), str(record["csrf"]), name)

    async def end(self, session: Session) -> None:
        """End one session."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.web_session(session.digest))
        pipe.srem(keys.web_sessions_of(session.grant.account), session.digest)
        await pipe.execute()

    async def end_all(self, account: str) -> int:
        """End every session an account opened; return how many were open."""
        names = [text_of(n) for n in await self.redis.smembers(keys.web_sessions_of(account))]
        pipe = self.redis.pipeline(transaction=True)
        for name in names:
            pipe.delete(keys.web_session(name))
        pipe.delete(keys.web_sessions_of(account))
        done = await pipe.execute()
        return sum(int(n) for n in done[:-1])

    async def secret(self) -> bytes:
        """Return the key that signs session cookies, made once and shared by every process."""
        await self.redis.set(keys.WEB_SECRET, secrets.token_hex(32), nx=True)
        value = await self.redis.get(keys.WEB_SECRET)
        assert value is not None
        return value if isinstance(value, bytes) else str(value).encode()


def _dumps(grant: Grant) -> str:
    return json.dumps(asdict(grant))


def _grant(raw: Any) -> Grant:
    return Grant(**json.loads(raw))
