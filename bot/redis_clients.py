"""Redis clients from one URL: ``redis://``, ``rediss://`` (TLS) or a Sentinel URL.

A Sentinel URL names the sentinels and the monitored master, and the clients ask the
sentinels where the master is now, on every new connection (so after a failover too):

    redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?OPTIONS]
    rediss+sentinel://...  the master is reached over TLS

OPTIONS: ``sentinel_password`` (when the sentinels ask for one; the URL's password is the
master's), ``ssl_ca_certs`` (rediss+sentinel). Plain and TLS URLs go to redis-py's
``from_url`` unchanged (``rediss://`` with ``?ssl_cert_reqs=required&ssl_ca_certs=...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

SCHEMES = ("redis+sentinel", "rediss+sentinel")


class RedisURLError(ValueError):
    """A Redis URL that cannot be used; the message says why."""


@dataclass(frozen=True)
class SentinelURL:
    """What a Sentinel URL says."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    ca_certs: str | None = None

    def master_kwargs(self) -> dict[str, Any]:
        """Return the connection settings of the master (and replicas)."""
        out: dict[str, Any] = {"db": self.db}
        if self.username:
            out["username"] = self.username
        if self.password:
            out["password"] = self.password
        if self.tls:
            out["ssl"] = True
            if self.ca_certs:
                out["ssl_ca_certs"] = self.ca_certs
        return out

    def sentinel_kwargs(self) -> dict[str, Any]:
        """Return the connection settings of the sentinels themselves."""
        return {"password": self.sentinel_password} if self.sentinel_password else {}


def parse_sentinel(url: str) -> SentinelURL | None:
    """Return the parts of a Sentinel URL, None for any other URL; raise RedisURLError."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return None
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise RedisURLError(f"sentinel address {item!r} is not HOST:PORT")
        sentinels.append((host.strip("[]"), int(port)))
    if not sentinels:
        raise RedisURLError("a Sentinel URL names at least one sentinel HOST:PORT")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise RedisURLError("a Sentinel URL's path is /SERVICE or /SERVICE/DB")
    if len(path) == 2 and not path[1].isdigit():
        raise RedisURLError(f"database {path[1]!r} is not a number")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"sentinel_password", "ssl_ca_certs"}
    if unknown:
        raise RedisURLError(f"unknown Sentinel URL options: {', '.join(sorted(unknown))}")
    return SentinelURL(
        sentinels=tuple(sentinels),
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sentinel_password=query.get("sentinel_password"),
        tls=parts.scheme == "rediss+sentinel",
        ca_certs=query.get("ssl_ca_certs"),
    )


class _AsyncSentinelClient(redis.asyncio.Redis):
    """The master's client, closing the sentinels' connections with its own."""

    watchers: redis.asyncio.sentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        for client in self.watchers.sentinels if self.watchers else ():
            await client.aclose()


class _SyncSentinelClient(redis.Redis):
    """The master's blocking client, closing the sentinels' connections with its own."""

    watchers: redis.sentinel.Sentinel | None = None

    def close(self) -> None:
        super().close()
        for client in self.watchers.sentinels if self.watchers else ():
            client.close()


class _BlockingSentinelPool(
    redis.asyncio.sentinel.SentinelConnectionPool, redis.asyncio.BlockingConnectionPool
):
    """The master's connections through Sentinel, callers waiting for a free one at the cap.

    redis-py's own Sentinel pool raises "Too many connections" past its cap (100 by
    default), whatever the callers' limits: a receiver's webhook handlers, inbox and
    sender together passed it in the scaled chaos run.
    """


def async_client(url: str, max_connections: int | None = None) -> redis.asyncio.Redis:
    """Return an asyncio client; ``max_connections`` makes callers wait for a free one."""
    found = parse_sentinel(url)
    if found is not None:
        sentinel = redis.asyncio.sentinel.Sentinel(
            found.sentinels, sentinel_kwargs=found.sentinel_kwargs() or None
        )
        cap = {"max_connections": max_connections} if max_connections else {}
        client: _AsyncSentinelClient = sentinel.master_for(
            found.service, redis_class=_AsyncSentinelClient,
            connection_pool_class=_BlockingSentinelPool, **cap, **found.master_kwargs(),
        )  # fmt: skip
        client.watchers = sentinel
        return client
    if max_connections:
        pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=max_connections)
        return redis.asyncio.Redis.from_pool(pool)  # the client owns (and closes) its pool
    return redis.asyncio.Redis.from_url(url)


def sync_client(url: str) -> redis.Redis:
    """Return a blocking client (rq and the scheduler use one)."""
    found = parse_sentinel(url)
    if found is not None:
        sentinel = redis.sentinel.Sentinel(
            found.sentinels, sentinel_kwargs=found.sentinel_kwargs() or None
        )
        blocking: _SyncSentinelClient = sentinel.master_for(
            found.service, redis_class=_SyncSentinelClient, **found.master_kwargs()
        )
        blocking.watchers = sentinel
        return blocking
    return redis.Redis.from_url(url)
