"""A ticket's delivered cards in a few hundred bytes: one deck per ticket, pointers in buckets.

The records of sent cards, the view they are brought to and the pointers from messages to
their tickets (``bot.storage.decks``), with what was stored before still read.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import redis
import redis.asyncio

from bot.card_edits import card_field, digest, pack, split_field
from bot.core.deadlines import Policy
from bot.core.models import Actor, IncomingMessage, Lang, Reply, platform_of
from bot.core.org import Role
from bot.live import LiveConfig
from bot.personal import PersonalData
from bot.ports import Rendered, Sent
from bot.render import Renderer
from bot.scheduling import RqScheduler
from bot.sender import Sender
from bot.services import Service
from bot.storage import keys
from bot.storage.archive import ArchiveIndex, Unhot
from bot.storage.card_names import fill
from bot.storage.deck_codec import (
    BASE_DICTIONARY,
    DECK_DICTIONARY,
    RECORD_DICTIONARY,
    diff,
    full_view,
    pack_base,
    pack_record,
    pack_view,
    slim_view,
    undiff,
    unpack_base,
    unpack_record,
)
from bot.storage.decks import CARD_TTL, Decks, is_card
from bot.storage.redis import OutboxEntry, RedisStore, dumps, payload_reply, reply_payload
from tests.conftest import ROOT, RULES_DIR
from tests.test_cards import CARD, Recorder, card_entry, edit_entry, view

NOW = 1_700_000_000.0
PHONE = "13812345678"


def editor(platform: str) -> Recorder:
    """A platform's edge that can edit what it sent; its message ids from 1001."""
    return Recorder(platform, first_id=1001)


async def deliver(client: redis.asyncio.Redis, *gateways: Recorder) -> None:
    for gateway in gateways:
        sender = Sender(client, gateway)
        while (await sender.drain(count=500)).sent:
            pass


def street_service(redis_sync: redis.Redis, client: redis.asyncio.Redis) -> Service:
    config = LiveConfig(RULES_DIR, ROOT / "org" / "sample_street.yaml", Policy(scale=1.0))
    return Service(RedisStore(client), config, RqScheduler(redis_sync), lambda: NOW)


def said(service: Service, role: Role, scope: str, text: str, message_id: str) -> IncomingMessage:
    person = next(
        p for p in service.config.tree.people.values() if p.role is role and p.scope == scope
    )
    chat = service.config.tree.nodes[person.scope].chats[0]
    actor = Actor(person.accounts[0], person.name, person.id, Lang(person.lang))
    return IncomingMessage(chat, message_id, actor, text, NOW)


async def test_a_tickets_delivered_cards_views_and_pointers_take_a_few_hundred_bytes(
    redis_sync: redis.Redis, redis_async: redis.asyncio.Redis
) -> None:
    """Was ~2 KB a ticket on two platforms: a hash of whole records (~340 B each) per platform,
    a JSON view per platform, a key per pointer."""
    service = street_service(redis_sync, redis_async)
    opened = await service.handle_message(
        said(service, Role.RESIDENT, "H-02", "楼下KTV每晚唱到凌晨三点，吵得睡不着", "1")
    )
    ticket = opened.ticket or ""
    telegram, sim = editor("telegram"), editor("sim")
    await deliver(redis_async, telegram, sim)
    handled = await service.store.get(ticket)
    assert handled is not None
    cadre = next(p for p in service.config.tree.people.values() if p.scope == handled.node)
    assert cadre.role is not Role.RESIDENT
    ack = said(service, cadre.role, cadre.scope, f"/ack {ticket}", "2")
    assert (await service.handle_message(ack)).status == "done"
    await deliver(redis_async, telegram, sim)
    assert telegram.edits and sim.edits  # the cards were brought to the acknowledgement

    deck = keys.deck(ticket)
    cards = [f for f in redis_sync.hkeys(deck) if is_card(f.decode())]
    assert {platform_of(split_field(f.decode())[0]) for f in cards} == {"telegram", "sim"}
    assert redis_sync.object("encoding", deck) == b"listpack"
    # A card's own record: what sets it apart from the deck's base (was ~340 B, a whole
    # payload); a department's card also names its department and the steps left (44 B).
    for name in cards:
        size = redis_sync.hstrlen(deck, name) or 0
        assert size <= 48, unpack_record(redis_sync.hget(deck, name))
    old = [k for k in redis_sync.scan_iter("lianhu:card*") if not k.startswith(b"lianhu:cardsin")]
    assert old == []  # no record, view or pointer of the old kinds
    state = redis_sync.memory_usage(deck) or 0
    assert state <= 460, state  # one deck on two platforms, its view included (440 B; was 824)
    buckets = list(redis_sync.scan_iter(f"{keys.PREFIX}:cardsin:*"))
    assert buckets and all(redis_sync.ttl(b) > 89 * 24 * 3600 for b in buckets)  # 90 days
    assert 0 < redis_sync.ttl(deck) <= 90 * 24 * 3600


