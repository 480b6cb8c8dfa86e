"""How tickets are stored: compact records, the same tickets read back, old records still read."""

from __future__ import annotations

import hashlib
import json
import zlib
from types import MappingProxyType

import pytest
import redis
import redis.asyncio

from bot.card_edits import DICTIONARY, pack, split_field, unpack
from bot.core.deadlines import Policy
from bot.core.models import Actor, IncomingMessage, Lang, platform_of
from bot.core.org import Person, Role
from bot.core.ticket import EventKind, Reporter, Ticket, TicketEvent, TicketState
from bot.live import LiveConfig
from bot.scheduling import RqScheduler
from bot.services import Service
from bot.storage import keys
from bot.storage.card_names import CardNames, fill
from bot.storage.codec import decode_event, decode_ticket, dumps, encode_event, encode_ticket
from bot.storage.deck_codec import unpack_base
from bot.storage.decks import is_card
from bot.storage.redis import RedisStore
from tests.conftest import ROOT, RULES_DIR
from tests.helpers import sent

REPORT = "村口的路灯坏了半个月，晚上黑漆漆的"
NOW = 1_800_000_000.123456


def full_ticket() -> Ticket:
    """Return a ticket with every field away from its default."""
    return Ticket(
        id="42", category="noise", severity="high", urgent=True, visibility="private",
        text=REPORT, origin="H-01", origin_chat="telegram:-1001", node="D-01",
        tier="department", state=TicketState.RESOLVED,
        reporters=(
            Reporter("telegram:1", "陈志强", "telegram:-1001", "m1", "en"),
            Reporter("wecom:2", "李", "wecom:g", "7"),
        ),
        created_at=NOW, updated_at=NOW + 5, stage=3, stage_started=NOW + 1, ack_due=NOW + 2,
        resolve_due=NOW + 3, close_due=NOW + 4, acknowledged_at=NOW + 1.5,
        resolved_at=NOW + 4.5, closed_at=NOW + 6, assignee="p7", assignee_name="王",
        departments=("D-01",), handled_at=("V-01", "S-01"), related=("41",),
        department_steps=MappingProxyType({"D-01": MappingProxyType({"arrived": NOW})}),
        escalations=2, flagged=True, rating=5, resolution="修好了", seq=9,
        photos=("telegram:abc",), location=(22.5, 114.1),
    )  # fmt: skip


def plain_ticket() -> Ticket:
    """Return a just-opened ticket: most fields at their defaults."""
    return Ticket(
        id="7", category="public_facilities", severity="normal", urgent=False,
        visibility="public", text=REPORT, origin="H-01", origin_chat="telegram:-1001000000131",
        node="V-01", tier="village", state=TicketState.OPEN,
        reporters=(Reporter("telegram:1000010", "陈志强", "telegram:-1001000000131", "m0"),),
        created_at=NOW, updated_at=NOW, stage_started=NOW, ack_due=NOW + 86400,
        resolve_due=NOW + 259200, seq=1,
    )  # fmt: skip


def test_snapshots_read_back_equal_and_compact() -> None:
    for ticket in (full_ticket(), plain_ticket()):
        stored = encode_ticket(ticket)
        assert decode_ticket(stored) == ticket
        assert decode_ticket(stored.encode()) == ticket
    old = len(dumps(plain_ticket().to_dict()).encode())
    new = len(encode_ticket(plain_ticket()).encode())
    assert new <= 420 < old  # 843 bytes before, in full field names with every default


