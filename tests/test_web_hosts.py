"""The web app answers only to its own names: foreign Host (DNS rebinding) and Origin are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import WSServerHandshakeError, web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright

from bot.settings import Settings
from bot.web.app import PARTS, init_app
from bot.web.hosts import allowed_hosts, host_name, origin_name
from tests.test_browser import CHROMIUM

RESIDENT, HOUSEHOLD = "p-chen-zhiqiang", "sim:H-01"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient]:
    app = init_app(Settings(allowed_hosts="sim.example.org"), redis_url, demo=True)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def origin(client: TestClient) -> str:
    return f"http://127.0.0.1:{client.port}"


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1", 200), ("localhost", 200), ("sim.example.org", 200), ("SIM.example.org.", 200),
     ("[::1]", 200), ("rebound.attacker.test", 421), ("", 421), ("127.0.0.1:notaport", 421)],
)  # fmt: skip
async def test_every_request_must_name_an_allowed_host(
    client: TestClient, host: str, status: int
) -> None:
    header = f"{host}:{client.port}" if host and ":" not in host.strip("[]") else host
    response = await client.get("/signin", headers={"Host": header})
    assert response.status == status
    if status == 421:
        text = await response.text()
        assert "LIANHU_ALLOWED_HOSTS" in text


async def test_another_sites_socket_is_refused_and_the_own_page_is_served(
    client: TestClient,
) -> None:
    with pytest.raises(WSServerHandshakeError) as refused:
        await client.ws_connect("/sim/ws", headers={"Origin": "http://attacker.test"})
    assert refused.value.status == 403
    for bad in ("null", "file://", "http://127.0.0.1.attacker.test"):
        with pytest.raises(WSServerHandshakeError):
            await client.ws_connect("/sim/ws", headers={"Origin": bad})
    socket = await client.ws_connect("/sim/ws", headers={"Origin": origin(client)})
    await socket.close()
    socket = await client.ws_connect("/sim/ws", headers={"Origin": "https://sim.example.org"})
    await socket.close()


async def test_another_sites_post_changes_nothing(client: TestClient) -> None:
    body = {"as": RESIDENT, "chat": HOUSEHOLD, "text": "楼下停水两天了"}
    refused = await client.post(
        "/sim/api/send", json=body, headers={"Origin": "http://attacker.test"}
    )
    assert refused.status == 403
    assert await client.app[PARTS].history.recent(HOUSEHOLD) == []
    own = await client.post("/sim/api/send", json=body, headers={"Origin": origin(client)})
    assert own.status == 200
    script = await client.post("/sim/api/send", json={**body, "text": "谢谢"})  # no Origin
    assert script.status == 200
    # Reading is not state-changing: a link from another site still opens a page.
    page = await client.get("/sim", headers={"Origin": "http://attacker.test"})
    assert page.status == 200


def test_the_names_allowed_by_default() -> None:
    assert allowed_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts("0.0.0.0") == {"localhost", "127.0.0.1", "::1"}  # a wildcard is no name
    assert "192.168.1.20" in allowed_hosts("192.168.1.20")
    assert "bot.example.org" in allowed_hosts(None, ["Bot.Example.org"])
    assert host_name("[::1]:8080") == "::1" and host_name("a.b:x") is None
    assert origin_name("null") is None and origin_name("https://A.b:1") == "a.b"


def test_allowed_hosts_is_a_comma_separated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANHU_ALLOWED_HOSTS", "sim.example.org, 10.0.0.5")
    assert Settings().allowed_hosts == ("sim.example.org", "10.0.0.5")
    monkeypatch.setenv("LIANHU_ALLOWED_HOSTS", "https://sim.example.org/")
    with pytest.raises(ValueError, match="not a host name"):
        Settings()


ATTACKER_PAGE = """<!doctype html><script>
window.result = new Promise((resolve) => {
  const ws = new WebSocket("ws://127.0.0.1:%d/sim/ws");
  ws.onopen = () => resolve("open");
  ws.onclose = () => resolve("refused");
});
</script>"""


async def test_a_page_of_another_site_in_chromium_can_neither_read_nor_rebind(
    redis_url: str,
) -> None:
    app = init_app(Settings(), redis_url, demo=True)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    attacker = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=ATTACKER_PAGE % port, content_type="text/html")

    attacker.router.add_get("/", page)
    evil = web.AppRunner(attacker, access_log=None)
    await evil.setup()
    await web.TCPSite(evil, "127.0.0.1", 0).start()
    evil_port = evil.addresses[0][1]
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--no-sandbox", "--host-resolver-rules=MAP *.test 127.0.0.1"],
            )
            try:
                tab = await browser.new_page()
                # A page on another site opens the socket that streams every chat.
                await tab.goto(f"http://attacker.test:{evil_port}/")
                assert await tab.evaluate("window.result") == "refused"
                # DNS rebinding: the attacker's name now points at the app.
                answer = await tab.goto(f"http://rebound.test:{port}/sim")
                assert answer is not None and answer.status == 421
                assert "LIANHU_ALLOWED_HOSTS" in await tab.inner_text("body")
                # The app's own page, opened by its name, still works live.
                await tab.goto(f"http://127.0.0.1:{port}/sim?as={RESIDENT}&chat={HOUSEHOLD}")
                assert (
                    await tab.evaluate(
                        "new Promise((resolve) => {"
                        f" const ws = new WebSocket('ws://127.0.0.1:{port}/sim/ws');"
                        " ws.onopen = () => resolve('open'); ws.onclose = () => resolve('refused');"
                        "})"
                    )
                    == "open"
                )
            finally:
                await browser.close()
    finally:
        await evil.cleanup()
        await runner.cleanup()
