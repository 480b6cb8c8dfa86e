"""The Scheduler port on rq: one scheduled job per second that deadlines fall due in.

A deadline is checked by the job of the first whole second not before it is due,
``deadlines-<second>``, which checks every deadline the index holds as due by then
(``bot.jobs.check_deadlines``): the tickets whose deadlines fall in one second share
one job. At a district's rate (tickets opened every second, deadlines the same hours
later) that is a job for hundreds of tickets, where each ticket's deadline had a job of
its own (~460 B in Redis with its place in rq's schedule, as long as the deadline).

The job is not written here: ``RqScheduler.job`` builds it with rq's own
``create_job`` and ``to_dict`` and returns the writes that rq's unique
``schedule_job`` would make (the job hash, its place in the scheduled registry,
the queue in the set of queues). The store makes them in the same atomic
commit as the ticket change that owes the deadline, only when no job of that
id exists yet — so a ticket and its deadline job are stored together or not
at all, in one round trip.

Less than rq writes, though: the fields rq writes empty (callbacks, start and end
times, worker, group: rq reads a missing one as empty) are left out, and the
description is one word where rq spells out the call (``tests/test_rq_flow.py``).

A job that runs finds each deadline as the sweeper does and checks it as an atomic
compare-and-set (``Service.check_due``): one found early (rq runs jobs up to a second
early) gets the next second's job; one whose job was lost, the sweeper's. Jobs of one
deadline each (``bot.jobs.check_deadline``, written before) still run.
"""

from __future__ import annotations

import time

import redis
from rq import Queue
from rq.job import JobStatus

from bot.core.deadlines import run_at
from bot.ports import ScheduledJob

JOB_TIMEOUT = 60
FAILURE_TTL = 7 * 24 * 3600
DESCRIPTION = "check_deadlines"  # what rq's worker logs beside the job id
# Seconds a second's job, once built, is handed out again: rq builds one in ~60 µs, and a
# sweep escalating thousands of tickets asks for the same few seconds' jobs thousands of
# times. Only its created_at can be that much older than a job built anew.
REUSE = 1.0
MADE = 256  # built jobs kept for reuse (forgotten all at once past this many)


def job_id(second: int) -> str:
    """Return the rq job id of the deadline checks of one second (rq allows [A-Za-z0-9_-])."""
    return f"deadlines-{second}"


class RqScheduler:
    """Schedule deadline checks as rq jobs, one a second; a second is never scheduled twice."""

    def __init__(self, connection: redis.Redis, queue: str = "lianhu") -> None:
        self.queue = Queue(queue, connection=connection)
        self._registry: str = self.queue.scheduled_job_registry.key
        self._made: dict[int, tuple[float, ScheduledJob]] = {}  # second -> (built at, job)

    def job(self, ticket_id: str, stage: int, kind: str, due: float) -> ScheduledJob:
        """Return the job that checks, at the first whole second not before ``due``, every
        deadline due by then: this one (``kind`` of ``stage`` of ``ticket_id``) among them."""
        second = run_at(due)
        now = time.monotonic()
        made = self._made.get(second)
        if made is not None and now - made[0] < REUSE:
            return made[1]
        job = self.queue.create_job(
            "bot.jobs.check_deadlines",
            args=(second,),
            job_id=job_id(second),
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
        scheduled = ScheduledJob(
            id=job.id,
            key=job.key,
            fields=tuple(fields),
            ttl=job.ttl if job.ttl is not None else -1,
            registry=self._registry,
            at=second,
            queues=Queue.redis_queues_keys,
            queue=self.queue.key,
        )
        if len(self._made) >= MADE:
            self._made.clear()
        self._made[second] = (now, scheduled)
        return scheduled