def test_events_read_back_equal_and_under_100_bytes() -> None:
    actor, name, chat = "telegram:1000010", "陈志强", "telegram:-1001000000131"
    opened_data = {
        "category": "noise", "text": REPORT, "departments": [], "photos": [],
        "location": None, "related": [], "matched": ["路灯"], "ack_due": NOW + 1,
        "reporter": {"account": actor, "name": name, "chat": chat, "message_id": "m0",
                     "lang": "zh-Hans"},
    }  # fmt: skip
    joined_data = {"reporter": {"account": "wecom:9", "name": "李", "chat": chat,
                                "message_id": "9", "lang": "en"}}  # fmt: skip
    events = [
        TicketEvent("7", 1, EventKind.OPENED, NOW, actor, name, chat, opened_data),
        TicketEvent("7", 2, EventKind.ACKNOWLEDGED, NOW + 1, "telegram:1000020", "王", chat),
        TicketEvent("7", 3, EventKind.ESCALATED, NOW + 2, "system", "", None, {"to": "S-01"}),
        TicketEvent("7", 4, EventKind.RESOLVED, NOW + 3, actor, name, chat, {"note": "修好了"}),
        TicketEvent("7", 5, EventKind.OPENED, NOW, actor, name, chat, {"photos": ["x"]}),
        TicketEvent("7", 6, EventKind.JOINED, NOW, "wecom:9", "李", chat, joined_data),
        TicketEvent("7", 7, EventKind.JOINED, NOW, actor, name, chat, joined_data),
    ]
    for event in events:
        stored = encode_event(event)
        back = decode_event("7", stored)
        expected = dict(event.data)
        if event.kind is EventKind.OPENED:  # an opened event's empty fields read back empty
            expected = {"departments": [], "photos": [], "location": None, "related": []}
            expected |= {"urgent": False, "visibility": "public"} | dict(event.data)
        assert (back.ticket, back.seq, back.kind, back.at) == ("7", event.seq, event.kind, event.at)
        assert (back.actor, back.actor_name, back.chat) == (event.actor, event.actor_name, chat
                                                            if event.chat else None)  # fmt: skip
        assert dict(back.data) == expected
    assert decode_event("7", encode_event(events[1])) == events[1]
    # Under 100 bytes with a 16-character account id and a 24-character chat id, besides the
    # data a person wrote (the note).
    sizes = [len(encode_event(e).encode()) - len(dumps(dict(e.data)).encode()) for e in events[1:4]]
    assert max(sizes) <= 100 - len("{}"), sizes
    old = [len(dumps(e.to_dict()).encode()) for e in events[1:4]]
    assert min(old) > 100, old


async def test_old_records_in_redis_still_read_and_change(
    redis_sync: redis.Redis, redis_async: redis.asyncio.Redis
) -> None:
    """A ticket stored before the compact form (full JSON) reads, changes and keeps its history."""
    config = LiveConfig(RULES_DIR, ROOT / "org" / "sample_street.yaml", Policy(scale=1.0))
    store = RedisStore(redis_async)
    service = Service(store, config, RqScheduler(redis_sync), lambda: NOW)
    people = config.tree.people.values()
    resident = next(p for p in people if p.role is Role.RESIDENT and p.scope == "H-01")
    cadre = next(p for p in people if p.role is Role.VILLAGE_CADRE and p.scope == "V-01")

    def message(person: Person, text: str, number: str) -> IncomingMessage:
        node = config.tree.nodes[person.scope]
        sender = Actor(person.accounts[0], person.name, person.id, Lang(person.lang))
        return IncomingMessage(node.chats[0], number, sender, text, NOW)

    opened = await service.handle_message(message(resident, REPORT, "1"))
    ticket_id = opened.ticket or ""
    before = await store.get(ticket_id)
    history = await store.history(ticket_id)
    assert before is not None and len(history) == 1
    # Rewrite it as version 1 wrote it (what a running deployment holds): a snapshot STRING
    # beside a LIST of events, both full JSON.
    await redis_async.delete(keys.ticket(ticket_id))
    await redis_async.set(keys.ticket(ticket_id), dumps(before.to_dict()))
    await redis_async.rpush(keys.events(ticket_id), dumps(history[0].to_dict()))
    assert await store.get(ticket_id) == before
    assert await store.history(ticket_id) == history
    assert (await store.get_many([ticket_id])) == [before]

    acked = await service.handle_message(message(cadre, f"/ack {ticket_id}", "2"))
    assert acked.status != "refused", acked
    after = await store.get(ticket_id)
    assert after is not None and after.state is TicketState.ACKNOWLEDGED
    kinds = [e.kind for e in await store.history(ticket_id)]
    assert kinds == [EventKind.OPENED, EventKind.ACKNOWLEDGED]
    # The change moved the ticket into one hash: the old snapshot as "s", the old event
    # as it was, the new one compact; the old list is gone.
    raws = await redis_async.hgetall(keys.ticket(ticket_id))
    assert set(raws) == {b"s", b"1", b"2"}
    assert json.loads(raws[b"1"])["ticket"] == ticket_id
    assert json.loads(raws[b"2"])[1] == "a"
    assert json.loads(raws[b"s"]) == before.to_dict()
    assert await redis_async.exists(keys.events(ticket_id)) == 0
    [history_of] = await store.histories([ticket_id])
    assert history_of == await store.history(ticket_id)