async def test_records_views_and_pointers_written_before_are_still_read(
    redis_async: redis.asyncio.Redis,
) -> None:
    gateway = editor("sim")
    sender = Sender(redis_async, gateway)
    payload = {**reply_payload(card_reply("sim:V-01", CARD)), "seq": 1}
    shown = Renderer()(payload_reply(payload))
    whole = {"payload": payload, "message_id": "41", "digest": digest(shown)}
    field_name = card_field("sim:V-01", "41")
    await redis_async.hset(keys.ticket_cards("sim", "7"), field_name, pack(whole))
    await redis_async.set(keys.card_view("sim", "7"), dumps(view(2, "acknowledged", ["resolve"])))
    await redis_async.set(keys.card("sim:V-01", "41"), "7")
    store = RedisStore(redis_async)
    assert await store.card_ticket("sim:V-01", "41") == "7"
    # A card still waiting gets the view stored before folded in.
    await store.commit(None, None, (), [card_entry("c1")])
    await sender.drain()
    [(_, first)] = gateway.sent
    assert "处理中" in first.text
    # The old record is edited to a newer view, and moves into the deck.
    await store.commit(None, None, (), [edit_entry("e3", view(3, "closed", []))])
    await sender.drain()
    assert {(c, m) for c, m, _ in gateway.edits} == {("sim:V-01", "41"), ("sim:V-01", "1001")}
    assert all("已完结" in e.text for _, _, e in gateway.edits)
    assert not await redis_async.hexists(keys.ticket_cards("sim", "7"), field_name)
    assert await redis_async.hexists(keys.deck("7"), field_name)
    assert not await redis_async.exists(keys.card_view("sim", "7"))
    # A later view arriving twice edits nothing more; the card's pointer is in a bucket.
    await store.commit(None, None, (), [edit_entry("e3", view(3, "closed", []))])
    await sender.drain()
    assert len(gateway.edits) == 2
    assert await store.card_ticket("sim:V-01", "1001") == "7"
    assert not await redis_async.exists(keys.card("sim:V-01", "1001"))


def card_reply(chat: str, params: dict) -> Reply:
    return Reply(chat, "card", params, ticket="7", buttons=("ack", "resolve"), card=True)


async def test_a_staff_chats_unmasked_text_survives_its_edits(
    redis_async: redis.asyncio.Redis,
) -> None:
    """The group's card is the deck's base (masked); the staff chat's keeps its own text."""
    gateway = editor("sim")
    sender, store = Sender(redis_async, gateway), RedisStore(redis_async)
    masked = {**CARD, "text": "停水，电话138****5678"}
    full = {**CARD, "text": f"停水，电话{PHONE}"}
    for key, chat, params in (("c1", "sim:V-01", masked), ("c2", "sim:staff-V-01", full)):
        entry = {**reply_payload(card_reply(chat, params)), "seq": 1}
        await store.commit(None, None, (), [OutboxEntry("sim", key, entry)])
        await sender.drain()
    staff = card_field("sim:staff-V-01", "1002")
    base = await redis_async.hstrlen(keys.deck("7"), "b")
    assert 0 < await redis_async.hstrlen(keys.deck("7"), staff) < base / 2  # a diff
    await store.commit(None, None, (), [edit_entry("e2", view(2, "acknowledged", ["resolve"]))])
    await sender.drain()
    edited = {chat: message.text for chat, _, message in gateway.edits}
    assert PHONE in edited["sim:staff-V-01"] and "处理中" in edited["sim:staff-V-01"]
    assert PHONE not in edited["sim:V-01"] and "138****5678" in edited["sim:V-01"]
    await store.commit(None, None, (), [edit_entry("e4", view(4, "closed", []))])
    await sender.drain()
    assert PHONE in {chat: m.text for chat, _, m in gateway.edits[2:]}["sim:staff-V-01"]


