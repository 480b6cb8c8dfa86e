"""Chaos: `lianhu run` and `lianhu worker` SIGKILLed and Redis stopped and killed mid-burst.

The real bot (``python -m bot run``, long polling against the fake Bot API) and the
real worker (``python -m bot worker``: rq worker, scheduler and sweeper) run as
subprocesses on a redis-server of the test's own (AOF, fsync on every write).
Residents in every household group send reports of several kinds at numbered
buildings (some of them the same problem as another resident's, which joins);
some updates are delivered twice (the same update id) and some messages come
again in a new update. Deadlines are short, so the worker escalates and flags
tickets while the burst goes on. At points a seeded generator picks, the test
SIGKILLs the bot (and starts it again), SIGKILLs the worker with its work horse
(and starts it again), and stops Redis with SIGTERM and with SIGKILL (and starts
it on the same AOF). A process that exits by itself is started again, as a
supervisor would.

When all is quiet it asserts, with set equality:

- every report's message is in exactly one ticket's history, as opened or joined,
  and no message opened two tickets or joined one twice;
- every report got a receipt (the first reply to it in its group) and every ticket
  its card in the chats of the node it opened at;
- every message the bot delivered is a distinct outbox entry delivered once: no two
  deliveries alike, as many deliveries as sent markers, nothing left in the outbox,
  pending or dead;
- 20 a minute per group and 30 a second overall held, by the fake server's clock
  (both periods scaled by LIMIT_SCALE).

What it does not cover: the bot is killed only while the fake server holds sends
and after every accepted send has its sent marker, because a kill in the instant
between Telegram accepting a message and the marker being written repeats that
message (no client can close it; see bot.telegram.sending and the README). Redis
runs with fsync on every write; a lost AOF tail is not tested.

The seed is printed; ``LIANHU_CHAOS_SEED=<seed>`` replays a run. ``LIANHU_CHAOS=long``
(``make chaos``) runs the long version: 1,000 reports and many kills.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
import yaml

from bot.card_edits import split_field
from bot.redis_server import EmbeddedRedis
from bot.storage import keys
from bot.storage.decks import is_card
from tests.conftest import ROOT, RULES_DIR
from tests.fake_bot_api import TOKEN, FakeBotApi, wait_for
from tests.helpers import stored_ids, stored_ticket
from tests.telegram_fixtures import ORG

T = TypeVar("T")
LONG = os.environ.get("LIANHU_CHAOS") == "long"
SEED = int(os.environ.get("LIANHU_CHAOS_SEED", "20240611"))
REPORTS = 1000 if LONG else 40
KILLS = 4 if LONG else 1  # of each kind: bot, worker, Redis SIGTERM, Redis SIGKILL
LIMIT_SCALE = 0.01  # 20 a minute becomes 20 in 0.6 s; 30 a second, 30 in 10 ms
DEADLINE_SCALE = 1e-4  # a day becomes 8.6 s: tickets escalate while the burst goes on

# Problems of kinds that never join across buildings; ``{b}`` is the building.
PROBLEMS = (
    "{b}号楼门口的路灯坏了半个月，晚上黑漆漆的",
    "{b}号楼楼下停水两天了，一直没人管",
    "{b}号楼楼道里堆满了垃圾，臭气熏天，好几天没人清理",
    "{b}号楼的消防通道又被堵了，杂物还在",
    "{b}号楼电梯坏了一个星期了，老人上不了楼",
)


def households() -> list[int]:
    """Return the Telegram chat of every household group of the sample street."""
    nodes = yaml.safe_load(ORG.read_text(encoding="utf-8"))["nodes"]
    return [
        int(c.removeprefix("telegram:"))
        for n in nodes
        if n["kind"] == "household"
        for c in n["chats"]
        if c.startswith("telegram:")
    ]


def node_chats() -> dict[str, list[int]]:
    """Return each node's Telegram chats (cards go to these)."""
    nodes = yaml.safe_load(ORG.read_text(encoding="utf-8"))["nodes"]
    return {
        n["id"]: [int(c.removeprefix("telegram:")) for c in n["chats"] if c.startswith("telegram:")]
        for n in nodes
    }


def within_window(times: list[float], limit: int, period: float) -> bool:
    """Return whether no ``limit + 1`` of ``times`` fall within ``period`` seconds."""
    times = sorted(times)
    return all(times[i + limit] - times[i] >= period for i in range(len(times) - limit))


