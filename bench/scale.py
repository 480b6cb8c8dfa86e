"""Benchmark scale-out on one Redis: 1, 2 and 4 receiver processes, a sweep of 10,000 deadlines.

    python bench/scale.py [--processes 1,2,4] [--messages 4000] [--rate 200] [--seconds 5]
                          [--deadlines 10000]
    python bench/scale.py --soak 600 --rate 250 [--processes 2] [--model rules|tfidf|model]
                          [--corpus tests/holdout/blind6.jsonl]
    python bench/scale.py --soak 600 --rate 30 --close-after 60 --retention 120 [--kinds-every 30]
                          [--marker-ttl 240] [--platforms telegram]

Starts its own redis-server (embedded, AOF everysec) in a temporary folder. Each
receiver is a process of its own, as ``lianhu run`` is: a Service on the rules
classifier (the learned model is measured by bench/pipeline.py; here the question is
what processes add, so the cheapest classifier keeps the receivers, not the model, the
subject) reading the durable inbox (``bot.inbox.Inbox``) as a consumer of its own.
Joining is off: every report opens a ticket, the heaviest case.

- throughput: ``--messages`` reports put in the inbox first, then the receivers let go;
  messages per second until the inbox is empty (stored -> ticket, events, indexes,
  deadline job, replies queued, acknowledged);
- latency: reports put in the inbox at a steady ``--rate``; p50/p99 from the put to the
  ticket committed (so it includes the inbox hop);
- each against the 1-process figures of the same run (ratios: the machine is shared);
- sweep: tickets opened until ``--deadlines`` deadlines are owed, the clock moved a month
  on, one ``Service.sweep()`` timed (what ``lianhu worker`` runs every 30 s).

``--soak SECONDS`` runs ``--processes`` receivers (the first number) at ``--rate`` for that
long, with the outboxes drained by the real ``Sender`` (in a process of its own, as the
lease holder is) into a gateway that accepts everything, and prints every 10 s: Redis
used_memory, tickets, memory per ticket, what waits in the inbox, the outboxes and rq,
and p50/p99 of that window; then a summary (used_memory first, middle and last, its
slope per minute after the first minute, the worst window's p99, the rate held, the CPU
each process used) and Redis memory by key kind (bytes per ticket, how many keys, how
many without a TTL: a kind that grows with messages and has no TTL is a leak).

``--close-after SECONDS`` makes the soak a steady state (bench/steady.py): each ticket is
acknowledged, resolved and confirmed by its resident that long after it opened (commands
through the inbox, 4 messages in a report's life), and archived ``--retention`` seconds
after it closed, so the tickets in Redis level off; memory by key kind is read every
``--kinds-every`` seconds and the summary gives each kind's slope after
close-after + retention, the tickets' keys apart from the 7-day markers (with what those
level off at) and the kinds bounded otherwise (outbox backlog, capped log, rq jobs).
``--marker-ttl SECONDS`` gives the 7-day markers (and the sender's 90-day pointers) that TTL
in every process, as the retention stands for 90 days: then used_memory itself levels off,
or shows what does not.

``--model`` puts the learned classifier in every receiver (trained or loaded once by the
parent before timing; default: the rules); ``--corpus`` takes the report texts from a
JSON-lines file (text new to the model, so its embedding cache does not flatter it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import yaml  # noqa: E402

from bench import steady  # noqa: E402
from bench.steady import slope  # noqa: E402
from bot.classifier.engine import Engine  # noqa: E402
from bot.core.deadlines import Policy  # noqa: E402
from bot.core.models import Actor, IncomingMessage, Lang  # noqa: E402
from bot.core.org import Role  # noqa: E402
from bot.inbox import Inbox  # noqa: E402
from bot.live import LiveConfig  # noqa: E402
from bot.ports import Rendered, Sent  # noqa: E402
from bot.redis_server import EmbeddedRedis  # noqa: E402
from bot.scheduling import RqScheduler  # noqa: E402
from bot.sender import Sender  # noqa: E402
from bot.services import Service  # noqa: E402
from bot.storage import indexes, keys  # noqa: E402
from bot.storage.redis import RedisStore  # noqa: E402

PLATFORM = "bench"  # the inbox the receivers read
GO, STOP, LATENCIES = "bench:go", "bench:stop", "bench:latencies"
COMMAND_LATENCIES = "bench:latencies:commands"  # the closer's commands (steady soak)
READY = "bench:ready"
REPORTS = [
    "村口的路灯坏了半个月，晚上黑漆漆的", "楼下KTV每晚唱到凌晨三点，吵得睡不着",
    "又停水了，成栋楼冇水", "垃圾三天没人收，臭死了", "电梯又坏了，老人上不了楼",
    "消防通道堆满杂物", "有人在小区门口乱停车，堵住了路", "工厂拖欠工资三个月了",
]  # fmt: skip


RULES, ORG = ROOT / "routing_rules", ROOT / "org" / "sample_street.yaml"
BENCH_ORG = "LIANHU_BENCH_ORG"  # the org file of this run (--platforms), for every process


def org_file() -> Path:
    """Return the org file of this run: the sample street, or its copy for --platforms."""
    return Path(os.environ.get(BENCH_ORG) or ORG)


def one_platform_org(platforms: list[str], folder: Path) -> Path:
    """Write the sample street with only ``platforms``' chats bound to its nodes: a district
    runs its groups on one platform (the sample binds each node on two, for the demo)."""
    tree = yaml.safe_load(ORG.read_text(encoding="utf-8"))
    for node in tree["nodes"]:
        node["chats"] = [c for c in node.get("chats") or [] if c.split(":")[0] in platforms]
        if str(node.get("staff_chat") or ":").split(":")[0] not in platforms:
            node.pop("staff_chat", None)
    path = folder / "org.yaml"
    path.write_text(yaml.safe_dump(tree, allow_unicode=True), encoding="utf-8")
    return path


def config() -> LiveConfig:
    return LiveConfig(RULES, org_file(), Policy(join_window=0.0))


def payloads(
    cfg: LiveConfig, count: int, tag: str, texts: list[str] | None = None
) -> list[dict[str, Any]]:
    """Return ``count`` reports as the inbox stores them, each from a resident of its own."""
    texts = texts or REPORTS
    residents = [p for p in cfg.tree.people.values() if p.role is Role.RESIDENT]
    out = []
    for i in range(count):
        person = residents[i % len(residents)]
        out.append({
            "chat": cfg.tree.nodes[person.scope].chats[0], "message_id": f"{tag}{i}",
            "account": f"{person.accounts[0]}{tag}{i}", "name": person.name,
            "text": texts[i % len(texts)],
        })  # fmt: skip
    return out


def connect(url: str) -> redis.asyncio.Redis:
    """Return a client that waits for a free connection (the default pool raises past 100)."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(url, max_connections=100)
    return redis.asyncio.Redis(connection_pool=pool)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- a receiver process ----------------------------------------------------------------------


