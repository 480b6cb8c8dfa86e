"""The Scheduler port on rq: one scheduled job per deadline, with a deterministic id."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError

from bot.core.deadlines import run_at

JOB_TIMEOUT = 60
FAILURE_TTL = 7 * 24 * 3600


def job_id(ticket_id: str, stage: int, kind: str, second: int) -> str:
    """Return the rq job id of a deadline check (rq allows only [A-Za-z0-9_-])."""
    return f"deadline-{ticket_id}-{stage}-{kind}-{second}"


class RqScheduler:
    """Schedule deadline checks as rq jobs; the same deadline is never scheduled twice."""

    def __init__(self, connection: redis.Redis, queue: str = "lianhu") -> None:
        self.queue = Queue(queue, connection=connection)

    async def schedule(self, ticket_id: str, stage: int, kind: str, due: float) -> None:
        """Schedule the check at the first whole second not before ``due``."""
        await asyncio.to_thread(self._schedule, ticket_id, stage, kind, due)

    def _schedule(self, ticket_id: str, stage: int, kind: str, due: float) -> None:
        second = run_at(due)
        job = self.queue.create_job(
            "bot.jobs.check_deadline",
            args=(ticket_id, stage, kind),
            job_id=job_id(ticket_id, stage, kind, second),
            timeout=JOB_TIMEOUT,
            result_ttl=0,  # finished checks leave nothing behind
            failure_ttl=FAILURE_TTL,
        )
        when = dt.datetime.fromtimestamp(second, dt.UTC)
        # enqueue_in/enqueue_at ignore uniqueness; schedule_job(unique=True) honours it.
        # Already scheduled is fine: at-least-once is all a deadline needs.
        with contextlib.suppress(DuplicateJobError):
            self.queue.schedule_job(job, when, unique=True)