class FakeInThread:
    """The fake Bot API on an event loop of its own thread, so nothing the test blocks on stalls it.

    Starting redis-server again blocks the test's loop until it answers (and it must be
    started from the main thread); a fake server on that loop would stop answering, and the
    bot's sends, accepted but unanswered, would time out and be sent again: a fault of the
    test's making, not the bot's.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.api: FakeBotApi = self.run(self._make()).result(10)

    @staticmethod
    async def _make() -> FakeBotApi:
        api = FakeBotApi()  # its events belong to this loop
        await api.start()
        return api

    def run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` on the fake server's loop; return what it returned."""

        async def on_loop() -> T:
            return fn(*args, **kwargs)

        return await asyncio.wrap_future(self.run(on_loop()))

    async def release(self) -> None:
        await asyncio.wrap_future(self.run(self.api.release()))

    def close(self) -> None:
        self.run(self.api.close()).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Processes:
    """The bot and the worker as subprocesses, started again when killed or gone."""

    fake: FakeBotApi
    redis_url: str
    logs: Path
    bot: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    restarts: Counter[str] = field(default_factory=Counter)

    def env(self) -> dict[str, str]:
        return {
            **os.environ, "REDIS_URL": self.redis_url, "LIANHU_RULES_DIR": str(RULES_DIR),
            "LIANHU_ORG_FILE": str(ORG), "LIANHU_DEADLINE_SCALE": str(DEADLINE_SCALE),
            "LIANHU_DEADLINE_FLOOR": "0", "LIANHU_DIGEST_AT": "",
            "LIANHU_TELEGRAM_TOKEN": TOKEN, "LIANHU_TELEGRAM_BASE_URL": self.fake.url,
            "LIANHU_TELEGRAM_LIMIT_SCALE": str(LIMIT_SCALE),
        }  # fmt: skip

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{args[0]}.log").open("ab") as out:  # the child keeps its own
            return subprocess.Popen(
                [sys.executable, "-m", "bot", *args], env=self.env(), cwd=ROOT,
                stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip

    def start_bot(self) -> None:
        self.bot = self._start("run", "--name", "chaos")

    def start_worker(self) -> None:
        self.worker = self._start("worker")

    def revive(self) -> None:
        """Start again whatever exited by itself (as systemd's Restart=always would)."""
        if self.bot is not None and self.bot.poll() is not None:
            self.restarts["bot exited"] += 1
            self.start_bot()
        if self.worker is not None and self.worker.poll() is not None:
            self.restarts["worker exited"] += 1
            self.start_worker()

    @staticmethod
    def kill(proc: subprocess.Popen[bytes] | None) -> None:
        """SIGKILL a process and its group (the worker's work horse with it)."""
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    @staticmethod
    def stop(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            Processes.kill(proc)


@dataclass
class Burst:
    """The reports pushed so far, and the updates delivered more than once."""

    server: FakeInThread
    rng: random.Random
    reports: list[tuple[int, int]] = field(default_factory=list)  # (chat, message id)
    texts: dict[tuple[int, int], str] = field(default_factory=dict)
    duplicates: int = 0
    redelivered: int = 0

    def plan(self) -> Iterator[tuple[int, int, str]]:
        """Yield (chat, user, text): mostly distinct problems, some reported by two residents."""
        chats = households()
        made: list[tuple[int, str]] = []
        for i in range(REPORTS):
            if made and self.rng.random() < 0.15:  # someone else reports a problem already sent
                chat, text = self.rng.choice(made)
            else:
                chat = self.rng.choice(chats)
                text = PROBLEMS[i % len(PROBLEMS)].format(b=i + 1)  # a building of its own
                made.append((chat, text))
            yield chat, 500000 + i, text  # a resident of their own: no pacing in the way

    async def run(self) -> None:
        sent: list[dict[str, Any]] = []
        for i, (chat, user, text) in enumerate(self.plan()):
            fake = self.server.api
            update = await self.server.call(
                fake.push, await self.server.call(fake.message, chat, user, text)
            )
            message = update["message"]
            key = (chat, message["message_id"])
            self.reports.append(key)
            self.texts[key] = text
            sent.append(update)
            roll = self.rng.random()
            if roll < 0.05:  # the same update delivered twice
                await self.server.call(fake.push, update)
                self.duplicates += 1
            elif roll < 0.10:  # an earlier message again, in a new update
                old = self.rng.choice(sent)["message"]
                again = await self.server.call(
                    fake.message, old["chat"]["id"], old["from"]["id"], old["text"],
                    message_id=old["message_id"],
                )  # fmt: skip
                await self.server.call(fake.push, again)
                self.redelivered += 1
            if i % 10 == 9:
                await asyncio.sleep(self.rng.uniform(0.05, 0.3))


async def restart_redis(server: EmbeddedRedis, sig: signal.Signals) -> None:
    """Stop the server with ``sig``, leave it down a moment, start it on the same AOF."""
    pid = server.pid
    assert pid is not None
    os.kill(pid, sig)
    await wait_for(lambda: server.pid is None, 10, "redis-server gone")
    await asyncio.sleep(0.5)
    server.start()


def sent_markers(sync: redis.Redis) -> int:
    """Return the sent markers of entries that were messages (not the card edits, ":cards")."""
    # Distinct keys: SCAN may return a key twice while the keyspace grows.
    found = set(sync.scan_iter(keys.sent("*"), count=1000))
    return len({k for k in found if not k.endswith(b":cards")})


async def kill_bot(procs: Processes, server: FakeInThread, sync: redis.Redis) -> None:
    """SIGKILL the bot while no send is between accepted and marked; start it again."""
    fake = server.api
    await server.call(fake.hold)
    await wait_for(lambda: sent_markers(sync) == len(fake.sent), 20, "markers caught up")
    procs.kill(procs.bot)
    await server.release()
    procs.start_bot()


@pytest.mark.timeout(1800 if LONG else 240)
async def test_chaos_every_report_once_every_message_once_within_the_limits(
    restartable_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    fake_server = FakeInThread()
    try:
        await chaos(fake_server, restartable_redis, tmp_path)
    finally:
        fake_server.close()


async def chaos(fake_server: FakeInThread, server: EmbeddedRedis, tmp_path: Path) -> None:
    print(f"chaos seed {SEED} ({REPORTS} reports); replay with LIANHU_CHAOS_SEED={SEED}")
    rng = random.Random(SEED)
    fake = fake_server.api
    sync = redis.Redis.from_url(server.url)
    logs = Path(os.environ.get("LIANHU_CHAOS_LOGS") or tmp_path)  # kept there for a post-mortem
    procs = Processes(fake, server.url, logs)
    burst = Burst(fake_server, rng)
    # Each kind of fault KILLS times, at random points of the burst, in a random order.
    kinds = ["bot", "worker", "redis-term", "redis-kill"] * KILLS
    rng.shuffle(kinds)
    points = sorted(rng.sample(range(REPORTS // 10, REPORTS * 9 // 10), len(kinds)))
    schedule = list(zip(points, kinds, strict=True))
    print(f"chaos schedule: {schedule}")
    procs.start_bot()
    procs.start_worker()
    pushing = asyncio.create_task(burst.run())
    try:
        for point, kind in schedule:
            await wait_for(lambda p=point: len(burst.reports) >= p, 120, f"report {point}")  # type: ignore[misc]
            procs.revive()
            if kind == "bot":
                await kill_bot(procs, fake_server, sync)
            elif kind == "worker":
                procs.kill(procs.worker)
                procs.start_worker()
            else:
                await restart_redis(
                    server, signal.SIGTERM if kind == "redis-term" else signal.SIGKILL
                )
        await pushing

        def handled() -> bool:
            procs.revive()
            with sync.pipeline() as pipe:
                for chat, mid in burst.reports:
                    pipe.exists(keys.processed(f"telegram:{chat}/{mid}"))
                return all(pipe.execute())

        await wait_for(handled, 300 if LONG else 90, "every report handled")
        procs.stop(procs.worker)  # no new deadlines acted on from here
        procs.worker = None

        def drained() -> bool:
            procs.revive()
            outbox = keys.outbox("telegram")
            pending = sync.xpending(outbox, keys.OUTBOX_GROUP)["pending"]
            return sync.xlen(outbox) == 0 and pending == 0

        await wait_for(drained, 300 if LONG else 90, "outbox drained")
        await asyncio.sleep(1.0)  # anything repeated would arrive now
    finally:
        pushing.cancel()
        procs.stop(procs.bot)
        procs.stop(procs.worker)
    print(f"chaos: {len(burst.reports)} reports, {burst.duplicates} updates twice, "
          f"{burst.redelivered} messages again, {len(fake.sent)} sent, "
          f"restarts {dict(procs.restarts)}")  # fmt: skip
    check_tickets(sync, burst)
    check_messages(sync, fake, burst)
    sync.close()


def check_tickets(sync: redis.Redis, burst: Burst) -> None:
    """Every report's message is in exactly one ticket, once; the marker names that ticket."""
    ids = stored_ids(sync)
    where: dict[tuple[int, int], list[tuple[str, str]]] = defaultdict(list)
    for ticket_id in ids:
        for stored in stored_ticket(sync, ticket_id)[1]:
            event = stored.to_dict()
            if event["kind"] in ("opened", "joined"):
                reporter = event["data"]["reporter"]
                chat = int(reporter["chat"].removeprefix("telegram:"))
                where[(chat, int(reporter["message_id"]))].append((ticket_id, event["kind"]))
    reports = set(burst.reports)
    assert set(where) == reports  # nothing lost, nothing made up
    assert {k: v for k, v in where.items() if len(v) != 1} == {}  # each in exactly one ticket
    openings = Counter(t for v in where.values() for t, kind in v if kind == "opened")
    assert set(openings) == set(ids) and max(openings.values()) == 1  # each opened once
    for (chat, mid), [(ticket_id, _)] in where.items():
        marker = sync.get(keys.processed(f"telegram:{chat}/{mid}"))
        assert marker == ticket_id.encode(), (chat, mid, marker, ticket_id)


def check_messages(
    sync: redis.Redis,
    fake: FakeBotApi,
    burst: Burst,
) -> None:
    """Every receipt and card arrived; every delivery is one outbox entry, once; limits held."""
    sent = fake.sent
    alike = Counter((c.chat, c.reply_to, c.text, tuple(c.buttons)) for c in sent)
    twice = {(k[0], k[1], k[3]): n for k, n in alike.items() if n > 1}
    if twice and os.environ.get("LIANHU_CHAOS_DEBUG"):
        Path(os.environ["LIANHU_CHAOS_DEBUG"]).write_text(
            json.dumps(
                {
                    "twice": [[*k, n] for k, n in twice.items()],
                    "markers": sent_markers(sync),
                    "sent": len(sent),
                    "events": {
                        t: [e.to_dict() for e in stored_ticket(sync, t)[1]]
                        for t in {b.split(":")[1] for k in twice for b in k[2][:1]}
                    },
                    "calls": [[c.at, c.chat, c.reply_to, c.buttons, c.text[:30]] for c in sent],
                },
                ensure_ascii=False,
                indent=1,
                default=str,
            )
        )
    assert twice == {}  # nothing delivered twice
    assert sent_markers(sync) == len(sent)  # every delivery is an entry marked sent, once
    outbox = keys.outbox("telegram")
    assert sync.xlen(outbox) == 0
    assert sync.xpending(outbox, keys.OUTBOX_GROUP)["pending"] == 0
    assert sync.llen(f"{outbox}:dead") == 0
    # A receipt for every report, in its group, replying to it.
    replied = {(c.chat, c.reply_to) for c in sent if c.reply_to is not None}
    assert set(burst.reports) - replied == set()
    check_cards(sync, fake)
    # Within Telegram's limits, by the fake server's clock.
    check_limits(fake)


def check_cards(sync: redis.Redis, fake: FakeBotApi) -> None:
    """The card of every ticket in each chat of the node it opened at, delivered and recorded.

    Told by the ticket's record of its sent cards, not by their buttons: a card sent after
    its ticket moved on (the backlog of a Redis restart outlasts short deadlines, as in the
    long run) is sent as the ticket is then, without buttons at a node it has left
    (``bot.card_edits``).
    """
    chats = node_chats()
    delivered = Counter((c.chat, c.result["message_id"]) for c in fake.sent)
    missing = []
    for ticket_id in stored_ids(sync):
        opened = stored_ticket(sync, ticket_id)[1][0].to_dict()
        assert opened["kind"] == "opened"
        recorded: dict[int, list[int]] = {}
        for field_name in sync.hkeys(keys.deck(ticket_id)):  # bot.storage.decks
            if not is_card(field_name.decode()):
                continue  # its base, its view
            chat, message_id = split_field(field_name.decode())
            if not chat.startswith("telegram:"):
                continue
            recorded.setdefault(int(chat.removeprefix("telegram:")), []).append(int(message_id))
        for chat in chats[opened["data"]["node"]]:
            found = recorded.get(chat, [])
            if not found or any(delivered[(chat, m)] != 1 for m in found):
                missing.append((chat, ticket_id, found))
    assert missing == []


def check_limits(fake: FakeBotApi) -> None:
    """20 a minute per group and 30 a second overall, by the fake server's clock."""
    sent = fake.sent
    by_chat: dict[int, list[float]] = defaultdict(list)
    for c in sent:
        by_chat[c.chat].append(c.at)
    over = [
        chat
        for chat, ts in by_chat.items()
        if chat < 0 and not within_window(ts, 20, 60 * LIMIT_SCALE)
    ]
    assert over == []
    assert within_window([c.at for c in sent], 30, 1 * LIMIT_SCALE)
    assert not [c for c in fake.calls if c.status == 429]
