"""The indexes that grow with every ticket, in buckets (bot.storage.indexes): tickets, deadlines
and reporters are found across buckets and in the keys written before buckets, the sweeper
finds every overdue deadline, and erasure drops a person's entries."""

from __future__ import annotations

from typing import Any

import redis.asyncio

from bot.core.org import Role
from bot.personal import PersonalData
from bot.storage import indexes, keys
from bot.storage.redis import deadline_members
from tests.helpers import owed, stored_ids
from tests.test_personal_data import LAMP, NOISE, report
from tests.test_services import World
from tests.test_services import world as world  # the fixture, re-exported for these tests

CLUTTER = "3栋楼道里堆满了杂物，挡住了消防通道"


async def three_tickets(world: World) -> tuple[str, list[str]]:
    """Chen reports three things: tickets 127 (bucket 0), 128 and 129 (bucket 1)."""
    chen = world.person(Role.RESIDENT, "H-01")
    await world.redis.set(keys.TICKET_SEQ, keys.BUCKET - 2)
    ids = []
    for text in (LAMP, NOISE, CLUTTER):
        ids.append(await report(world, chen, text))
        world.clock.now += 60
    assert ids == ["127", "128", "129"]
    return chen.accounts[0], ids


async def written_before(client: redis.asyncio.Redis, ticket_id: str, account: str) -> None:
    """Move a ticket's entries to the keys of before buckets, as a ticket written then has."""
    ticket = indexes.ticket(ticket_id)
    at = await client.zscore(ticket.key, ticket_id)
    assert at is not None
    await client.zrem(ticket.key, ticket_id)
    await client.zadd(keys.TICKETS, {ticket_id: at})
    gone = indexes.reporter(account, ticket_id)
    assert await client.zrem(gone.key, gone.member) == 1
    await client.zadd(keys.by_reporter(account), {ticket_id: at})
    for member, due in await owed(client):
        if member.startswith(f"{ticket_id}:"):
            deadline = indexes.deadline(member)
            await client.zrem(deadline.key, member)
            await client.zadd(keys.DEADLINES, {member: due})
    for bucket_key, listed, bucket in (
        (ticket.key, keys.TICKET_BUCKETS, ticket.bucket),
        (keys.deadlines_in(ticket.bucket), keys.DEADLINE_BUCKETS, ticket.bucket),
    ):
        first: Any = await client.zrange(bucket_key, 0, 0, withscores=True)
        if not first:
            await client.zrem(listed, bucket)
        elif listed == keys.DEADLINE_BUCKETS:
            await client.zadd(listed, {str(bucket): first[0][1]})


async def test_tickets_are_listed_across_buckets_and_the_key_written_before(world: World) -> None:
    _, ids = await three_tickets(world)
    assert await world.redis.zrange(keys.TICKET_BUCKETS, 0, -1) == [b"0", b"1"]
    assert await world.redis.zrange(keys.tickets_in(1), 0, -1) == [b"128", b"129"]
    assert not await world.redis.exists(keys.TICKETS)
    account = world.person(Role.RESIDENT, "H-01").accounts[0]
    await written_before(world.redis, "127", account)
    assert await world.redis.zrange(keys.TICKET_BUCKETS, 0, -1) == [b"1"]  # bucket 0 emptied

    assert await world.store.all_ids() == ids
    assert await indexes.ticket_count(world.redis) == 3
    created = [t.created_at for t in await world.store.get_many(ids)]
    assert await world.store.all_ids(created[1]) == ids[1:]
    assert await world.store.all_ids(created[2] + 1) == []


async def test_stored_ids_reads_the_buckets_and_the_key_written_before(
    world: World, redis_sync: Any
) -> None:
    _, ids = await three_tickets(world)
    await written_before(world.redis, "128", world.person(Role.RESIDENT, "H-01").accounts[0])
    assert stored_ids(redis_sync) == ids


async def test_an_accounts_tickets_are_found_in_its_bucket_and_its_key_written_before(
    world: World,
) -> None:
    account, ids = await three_tickets(world)
    await written_before(world.redis, "127", account)
    # Others in the same bucket: one whose name starts with this account's, one unrelated.
    longer = next(
        f"{account}{n}"
        for n in range(100_000)
        if keys.reporters(f"{account}{n}") == keys.reporters(account)
    )
    other = next(
        f"x:{n}" for n in range(100_000) if keys.reporters(f"x:{n}") == keys.reporters(account)
    )
    await world.redis.zadd(
        keys.reporters(account),
        {keys.pair_member(longer, "5"): 0, keys.pair_member(other, "7"): 0},
    )
    assert await indexes.reported(world.redis, [account]) == ids
    assert await world.store.reported(account) == ids[::-1]  # newest first
    assert await world.store.reported(account, 2) == ["129", "128"]
    assert await world.store.reported(longer) == ["5"]


async def test_ids_of_different_lengths_come_in_the_order_they_were_given(world: World) -> None:
    chen = world.person(Role.RESIDENT, "H-01")
    await world.redis.set(keys.TICKET_SEQ, 8)
    ids = [await report(world, chen, text) for text in (LAMP, NOISE)]
    assert ids == ["9", "10"]
    assert await world.store.reported(chen.accounts[0]) == ["10", "9"]
    handled = await world.service.handle_message(world.message(chen, "/my"))
    assert handled.status != "refused"
    [listed] = [p for p in await world.outbox() if p["template"] == "ticket_list"]
    assert listed["params"]["tickets"][0]["id"] == "10"


