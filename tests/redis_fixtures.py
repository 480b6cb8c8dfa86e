"""Redis fixtures: one real redis-server per session on a unix socket, emptied before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from bot.redis_server import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """Run one redis-server for the session; fsync every write so restart tests lose nothing."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendfsync="always")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """Run a redis-server of the test's own, AOF fsynced on every write, on a unix socket.

    The test may stop or kill it (``pid``) and ``start()`` it again on the same AOF.
    """
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """Return the session server's URL with every database emptied."""
    url = redis_server.start()  # a test may have stopped or killed it: bring it back
    with redis.Redis.from_url(url) as client:
        client.flushall()
    return url


@pytest.fixture
def redis_sync(redis_url: str) -> Iterator[redis.Redis]:
    """Return a sync client on the empty database."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
async def redis_async(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    """Return an asyncio client whose pool waits for a free connection instead of failing."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=20)
    client = redis.asyncio.Redis(connection_pool=pool)
    try:
        yield client
    finally:
        # A client given a pool does not close it by default; close both.
        await client.aclose(close_connection_pool=True)