def engine(cfg: LiveConfig, model: str) -> Engine | None:
    """Return the classifier ``model`` names, its model loaded (or trained), or None (rules)."""
    if model == "rules":
        return None
    found = Engine(cfg.ruleset, ROOT / "data", embeddings=model == "model")
    job = found.start()
    if job is not None:
        job.result()
    return found


def receiver(url: str, index: int, model: str, track: bool = False) -> None:
    """Run one receiver process until the parent sets STOP; with ``track``, tell the closer
    every ticket it opens (``steady.OPENED``)."""
    steady.shorten_markers()
    asyncio.run(_receive(url, index, model, track))


async def _receive(url: str, index: int, model: str, track: bool) -> None:
    client = connect(url)
    sync = redis.Redis.from_url(url)
    cfg = config()
    classifier = engine(cfg, model)
    service = Service(RedisStore(client), cfg, RqScheduler(sync), classifier=classifier)
    warm = payloads(cfg, 1, f"warm{index}-")[0]
    await service.handle_message(incoming(warm))
    done: list[str] = []
    commands: list[str] = []
    opened: list[str] = []

    async def handle(raw: str) -> None:
        item = json.loads(raw)
        handled = await service.handle_message(incoming(item))
        if "t" in item:
            now = time.time()
            (commands if "c" in item else done).append(f"{now:.3f},{(now - item['t']) * 1000:.3f}")
            if track and handled.status == "opened":
                opened.append(f"{now:.3f},{handled.ticket}")

    async def flush() -> None:
        for name, rows in (
            (LATENCIES, done),
            (COMMAND_LATENCIES, commands),
            (steady.OPENED, opened),
        ):
            if rows:
                batch, rows[:] = list(rows), []
                await client.rpush(name, *batch)

    inbox = Inbox(client, PLATFORM)
    await inbox.ensure_group()
    await client.sadd(READY, index)
    while not await client.exists(GO):
        await asyncio.sleep(0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(inbox.run(stop, handle, block_ms=50))
    while not await client.exists(STOP):
        await asyncio.sleep(0.2)
        await flush()
    stop.set()
    await task
    await flush()
    await client.aclose()
    sync.close()
    if classifier is not None:
        classifier.close()


def incoming(item: dict[str, Any]) -> IncomingMessage:
    sender = Actor(item["account"], item["name"], None, Lang.ZH_HANS)
    return IncomingMessage(item["chat"], item["message_id"], sender, item["text"], time.time())


@dataclass
class Fleet:
    """The receiver processes of one measurement."""

    url: str
    count: int
    procs: list[multiprocessing.process.BaseProcess]

    @classmethod
    async def start(
        cls,
        url: str,
        count: int,
        client: redis.asyncio.Redis,
        model: str = "rules",
        track: bool = False,
    ) -> Fleet:
        context = multiprocessing.get_context("spawn")
        procs = [
            context.Process(target=receiver, args=(url, i, model, track)) for i in range(count)
        ]
        for p in procs:
            p.start()
        while await client.scard(READY) < count:
            await asyncio.sleep(0.05)
        return cls(url, count, procs)

    async def stop(self, client: redis.asyncio.Redis) -> None:
        await client.set(STOP, 1)
        for p in self.procs:
            await asyncio.to_thread(p.join, 30)


async def put_all(inbox: Inbox, items: list[dict[str, Any]], start: int) -> None:
    for i, item in enumerate(items):
        await inbox.put(f"{start + i}", json.dumps(item, ensure_ascii=False))


async def wait_empty(client: redis.asyncio.Redis) -> None:
    while await client.xlen(keys.inbox(PLATFORM)) > 0:
        await asyncio.sleep(0.005)


async def latencies(
    client: redis.asyncio.Redis, name: str = LATENCIES
) -> list[tuple[float, float]]:
    rows = await client.lrange(name, 0, -1)
    out = []
    for row in rows:
        at, ms = row.decode().split(",")
        out.append((float(at), float(ms)))
    return out


async def paced(inbox: Inbox, items: list[dict[str, Any]], rate: float, start_id: int) -> float:
    """Put ``items`` in the inbox at ``rate`` a second, each stamped with when it was put;
    return the rate held (lower than asked when this process fell behind)."""
    begin = time.perf_counter()
    for i, item in enumerate(items):
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
        item["t"] = time.time()
        await inbox.put(f"{start_id + i}", json.dumps(item, ensure_ascii=False))
    return len(items) / (time.perf_counter() - begin)


# -- the measurements ------------------------------------------------------------------------


async def one_count(url: str, count: int, args: argparse.Namespace) -> tuple[float, float, float]:
    """Return (messages/s, p50 ms, p99 ms) with ``count`` receivers on an emptied Redis."""
    client = connect(url)
    await client.flushall()
    cfg = config()
    inbox = Inbox(client, PLATFORM, "bench-parent")
    await inbox.ensure_group()
    await put_all(inbox, payloads(cfg, args.messages, f"n{count}-", args.texts), 0)
    fleet = await Fleet.start(url, count, client, args.model)
    start = time.perf_counter()
    await client.set(GO, 1)
    await wait_empty(client)
    rate = args.messages / (time.perf_counter() - start)
    await client.delete(LATENCIES)
    steady = payloads(cfg, args.rate * args.seconds, f"l{count}-", args.texts)
    await paced(inbox, steady, args.rate, args.messages)
    await wait_empty(client)
    await asyncio.sleep(0.5)  # the last latencies flushed
    await fleet.stop(client)
    found = [ms for _, ms in await latencies(client)]
    await client.aclose()
    return rate, statistics.median(found), percentile(found, 0.99)


async def sweep(url: str, target: int) -> None:
    client = connect(url)
    sync = redis.Redis.from_url(url)
    await client.flushall()
    cfg = config()
    now = [time.time()]
    service = Service(RedisStore(client), cfg, RqScheduler(sync), clock=lambda: now[0])
    made = 0
    while await indexes.deadline_count(client) < target:
        batch = [incoming(p) for p in payloads(cfg, 500, f"s{made}-")]
        await asyncio.gather(*(service.handle_message(m) for m in batch))
        made += len(batch)
    owed = await indexes.deadline_count(client)
    now[0] += 30 * 86400  # a month on: every one of them overdue
    start = time.perf_counter()
    found = await service.sweep()
    took = time.perf_counter() - start
    left = await indexes.deadline_count(client, now[0] - 5)
    print(f"sweep: {found:,} overdue deadlines of {made:,} tickets ({owed:,} owed) checked in "
          f"{took:.1f} s = {found / took:,.0f}/s; overdue left after: {left} "
          f"[load {os.getloadavg()[0]:.2f}]")  # fmt: skip
    await client.aclose()
    sync.close()


class Accepting:
    """A gateway that accepts every message (the soak measures Redis, not a platform).

    Message ids count across the platform, or with ``per_chat`` in each chat as Telegram's
    do in a group: the pointers from sent messages fill their hashes of 100 ids
    (``keys.card_pointers``) as they do in real chats, where one id across chats leaves each
    hash with a few (the default soak's, kept so its figures compare with the earlier runs).
    """

    def __init__(self, platform: str, per_chat: bool = False) -> None:
        self.platform = platform
        self.per_chat = per_chat
        self.count = 0
        self.counts: dict[str, int] = {}

    async def send(self, chat: str, message: Rendered, reply_to: str | None) -> Sent:
        self.count += 1
        if not self.per_chat:
            return Sent(str(self.count))
        self.counts[chat] = self.counts.get(chat, 0) + 1
        return Sent(str(self.counts[chat]))


def platforms(cfg: LiveConfig) -> list[str]:
    return sorted({c.split(":")[0] for n in cfg.tree.nodes.values() for c in n.chats})


def sender(url: str, per_chat: bool = False) -> None:
    """Drain every outbox through the real Sender until the parent sets STOP (one process)."""
    steady.shorten_markers()
    asyncio.run(_send(url, per_chat))


async def _send(url: str, per_chat: bool) -> None:
    client = connect(url)
    stop = asyncio.Event()
    senders = [Sender(client, Accepting(p, per_chat), f"bench-{p}") for p in platforms(config())]
    draining = [asyncio.create_task(s.run(stop, block_ms=100)) for s in senders]
    await client.sadd(READY, "sender")
    while not await client.exists(STOP):
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*draining)
    await client.aclose()


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Return the resident memory of process ``pid`` in MB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(found[0]) / 1024 if found else 0.0


