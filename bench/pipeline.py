"""Benchmark the ticket pipeline on a real Redis: message in -> ticket stored, replies queued.

    python bench/pipeline.py [--messages 2000] [--concurrency 50] [--rate 200]

Starts its own redis-server (embedded, AOF everysec) in a temporary folder,
then measures, in one run:
- baseline: PING round trips of the same async client, sequential and concurrent;
- throughput: reports handled per second with ``--concurrency`` at once;
- latency: p50/p99 at a steady ``--rate`` messages per second;
- memory: Redis memory per ticket with its events and indexes (the outbox
  stream and rq's jobs are reported apart: they are drained and expire).
``--tickets N`` instead fills N tickets and prints MEMORY USAGE by key kind per ticket:
open, then after every reply is delivered through the real sender (card records, pointers,
sent markers), then after one acknowledgement each (the bytes of one more event), its
replies and card edits delivered too (the view, the edited records). The ticket with its
indexes and the state of its delivered cards are summed apart. The edge numbers messages
per chat, as Telegram does in a supergroup, leaving one id between two of the bot's for
someone else's message.
Deadline jobs are scheduled through the real rq scheduler adapter.
Targets: >= 1,000 messages/s, p99 <= 20 ms at 200 messages/s, <= 1 KB per open ticket
with its indexes and <= 100 B per event
(rules alone: ``--model rules``); with the learned model (the default), p99 <= 250 ms
at 20 messages/s: ``--rate 20 --seconds 15``, and >= 100 messages/s end to end on text
new to the model: ``--corpus tests/holdout/blind6.jsonl --rate 20 --seconds 15``. The
load average is printed beside the figures: the machine is shared, so compare runs by
ratios (e.g. against ``--model rules`` measured just before).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio  # noqa: E402

from bot.core.deadlines import Policy  # noqa: E402
from bot.core.models import Actor, IncomingMessage, Lang  # noqa: E402
from bot.core.org import Person, Role  # noqa: E402
from bot.core.roster import HANDLER_ROLES  # noqa: E402
from bot.live import LiveConfig  # noqa: E402
from bot.ports import Sent  # noqa: E402
from bot.redis_server import EmbeddedRedis  # noqa: E402
from bot.scheduling import RqScheduler  # noqa: E402
from bot.sender import Sender  # noqa: E402
from bot.services import Service  # noqa: E402
from bot.storage import keys  # noqa: E402
from bot.storage.redis import RedisStore  # noqa: E402

REPORTS = [
    "村口的路灯坏了半个月，晚上黑漆漆的", "楼下KTV每晚唱到凌晨三点，吵得睡不着",
    "又停水了，成栋楼冇水", "垃圾三天没人收，臭死了", "电梯又坏了，老人上不了楼",
    "消防通道堆满杂物", "有人在小区门口乱停车，堵住了路", "工厂拖欠工资三个月了",
]  # fmt: skip


def messages(
    config: LiveConfig, count: int, tag: str, texts: Sequence[str] = REPORTS
) -> list[IncomingMessage]:
    """Return ``count`` reports from residents, each unique (a new message id), cycling
    through ``texts``."""
    residents = [p for p in config.tree.people.values() if p.role is Role.RESIDENT]
    out = []
    for i in range(count):
        person = residents[i % len(residents)]
        chat = config.tree.nodes[person.scope].chats[0]
        sender = Actor(f"{person.accounts[0]}{i}", person.name, None, Lang.ZH_HANS)
        out.append(IncomingMessage(chat, f"{tag}{i}", sender, texts[i % len(texts)], time.time()))
    return out


def corpus_texts(path: Path) -> list[str]:
    """Return the texts of a JSON-lines corpus (e.g. a held-out set: text new to the model)."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def ping_rate(client: redis.asyncio.Redis, count: int, concurrency: int) -> float:
    async def worker(n: int) -> None:
        for _ in range(n):
            await client.ping()

    start = time.perf_counter()
    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


