"""The Scheduler port on rq: one scheduled job per deadline, with a deterministic id.

The job is not written here: ``RqScheduler.job`` builds it with rq's own
``create_job`` and ``to_dict`` and returns the writes that rq's unique
``schedule_job`` would make (the job hash, its place in the scheduled registry,
the queue in the set of queues). The store makes them in the same atomic
commit as the ticket change that owes the deadline, only when no job of that
id exists yet — so a ticket and its deadline job are stored together or not
at all, in one round trip.

Less than rq writes, though: a job waits in Redis as long as its deadline (hours, days),
one per open ticket, so the fields rq writes empty (callbacks, start and end times,
worker, group: rq reads a missing one as empty) are left out, and the description is
one word where rq spells out the call (its id says which ticket and deadline). That is
~200 of its ~540 bytes (``tests/test_rq_flow.py``).
"""

from __future__ import annotations

import redis
from rq import Queue
from rq.job import JobStatus

from bot.core.deadlines import run_at
from bot.ports import ScheduledJob

JOB_TIMEOUT = 60
FAILURE_TTL = 7 * 24 * 3600
DESCRIPTION = "check_deadline"  # what rq's worker logs beside the job id


def job_id(ticket_id: str, stage: int, kind: str, second: int) -> str:
    """Return the rq job id of a deadline check (rq allows only [A-Za-z0-9_-])."""
    return f"deadline-{ticket_id}-{stage}-{kind}-{second}"


class RqScheduler:
    """Schedule deadline checks as rq jobs; the same deadline is never scheduled twice."""

    def __init__(self, connection: redis.Redis, queue: str = "lianhu") -> None:
        self.queue = Queue(queue, connection=connection)
        self._registry: str = self.queue.scheduled_job_registry.key

    def job(self, ticket_id: str, stage: int, kind: str, due: float) -> ScheduledJob:
        """Return the job that checks the deadline at the first whole second not before ``due``."""
        second = run_at(due)
        job = self.queue.create_job(
            "bot.jobs.check_deadline",
            args=(ticket_id, stage, kind),
            job_id=job_id(ticket_id, stage, kind, second),
            timeout=JOB_TIMEOUT,
            result_ttl=0,  # finished checks leave nothing behind
            failure_ttl=FAILURE_TTL,
            status=JobStatus.SCHEDULED,
            description=DESCRIPTION,
        )
        fields: list[str | bytes] = []
        for name, value in job.to_dict().items():  # as rq's own unique schedule script does,
            if value is not None and value != "":  # less what rq reads as empty when missing
                fields += [name, value if isinstance(value, str | bytes) else str(value)]
        return ScheduledJob(
            id=job.id,
            key=job.key,
            fields=tuple(fields),
            ttl=job.ttl if job.ttl is not None else -1,
            registry=self._registry,
            at=second,
            queues=Queue.redis_queues_keys,
            queue=self.queue.key,
        )
