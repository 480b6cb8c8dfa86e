"""What a deck stores, version by version: what each wrote is read back as it was written.

Bases (\\x04), records (\\x05) and views (\\x06) less the names the shared hash holds, their
times in whole seconds and digests in 6 bytes; those written before (\\x01 bases, \\x02 and
\\x03 records and views, long card fields) still read (``bot.storage.decks``).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
import redis.asyncio

from bot.card_edits import card_field, long_chat, pack, short_chat, split_field, viewed
from bot.render import Renderer
from bot.storage import keys
from bot.storage.card_names import CardNames
from bot.storage.deck_codec import DECK_DICTIONARY, diff, settle, slim_view, unpack_base
from bot.storage.decks import Decks
from bot.storage.redis import payload_reply, reply_payload
from tests.test_card_decks import card_reply
from tests.test_cards import CARD, view

NAMES = {"zh-Hans": "东联村", "zh-Hant": "東聯村", "en": "Donglian Village"}
CATEGORY = {"zh-Hans": "停水", "zh-Hant": "停水", "en": "No water"}
FINGERPRINT = "00112233445566778899aabb"


def named_payload(chat: str = "sim:V-01", **params: Any) -> dict[str, Any]:
    """A card's payload as the workflow makes it: names in three languages, times with
    fractions of a second, a department's steps naming their department."""
    step = {"node": "D-fire", "node_name": "消防", "node_names": {"en": "Fire"}, "arrived": 5.5}
    whole = {
        **CARD, "category_names": CATEGORY, "node_names": NAMES, "origin_names": {"en": "T1"},
        "ack_due": 1_700_000_059.9, "resolve_due": 1_700_003_600.25, "created_at": 1.7e9 + 0.5,
        "department_steps": [step], **params,
    }  # fmt: skip
    return {**reply_payload(card_reply(chat, whole)), "seq": 1}


async def recorded(decks: Decks, payload: dict[str, Any], message_id: str = "5") -> None:
    await decks.add("7", payload["chat"], message_id, payload, FINGERPRINT)


async def test_names_left_in_the_shared_hash_come_back_in_another_process(
    redis_async: redis.asyncio.Redis,
) -> None:
    payload = named_payload()
    await recorded(Decks(redis_async, "sim"), payload)
    stored = await redis_async.hget(keys.deck("7"), "b") or b""
    assert stored[:1] == b"\x04"
    left = unpack_base(stored)["params"]
    assert {"node_name", "node_names", "origin_names", "category_names"}.isdisjoint(left)
    assert left["~"] == ["node", "origin", "category"] and left["department_steps"][0]["~"]
    assert set(await redis_async.hkeys(keys.CARD_NAMES)) == {
        b"n:V-01",
        b"n:H-01",
        b"n:D-fire",
        b"c:water",
    }
    found = await Decks(redis_async, "sim").card("7", card_field("sim:V-01", "5"))
    assert found is not None
    shown, shows, _ = found
    assert shown == settle(payload) and shows == FINGERPRINT[:12]
    assert shown["params"]["ack_due"] == 1_700_000_059  # whole seconds: the same minute


async def test_a_card_rendered_from_its_deck_is_the_card_rendered_from_its_payload(
    redis_async: redis.asyncio.Redis,
) -> None:
    render = Renderer()
    group, staff = named_payload(), named_payload("sim:staff-V-01", text="停水，电话13812345678")
    english = {**named_payload("sim:en"), "lang": "en"}
    decks = Decks(redis_async, "sim")
    for number, payload in enumerate((group, staff, english)):
        await recorded(decks, payload, str(number))
    other = Decks(redis_async, "sim")  # a process of its own, its names read from Redis
    await other.store_view("7", {**view(2, "acknowledged", ["resolve"]), "params": {
        **view(2, "acknowledged", ["resolve"])["params"], "node": "S-01", "node_name": "街道",
        "node_names": {"en": "Street"}, "ack_due": 1_700_000_119.5,
    }})  # fmt: skip
    assert await redis_async.hexists(keys.CARD_NAMES, "n:S-01")
    for number, payload in enumerate((group, staff, english)):
        found = await other.card("7", card_field(payload["chat"], str(number)))
        assert found is not None
        shown, shows, now = found
        assert render(payload_reply(shown)) == render(payload_reply(payload))
        assert shows == FINGERPRINT[:12]
        assert now is not None and now["params"]["node_names"] == {"en": "Street"}
        other_card = shown
    brought = viewed(other_card, now)
    assert (
        "Street" in render(payload_reply(brought)).text
        and "Donglian" not in brought["params"]["node_name"]
    )


