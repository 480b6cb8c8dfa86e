"""``lianhu web`` as a street office runs it: a real process serving the console alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import redis.asyncio

from bot.seed import seed
from bot.settings import Settings
from bot.storage.logins import Grant, Logins
from bot.web.session import COOKIE
from tests.conftest import ROOT
from tests.helpers import printed_address

START_TIMEOUT = 60.0  # seconds, on a loaded machine
PUBLIC = "https://console.example.org"
STREET_STAFF = "p-luo-bingkun"


@contextmanager
def web_command(redis_url: str, data: Path) -> Iterator[str]:
    """Start ``lianhu web`` on the test Redis and yield the address it printed."""
    env = {**os.environ, "REDIS_URL": redis_url, "LIANHU_DATA_DIR": str(data),
           "LIANHU_WEB_URL": PUBLIC}  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "web", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield printed_address(process, "Lianhu web console: ", START_TIMEOUT)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0  # SIGTERM is a clean stop
        process.stdout.close()  # type: ignore[union-attr]


async def test_the_console_is_served_alone_and_signs_in_by_a_link(
    redis_url: str, tmp_path: Path
) -> None:
    await seed(Settings(), redis_url)
    with web_command(redis_url, tmp_path) as address:
        async with aiohttp.ClientSession() as http:
            nobody = await http.get(f"{address}/tickets")
            assert nobody.status == 401 and "请先登录" in await nobody.text()
            for path in ("/sim", "/sim/api/messages", "/demo/signin"):
                assert (await http.get(f"{address}{path}")).status in (401, 404), path
            # Behind the proxy requests name the public host; another name is refused.
            proxied = await http.get(f"{address}/healthz", headers={"Host": "console.example.org"})
            assert proxied.status == 200
            other = await http.get(f"{address}/healthz", headers={"Host": "evil.example"})
            assert other.status == 421
            # A link made as /web makes one in a chat: the session opens, the dashboard shows.
            client = redis.asyncio.from_url(redis_url)
            try:
                grant = Grant(f"sim:{STREET_STAFF}", STREET_STAFF, "zh-Hans", time.time())
                token = await Logins(client).issue(grant)
            finally:
                await client.aclose()
            signed = await http.post(
                f"{address}/login", data={"token": token}, allow_redirects=False
            )
            assert signed.status == 303
            assert "Secure" in signed.headers["Set-Cookie"]  # the public address is https
            cookie = {"Cookie": f"{COOKIE}={signed.cookies[COOKIE].value}"}
            board = await http.get(f"{address}/dashboard", headers=cookie)
            assert board.status == 200 and 'id="tile-current"' in await board.text()
            sim = await http.get(f"{address}/sim", headers=cookie)
            assert sim.status == 404