async def test_deadlines_are_found_and_swept_across_buckets_and_the_key_written_before(
    world: World,
) -> None:
    account, ids = await three_tickets(world)
    await written_before(world.redis, "127", account)
    tickets = await world.store.get_many(ids)
    due = {m: d for t in tickets for m, d in deadline_members(t).items()}
    members = list(due)
    assert await world.redis.zrange(keys.DEADLINES, 0, -1) == [members[0].encode()]
    assert await world.redis.zrange(keys.DEADLINE_BUCKETS, 0, -1, withscores=True) == [
        (b"1", min(due[m] for m in members[1:]))  # the earliest due in bucket 1
    ]
    assert await owed(world.redis) == sorted(due.items(), key=lambda row: row[1])
    latest = max(due for t in tickets for due in deadline_members(t).values())
    world.clock.now = latest + 60  # every job lost
    assert len(await world.store.due(world.clock.now)) == 3
    assert await world.service.sweep() == 3
    assert not await world.redis.exists(keys.DEADLINES)  # the one written before, settled
    moved = await world.store.get_many(ids)
    assert all(t.escalations == 1 or t.flagged for t in moved), moved
    now_owed = {m: due for t in moved for m, due in deadline_members(t).items()}
    assert dict(await owed(world.redis)) == now_owed
    listed = await world.redis.zrange(keys.DEADLINE_BUCKETS, 0, -1, withscores=True)
    assert dict(listed) == {
        str(b).encode(): min(d for m, d in now_owed.items() if int(m.split(":")[0]) // 128 == b)
        for b in {int(m.split(":")[0]) // 128 for m in now_owed}
    }
    assert await world.service.sweep() == 0


async def test_only_deadlines_due_are_read_and_swept(world: World) -> None:
    _, ids = await three_tickets(world)
    due = {m: d for t in await world.store.get_many(ids) for m, d in deadline_members(t).items()}
    first = min(due.values())
    [earliest] = [m for m, d in due.items() if d == first]
    assert [keys.deadline_member(*row[:3]) for row in await world.store.due(first)] == [earliest]
    assert await indexes.deadline_count(world.redis, first) == 1
    assert await indexes.deadline_count(world.redis) == 3
    world.clock.now = first + 10
    assert await world.service.sweep(grace=5.0) == 1


async def test_erasure_drops_a_persons_entries_everywhere(world: World) -> None:
    account, ids = await three_tickets(world)
    await written_before(world.redis, "128", account)
    other = next(
        f"x:{n}" for n in range(100_000) if keys.reporters(f"x:{n}") == keys.reporters(account)
    )
    await world.redis.zadd(keys.reporters(account), {keys.pair_member(other, "7"): 0})
    chen = world.person(Role.RESIDENT, "H-01")
    done = await PersonalData(world.redis, world.clock).forget(chen.accounts, apply=True)
    assert sorted(done.tickets, key=int) == ids
    assert await indexes.reported(world.redis, chen.accounts) == []
    assert not await world.redis.exists(keys.by_reporter(account))
    assert await world.redis.zrange(keys.reporters(account), 0, -1) == [
        keys.pair_member(other, "7").encode()
    ]
    assert await world.store.all_ids() == ids  # the tickets stay, without their names


async def test_a_nodes_open_tickets_are_found_across_buckets_and_the_key_written_before(
    world: World,
) -> None:
    _, ids = await three_tickets(world)
    tickets = await world.store.get_many(ids)
    first = tickets[0]
    old = indexes.queued(first.node, first.id)
    assert await world.redis.zrem(old.key, old.member) == 1  # written before buckets:
    await world.redis.zadd(keys.active_at(first.node), {first.id: first.created_at})
    await world.redis.zrem(keys.queues(first.node), 0)  # its only entry in bucket 0
    nodes = sorted({t.node for t in tickets})
    assert await world.store.active_at(nodes) == ids
    assert await world.store.active_at(nodes, limit=2) == ids[:2]
    assert await world.store.queues(nodes) == {
        n: [t.id for t in tickets if t.node == n] for n in nodes
    }

    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    for ticket_id in ids[:2]:  # the one written before, and one in a bucket
        handled = await world.service.handle_message(
            world.message(cadre, f"/dismiss {ticket_id} 重复")
        )
        assert handled.status == "done", handled
    assert await world.store.active_at(nodes) == ids[2:]
    assert not await world.redis.exists(keys.active_at(first.node))
    for node in nodes:  # a node's list names the buckets with its open tickets, no other
        listed = {int(b) for b in await world.redis.zrange(keys.queues(node), 0, -1)}
        assert listed == ({int(ids[2]) // keys.BUCKET} if node == tickets[2].node else set())


async def test_a_node_with_tickets_in_many_buckets_lists_its_oldest_first(world: World) -> None:
    chen = world.person(Role.RESIDENT, "H-01")
    ids = []
    for n in range(3):  # the same report in three buckets, too far apart to be joined
        await world.redis.set(keys.TICKET_SEQ, n * keys.BUCKET + 5)
        ids.append(await report(world, chen, LAMP))
        world.clock.now += 60 * 86400
    assert ids == ["6", "134", "262"]
    [node] = {t.node for t in await world.store.get_many(ids)}
    assert await world.redis.zrange(keys.queues(node), 0, -1) == [b"0", b"1", b"2"]
    assert await world.store.queues([node], limit=2) == {node: ids[:2]}
    assert await world.store.queues([node]) == {node: ids}