async def test_a_ticket_and_its_delivered_cards_stay_compact(
    redis_sync: redis.Redis, redis_async: redis.asyncio.Redis
) -> None:
    """One listpack hash per ticket; its card records compressed, their hash a listpack too."""
    config = LiveConfig(RULES_DIR, ROOT / "org" / "sample_street.yaml", Policy(scale=1.0))
    store = RedisStore(redis_async)
    service = Service(store, config, RqScheduler(redis_sync), lambda: NOW)
    resident = next(
        p for p in config.tree.people.values() if p.role is Role.RESIDENT and p.scope == "H-02"
    )
    sender = Actor(resident.accounts[0], resident.name, resident.id, Lang(resident.lang))
    chat = config.tree.nodes[resident.scope].chats[0]
    opened = await service.handle_message(
        IncomingMessage(chat, "1", sender, "楼下KTV每晚唱到凌晨三点，吵得睡不着", NOW)
    )
    ticket_id = opened.ticket or ""
    record = keys.ticket(ticket_id)
    assert redis_sync.object("encoding", record) == b"listpack"
    assert (redis_sync.memory_usage(record) or 0) <= 450  # 1,046 B as a snapshot and a list
    gateway = await sent(redis_async)
    deck = keys.deck(ticket_id)  # bot.storage.decks: a base, then each card's difference
    stored = {f: v for f, v in redis_sync.hgetall(deck).items() if is_card(f.decode())}
    assert len(stored) == 2 == len([c for c in gateway.messages if c[1].buttons])  # 2 groups
    assert redis_sync.object("encoding", deck) == b"listpack"  # was a hash table
    for field_name, raw in stored.items():
        # compressed, and small: a diff (a department's card names its department and steps: 45 B)
        assert raw[:1] != b"{" and len(raw) <= 48
        assert platform_of(split_field(field_name.decode())[0]) == "telegram"
    stored = unpack_base(redis_sync.hget(deck, "b") or b"")  # its names in the shared hash
    names = await CardNames(redis_async).read()
    base = {**stored, "params": fill(stored["params"], lambda field, _: names[field])}
    assert base["params"]["node_names"]  # a card record before decks held them all
    card = {"payload": {**base, "chat": "telegram:-1"}, "message_id": "1", "digest": "ab"}
    assert unpack(pack(card)) == card and len(pack(card)) < len(dumps(card).encode()) * 0.4
    assert unpack(dumps(card)) == card  # records written before still read: plain JSON,
    assert unpack(zlib.compress(dumps(card).encode())) == card  # and zlib'd alone
    # Records packed with the preset dictionary need that very dictionary to be read.
    assert hashlib.sha256(DICTIONARY).hexdigest() == (
        "45aa391b353c5c4c59a23b5c26216128113facaf7490ec7346e41dd682dab995"
    )


async def test_a_long_read_is_made_in_batches_and_keeps_the_order(
    redis_sync: redis.Redis, redis_async: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = LiveConfig(RULES_DIR, ROOT / "org" / "sample_street.yaml", Policy(scale=1.0))
    store = RedisStore(redis_async)
    service = Service(store, config, RqScheduler(redis_sync), lambda: NOW)
    resident = next(p for p in config.tree.people.values() if p.role is Role.RESIDENT)
    sender = Actor(resident.accounts[0], resident.name, resident.id, Lang(resident.lang))
    chat = config.tree.nodes[resident.scope].chats[0]
    ids = []
    for number, text in enumerate(("路灯坏了", "又停水了", "垃圾三天没人收", "电梯又坏了")):
        opened = await service.handle_message(IncomingMessage(chat, str(number), sender, text, NOW))
        ids.append(opened.ticket or "")
    monkeypatch.setattr("bot.storage.redis.READ_BATCH", 3)
    wanted = [ids[3], "999", ids[0], ids[2], ids[1]]
    assert [t.id for t in await store.get_many(wanted)] == [ids[3], ids[0], ids[2], ids[1]]
    assert [len(h) for h in await store.histories(wanted)] == [1, 0, 1, 1, 1]