async def test_a_renamed_node_keeps_its_new_names_in_its_decks(
    redis_async: redis.asyncio.Redis,
) -> None:
    """The shared hash keeps the names it was first given: a deck never reads other names."""
    await recorded(Decks(redis_async, "sim"), named_payload())
    renamed = named_payload(node_name="东联社区", node_names={"zh-Hans": "东联社区"})
    decks = Decks(redis_async, "sim")
    await decks.add("8", "sim:V-01", "6", renamed, FINGERPRINT)
    found = await Decks(redis_async, "sim").card("8", card_field("sim:V-01", "6"))
    assert found is not None and found[0] == settle(renamed)
    # The hash lost (deleted by hand): a card still reads, naming its node by its id.
    await redis_async.delete(keys.CARD_NAMES)
    lost = await Decks(redis_async, "sim").card("7", card_field("sim:V-01", "5"))
    assert lost is not None and lost[0]["params"]["category_names"]["en"] == "water"


async def test_records_views_and_bases_of_earlier_versions_still_read(
    redis_async: redis.asyncio.Redis,
) -> None:
    """A deck written before: a \\x01 base, \\x02 and \\x03 records and views, long fields."""
    payload = named_payload()
    own = {k: v for k, v in payload.items() if k != "chat"}
    staff = named_payload("telegram:-1001000000211", text="电话13812345678")
    older = view(3, "acknowledged", ["resolve"])

    def version(number: bytes, value: dict[str, Any]) -> bytes:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        if number == b"\x02":
            return number + text
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=DECK_DICTIONARY)
        return number + deflate.compress(text) + deflate.flush()

    long_field = "telegram:-1001000000211 9"
    await redis_async.hset(keys.deck("7"), mapping={
        "b": pack(own), "sim:V-01 8": version(b"\x02", diff(payload, own, FINGERPRINT)),
        long_field: version(b"\x03", diff(staff, own, FINGERPRINT)),
        "n": 3, "v": version(b"\x03", slim_view(older, own)),
    })  # fmt: skip
    decks = Decks(redis_async, "telegram")
    assert await decks.fields("7") == [long_field]
    found = await decks.card("7", long_field)
    assert found is not None and found[0] == staff and found[1] == FINGERPRINT[:12]
    assert found[2] == older
    found = await Decks(redis_async, "sim").card("7", "sim:V-01 8")
    assert found is not None and found[0] == payload


@pytest.mark.parametrize(
    ("chat", "short"),
    [
        ("telegram:-1001000000123", "T1000000123"),  # a supergroup
        ("telegram:-4012345", "t-4012345"),  # a basic group
        ("telegram:5012345", "t5012345"),  # a person
        ("wecom:wrOgQhDgAAcwMTB7YmDkbeBsgT_KAbcd", "WwrOgQhDgAAcwMTB7YmDkbeBsgT_KAbcd"),
        ("wecom:zhangsan", "Wzhangsan"),
        ("sim:SG-03", "SG-03"),
        ("sim:V-01", "V-01"),
        ("sim:staff-V-01", "staff-V-01"),
        ("sim:T1", "sim:T1"),  # would read as a supergroup: kept whole
        ("sim:t1", "sim:t1"),
        ("sim:Wall", "sim:Wall"),
        ("sim:a:b", "sim:a:b"),
        ("sim:", "sim:"),
        ("open311:x", "open311:x"),
    ],
)
def test_a_cards_field_names_its_chat_short_and_reads_back(chat: str, short: str) -> None:
    assert short_chat(chat) == short and long_chat(short) == chat
    assert card_field(chat, "2") == f"{short} 2"
    assert split_field(card_field(chat, "2")) == (chat, "2")
    assert split_field(f"{chat} 2") == (chat, "2")  # a field written before, long


async def test_a_process_reads_the_shared_names_again_after_a_minute(
    redis_async: redis.asyncio.Redis,
) -> None:
    now = [0.0]
    names = CardNames(redis_async, clock=lambda: now[0])
    await names.learn(named_payload()["params"])
    assert names.known["n:V-01"] == ["东联村", NAMES]
    await redis_async.hset(keys.CARD_NAMES, mapping={"n:X": '["x",{}]', "n:Y": '["y",{}]'})
    await names.ensure({"n:V-01"})
    assert "n:X" not in names.known  # all it needs is known, and read a moment ago
    await names.ensure({"n:X"})  # one it lacks: read again
    assert names.known["n:X"] == ["x", {}]
    await redis_async.hdel(keys.CARD_NAMES, "n:Y")
    now[0] = 61.0
    await names.ensure({"n:V-01"})
    assert "n:Y" not in names.known  # a minute later: read again