async def run(args: argparse.Namespace) -> None:
    # Every report is its own ticket (joining switched off): the heaviest case.
    config = LiveConfig(
        ROOT / "routing_rules", ROOT / "org" / "sample_street.yaml", Policy(join_window=0.0)
    )
    with tempfile.TemporaryDirectory() as folder, EmbeddedRedis(Path(folder)) as url:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=args.concurrency + 10
        )
        client = redis.asyncio.Redis(connection_pool=pool)
        sync = redis.Redis.from_url(url)
        engine = None
        if args.model != "rules":  # the learned model, loaded (or trained) before timing
            from bot.classifier.engine import Engine

            engine = Engine(config.ruleset, args.data, embeddings=args.model == "model")
            job = engine.start()
            if job is not None:
                job.result()
            kind = "e5 + TF-IDF" if engine.model and engine.model.uses_embedding else "TF-IDF"
            print(
                f"classifier: {kind} model, thresholds {engine.model and engine.model.thresholds}"
            )
        service = Service(RedisStore(client), config, RqScheduler(sync), classifier=engine)
        await service.handle_message(messages(config, 1, "warm")[0])
        if args.tickets:
            await memory(service, client, config, args.tickets, args.concurrency)
            await client.aclose()
            await pool.aclose()
            sync.close()
            return

        ping_seq = await ping_rate(client, 2000, 1)
        ping_conc = await ping_rate(client, 20000, args.concurrency)
        at_once = f"{args.concurrency} at once"
        print(f"baseline PING: {ping_seq:,.0f}/s sequential, {ping_conc:,.0f}/s with {at_once}")

        texts = corpus_texts(args.corpus) if args.corpus else REPORTS
        batch = messages(config, args.messages, "t", texts)
        queue: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        for m in batch:
            queue.put_nowait(m)

        async def worker() -> None:
            while not queue.empty():
                await service.handle_message(queue.get_nowait())

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        rate = args.messages / (time.perf_counter() - start)
        embedded = engine.counts["embedded"] if engine is not None else 0
        print(f"throughput: {rate:,.0f} messages/s ({args.messages} reports, {at_once}) "
              f"[load {os.getloadavg()[0]:.2f}]")  # fmt: skip
        if engine is not None:
            print(f"  (the model embedded {embedded} of {engine.counts['texts']} texts so far)")
        print(f"  = {rate / ping_conc:.2f} of the concurrent PING rate")

        latencies: list[float] = []
        steady = messages(config, args.rate * args.seconds, "l", texts)

        async def timed(m: IncomingMessage) -> None:
            t0 = time.perf_counter()
            await service.handle_message(m)
            latencies.append((time.perf_counter() - t0) * 1000)

        tasks = []
        start = time.perf_counter()
        for i, m in enumerate(steady):
            await asyncio.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
            tasks.append(asyncio.create_task(timed(m)))
        await asyncio.gather(*tasks)
        ping_ms = 1000 / ping_seq
        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
        print(f"latency at {args.rate}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
              f"[load {os.getloadavg()[0]:.2f}]")  # fmt: skip
        if engine is not None:
            counts = engine.counts
            print(f"  (the model embedded {counts['embedded']} of {counts['texts']} texts)")
        print(f"  (one PING round trip: {ping_ms:.2f} ms)")

        tickets = len(await service.store.all_ids())
        stream = sum([await client.memory_usage(keys.outbox(p)) or 0 for p in ("telegram", "sim")])
        rq_keys = [k async for k in client.scan_iter("rq:*")]
        rq_bytes = sum([await client.memory_usage(k) or 0 for k in rq_keys])
        ours = [k async for k in client.scan_iter("lianhu:*")]
        per_key = {k: await client.memory_usage(k) or 0 for k in ours}
        stored = sum(v for k, v in per_key.items() if not k.startswith(b"lianhu:outbox"))
        print(f"memory: {stored / tickets:,.0f} bytes per ticket with its events and indexes")
        print(f"  ({tickets} tickets); until drained or run, per ticket: outbox")
        print(f"  {stream / tickets:,.0f} B, rq jobs {rq_bytes / tickets:,.0f} B")
        await client.aclose()
        await pool.aclose()
        sync.close()


