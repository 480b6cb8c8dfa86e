"""The alert webhook on the real web app and Redis: Alertmanager's JSON and the generic JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.core.alerts import BadPayload, InvalidAlertRoutes, parse_payload
from bot.core.ticket import EventKind, TicketState
from bot.settings import Settings
from bot.sources import load_alert_routes, load_org, load_ruleset
from bot.storage import keys
from bot.web.app import PARTS, init_app
from tests.conftest import ROOT, RULES_DIR

SECRET = "s3cret-for-the-alert-hook"
ALERTS = ROOT / "org" / "sample_alerts.yaml"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient]:
    settings = Settings(alerts_file=ALERTS, alerts_secret=SECRET)  # type: ignore[arg-type]
    app = init_app(settings, redis_url, sender=False)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def manager(status: str = "firing", fingerprint: str = "c3a1f2", **labels: str) -> dict[str, Any]:
    """Return an Alertmanager webhook body (version 4), as its documentation shows it."""
    labels = {"alertname": "WaterPressureLow", "village": "V-01", "severity": "warning", **labels}
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {"summary": "东联村供水压力低于 0.1 MPa", "description": "泵站 3 压力低"},
        "startsAt": "2026-12-04T01:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-04T02:00:00Z",
        "generatorURL": "http://prometheus.example/graph",
        "fingerprint": fingerprint,
    }
    return {
        "version": "4", "groupKey": "{}:{alertname=\"WaterPressureLow\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "lianhu", "groupLabels": {"alertname": "WaterPressureLow"},
        "commonLabels": labels, "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.example", "alerts": [alert],
    }  # fmt: skip


def bearer(secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Lianhu-Signature": f"sha256={mac}", "Content-Type": "application/json"}


async def everything(client: TestClient) -> dict[str, Any]:
    """Return every key of the database with its type and size (what 'nothing written' compares)."""
    r: redis.asyncio.Redis = client.app[PARTS].service.store.redis
    out = {}
    for key in await r.keys("*"):
        kind = (await r.type(key)).decode()
        out[key] = (kind, await r.dump(key))
    return out


async def test_alertmanager_opens_then_resolves_a_ticket_at_the_village(
    client: TestClient,
) -> None:
    service = client.app[PARTS].service
    body = json.dumps(manager()).encode()
    response = await client.post("/hooks/alerts", data=body, headers=bearer())
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["opened"] == ["c3a1f2:1"]
    ticket = await service.store.get("1")
    assert ticket is not None
    assert (ticket.node, ticket.category, ticket.state) == ("V-01", "utilities", TicketState.OPEN)
    assert "供水压力" in ticket.text and ticket.reporter.account == "alert:alertmanager"
    # The card went to the village group; nothing to the feed (it is no chat).
    rows = await service.store.redis.xrange(keys.outbox("telegram"))
    chats = {json.loads(f[b"payload"])["chat"] for _, f in rows}
    assert service.config.tree.nodes["V-01"].chats[0] in chats
    assert await service.store.redis.exists(keys.outbox("alert")) == 0
    # Alertmanager repeats a firing alert every repeat_interval: no new ticket.
    again = await client.post("/hooks/alerts", data=body, headers=bearer())
    assert (await again.json())["duplicate"] == ["c3a1f2:1"]
    assert await service.store.all_ids() == ["1"]
    # Resolved: the ticket is resolved, with an event; a repeat changes nothing more.
    resolved = json.dumps(manager("resolved")).encode()
    for expected in ("resolved", "duplicate"):
        response = await client.post("/hooks/alerts", data=resolved, headers=signed(resolved))
        assert (await response.json())[expected] == ["c3a1f2:1"]
    ticket = await service.store.get("1")
    assert ticket is not None and ticket.state is TicketState.RESOLVED
    history = [e.kind for e in await service.store.history("1")]
    assert history == [EventKind.OPENED, EventKind.RESOLVED]


async def test_the_generic_json_with_a_node_label(client: TestClient) -> None:
    service = client.app[PARTS].service
    payload = {"source": "power-co", "alerts": [
        {"id": "feeder-12", "status": "firing", "labels": {"alertname": "PowerOutage",
         "node": "G-03"}, "summary": "南岸社区第一网格停电"},
        {"id": "feeder-13", "status": "firing", "labels": {"alertname": "PowerOutage",
         "node": "X-99"}},
        {"id": "pump-1", "status": "firing", "labels": {"alertname": "Unknown"}},
    ]}  # fmt: skip
    body = json.dumps(payload).encode()
    response = await client.post("/hooks/alerts", data=body, headers=signed(body))
    assert response.status == 200
    answer = await response.json()
    assert answer["opened"] == ["feeder-12:1"]
    assert sorted(answer["unrouted"]) == ["feeder-13", "pump-1"]
    ticket = await service.store.get("1")
    assert ticket is not None and ticket.origin == "G-03" and ticket.node == "V-02"
    assert ticket.reporter.account == "alert:power-co"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-secret-of-same-size"},
        {"Authorization": f"Basic {SECRET}"},
        {"X-Lianhu-Signature": "sha256=" + "0" * 64},
        {"X-Lianhu-Signature": "md5=abc"},
    ],
)
async def test_a_request_without_the_key_is_refused_and_writes_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    before = await everything(client)
    response = await client.post("/hooks/alerts", data=json.dumps(manager()), headers=headers)
    assert response.status == 401
    assert "key" in (await response.json())["error"]
    assert await everything(client) == before


async def test_a_signature_of_another_body_is_refused(client: TestClient) -> None:
    body = json.dumps(manager()).encode()
    other = json.dumps(manager(fingerprint="ffff")).encode()
    response = await client.post("/hooks/alerts", data=other, headers=signed(body))
    assert response.status == 401


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (json.dumps({**manager(), "version": "3"}).encode(), 422, "version"),
        (json.dumps({**manager(), "alerts": []}).encode(), 422, "alerts"),
        (json.dumps(manager(status="burning")).encode(), 422, "status"),
        (json.dumps(manager(fingerprint="a b")).encode(), 422, "fingerprint"),
        (json.dumps({"alerts": [{"id": "x", "status": "firing"}]}).encode(), 422, "labels"),
        (
            json.dumps(
                {"alerts": [{"id": "x", "status": "firing", "labels": {"a": "b"}, "extra": 1}]}
            ).encode(),
            422,
            "extra",
        ),
        (json.dumps({**manager(), "alerts": manager()["alerts"] * 2}).encode(), 422, "twice"),
    ],
)
async def test_a_bad_payload_gets_a_clear_4xx_and_writes_nothing(
    client: TestClient, body: bytes, status: int, says: str
) -> None:
    before = await everything(client)
    # A valid alert first in the list must not be half-written either.
    response = await client.post("/hooks/alerts", data=body, headers=signed(body))
    assert response.status == status
    assert says in (await response.json())["error"]
    assert await everything(client) == before


def test_payload_shapes_are_read_whole() -> None:
    alerts = parse_payload(manager())
    assert [(a.source, a.key, a.status.value) for a in alerts] == [
        ("alertmanager", "c3a1f2@2026-12-04T01:00:00.000Z", "firing"),
    ]
    assert alerts[0].summary == "东联村供水压力低于 0.1 MPa"
    with pytest.raises(BadPayload, match="alerts"):
        parse_payload({"version": "4", "status": "firing", "alerts": [{}] * 101})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("routes:\n  - match: {a: b}\n    node: X-99\n    category: utilities\n", ":3:5: routes[0].node: no place 'X-99'"),
        ("routes:\n  - match: {a: b}\n    node: V-01\n    category: nonsense\n", ":4:5: routes[0].category: no category 'nonsense'"),
        ("routes:\n  - match: {a: b}\n    node: V-01\n    categroy: utilities\n", ":4:5: routes[0].categroy: unknown field"),
        ("routes:\n  - match: {a: b}\n    category: utilities\n", ":2:5: routes[0]: give exactly one of node and node_label"),
        ("routes:\n  - match: {}\n    node: V-01\n    category: utilities\n", ":2:5: routes[0].match: Dictionary should have at least 1 item"),
        ("routes: []\n", ":1:1: routes: List should have at least 1 item"),
    ],
)  # fmt: skip
def test_a_mapping_file_that_does_not_validate_names_file_line_and_field(
    tmp_path: Path, text: str, where: str
) -> None:
    tree, rules = load_org(ROOT / "org" / "sample_street.yaml"), load_ruleset(RULES_DIR)
    with pytest.raises(InvalidAlertRoutes) as caught:
        load_alert_routes(write(tmp_path, text), tree, rules)
    assert where in str(caught.value), str(caught.value)


def test_the_sample_mapping_validates() -> None:
    tree, rules = load_org(ROOT / "org" / "sample_street.yaml"), load_ruleset(RULES_DIR)
    assert len(load_alert_routes(ALERTS, tree, rules)) == 4


async def test_the_app_does_not_start_with_a_bad_mapping(tmp_path: Path, redis_url: str) -> None:
    bad = write(tmp_path, "routes:\n  - match: {a: b}\n    node: X-99\n    category: utilities\n")
    with pytest.raises(InvalidAlertRoutes):
        init_app(Settings(alerts_file=bad, alerts_secret=SECRET), redis_url)  # type: ignore[arg-type]


async def test_without_settings_there_is_no_endpoint(redis_url: str) -> None:
    app = init_app(Settings(), redis_url, sender=False)
    assert not any(
        r.resource and r.resource.canonical == "/hooks/alerts" for r in app.router.routes()
    )
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/hooks/alerts", data=b"{}", headers=bearer())
        # not served: the console's sign-in wall answers as for any unknown path
        assert response.status in (401, 404, 405)
