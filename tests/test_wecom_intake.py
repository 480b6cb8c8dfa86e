"""`lianhu run --platform wecom` serves the alert webhook (and Open311) beside the callback URL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis
import redis.asyncio

from bot.core.ticket import TicketState
from bot.wecom.runner import WeComBot
from tests.fake_wecom import FakeWeCom, wait_for
from tests.test_alerts import ALERTS, SECRET, bearer, manager
from tests.wecom_fixtures import KEY_V01, free_port, wecom_settings


@pytest.fixture
async def served(
    fake_wecom: FakeWeCom, redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> AsyncIterator[tuple[WeComBot, str]]:
    clients = tmp_path / "open311.yaml"
    clients.write_text('clients:\n  - name: city\n    key: "key-of-the-city-0001-abcdef"\n')
    settings = wecom_settings(
        fake_wecom, redis_url, tmp_path, alerts_file=ALERTS, alerts_secret=SECRET,
        open311_clients=clients,
    )  # fmt: skip
    sync = redis.Redis.from_url(redis_url)
    bot = WeComBot(settings, redis_async, sync, consumer="test", passive_wait=10.0)
    port = free_port()
    await bot.start("127.0.0.1", port, "/wecom")
    try:
        yield bot, f"http://127.0.0.1:{port}"
    finally:
        await bot.stop()
        sync.close()


async def test_an_alert_through_the_wecom_server_opens_a_ticket_and_reaches_the_village(
    served: tuple[WeComBot, str], fake_wecom: FakeWeCom
) -> None:
    bot, base = served
    async with aiohttp.ClientSession() as http:
        body = json.dumps(manager()).encode()
        async with http.post(f"{base}/hooks/alerts", data=body, headers=bearer()) as response:
            assert response.status == 200, await response.text()
            assert (await response.json())["opened"] == ["c3a1f2:1"]
        async with http.post(f"{base}/hooks/alerts", data=body, headers=bearer("x" * 20)) as bad:
            assert bad.status == 401
        async with http.get(
            f"{base}/open311/v2/services.json?api_key=key-of-the-city-0001-abcdef"
        ) as services:
            assert services.status == 200
            assert any(s["service_code"] == "utilities" for s in await services.json())
    ticket = await bot.service.store.get("1")
    assert ticket is not None
    assert (ticket.node, ticket.category, ticket.state) == ("V-01", "utilities", TicketState.OPEN)
    # The village's WeCom group hears of it through its group robot, as of any new ticket.
    await wait_for(
        lambda: any(p.key == KEY_V01 and "#1" in json.dumps(p.body, ensure_ascii=False)
                    for p in fake_wecom.pushes),
        "the card in the village's WeCom group",
    )  # fmt: skip
    assert await bot.service.store.all_ids() == ["1"]