def key_type(key: str) -> str:
    """Return a key's kind: its name with ids, accounts and chats replaced by ``*``."""
    parts = key.split(":")
    if parts[0] == "rq":  # a deadline's job, rq's schedule of them, its queue
        return "rq:job:*" if parts[1] == "job" else key
    if parts[1] in ("ticket", "cards", "cardview"):
        return ":".join([*parts[:2], "*", *parts[3:]][: 3 if parts[1] != "ticket" else 4])
    if parts[1] in ("msg", "reporter", "assignee", "pace", "same", "said", "update", "card"):
        return ":".join(parts[:2]) + ":*"
    if parts[1] in ("reporters", "tickets", "deadlines", "queued", "queues") and len(parts) > 2:
        return ":".join(parts[:2]) + ":*"
    if parts[1] in ("deck", "cardsin"):
        return ":".join(parts[:2]) + ":*"
    if parts[1] == "sent":
        return "lianhu:sent:*"
    return key


# Keys that are not per ticket: per message and expiring soon, or bounded logs.
TRANSIENT = {
    "lianhu:msg:*": "a handled message's marker, 7 days",
    "lianhu:pace:*": "replies to one person this minute, 60 s",
    "lianhu:sent:*": "a delivered reply's marker, 7 days",
    "lianhu:classified": "masked log of classified messages, capped at 50,000",
    "rq:job:*": "a deadline's rq job, until it runs: hours to days",
    "rq:scheduled:lianhu": "rq's schedule of those jobs",
}


# The state of a ticket's delivered cards: their records, views and pointers, now and before.
CARD_STATE = {
    "lianhu:deck:*", "lianhu:cardsin:*", "lianhu:names",
    "lianhu:cards:*", "lianhu:cardview:*", "lianhu:card:*",
}  # fmt: skip


class NullGateway:
    """The platform's edge: accepts every message and edit at once (what is measured is Redis).

    Message ids count per chat, as in a Telegram supergroup, two apart: someone else's
    message between two of the bot's.
    """

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.count = 0
        self.ids: dict[str, int] = {}
        self.edits = 0

    async def send(self, chat: str, message: object, reply_to: str | None) -> Sent:
        self.count += 1
        self.ids[chat] = self.ids.get(chat, 0) + 2
        return Sent(str(self.ids[chat]))

    async def edit(self, chat: str, message_id: str, message: object) -> None:
        self.edits += 1


async def sizes(client: redis.asyncio.Redis) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Return MEMORY USAGE summed by key kind (with key counts), and each ticket's size."""
    by_kind: dict[str, list[int]] = {}
    names = [k.decode() async for k in client.scan_iter("lianhu:*", count=1000)]
    names += [k.decode() async for k in client.scan_iter("rq:*", count=1000)]
    records: dict[str, int] = {}
    for first in range(0, len(names), 5000):
        chunk = names[first : first + 5000]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.memory_usage(name, samples=0)
        for name, size in zip(chunk, await pipe.execute(), strict=True):
            kind = key_type(name)
            by_kind.setdefault(kind, [0, 0])
            by_kind[kind][0] += size or 0
            by_kind[kind][1] += 1
            if kind == "lianhu:ticket:*":
                records[name] = size or 0
    return by_kind, records


def table(by_kind: dict[str, list[int]], tickets: int, title: str) -> None:
    """Print bytes per ticket by key kind: the ticket with its indexes, then the rest."""
    apart = ("lianhu:outbox", "rq:")  # drained by the sender; rq's jobs and queues
    hot = {k: v for k, v in by_kind.items() if k not in TRANSIENT and not k.startswith(apart)}
    print(f"{title} [load {os.getloadavg()[0]:.2f}]")
    cards = {k: v for k, v in hot.items() if k in CARD_STATE}
    for part, what in ((hot.keys() - cards.keys(), "its record and indexes"), (cards, "")):
        if not part:
            continue
        rows = {k: hot[k] for k in part}
        for kind, (size, n) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
            print(f"  {kind:<40} {size / tickets:8,.0f} B/ticket  ({n:,} keys)")
        size = sum(v[0] for v in rows.values())
        what = what or "the state of its delivered cards (records, views, pointers)"
        print(f"  = {size / tickets:,.0f} bytes per ticket: {what}")
    total = sum(v[0] for v in hot.values())
    print(f"  = {total / tickets:,.0f} bytes per ticket: its record, its indexes, its cards")
    rest = {k: v for k, v in by_kind.items() if k not in hot}
    for kind, (size, n) in sorted(rest.items(), key=lambda kv: -kv[1][0]):
        why = TRANSIENT.get(kind, "rq's own" if kind.startswith("rq:") else "drained by the sender")
        print(f"  + {kind:<38} {size / tickets:8,.0f} B/ticket  ({n:,} keys; {why})")
    everything = sum(v[0] for v in by_kind.values())
    print(f"  = {everything / tickets:,.0f} bytes per ticket with every key")


