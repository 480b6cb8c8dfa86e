"""The webhook server drops idle and slow clients and caps its connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from aiohttp import web

from bot.inbox import Inbox
from bot.telegram.webhook import IDLE_TIMEOUT, serve, webhook_app
from tests.telegram_fixtures import SECRET, free_port

SAFETY = 20.0  # seconds before a test gives up on an event that must come


@pytest.fixture
async def server(redis_async: redis.asyncio.Redis) -> AsyncIterator[tuple[int, web.AppRunner]]:
    port = free_port()
    inbox = Inbox(redis_async, "telegram", "t")
    runner = await serve(
        webhook_app("/hook", inbox, SECRET), "127.0.0.1", port, idle_timeout=0.5, max_connections=3
    )
    try:
        yield port, runner
    finally:
        await runner.cleanup()


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Return whether the server closes the connection (EOF) before SAFETY seconds."""
    try:
        return await asyncio.wait_for(reader.read(), SAFETY) == b""
    except TimeoutError:
        return False


async def test_an_idle_client_and_a_half_request_are_dropped(
    server: tuple[int, web.AppRunner],
) -> None:
    port, _ = server
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
    slow_writer.write(b"POST /hook HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    await slow_writer.drain()
    assert await closed_by_server(idle_reader)
    assert await closed_by_server(slow_reader)
    idle_writer.close()
    slow_writer.close()


async def test_connections_past_the_cap_are_closed_and_the_rest_served(
    server: tuple[int, web.AppRunner], redis_async: redis.asyncio.Redis
) -> None:
    port, runner = server
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    assert runner.server is not None
    while len(runner.server.connections) < 3:  # the server has taken all three
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await closed_by_server(reader)
    writer.close()
    for _, w in held:
        w.close()
    while runner.server.connections:
        await asyncio.sleep(0.01)
    # Once they are gone, Telegram's next delivery is served as ever.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"update_id": 1, "message": {"text": "x"}}).encode()
    writer.write(
        b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\nContent-Length: {len(body)}\r\n".encode()
        + b"Connection: close\r\n\r\n"
        + body
    )
    status = await asyncio.wait_for(reader.readline(), SAFETY)
    assert status.startswith(b"HTTP/1.1 200")
    writer.close()


def test_the_defaults_drop_idle_clients_within_a_minute() -> None:
    assert 0 < IDLE_TIMEOUT <= 60


def test_every_server_listens_on_loopback_by_default() -> None:
    import inspect

    from bot.cli import build_parser
    from bot.telegram.runner import TelegramBot

    parser = build_parser()
    assert parser.parse_args(["run"]).listen == "127.0.0.1"
    assert parser.parse_args(["demo"]).host == "127.0.0.1"
    assert inspect.signature(TelegramBot.start).parameters["host"].default == "127.0.0.1"
