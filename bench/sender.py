"""Benchmark delivery: the outboxes of N reports drained through the real Sender.

    python bench/sender.py [--reports 2000] [--platforms telegram,sim]

Starts its own redis-server (embedded, AOF everysec) in a temporary folder, opens
``--reports`` tickets on the rules classifier (each report its own ticket, as in
bench/scale.py), then drains every outbox through ``bot.sender.Sender`` into a gateway that
accepts everything (the platform's own pace is not the subject: what delivery costs this
process is). Prints, per message delivered: this process's CPU, the wall time, and the
commands Redis ran for it (INFO commandstats, a script's own commands counted), beside
the baseline of the same run: the CPU of one PING round trip of the same client. The
messages a second one core could deliver is 1000 / (ms of CPU a message).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio  # noqa: E402

from bench import scale  # noqa: E402
from bot.redis_server import EmbeddedRedis  # noqa: E402
from bot.scheduling import RqScheduler  # noqa: E402
from bot.sender import Sender  # noqa: E402
from bot.services import Service  # noqa: E402
from bot.storage import keys  # noqa: E402
from bot.storage.redis import RedisStore  # noqa: E402


async def ping_cpu(client: redis.asyncio.Redis, count: int = 5000) -> float:
    """Return the CPU (ms) of one PING round trip of ``client``."""
    start = time.process_time()
    for _ in range(count):
        await client.ping()
    return 1000 * (time.process_time() - start) / count


async def commands(client: redis.asyncio.Redis) -> dict[str, int]:
    return {name: row["calls"] for name, row in (await client.info("commandstats")).items()}


async def run(url: str, reports: int) -> None:
    client = scale.connect(url)
    sync = redis.Redis.from_url(url)
    cfg = scale.config()
    service = Service(RedisStore(client), cfg, RqScheduler(sync))
    items = scale.payloads(cfg, reports, "d")
    for first in range(0, reports, 200):
        batch = items[first : first + 200]
        await asyncio.gather(*(service.handle_message(scale.incoming(i)) for i in batch))
    platforms = scale.platforms(cfg)
    waiting = {p: int(await client.xlen(keys.outbox(p))) for p in platforms}
    total = sum(waiting.values())
    senders = [Sender(client, scale.Accepting(p), f"bench-{p}") for p in platforms]
    ping = await ping_cpu(client)
    before = await commands(client)
    cpu, wall = time.process_time(), time.perf_counter()
    while True:
        done = await asyncio.gather(*(s.drain(block_ms=None) for s in senders))
        if not sum(d.sent + d.skipped for d in done):
            break
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = await commands(client)
    ran = sum(after.values()) - sum(before.values()) - 1  # less the INFO that read them
    left = sum([int(await client.xlen(keys.outbox(p))) for p in platforms])
    per = 1000 * cpu / total
    print(f"{reports:,} reports -> {total:,} messages ({waiting}), {left} left undelivered")
    print(f"delivery: {per:.3f} ms of CPU a message ({per / ping:.1f}x a PING round trip, "
          f"{ping:.3f} ms), {1000 * wall / total:.3f} ms wall; {ran / total:.1f} Redis "
          f"commands a message; one core: ~{1000 / per:,.0f} messages/s "
          f"[load {os.getloadavg()[0]:.2f}]")  # fmt: skip
    await client.aclose()
    sync.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument(
        "--platforms", default="", help="only these platforms' chats (default: telegram and sim)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, EmbeddedRedis(Path(folder)) as url:
        if args.platforms:
            os.environ[scale.BENCH_ORG] = str(
                scale.one_platform_org(args.platforms.split(","), Path(folder))
            )
        asyncio.run(run(url, args.reports))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
