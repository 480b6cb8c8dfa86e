"""A person's data: export finds only theirs; erasure keeps every event and rewrites only
personal fields, once, without losing a concurrent change; retention erases old closed tickets."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio

from bot.core.org import Person, Role
from bot.core.personal import ERASED, erase
from bot.core.ticket import EventKind, TicketState
from bot.personal import DAY, PersonalData
from bot.storage import indexes, keys
from bot.storage.erasure import ErasureStore
from bot.storage.redis import CommitStatus, RedisStore
from bot.web.history import ChatHistory
from tests.helpers import sent
from tests.test_services import World
from tests.test_services import world as world  # the fixture, re-exported for these tests

LAMP = "村口的路灯坏了半个月，晚上黑漆漆的，有事打我电话13812345678"
LAMP_AGAIN = "村口路灯坏了好久了，晚上不敢出门，我住5栋，电话13987654321"
NOISE = "楼下KTV每晚唱到凌晨三点，吵得睡不着"
PHONE, PHONE_AGAIN = "13812345678", "13987654321"


async def report(world: World, person: Person, text: str) -> str:
    handled = await world.service.handle_message(world.message(person, text))
    assert handled.ticket is not None, handled
    return handled.ticket


async def command(world: World, person: Person, text: str) -> None:
    handled = await world.service.handle_message(world.message(person, text))
    assert handled.status == "done", handled


async def everything(client: redis.asyncio.Redis) -> str:
    """Return every value stored in Redis (delivered outbox entries are gone), as one text."""
    out = []
    async for key in client.scan_iter(count=1000):
        kind = (await client.type(key)).decode()
        if kind == "string":
            out.append(await client.get(key))
        elif kind == "list":
            out += await client.lrange(key, 0, -1)
        elif kind == "zset":
            out += await client.zrange(key, 0, -1)
        elif kind == "hash":
            out += [v for pair in (await client.hgetall(key)).items() for v in pair]
        elif kind == "stream":
            out += [v for _, fields in await client.xrange(key) for v in fields.values()]
        elif kind == "set":
            out += list(await client.smembers(key))
    return "\n".join(v.decode(errors="replace") for v in out if isinstance(v, bytes))


async def raw_events(world: World, ticket_id: str) -> list[dict[str, Any]]:
    return [e.to_dict() for e in await RedisStore(world.redis).history(ticket_id)]


async def two_reporters(world: World) -> tuple[Person, Person, str]:
    """Chen reports the lamp, Huang (same village) joins, Huang adds a note."""
    chen = world.person(Role.RESIDENT, "H-01")
    huang = world.person(Role.RESIDENT, "H-02")
    ticket_id = await report(world, chen, LAMP)
    assert await report(world, huang, LAMP_AGAIN) == ticket_id  # joined
    await command(world, chen, f"/note {ticket_id} 晚上八点以后在家")
    return chen, huang, ticket_id


async def test_export_holds_a_persons_own_texts_and_nothing_of_others(world: World) -> None:
    chen, huang, lamp = await two_reporters(world)
    noise = await report(world, huang, NOISE)
    history = ChatHistory(world.redis, world.clock)
    said = await history.append("sim:H-01", chen.accounts[1], chen.name, "我家门口的灯也坏了")
    await history.append("sim:H-02", huang.accounts[1], huang.name, "楼下好吵")
    data = PersonalData(world.redis, world.clock)

    mine = await data.export(list(chen.accounts))
    assert [t["id"] for t in mine["tickets"]] == [lamp]
    assert mine["tickets"][0]["texts"] == [LAMP]
    assert {e["kind"] for e in mine["tickets"][0]["events"]} == {"opened", "noted"}
    assert [m["text"] for m in mine["simulator_messages"]] == [said.text]
    dumped = json.dumps(mine, ensure_ascii=False)
    assert PHONE_AGAIN not in dumped and huang.name not in dumped and "楼下好吵" not in dumped

    theirs = await data.export([huang.accounts[0]])  # one account, as given
    assert [t["id"] for t in theirs["tickets"]] == [lamp, noise]
    assert theirs["tickets"][0]["texts"] == [LAMP_AGAIN]
    assert theirs["tickets"][1]["texts"] == [NOISE]
    dumped = json.dumps(theirs, ensure_ascii=False)
    assert PHONE not in dumped and chen.name not in dumped and theirs["simulator_messages"] == []


async def test_forget_erases_text_name_and_account_and_keeps_every_event(world: World) -> None:
    chen, huang, ticket_id = await two_reporters(world)
    worker = world.person(Role.VILLAGE_CADRE, "V-01")
    await command(world, worker, f"/ack {ticket_id}")
    for platform in ("telegram", "sim"):  # deliver the outboxes: what is left is what is kept
        await sent(world.redis, platform)
    before = await raw_events(world, ticket_id)
    dump = await everything(world.redis)
    assert PHONE in dump and LAMP in dump and chen.accounts[0] in dump  # found before
    data = PersonalData(world.redis, world.clock)

    preview = await data.forget(chen.accounts, apply=False)
    assert preview.tickets == {ticket_id: 8} and await raw_events(world, ticket_id) == before

    done = await data.forget(chen.accounts, apply=True)
    assert done.tickets == {ticket_id: 8}
    dump = await everything(world.redis)
    assert PHONE not in dump and LAMP not in dump and "晚上八点以后在家" not in dump
    assert chen.accounts[0] not in dump and chen.name not in dump
    assert PHONE_AGAIN in dump and huang.name in dump  # the co-reporter's data stays
    after = await raw_events(world, ticket_id)
    assert [(e["kind"], e["at"], e["seq"]) for e in after[:-1]] == [
        (e["kind"], e["at"], e["seq"]) for e in before
    ]
    assert after[-1]["kind"] == "erased" and after[-1]["data"] == {"by": "cli", "fields": 8}
    assert after[0]["data"]["text"] == ERASED and after[0]["actor"] == ERASED
    assert after[1]["data"]["text"] == LAMP_AGAIN  # Huang's join
    ticket = await world.store.get(ticket_id)
    assert ticket is not None and ticket.text == ERASED and ticket.seq == len(after)
    assert [r.account for r in ticket.reporters] == [ERASED, huang.accounts[0]]
    assert ticket.state is TicketState.ACKNOWLEDGED
    assert await indexes.reported(world.redis, chen.accounts[:1]) == []

    again = await data.forget(chen.accounts, apply=True)
    assert again.empty and await raw_events(world, ticket_id) == after  # nothing appended

    # The ticket goes on; the erased reporter is told nothing more, the other one is.
    await command(world, worker, f"/resolve {ticket_id} 已换灯泡")
    told = {p["chat"] for p in await world.outbox()}
    assert world.tree.nodes["H-02"].chats[0] in told
    assert world.tree.nodes["H-01"].chats[0] not in told and ERASED not in told


async def test_an_erasure_loses_no_concurrent_change(world: World) -> None:
    chen, _, ticket_id = await two_reporters(world)
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    data = PersonalData(world.redis, world.clock)
    ticket, history = await data.read(ticket_id)
    assert ticket is not None
    erasure = erase(ticket, history, chen.accounts, world.clock(), "cli")
    await command(world, cadre, f"/note {ticket_id} 电工明天上午到")  # between read and write
    status = await ErasureStore(world.redis).commit(ticket_id, ticket.seq, erasure, [])
    assert status is CommitStatus.CONFLICT
    events = await raw_events(world, ticket_id)
    assert events[0]["data"]["text"] == LAMP and events[-1]["data"]["note"] == "电工明天上午到"

    assert (await data.forget(chen.accounts, apply=True)).tickets == {ticket_id: 8}
    events = await raw_events(world, ticket_id)
    assert [e["kind"] for e in events] == ["opened", "joined", "noted", "noted", "erased"]
    assert events[3]["data"]["note"] == "电工明天上午到" and events[0]["data"]["text"] == ERASED


async def test_forget_deletes_simulator_messages_and_erases_quotes_of_them(world: World) -> None:
    chen = world.person(Role.RESIDENT, "H-01")
    leader = world.person(Role.HOUSEHOLD_LEADER, "H-01")
    history = ChatHistory(world.redis, world.clock)
    mine = await history.append("sim:H-01", chen.accounts[1], chen.name, "电话13812345678")
    await history.append(chen.accounts[1], "bot", "", "已登记")  # their private chat
    reply = await history.append("sim:H-01", leader.accounts[1], leader.name, "收到", (), "1")
    assert reply.quote is not None and reply.quote.id == str(mine.id)
    data = PersonalData(world.redis, world.clock)
    done = await data.forget(chen.accounts, apply=True)
    assert (done.messages, done.quotes) == (2, 1)
    left = await history.recent("sim:H-01")
    assert [m.text for m in left] == ["收到"] and left[0].quote is not None
    assert (left[0].quote.name, left[0].quote.text) == (ERASED, ERASED)
    assert await history.recent(chen.accounts[1]) == []
    assert PHONE not in await everything(world.redis)
    assert (await data.forget(chen.accounts, apply=True)).empty


async def test_retention_erases_only_tickets_closed_longer_ago(world: World) -> None:
    chen = world.person(Role.RESIDENT, "H-01")
    huang = world.person(Role.RESIDENT, "H-02")
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    worker = world.person(Role.GRID_WORKER, "G-01")
    old = await report(world, chen, LAMP)
    await command(world, cadre, f"/dismiss {old} 重复报告")
    world.clock.now += 200 * DAY
    newer = await report(world, huang, NOISE)
    await command(world, worker, f"/resolve {newer} 已劝停")
    await command(world, huang, f"/confirm {newer}")
    still_open = await report(world, chen, "3栋楼道里堆满了杂物，挡住了消防通道")
    world.clock.now += 170 * DAY  # old: closed 370 days ago; newer: 170 days ago
    data = PersonalData(world.redis, world.clock)
    untouched = {i: await raw_events(world, i) for i in (newer, still_open)}
    assert await world.redis.zrange(keys.CLOSED, 0, -1) == [old.encode(), newer.encode()]

    assert await data.expire(0) == 0  # off
    assert await data.expire(365) == 1
    events = await raw_events(world, old)
    assert [e["kind"] for e in events] == ["opened", "dismissed", "erased"]
    assert events[-1]["data"] == {"by": "retention", "fields": 5}
    assert events[0]["data"]["text"] == ERASED and events[1]["data"]["reason"] == "重复报告"
    assert {i: await raw_events(world, i) for i in (newer, still_open)} == untouched
    assert await world.redis.zrange(keys.CLOSED, 0, -1) == [newer.encode()]
    assert await data.reported([chen.accounts[0]]) == [still_open]
    assert await data.expire(365) == 0  # once each
    world.clock.now += 200 * DAY
    assert await data.expire(365) == 1 and await data.expire(365) == 0
    ticket = await world.store.get(newer)
    assert ticket is not None and ticket.state is TicketState.CLOSED
    assert [e.kind for e in await world.store.history(newer)][-1] is EventKind.ERASED
    assert (await world.store.get(still_open)) is not None
    assert await raw_events(world, still_open) == untouched[still_open]