async def memory_by_kind(client: redis.asyncio.Redis, tickets: int, per: str = "ticket") -> None:
    """Print Redis memory by key kind: bytes per ticket (or ``per``), keys, keys without a TTL."""
    by = await steady.sizes(client)
    print(f"Redis memory by key kind at {tickets:,} {per}s (MEMORY USAGE, TTL):")
    print(f"  {'kind':<34} {'B/' + per:>8} {'keys':>9} {'no TTL':>9}")
    for name, (size, count, forever) in sorted(by.items(), key=lambda kv: -kv[1][0]):
        untimed = "" if name in steady.EXPIRING else f"{forever:9,}"  # these all have a TTL
        print(f"  {name:<34} {size / max(tickets, 1):8,.0f} {count:9,} {untimed:>9}")
    total = sum(v[0] for v in by.values())
    keys_all = sum(v[1] for v in by.values())
    print(f"  {'= all keys':<34} {total / max(tickets, 1):8,.0f} {keys_all:9,}")


async def soak(url: str, args: argparse.Namespace, count: int, folder: Path) -> None:
    seconds, rate = args.soak, args.rate
    closing = args.close_after > 0  # the steady state: tickets close and leave (bench/steady.py)
    client = connect(url)
    await client.flushall()
    cfg = config()
    inbox = Inbox(client, PLATFORM, "bench-parent")
    await inbox.ensure_group()
    fleet = await Fleet.start(url, count, client, args.model, track=closing)
    context = multiprocessing.get_context("spawn")
    helpers = {"sender": context.Process(target=sender, args=(url, closing))}
    if closing:
        helpers["closer"] = context.Process(
            target=steady.closer, args=(url, PLATFORM, args.close_after, RULES, org_file(), STOP)
        )
        helpers["archiver"] = context.Process(
            target=steady.archiver, args=(url, str(folder / "archive"), args.retention, STOP)
        )
    for helper in helpers.values():
        helper.start()
    while not await client.sismember(READY, "sender"):
        await asyncio.sleep(0.05)
    await client.set(GO, 1)
    outboxes = platforms(cfg)
    redis_pid = int((await client.info("server"))["process_id"])
    pids = {"redis-server": redis_pid, "parent (puts, samples)": os.getpid()}
    pids |= {name: p.pid for name, p in helpers.items() if p.pid}
    pids |= {f"receiver {i}": p.pid for i, p in enumerate(fleet.procs) if p.pid}
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    base = int((await client.info("memory"))["used_memory"])
    print(f"soak: {count} receivers ({args.model}) at {rate}/s for {seconds} s; outboxes "
          f"{outboxes} drained by one sender process; used_memory at start "
          f"{base / 1e6:.1f} MB")  # fmt: skip
    if closing:
        steady_from = args.close_after + args.retention
        if args.marker_ttl:  # and the first markers gone, their memory given back
            steady_from = max(steady_from, args.marker_ttl + 60)
        print(f"steady state: each ticket acknowledged, resolved and confirmed by its resident "
              f"{args.close_after:g} s after it opened (commands through the inbox), archived "
              f"{args.retention:g} s after it closed; steady from t={steady_from:g} s, when "
              f"~{rate * (args.close_after + args.retention):,.0f} tickets are in Redis. "
              + (f"The markers of updates, messages and deliveries (7 days) and the sender's "
                 f"pointers (90 days) live {args.marker_ttl} s here (--marker-ttl): "
                 if args.marker_ttl else
                 "The markers of updates, messages and deliveries keep their TTLs of 7 days "
                 "(constants, no setting shortens them): ")
              + f"measured apart as 'expiring', with what they level off at. "
              f"Memory by key kind every {args.kinds_every} s.")  # fmt: skip
        print("   t  used_memory  tickets  closed  archived  inbox  outbox  rq jobs  p50 ms"
              "  p99 ms  cmd p99  load")  # fmt: skip
    else:
        print("   t  used_memory  tickets  B/ticket  inbox  outbox  rq jobs  p50 ms  p99 ms  load")
    items = payloads(cfg, rate * seconds, "k", args.texts)
    begin = time.time()
    putting = asyncio.create_task(paced(inbox, items, rate, 0))
    seen, commands_seen = 0, 0
    samples: list[tuple[float, int]] = []
    kinds: list[tuple[float, dict[str, list[int]]]] = []  # (t, memory by kind), closing only
    p99s: list[float] = []
    command_p99s: list[float] = []
    rss: dict[str, list[float]] = {}  # MB of each process after the first minute and at the end
    forks = [0]  # AOF rewrites and RDB saves so far: Redis forks, its child takes a core

    async def forked() -> str:
        """Return " fork" when Redis rewrote its AOF (or saved) in the window, else ""."""
        found = await client.info("persistence")
        done = int(found.get("aof_rewrites", 0)) + int(found.get("rdb_saves", 0))
        busy = int(found.get("aof_rewrite_in_progress", 0)) + int(
            found.get("rdb_bgsave_in_progress", 0)
        )
        new, forks[0] = done > forks[0], done
        return " fork" if new or busy else ""

    async def waiting() -> tuple[int, int]:
        inbox_left = await client.xlen(keys.inbox(PLATFORM))
        return inbox_left, sum([await client.xlen(keys.outbox(p)) for p in outboxes])

    def going(inbox_left: int, outbox_left: int) -> bool:
        """Sample until the inbox is empty and the outboxes too (or ``--drain`` seconds on)."""
        if not putting.done() or inbox_left:
            return True
        return outbox_left > 0 and time.time() - begin < seconds + args.drain

    while going(*await waiting()):
        await asyncio.sleep(10.0 - (time.time() - begin) % 10.0)
        rows = await latencies(client)
        window = [ms for _, ms in rows[seen:]]
        seen = len(rows)
        used = int((await client.info("memory"))["used_memory"])
        tickets = await indexes.ticket_count(client)
        in_left, out_left = await waiting()
        jobs = await client.zcard("rq:scheduled:lianhu")
        at = time.time() - begin
        samples.append((at, used))
        p50 = statistics.median(window) if window else float("nan")
        p99 = percentile(window, 0.99)
        if window and at <= seconds + 5:
            p99s.append(p99)
        if at > 60 and not putting.done():
            for name, pid in pids.items():
                rss.setdefault(name, []).append(rss_mb(pid))
        load = os.getloadavg()[0]
        if not closing:
            per = (used - base) / tickets if tickets else 0.0
            print(f"{at:4.0f}  {used / 1e6:8.1f} MB  {tickets:7,}  {per:8,.0f}  "
                  f"{in_left:5}  {out_left:6}  {jobs:7,}  {p50:6.1f}  {p99:6.1f}"
                  f"  {load:.2f}{await forked()}")  # fmt: skip
            continue
        found = [ms for _, ms in (await latencies(client, COMMAND_LATENCIES))[commands_seen:]]
        commands_seen += len(found)
        command_p99 = percentile(found, 0.99)
        if found and at <= seconds + 5:
            command_p99s.append(command_p99)
        closed = await client.zcard(keys.CLOSED)
        archived = int(await client.get(steady.ARCHIVED) or 0)
        print(f"{at:4.0f}  {used / 1e6:8.1f} MB  {tickets:7,}  {closed:6,}  {archived:8,}  "
              f"{in_left:5}  {out_left:6}  {jobs:7,}  {p50:6.1f}  {p99:6.1f}  {command_p99:7.1f}"
              f"  {load:.2f}{await forked()}")  # fmt: skip
        if at <= seconds + 5 and (not kinds or at - kinds[-1][0] >= args.kinds_every - 1):
            took = time.time()
            by = await steady.sizes(client)
            kinds.append((at, by))
            hot = sum(v[0] for k, v in by.items() if k not in steady.EXPIRING)
            print(f"      by kind: hot {hot / 1e6:.1f} MB, expiring "
                  f"{(sum(v[0] for v in by.values()) - hot) / 1e6:.1f} MB, "
                  f"{sum(v[1] for v in by.values()):,} keys (read in "
                  f"{time.time() - took:.1f} s)")  # fmt: skip
    held = await putting
    wall = time.time() - begin
    cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    await client.set(STOP, 1)
    for helper in helpers.values():
        await asyncio.to_thread(helper.join, 30)
    await fleet.stop(client)
    pending = await client.xpending(keys.inbox(PLATFORM), keys.INBOX_GROUP)
    tickets = await indexes.ticket_count(client)
    warm = [s for s in samples if s[0] > 60]
    middle = samples[len(samples) // 2]
    in_left, out_left = await waiting()
    print(f"summary: {len(items):,} reports put at {held:,.1f}/s (asked {rate}/s), "
          f"{tickets:,} tickets in Redis; at the end: inbox {in_left} "
          f"({pending['pending']} pending), outboxes {out_left} undelivered")  # fmt: skip
    print(f"  used_memory: first {samples[0][1] / 1e6:.1f} MB (t={samples[0][0]:.0f} s), "
          f"middle {middle[1] / 1e6:.1f} MB (t={middle[0]:.0f} s), last "
          f"{samples[-1][1] / 1e6:.1f} MB (t={samples[-1][0]:.0f} s); slope after the first "
          f"minute {slope(warm) / 1e6:.2f} MB/min = "
          f"{slope(warm) / 60 / rate:,.0f} B a report")  # fmt: skip
    queued = sum([int((await client.xinfo_stream(keys.outbox(p)))["entries-added"])
                  for p in outboxes])  # fmt: skip
    print(f"  messages queued to send: {queued:,} = {queued / len(items):.1f} a report")
    every = [ms for _, ms in await latencies(client)]
    print(f"  p99 per 10 s window while putting: max {max(p99s, default=float('nan')):.1f} ms,"
          f" median {statistics.median(p99s) if p99s else float('nan'):.1f} ms; of all "
          f"{len(every):,} reports: p50 {percentile(every, 0.5):.1f} ms, p99 "
          f"{percentile(every, 0.99):.1f} ms, p99.9 {percentile(every, 0.999):.1f} ms; "
          f"a window marked 'fork' had Redis rewrite its AOF (a child taking a core)")  # fmt: skip
    if closing:
        told: Any = await client.hgetall(steady.CLOSER)
        counts = {k.decode(): int(v) for k, v in told.items()}
        archived = int(await client.get(steady.ARCHIVED) or 0)
        middling = statistics.median(command_p99s) if command_p99s else float("nan")
        print(f"  closer: {counts}; archived {archived:,} tickets; commands' p99 per window: "
              f"max {max(command_p99s, default=float('nan')):.1f} ms, median "
              f"{middling:.1f} ms")  # fmt: skip
        steady.steady_report(
            kinds, samples, steady_from, seconds, rate, marker_ttl=args.marker_ttl or None
        )
        stats = await client.info("stats")
        print(f"  Redis expired {int(stats['expired_keys']):,} keys in the run; "
              f"{float(stats['expired_stale_perc']):.1f}% of the keys with a TTL are past it "
              "and not yet reclaimed (Redis's estimate: its active expiry leaves up to ~10%, "
              "and a SCAN, as the reads by kind, reclaims those it meets)")  # fmt: skip
    print(f"  CPU over {wall:.0f} s (share of one core): " + ", ".join(
        f"{name} {used / wall:.2f}" for name, used in cpu.items()))  # fmt: skip
    print("  resident memory after the first minute -> halfway -> at the end of putting (MB): "
          + ", ".join(f"{name} {mb[0]:.0f} -> {mb[len(mb) // 2]:.0f} -> {mb[-1]:.0f}"
                      for name, mb in rss.items() if mb))  # fmt: skip
    if closing:
        await memory_by_kind(client, len(items), "report")
    else:
        await memory_by_kind(client, tickets)
    await client.aclose()


async def run(args: argparse.Namespace) -> None:
    counts = [int(n) for n in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as folder, EmbeddedRedis(Path(folder)) as url:
        if args.platforms:  # read by every process this one starts (they are spawned)
            os.environ[BENCH_ORG] = str(one_platform_org(args.platforms.split(","), Path(folder)))
            print(f"org: the sample street with {args.platforms} chats only")
        if args.marker_ttl:  # the same: this process puts reports through the inbox too
            os.environ[steady.MARKER_TTL] = str(args.marker_ttl)
            steady.shorten_markers()
        if args.model != "rules":  # trained (or loaded) once here, loaded by every receiver
            found = engine(config(), args.model)
            assert found is not None
            kind = "e5 + TF-IDF" if found.model and found.model.uses_embedding else "TF-IDF"
            print(f"classifier: {kind} model")
            found.close()
        if args.soak:
            await soak(url, args, counts[0], Path(folder))
            return
        print(f"message -> ticket, {args.model} classifier, {args.messages} reports; latency "
              f"at {args.rate}/s for {args.seconds} s; {os.cpu_count()} cores")  # fmt: skip
        base: tuple[float, float, float] | None = None
        for count in counts:
            rate, p50, p99 = await one_count(url, count, args)
            base = base or (rate, p50, p99)
            print(f"{count} receiver{'s' if count > 1 else ' '}: {rate:7,.0f} msg/s "
                  f"({rate / base[0]:.2f}x), p50 {p50:5.1f} ms, p99 {p99:6.1f} ms "
                  f"({p99 / base[2]:.2f}x) [load {os.getloadavg()[0]:.2f}]")  # fmt: skip
        if args.deadlines:
            await sweep(url, args.deadlines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--processes", default="1,2,4", help="receiver counts, comma-separated")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--deadlines", type=int, default=10_000)
    parser.add_argument("--soak", type=int, default=0, help="seconds of soak (0: no soak)")
    parser.add_argument(
        "--drain", type=int, default=120, help="soak: seconds after the end to drain outboxes"
    )
    parser.add_argument(
        "--close-after",
        type=float,
        default=0.0,
        help="soak: seconds from a ticket's opening to its close (0: tickets stay open)",
    )
    parser.add_argument(
        "--retention", type=float, default=60.0, help="soak: seconds from close to archive"
    )
    parser.add_argument(
        "--kinds-every", type=int, default=30, help="soak: seconds between memory-by-kind reads"
    )
    parser.add_argument(
        "--marker-ttl",
        type=int,
        default=0,
        help="soak: seconds the 7-day markers and 90-day pointers live (0: their real TTLs)",
    )
    parser.add_argument(
        "--platforms",
        default="",
        help="only these platforms' chats (e.g. telegram; default: the sample's telegram and sim)",
    )
    parser.add_argument("--model", choices=("model", "tfidf", "rules"), default="rules")
    parser.add_argument(
        "--corpus", type=Path, help="report texts from this JSON-lines file (default: 8 fixed)"
    )
    args = parser.parse_args()
    args.texts = None
    if args.corpus:
        with args.corpus.open(encoding="utf-8") as lines:
            args.texts = [json.loads(line)["text"] for line in lines if line.strip()]
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
