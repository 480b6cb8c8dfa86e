"""The pacing decisions (bot.core.pacing) and the commit that applies them, on plain data."""

from __future__ import annotations

import json

import redis.asyncio

from bot.core.models import Actor, IncomingMessage, Lang, Reply
from bot.core.pacing import URGENT, priority, same_answer, slow_down, to_sender
from bot.storage import keys
from bot.storage.redis import OutboxEntry, Pace, RedisStore, reply_payload

GROUP = "telegram:-100200"
WANG = Actor("telegram:7", "王", lang=Lang.EN)
MESSAGE = IncomingMessage(GROUP, "41", WANG, "/help", 0.0)


def test_only_a_change_to_an_emergency_goes_first() -> None:
    class T:  # the two fields priority() reads
        def __init__(self, severity: str, urgent: bool) -> None:
            self.severity, self.urgent = severity, urgent

    assert priority(T("critical", False)) == URGENT  # type: ignore[arg-type]
    assert priority(T("normal", True)) == URGENT  # type: ignore[arg-type]
    assert priority(T("high", False)) == 0  # type: ignore[arg-type]
    assert priority(None) == 0


def test_what_counts_as_an_answer_to_the_writer_and_as_the_same_answer() -> None:
    assert to_sender(Reply(GROUP, "help"), MESSAGE)
    assert to_sender(Reply("telegram:7", "help"), MESSAGE)  # privately
    assert not to_sender(Reply("telegram:-100300", "card"), MESSAGE)
    help_a = Reply(GROUP, "help", {"role": "resident"}, reply_to="41")
    help_b = Reply(GROUP, "help", {"role": "resident"}, reply_to="42")
    assert same_answer(help_a) == same_answer(help_b) is not None  # quoting differs only
    assert same_answer(Reply(GROUP, "help", {"role": "handler"})) != same_answer(help_a)
    assert same_answer(Reply(GROUP, "no_such_ticket", {"id": "9"})) is None
    notice = slow_down(MESSAGE)
    assert (notice.chat, notice.template, notice.lang, notice.reply_to) == (
        GROUP, "slow_down", Lang.EN, "41",
    )  # fmt: skip


async def test_the_commit_counts_caps_notices_once_and_merges(
    redis_async: redis.asyncio.Redis,
) -> None:
    store = RedisStore(redis_async)

    def entry(i: int, template: str, capped: bool = True) -> OutboxEntry:
        reply = Reply(GROUP, template, {"id": str(i)} if template != "help" else {})
        same = same_answer(reply)
        pace = Pace(
            WANG.account, 3, 60, capped, f"m{i}:slow", reply_payload(slow_down(MESSAGE)),
            keys.same_reply(GROUP, same) if same else None, 60,
        )  # fmt: skip
        return OutboxEntry("telegram", f"m{i}", reply_payload(reply), pace=pace)

    await store.commit(None, None, (), [entry(0, "help"), entry(1, "help")], "a")  # merged
    await store.commit(None, None, (), [entry(2, "no_such_ticket")], "b")
    await store.commit(None, None, (), [entry(3, "no_such_ticket")], "c")  # past 3: notice
    await store.commit(None, None, (), [entry(4, "no_such_ticket")], "d")  # silence
    await store.commit(None, None, (), [entry(5, "ticket_opened", capped=False)], "e")
    rows = await redis_async.xrange(keys.outbox("telegram"))
    queued = [(r[1][b"key"].decode(), json.loads(r[1][b"payload"])["template"]) for r in rows]
    assert queued == [
        ("m0", "help"), ("m2", "no_such_ticket"), ("m3:slow", "slow_down"),
        ("m5", "ticket_opened"),
    ]  # fmt: skip
    assert 0 < await redis_async.ttl(keys.pace(WANG.account)) <= 60