async def test_two_platforms_storing_views_out_of_order_never_go_back(
    redis_async: redis.asyncio.Redis,
) -> None:
    """One view per ticket for every platform: only a newer seq replaces it."""
    telegram, sim = Decks(redis_async, "telegram"), Decks(redis_async, "sim")
    assert await telegram.store_view("7", view(3, "acknowledged", ["resolve"]))
    assert not await sim.store_view("7", view(2, "open", ["ack"]))  # late, from the other
    found = await sim.view("7")
    assert found is not None and found["seq"] == 3
    # Two senders that both read seq 2 before either wrote: the script itself refuses the
    # older one (what a sender checks first cannot see the other's write in between).
    names = [keys.deck("7"), keys.card_view("sim", "7")]
    late = pack_view(view(2, "open", ["ack"]), {})
    assert await sim._view(keys=names, args=[2, b"", CARD_TTL, b"", late]) == 0
    found = await sim.view("7")
    assert found is not None and found["seq"] == 3
    views = [view(s, "acknowledged", ["resolve"]) for s in range(4, 40)]
    stores = [d.store_view("7", v) for v in reversed(views) for d in (telegram, sim)]
    await asyncio.gather(*stores)
    found = await telegram.view("7")
    assert found is not None and found["seq"] == 39
    assert int(await redis_async.hget(keys.deck("7"), "n") or 0) == 39
    # A platform's view written before is newer than the deck's: it is the one read.
    await redis_async.set(keys.card_view("sim", "8"), dumps(view(5, "closed", [])))
    await telegram.store_view("8", view(4, "acknowledged", ["resolve"]))
    found = await sim.view("8")
    assert found is not None and found["seq"] == 5


