"""Open311 GeoReport v2 on the real web app and Redis, checked against the spec's shapes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.core.open311 import InvalidClients
from bot.core.ticket import TicketState
from bot.settings import Settings
from bot.sources import load_open311_clients, load_org
from bot.web.app import PARTS, init_app
from tests.conftest import ROOT

KEY = "k" * 30
OTHER = "o" * 30
CLIENTS = f"""clients:
  - name: hotline
    key: "{KEY}"
    node: S-01
  - name: other-app
    key: "{OTHER}"
"""
# The keys of the spec's examples (GeoReport v2: GET services, GET service requests).
SERVICE_KEYS = {"service_code", "service_name", "description", "metadata", "type", "keywords",
                "group"}  # fmt: skip
REQUEST_KEYS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code",
    "description", "agency_responsible", "service_notice", "requested_datetime",
    "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat", "long",
    "media_url",
}  # fmt: skip
V2 = "/open311/v2"


@pytest.fixture
async def client(redis_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    path = tmp_path / "clients.yaml"
    path.write_text(CLIENTS, encoding="utf-8")
    app = init_app(Settings(open311_clients=path), redis_url, sender=False)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def everything(client: TestClient) -> dict[Any, Any]:
    r: redis.asyncio.Redis = client.app[PARTS].service.store.redis
    return {key: await r.dump(key) for key in await r.keys("*")}


async def test_services_are_the_categories(client: TestClient) -> None:
    response = await client.get(f"{V2}/services.json", params={"api_key": KEY})
    assert response.status == 200
    listed = await response.json()
    assert all(set(s) == SERVICE_KEYS for s in listed)
    codes = {s["service_code"]: s for s in listed}
    assert "none" not in codes and codes["utilities"]["service_name"] == "水电气"
    assert codes["utilities"]["type"] == "realtime" and codes["utilities"]["metadata"] is False


async def test_a_client_creates_and_reads_a_request(client: TestClient) -> None:
    form = {
        "api_key": KEY, "service_code": "public_facilities", "lat": "22.7125", "long": "114.5403",
        "address_string": "东联村1组联户群 村口", "description": "村口路灯坏了三天",
        "first_name": "小明", "last_name": "王",
    }  # fmt: skip
    response = await client.post(f"{V2}/requests.json", data=form)
    assert response.status == 200, await response.text()
    created = await response.json()
    assert created == [{"service_request_id": "1", "service_notice": None, "account_id": None}]
    service = client.app[PARTS].service
    ticket = await service.store.get("1")
    assert ticket is not None
    assert (ticket.category, ticket.origin, ticket.node) == ("public_facilities", "H-01", "V-01")
    assert ticket.location == (22.7125, 114.5403) and ticket.reporter.name == "王小明"
    # Read it back, one and in the list, in the spec's shape.
    one = await (await client.get(f"{V2}/requests/1.json", params={"api_key": KEY})).json()
    assert len(one) == 1 and set(one[0]) == REQUEST_KEYS
    assert (one[0]["status"], one[0]["service_code"], one[0]["description"]) == (
        "open", "public_facilities", "村口路灯坏了三天",
    )  # fmt: skip
    assert one[0]["requested_datetime"].endswith("+08:00") and one[0]["lat"] == 22.7125
    listed = await client.get(f"{V2}/requests.json", params={"api_key": KEY, "status": "open"})
    assert [r["service_request_id"] for r in await listed.json()] == ["1"]
    closed = await client.get(f"{V2}/requests.json", params={"api_key": KEY, "status": "closed"})
    assert await closed.json() == []
    # Another client sees none of it: the same answer as for a number that does not exist.
    for wanted in ("1", "99"):
        response = await client.get(f"{V2}/requests/{wanted}.json", params={"api_key": OTHER})
        assert response.status == 404
        assert (await response.json())[0]["code"] == 404
    assert await (await client.get(f"{V2}/requests.json", params={"api_key": OTHER})).json() == []
    assert ticket.state is TicketState.OPEN


async def test_without_a_service_code_the_classifier_decides(client: TestClient) -> None:
    form = {"api_key": KEY, "description": "村口的路灯坏了半个月，晚上黑漆漆的",
            "attribute[node]": "H-04"}  # fmt: skip
    response = await client.post(f"{V2}/requests.json", data=form)
    assert response.status == 200
    ticket = await client.app[PARTS].service.store.get("1")
    assert ticket is not None and (ticket.category, ticket.origin) == ("public_facilities", "H-04")


async def test_lat_long_alone_go_to_the_clients_place(client: TestClient) -> None:
    form = {"api_key": KEY, "service_code": "noise", "lat": "22.7", "long": "114.5",
            "description": "工地半夜施工"}  # fmt: skip
    assert (await client.post(f"{V2}/requests.json", data=form)).status == 200
    ticket = await client.app[PARTS].service.store.get("1")
    assert ticket is not None and ticket.origin == "S-01"


async def test_the_same_idempotency_key_is_one_request(client: TestClient) -> None:
    form = {"api_key": KEY, "service_code": "noise", "attribute[node]": "H-01",
            "description": "楼下KTV每晚唱到凌晨三点"}  # fmt: skip
    headers = {"Idempotency-Key": "req-0001"}
    first = await (await client.post(f"{V2}/requests.json", data=form, headers=headers)).json()
    second = await (await client.post(f"{V2}/requests.json", data=form, headers=headers)).json()
    assert first == second == [{"service_request_id": "1", "service_notice": None,
                                "account_id": None}]  # fmt: skip
    assert await client.app[PARTS].service.store.all_ids() == ["1"]


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"service_code": "noise", "attribute[node]": "H-01"}, 403, "api_key"),
        ({"api_key": "x" * 30, "service_code": "noise", "attribute[node]": "H-01"}, 403, "api_key"),
        ({"api_key": KEY, "attribute[node]": "H-01"}, 400, "service_code or description"),
        ({"api_key": KEY, "service_code": "nonsense", "attribute[node]": "H-01"}, 400,
         "not found"),
        ({"api_key": KEY, "service_code": "none", "attribute[node]": "H-01"}, 400, "not found"),
        ({"api_key": KEY, "service_code": "noise", "attribute[node]": "X-9"}, 400, "no place"),
        ({"api_key": KEY, "service_code": "noise", "attribute[node]": "D-police"}, 400,
         "no place"),
        ({"api_key": KEY, "service_code": "noise", "lat": "91", "long": "0"}, 400, "latitude"),
        ({"api_key": KEY, "service_code": "noise", "lat": "abc", "long": "0"}, 400, "decimal"),
        ({"api_key": KEY, "service_code": "noise", "lat": "nan", "long": "0"}, 400, "latitude"),
        ({"api_key": KEY, "service_code": "noise"}, 400, "location"),
        ({"api_key": KEY, "description": "谢谢大家", "attribute[node]": "H-01"}, 400,
         "not recognised"),
        ({"api_key": KEY, "service_code": "noise", "attribute[node]": "H-01",
          "description": "吵" * 4001}, 400, "description"),
    ],
)  # fmt: skip
async def test_a_bad_request_gets_the_specs_error_and_writes_nothing(
    client: TestClient, form: dict[str, str], status: int, says: str
) -> None:
    before = await everything(client)
    response = await client.post(f"{V2}/requests.json", data=form)
    assert response.status == status
    body = await response.json()
    assert len(body) == 1 and body[0]["code"] == status and says in body[0]["description"]
    assert await everything(client) == before


@pytest.mark.parametrize(
    "params",
    [{}, {"api_key": "wrong" * 6}, {"api_key": KEY, "status": "pending"},
     {"api_key": KEY, "start_date": "yesterday"}, {"api_key": KEY, "start_date": "2026-12-01"},
     {"api_key": KEY, "service_request_id": "1,abc"}],
)  # fmt: skip
async def test_bad_reads_are_refused(client: TestClient, params: dict[str, str]) -> None:
    response = await client.get(f"{V2}/requests.json", params=params)
    assert response.status in (400, 403)
    assert (await response.json())[0]["code"] == response.status


async def test_a_json_body_is_read_too(client: TestClient) -> None:
    body = {"api_key": KEY, "service_code": "noise", "attribute[node]": "H-02",
            "description": "广场舞音响太大"}  # fmt: skip
    response = await client.post(f"{V2}/requests.json", data=json.dumps(body),
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status == 200


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('clients:\n  - name: a\n    key: "short"\n', "clients[0].key"),
        (f'clients:\n  - name: a\n    key: "{KEY}"\n    node: X-1\n', "no place 'X-1'"),
        (f'clients:\n  - name: a\n    key: "{KEY}"\n  - name: a\n    key: "{OTHER}"\n',
         "named twice"),
        (f'clients:\n  - name: a\n    key: "{KEY}"\n  - name: b\n    key: "{KEY}"\n',
         "share a key"),
        (f'clients:\n  - name: a\n    key: "{KEY}"\n    nod: S-01\n', "unknown field"),
    ],
)  # fmt: skip
def test_a_clients_file_that_does_not_validate(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidClients, match=re.escape(says)):
        load_open311_clients(path, load_org(ROOT / "org" / "sample_street.yaml"))


def test_the_sample_clients_file_validates() -> None:
    tree = load_org(ROOT / "org" / "sample_street.yaml")
    assert len(load_open311_clients(ROOT / "org" / "sample_open311.yaml", tree)) == 1
