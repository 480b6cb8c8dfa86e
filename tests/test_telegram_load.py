"""Bursts: a 429 storm within the rate limits, and the bot killed with SIGKILL mid-burst."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import redis
import redis.asyncio

from bot.core.deadlines import Policy
from bot.storage import keys
from bot.storage.redis import RedisStore
from bot.telegram.ratelimit import MARGIN
from tests.conftest import ROOT, RULES_DIR
from tests.fake_bot_api import TOKEN, Call, FakeBotApi, wait_for
from tests.telegram_fixtures import H01, LIGHT, ORG, SCALE, V01, Harness, quiet

LIMIT_SCALE = 0.01  # tests compress Telegram's periods: 20 a minute becomes 20 in 0.6 s


def within_window(times: list[float], limit: int, period: float) -> bool:
    """Return whether no ``limit + 1`` of ``times`` fall within ``period`` seconds."""
    times = sorted(times)
    return all(times[i + limit] - times[i] >= period for i in range(len(times) - limit))


async def test_a_429_storm_and_200_reports_in_one_group(harness: Harness) -> None:
    fake = harness.fake
    fake.storm, fake.retry_after = 3, 1
    bot = await harness.start(policy=Policy(scale=SCALE, join_window=0))  # 200 tickets
    reports = [fake.push(fake.message(H01, 300000 + i, LIGHT)) for i in range(200)]
    await wait_for(lambda: len(fake.sent) >= 150, timeout=60, what="150 sent")
    fake.storm = 3  # a second storm in the middle
    await wait_for(lambda: len(fake.sent) >= 400, timeout=90, what="400 sent")
    await quiet(harness)
    # Every reply and every card exactly once.
    replies = Counter(c.reply_to for c in fake.sent_to(H01))
    assert replies == Counter({r["message"]["message_id"]: 1 for r in reports})
    cards = Counter(c.buttons[0] for c in fake.sent_to(V01))
    assert cards == Counter({f"ack:{i}": 1 for i in range(1, 201)})
    assert len(fake.sent) == 400
    # Within the limits, by the fake server's clock: per group and overall.
    for chat in (H01, V01):
        ts = sorted(c.at for c in fake.sent_to(chat))
        assert within_window(ts, 20, 60 * LIMIT_SCALE)
    assert within_window([c.at for c in fake.sent], 30, 1 * LIMIT_SCALE)
    # Each 429 was honoured: nothing but requests already on the way came within retry_after.
    throttled = [c for c in fake.calls if c.status == 429]
    assert len(throttled) >= 6 and bot.sender.counts.throttled == len(throttled)
    for t in throttled:
        inside = [
            c for c in fake.calls if c.method == "sendMessage" and t.at + 0.1 < c.at < t.at + 1
        ]
        assert inside == [], f"{len(inside)} sends within retry_after"


def bot_process(fake: FakeBotApi, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "REDIS_URL": redis_url, "LIANHU_RULES_DIR": str(RULES_DIR),
        "LIANHU_ORG_FILE": str(ORG), "LIANHU_DEADLINE_SCALE": str(SCALE),
        "LIANHU_DEADLINE_FLOOR": "0",
        "LIANHU_TELEGRAM_TOKEN": TOKEN, "LIANHU_TELEGRAM_BASE_URL": fake.url,
        "LIANHU_TELEGRAM_LIMIT_SCALE": "0.005",
    }  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--name", "killed"],
            env=env, cwd=ROOT, stdout=out, stderr=out,
        )  # fmt: skip


async def test_sigkill_in_a_burst_of_200_loses_and_repeats_nothing(
    fake: FakeBotApi, redis_url: str, redis_async: redis.asyncio.Redis, tmp_path: Path
) -> None:
    sync = redis.Redis.from_url(redis_url)
    reports: list[dict[str, object]] = []

    async def burst() -> None:
        for i in range(200):
            reports.append(fake.push(fake.message(H01, 400000 + i, LIGHT)))
            if i % 10 == 9:
                await asyncio.sleep(0.05)

    def markers() -> int:
        # Distinct keys: SCAN may return a key twice while the keyspace grows (a rehash), and
        # an over-count here once let the kill land before the last reply's marker was written.
        found = set(sync.scan_iter(keys.sent("*"), count=1000))
        return len({k for k in found if not k.endswith(b":cards")})  # messages, not card edits

    proc = bot_process(fake, redis_url, tmp_path / "bot.log")
    pushing = asyncio.create_task(burst())
    try:
        await wait_for(lambda: len(reports) >= 100 and len(fake.sent) >= 20, 60, "mid-burst")
        # Hold Telegram's answers so that no message is between "accepted" and "marked sent"
        # at the kill (that instant cannot be closed by any client; see bot.telegram.sending).
        fake.hold()
        await wait_for(lambda: markers() == len(fake.sent), 10, "markers caught up")
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        handled_at_kill = len(set(sync.scan_iter(keys.processed("telegram:*"), count=1000)))
        assert handled_at_kill < 200  # the kill landed in the middle of the burst
        await fake.release()
        await pushing
        proc = bot_process(fake, redis_url, tmp_path / "bot.log")
        await wait_for(lambda: len(fake.sent_to(H01)) >= 200, 90, "200 replies")
        await asyncio.sleep(1.0)  # anything repeated would arrive now
    finally:
        pushing.cancel()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sync.close()
    # Every report handled once, with exactly one ticket, and exactly one reply each.
    ids = [r["message"]["message_id"] for r in reports]  # type: ignore[index]
    replies = Counter(c.reply_to for c in fake.sent_to(H01))
    assert replies == Counter(dict.fromkeys(ids, 1))
    tickets: dict[str, int] = defaultdict(int)
    for mid in ids:
        value = await redis_async.get(keys.processed(f"telegram:{H01}/{mid}"))
        assert value not in (None, b"-")
        tickets[value.decode()] += 1  # type: ignore[union-attr]
    reporters = Counter()
    for ticket_id in tickets:
        snap = await RedisStore(redis_async).get(ticket_id)
        assert snap is not None
        for r in snap.reporters:
            reporters[r.account] += 1
    assert reporters == Counter({f"telegram:{400000 + i}": 1 for i in range(200)})
    cards = [c for c in fake.sent_to(V01) if c.buttons]
    assert len(cards) == len(tickets) == len({c.buttons[0] for c in cards})
    assert sum(tickets.values()) == 200
    assert _no_repeats(fake.sent)
    assert MARGIN > 0


def _no_repeats(sent: list[Call]) -> bool:
    seen = Counter((c.chat, c.reply_to, c.text) for c in sent)
    return max(seen.values()) == 1