async def test_archive_and_erasure_take_a_tickets_deck_and_pointers(
    redis_sync: redis.Redis, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> None:
    service = street_service(redis_sync, redis_async)
    first = await service.handle_message(
        said(service, Role.RESIDENT, "H-01", "村口的路灯坏了半个月，晚上黑漆漆的", "1")
    )
    second = await service.handle_message(
        said(service, Role.RESIDENT, "H-01", "垃圾三天没人收，臭死了", "2")
    )
    await deliver(redis_async, editor("telegram"), editor("sim"))
    one, two = first.ticket or "", second.ticket or ""
    fields = [f.decode() for f in redis_sync.hkeys(keys.deck(one)) if is_card(f.decode())]
    assert fields
    ticket = await service.store.get(one)
    assert ticket is not None
    # An old-format pointer of one of its cards goes too.
    chat, message_id = split_field(fields[0])
    redis_sync.set(keys.card(chat, message_id), one)
    status = await ArchiveIndex(redis_async).remove(ticket, len(await service.store.history(one)))
    assert status is Unhot.OK
    assert not redis_sync.exists(keys.deck(one))
    for name in fields:
        chat, message_id = split_field(name)
        assert await service.store.card_ticket(chat, message_id) is None
    others = [f.decode() for f in redis_sync.hkeys(keys.deck(two)) if is_card(f.decode())]
    for name in others:  # the other ticket's pointers, maybe in the same buckets, stay
        assert await service.store.card_ticket(*split_field(name)) == two
    # Erasure: the deck held the reporter's name (in its base); it is deleted.
    reporter = (await service.store.get(two)).reporter.name  # type: ignore[union-attr]
    assert (
        unpack_base(redis_sync.hget(keys.deck(two), "b") or b"")["params"]["reporter"] == reporter
    )
    dismiss = said(service, Role.VILLAGE_CADRE, "V-01", f"/dismiss {two} 重复", "3")
    assert (await service.handle_message(dismiss)).status == "done"
    await deliver(redis_async, editor("telegram"), editor("sim"))
    assert redis_sync.hexists(keys.deck(two), "v")
    # Records and views written before decks hold names too (a hash and a view per platform).
    redis_sync.hset(keys.ticket_cards("wecom", two), "wecom:g 1", pack({"payload": {}}))
    redis_sync.set(keys.card_view("telegram", two), dumps({"seq": 9}))
    erased = await PersonalData(redis_async, lambda: NOW).erase_ticket(two, None, "test")
    assert erased
    assert not redis_sync.exists(keys.deck(two))
    assert not redis_sync.exists(keys.ticket_cards("wecom", two))
    assert not redis_sync.exists(keys.card_view("telegram", two))


def test_records_and_views_read_back_as_they_were_written() -> None:
    """A record is its payload's difference from the base; a view, less what the base holds;
    each less the names the shared hash holds (``card_names``), which come back when read."""
    base = {**reply_payload(card_reply("sim:V-01", CARD)), "seq": 1}
    own = {k: v for k, v in base.items() if k != "chat"}
    staff = {**base, "chat": "sim:staff", "params": {**CARD, "text": PHONE}, "prompt": "p3"}
    del staff["params"]["photos"], staff["reply_to"]
    known = {"n:V-01": ["东联村", {}], "n:H-01": ["一组", {}], "c:water": {}}
    for names in (known, {}):
        for payload in (base, staff):
            for against in (own, None):
                raw = pack_record(diff(payload, against, "0123456789abcdef"), names)
                assert raw[:1] == b"\x05" and raw[1:7] == bytes.fromhex("0123456789ab")
                record = unpack_record(raw)
                assert record["d"] == "0123456789ab"  # 6 bytes, read as the 12 hex digits
                if "q" in record:
                    record["q"] = fill(record["q"], lambda field, _: known[field])
                assert undiff(record, own, payload["chat"]) == payload
    stored = unpack_base(pack_base(own, known))
    assert "node_name" not in stored["params"] and stored["params"]["~"] == [
        "node",
        "origin",
        "category",
    ]
    assert {**stored, "params": fill(stored["params"], lambda f, _: known[f])} == own
    shown = view(2, "acknowledged", ["resolve"])
    slim = slim_view(shown, own)
    assert set(slim["="]) == set(shown["params"]) - {"state"}  # all the base holds
    assert full_view(unpack_record(pack_view(slim, known)), own) == shown
    # What is packed with a preset dictionary needs that very dictionary to be read.
    pinned = {
        DECK_DICTIONARY: "35b5ac57ec2b49a9aefaca7eb654f0ab3b1dc0a5267b9bad32b51577f69ad4fb",
        BASE_DICTIONARY: "0be36dc90cf862886f37971ffe65a63eac37776f634f0f82d3aa57bdfb14e200",
        RECORD_DICTIONARY: "e67f537c1032e3ed4d72b50f34ea22f555ef7a78ef90759286c01d2ab4072ef0",
    }
    assert {d: hashlib.sha256(d).hexdigest() for d in pinned} == pinned


async def test_a_record_diffed_against_a_base_no_longer_there_is_stored_whole(
    redis_async: redis.asyncio.Redis,
) -> None:
    """A sender remembers a deck's base; the deck was deleted (erasure) and begun again by
    another sender with another base: the record must not be read against the wrong one."""
    first, other = Decks(redis_async, "sim"), Decks(redis_async, "sim")

    async def record(decks: Decks, chat: str, text: str, node: str = "东联村") -> dict:
        params = {**CARD, "text": text, "node_name": node}
        payload = {**reply_payload(card_reply(chat, params)), "seq": 1}
        await decks.add("9", chat, "5", payload, "0123456789abcdef")
        return payload

    await record(first, "sim:V-01", "停水")
    await first.view("9")  # remembers the base: 停水
    await redis_async.delete(keys.deck("9"))
    await record(other, "sim:V-02", "停电", "南岸社区")  # the deck begun again, another base
    wanted = await record(first, "sim:V-03", "漏水")  # diffed against 停水, which is gone
    found = await other.card("9", card_field("sim:V-03", "5"))
    assert found is not None and found[0] == wanted
    found = await other.card("9", card_field("sim:V-02", "5"))
    assert found is not None and found[0]["params"]["node_name"] == "南岸社区"


async def test_a_sender_whose_deck_was_begun_again_records_its_card_whole(
    redis_async: redis.asyncio.Redis,
) -> None:
    """The sender packs only the record it expects (against the base it read before the
    send). The deck deleted and begun again by another sender with another base while the
    card was on its way, its marking script finds that record unfit, writes nothing and is
    called again with every record: the card is marked once and reads back as it was sent."""
    other = {**reply_payload(card_reply("sim:V-02", {**CARD, "text": "停电"})), "seq": 1}

    class Raced(Recorder):
        async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
            if chat == "sim:V-03":  # meanwhile: erased, and another sender's first card
                await redis_async.delete(keys.deck("7"))
                await Decks(redis_async, "sim").add("7", "sim:V-02", "9", other, "0123456789ab")
            return await super().send(chat, message, reply_to)

    gateway = Raced("sim", first_id=1001)
    sender, store = Sender(redis_async, gateway), RedisStore(redis_async)
    for key, chat, text in (("c1", "sim:V-01", "停水"), ("c3", "sim:V-03", "漏水")):
        entry = {**reply_payload(card_reply(chat, {**CARD, "text": text})), "seq": 1}
        await store.commit(None, None, (), [OutboxEntry("sim", key, entry)])
        assert (await sender.drain()).sent == 1
    assert [chat for chat, _ in gateway.sent] == ["sim:V-01", "sim:V-03"]
    assert await redis_async.get(keys.sent("c3")) == b"1002"
    assert await redis_async.xlen(keys.outbox("sim")) == 0
    found = await Decks(redis_async, "sim").card("7", card_field("sim:V-03", "1002"))
    assert found is not None and found[0]["params"]["text"] == "漏水"
    kept = await Decks(redis_async, "sim").card("7", card_field("sim:V-02", "9"))
    assert kept is not None and kept[0]["params"]["text"] == "停电"
