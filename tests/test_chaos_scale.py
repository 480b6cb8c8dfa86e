"""Chaos, scaled out: two receivers and two workers on a Sentinel-managed Redis, killed and failed over.

Two ``lianhu run --webhook`` receivers (subprocesses, each its own port) and two
``lianhu worker`` processes run on a master, a replica and a sentinel the test
starts (``tests/test_sentinel.py``'s ``Servers``), through a ``redis+sentinel://``
URL. Their commands and variables are the compose set-up's (deploy/docker-compose.yml
with docker-compose.sentinel.yml, ``--scale bot=2 --scale worker=2``), mapped to this
machine by ``tests/compose_local.py``: loopback ports, the test's Redis and folders. The test is the load balancer: it posts each update to a receiver picked at
random and, when that one does not answer 200 (killed, or Redis has no master for a
moment), to the other, again and again, as Telegram redelivers. Reports of several
kinds at numbered buildings, some the same problem twice (joins), some updates
delivered twice. Deadlines are short, so both workers escalate while the burst goes
on. At points a seeded generator picks, the test SIGKILLs a receiver (the one that
holds the sending lease, or the other) or a worker (with its work horse) and starts
it again, and SIGKILLs the Redis master: the sentinel promotes the replica and every
process goes on with it.

When all is quiet it asserts with set equality (``tests/test_chaos.py``'s checks):
every report in exactly one ticket, every receipt and card delivered, every delivery
one outbox entry delivered once, the rate limits held across both receivers.

What asynchronous replication may lose, measured: an update acknowledged (200) or a
sent marker written on the master in the instant before it died can be missing on
the promoted replica. Each such loss would show as a report in no ticket or a message
sent twice; the test counts them and accepts one only when it was acknowledged (or
delivered) within ``LOSS_WINDOW`` seconds before the kill, and prints the counts.
A receiver is killed only while no send is between accepted and marked (as in
``test_chaos.py``: that instant repeats a message whatever the design).

``LIANHU_CHAOS=long`` (``make chaos``) runs 1,000 reports, three kills of each kind of
process and two failovers (the old master comes back as a replica in between);
``LIANHU_CHAOS_SEED=<n>`` replays a run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from bot.redis_clients import sync_client
from bot.storage import keys
from tests import compose_local
from tests.conftest import ROOT, RULES_DIR
from tests.fake_bot_api import TOKEN, wait_for
from tests.helpers import stored_ids, stored_ticket
from tests.telegram_fixtures import ORG, SECRET
from tests.test_chaos import (
    LIMIT_SCALE,
    REPORTS,
    Burst,
    FakeInThread,
    Processes,
    check_messages,
    check_tickets,
    sent_markers,
)
from tests.test_sentinel import SERVICE, Servers, free_port

LONG = os.environ.get("LIANHU_CHAOS") == "long"
SEED = int(os.environ.get("LIANHU_CHAOS_SEED", "20261205"))
KILLS = 3 if LONG else 1  # of each kind of process: receiver, worker
FAILOVERS = 2 if LONG else 1
DEADLINE_SCALE = 1e-4  # a day is 8.6 s: workers escalate while the burst goes on
LOSS_WINDOW = 1.0  # seconds before the master's death in which a write may be lost
# What compose fills in from lianhu.env: the webhook's path is the balancer's; the passwords
# are in the compose URL only, which the test's Redis URL replaces.
COMPOSE_ENV = {
    "LIANHU_WEBHOOK_URL": "https://bot.example.org/tg", "LIANHU_REDIS_PASSWORD": "unused",
    "LIANHU_SENTINEL_PASSWORD": "unused",
}  # fmt: skip


@dataclass
class Fleet:
    """Two receivers and two workers as subprocesses, started again when killed or gone."""

    fake_url: str
    redis_url: str
    logs: Path
    ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    receivers: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None, None])
    workers: list[subprocess.Popen[bytes] | None] = field(default_factory=lambda: [None, None])
    restarts: Counter[str] = field(default_factory=Counter)
    compose: dict[str, Any] = field(
        default_factory=lambda: compose_local.merged(COMPOSE_ENV).services
    )

    def env(self) -> dict[str, str]:
        return {
            **os.environ, "REDIS_URL": self.redis_url, "LIANHU_RULES_DIR": str(RULES_DIR),
            "LIANHU_ORG_FILE": str(ORG), "LIANHU_DEADLINE_SCALE": str(DEADLINE_SCALE),
            "LIANHU_DEADLINE_FLOOR": "0", "LIANHU_DIGEST_AT": "",
            "LIANHU_TELEGRAM_TOKEN": TOKEN, "LIANHU_TELEGRAM_BASE_URL": self.fake_url,
            "LIANHU_TELEGRAM_LIMIT_SCALE": str(LIMIT_SCALE), "LIANHU_WEBHOOK_SECRET": SECRET,
        }  # fmt: skip

    def _start(self, log: str, service: str, port: int | None = None) -> subprocess.Popen[bytes]:
        """Start a replica of a compose service as a local process."""
        found = compose_local.local(self.compose[service], self.redis_url, self.logs, port)
        with (self.logs / f"{log}.log").open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "bot", *found.args], env=self.env() | found.env,
                cwd=ROOT, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip

    def start_receiver(self, i: int) -> None:
        self.receivers[i] = self._start(f"receiver{i}", "bot", self.ports[i])

    def start_worker(self, i: int) -> None:
        self.workers[i] = self._start(f"worker{i}", "worker")

    def start(self) -> None:
        for i in range(2):
            self.start_receiver(i)
            self.start_worker(i)

    def revive(self) -> None:
        """Start again whatever exited by itself (as a supervisor would)."""
        for i, proc in enumerate(self.receivers):
            if proc is not None and proc.poll() is not None:
                self.restarts["receiver exited"] += 1
                self.start_receiver(i)
        for i, proc in enumerate(self.workers):
            if proc is not None and proc.poll() is not None:
                self.restarts["worker exited"] += 1
                self.start_worker(i)

    def lease_holder(self, sync: redis.Redis) -> int | None:
        """Return which receiver holds the Telegram sending lease, if one does."""
        try:
            value = sync.get(keys.sender_lease("telegram"))
        except redis.RedisError:
            return None
        pid = int(value.decode().split("/")[1]) if value else None
        return next((i for i, p in enumerate(self.receivers) if p and p.pid == pid), None)

    kill = staticmethod(Processes.kill)

    def stop(self) -> None:
        for proc in [*self.receivers, *self.workers]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.receivers, *self.workers]:
            if proc is None:
                continue
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(proc)


class Balancer:
    """Post each update to a receiver at random, then to the other, until one answers 200."""

    def __init__(self, ports: list[int], rng: random.Random) -> None:
        self.ports, self.rng = ports, rng
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self.acked: dict[int, float] = {}  # update id -> when a receiver answered 200
        self.split: Counter[int] = Counter()  # receiver -> updates it accepted
        self.retried = 0

    async def deliver(self, update: dict[str, Any]) -> None:
        first = self.rng.randrange(2)
        for attempt in range(10_000):
            i = (first + attempt) % 2
            url = f"http://127.0.0.1:{self.ports[i]}/tg"
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            try:
                async with self.session.post(url, json=update, headers=headers) as answer:
                    if answer.status == 200:
                        self.acked[update["update_id"]] = time.monotonic()
                        self.split[i] += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            self.retried += 1
            await asyncio.sleep(0.05 if attempt % 2 == 0 else 0.2)
        raise AssertionError("no receiver took the update")

    async def close(self) -> None:
        await self.session.close()


class ScaledBurst(Burst):
    """``test_chaos.Burst``, delivered through the balancer instead of getUpdates."""

    def __init__(self, server: FakeInThread, rng: random.Random, balancer: Balancer) -> None:
        super().__init__(server, rng)
        self.balancer = balancer
        self.updates: dict[tuple[int, int], int] = {}  # report -> its update id

    async def run(self) -> None:
        fake = self.server.api
        sent: list[dict[str, Any]] = []
        for i, (chat, user, text) in enumerate(self.plan()):
            update = await self.server.call(fake.message, chat, user, text)
            await self.balancer.deliver(update)
            key = (chat, update["message"]["message_id"])
            self.reports.append(key)
            self.texts[key] = text
            self.updates[key] = update["update_id"]
            sent.append(update)
            roll = self.rng.random()
            if roll < 0.05:  # the same update delivered twice, maybe to the other receiver
                await self.balancer.deliver(update)
                self.duplicates += 1
            elif roll < 0.10:  # an earlier message again, in a new update
                old = self.rng.choice(sent)["message"]
                again = await self.server.call(
                    fake.message, old["chat"]["id"], old["from"]["id"], old["text"],
                    message_id=old["message_id"],
                )  # fmt: skip
                await self.balancer.deliver(again)
                self.redelivered += 1
            if i % 10 == 9:
                await asyncio.sleep(self.rng.uniform(0.05, 0.3))


async def kill_receiver(fleet: Fleet, i: int, server: FakeInThread, sync: redis.Redis) -> None:
    """SIGKILL receiver ``i`` while no send is between accepted and marked; start it again."""
    fake = server.api
    await server.call(fake.hold)

    def caught_up() -> bool:
        try:
            return sent_markers(sync) == len(fake.sent)
        except redis.RedisError:  # no master for a moment: the sentinel's down-after is 0.4 s
            return False

    await wait_for(caught_up, 30, "markers caught up")
    fleet.kill(fleet.receivers[i])
    await server.release()
    fleet.start_receiver(i)


async def fail_over(servers: Servers, killed_at: list[float]) -> None:
    """SIGKILL the master; wait for the sentinel to promote the replica."""
    old = servers.master_port()
    assert old is not None
    killed_at.append(time.monotonic())
    name = next(n for n in ("master", "replica") if servers.ports[n] == old)
    servers.kill(name)
    await wait_for(lambda: servers.master_port() not in (None, old), 60, "a new master")
    if LONG:  # the old master back, as a replica of the new one, for the next failover
        await asyncio.to_thread(rejoin, servers, name)


def rejoin(servers: Servers, name: str) -> None:
    """Start a killed server again as a replica of the current master; wait until it serves.

    It comes back empty (no persistence), so it must not be promoted before it has synced:
    it starts with replica-priority 0 (never promoted) and gets the default back once the
    sentinel knows it as the master's replica, in sync. (An empty server promoted would
    wipe the real data from its new replicas: Redis's own warning about masters without
    persistence.)
    """
    master = servers.master_port()
    folder = servers.folder / name
    servers.procs[name] = subprocess.Popen(
        [servers.binary, "--port", str(servers.ports[name]), "--dir", str(folder),
         "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--replica-priority", "0",
         "--replicaof", "127.0.0.1", str(master)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    servers._until(lambda: paired(servers), "a master and a replica again", 60)
    assert servers.master_port() == master  # the sentinel kept the master it had
    servers.client(name).config_set("replica-priority", 100)


def paired(servers: Servers) -> bool:
    """Return whether the sentinel names a master and knows the other server as its replica."""
    master = servers.master_port()
    replica = next((p for n, p in servers.ports.items() if n != "sentinel" and p != master), None)
    try:
        found = servers.client("sentinel").sentinel_slaves(SERVICE)
    except redis.RedisError:
        return False
    return any(
        int(r["port"]) == replica and not r["is_sdown"] and r.get("master-link-status") == "ok"
        for r in found
    )


@pytest.mark.timeout(1800 if LONG else 240)
async def test_two_receivers_two_workers_kills_and_a_failover_every_report_once(
    tmp_path: Path,
) -> None:
    servers = Servers(tmp_path)
    await asyncio.to_thread(servers.start)
    fake_server = FakeInThread()
    try:
        await chaos(fake_server, servers, tmp_path)
    finally:
        fake_server.close()
        servers.stop()


async def chaos(fake_server: FakeInThread, servers: Servers, tmp_path: Path) -> None:
    print(f"scaled chaos seed {SEED} ({REPORTS} reports); replay with LIANHU_CHAOS_SEED={SEED}")
    rng = random.Random(SEED)
    fake = fake_server.api
    sync = sync_client(servers.url)
    logs = Path(os.environ.get("LIANHU_CHAOS_LOGS") or tmp_path)
    fleet = Fleet(fake.url, servers.url, logs)
    balancer = Balancer(fleet.ports, rng)
    burst = ScaledBurst(fake_server, rng, balancer)
    kinds = ["lease holder", "other receiver", "worker"] * KILLS + ["failover"] * FAILOVERS
    rng.shuffle(kinds)
    points = sorted(rng.sample(range(REPORTS // 10, REPORTS * 9 // 10), len(kinds)))
    schedule = list(zip(points, kinds, strict=True))
    print(f"scaled chaos schedule: {schedule}")
    killed_at: list[float] = []
    fleet.start()
    pushing = asyncio.create_task(burst.run())
    try:
        for point, kind in schedule:
            await wait_for(lambda p=point: len(burst.reports) >= p, 120, f"report {point}")  # type: ignore[misc]
            fleet.revive()
            if kind == "failover":
                await fail_over(servers, killed_at)
            elif kind == "worker":
                i = rng.randrange(2)
                fleet.kill(fleet.workers[i])
                fleet.start_worker(i)
            else:
                holder = fleet.lease_holder(sync)
                i = rng.randrange(2) if holder is None else holder
                await kill_receiver(
                    fleet, i if kind == "lease holder" else 1 - i, fake_server, sync
                )
        await pushing

        def quiet() -> bool:
            fleet.revive()
            try:
                inbox = sync.xlen(keys.inbox("telegram"))
                with sync.pipeline() as pipe:
                    for chat, mid in burst.reports:
                        pipe.exists(keys.processed(f"telegram:{chat}/{mid}"))
                    done = pipe.execute()
            except redis.RedisError:
                return False
            missing = [r for r, d in zip(burst.reports, done, strict=True) if not d]
            return inbox == 0 and all(lost_in_window(burst, r, killed_at) for r in missing)

        await wait_for(quiet, 300 if LONG else 90, "every report handled")
        for i, proc in enumerate(fleet.workers):  # no new deadlines acted on from here
            fleet.kill(proc)
            fleet.workers[i] = None

        def drained() -> bool:
            fleet.revive()
            outbox = keys.outbox("telegram")
            try:
                pending = sync.xpending(outbox, keys.OUTBOX_GROUP)["pending"]
                return sync.xlen(outbox) == 0 and pending == 0
            except redis.RedisError:
                return False

        await wait_for(drained, 300 if LONG else 90, "outbox drained")
        await asyncio.sleep(1.0)  # anything repeated would arrive now
    finally:
        pushing.cancel()
        fleet.stop()
        await balancer.close()
    lost = [r for r in burst.reports if not sync.exists(keys.processed(f"telegram:{r[0]}/{r[1]}"))]
    print(
        f"scaled chaos: {len(burst.reports)} reports, split {dict(balancer.split)}, "
        f"{balancer.retried} redeliveries, {burst.duplicates} updates twice, "
        f"{burst.redelivered} messages again, {len(fake.sent)} sent, restarts "
        f"{dict(fleet.restarts)}; lost to failover: {len(lost)} reports"
    )
    assert min(balancer.split.values()) > 0  # both receivers took reports
    burst.reports = [r for r in burst.reports if r not in lost]  # only those in the window
    check_tickets(sync, burst)
    if os.environ.get("LIANHU_CHAOS_DEBUG"):
        dump_cards(sync, fake, Path(os.environ["LIANHU_CHAOS_DEBUG"]))
    check_messages(sync, fake, burst)
    sync.close()


def dump_cards(sync: redis.Redis, fake: Any, path: Path) -> None:
    """Write, for each ticket, its events and what was sent about it (for a post-mortem)."""
    out = {}
    for ticket_id in stored_ids(sync):
        events = [e.to_dict() for e in stored_ticket(sync, ticket_id)[1]]
        calls = [
            [c.at, c.chat, c.buttons, c.text[:60]]
            for c in fake.sent
            if any(b.endswith(f":{ticket_id}") for b in c.buttons) or f"#{ticket_id}" in c.text
        ]
        out[ticket_id] = {"events": [[e["kind"], e.get("at")] for e in events], "sent": calls}
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1))


def lost_in_window(burst: ScaledBurst, report: tuple[int, int], killed_at: list[float]) -> bool:
    """Return whether a report was acknowledged just before a master died (it may be lost)."""
    acked = burst.balancer.acked.get(burst.updates[report])
    return acked is not None and any(0 <= k - acked <= LOSS_WINDOW for k in killed_at)