async def memory(
    service: Service, client: redis.asyncio.Redis, config: LiveConfig, count: int, at_once: int
) -> None:
    """Fill Redis with ``count`` tickets through the real service, then report bytes by key kind;
    deliver every reply through the real sender and report again; acknowledge every ticket
    and report the bytes one more event costs."""
    batch = messages(config, count, "m")
    start = time.perf_counter()
    for first in range(0, count, at_once * 20):
        await asyncio.gather(
            *(service.handle_message(m) for m in batch[first : first + at_once * 20])
        )
    print(f"filled {count:,} tickets in {time.perf_counter() - start:,.0f} s")
    ids = await service.store.all_ids()
    tickets = len(ids)
    by_kind, records = await sizes(client)
    table(by_kind, tickets, f"memory at {tickets:,} open tickets, each one event:")

    start = time.perf_counter()
    gateways = {p: NullGateway(p) for p in ("telegram", "sim")}
    await deliver(client, gateways)
    print(f"delivered every reply in {time.perf_counter() - start:,.0f} s")
    by_kind, records = await sizes(client)
    table(by_kind, tickets, "after delivery (sent markers, card pointers and records):")

    handlers: dict[str, Person] = {}
    for person in config.tree.people.values():
        if person.role in HANDLER_ROLES and person.role is not Role.ADMIN:
            handlers.setdefault(person.scope, person)
    tickets_now = await service.store.get_many(ids)
    acks = []
    for i, ticket in enumerate(tickets_now):
        who = handlers.get(ticket.node)
        if who is None:
            continue
        sender_ = Actor(who.accounts[0], who.name, who.id, Lang(who.lang))
        chat = config.tree.nodes[who.scope].chats[0]
        acks.append(IncomingMessage(chat, f"ack{i}", sender_, f"/ack {ticket.id}", time.time()))
    start = time.perf_counter()
    for first in range(0, len(acks), at_once * 20):
        await asyncio.gather(
            *(service.handle_message(m) for m in acks[first : first + at_once * 20])
        )
    print(f"acknowledged {len(acks):,} tickets in {time.perf_counter() - start:,.0f} s")
    _, after = await sizes(client)
    two = [keys.ticket(t.id) for t in await service.store.get_many(ids) if t.seq == 2]
    grown = sum(after[k] - records[k] for k in two)
    print(
        f"  one more event (an acknowledgement): {grown / max(len(two), 1):,.0f} B per event "
        f"over {len(two):,} tickets; a ticket's record {sum(records.values()) / tickets:,.0f} B "
        f"with its opened event, {sum(after.values()) / tickets:,.0f} B with both"
    )
    start = time.perf_counter()
    await deliver(client, gateways)
    edits = sum(g.edits for g in gateways.values())
    print(f"delivered their replies and card edits ({edits:,} cards edited) "
          f"in {time.perf_counter() - start:,.0f} s")  # fmt: skip
    by_kind, _ = await sizes(client)
    table(by_kind, tickets, "after one acknowledgement each, delivered with its card edits:")


async def deliver(client: redis.asyncio.Redis, gateways: dict[str, NullGateway]) -> None:
    """Drain every platform's outbox through the real sender (cards edited at the edge)."""
    for gateway in gateways.values():
        sender = Sender(client, gateway, render=None)
        while (await sender.drain(count=500)).sent:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--model", choices=("model", "tfidf", "rules"), default="model")
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="model cache dir")
    parser.add_argument(
        "--tickets", type=int, default=0, help="only fill this many tickets and report memory"
    )
    parser.add_argument(
        "--corpus", type=Path, help="report texts from this JSON-lines file (default: 8 fixed)"
    )
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
