"""``lianhu worker``: the rq worker with its scheduler, and the deadline sweeper."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.exceptions
from rq import Queue, SimpleWorker, Worker
from rq.worker import BaseWorker

from bot.archive import Archive, ArchiveFiles
from bot.jobs import worker_service
from bot.logs import setup_logging
from bot.personal import PersonalData
from bot.ports import Clock
from bot.redis_clients import sync_client
from bot.render import local_zone
from bot.services import Service
from bot.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# Redis stopped, restarting, loading or a replica now: what a failover looks like to a client.
REDIS_AWAY = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)

SWEEP_EVERY = 30.0
# rq's scheduler is a child process that exits on its first Redis error (a failover, a
# restart), and rq starts it again only at its maintenance, every 10 minutes: until then no
# scheduled job (a deadline) is queued. Our workers look every few seconds instead.
SCHEDULER_CHECK_EVERY = 2.0
# Said only when a deadline's job really did not run: a ticket that owes no more checks (closed,
# or flagged at the top) leaves the deadline index, so it is never counted here.
LOST = "sweeper: %d overdue deadlines had lost their jobs"


def register(commands: Any) -> None:
    """Add ``worker``."""
    parser = commands.add_parser("worker", help="run the rq worker (deadlines) with its scheduler")
    parser.add_argument("--burst", action="store_true", help="run what is due, then exit")
    parser.add_argument(
        "--simple", action="store_true", help="run jobs in this process (no fork per job)"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much rq logs (INFO: a line per job)",
    )
    parser.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the worker until stopped (or, with --burst, until nothing is due)."""
    settings = Settings()
    if not settings.redis_url:
        print("lianhu worker: set REDIS_URL to the Redis the bot uses", file=sys.stderr)
        return 2
    setup_logging(secrets=settings.secret_values())
    connection = sync_client(settings.redis_url)
    queue = Queue(settings.queue, connection=connection)
    worker = (KeptSimpleWorker if args.simple else KeptWorker)([queue], connection=connection)
    stop = threading.Event()
    if not args.burst:
        threading.Thread(target=_sweep_forever, args=(settings, stop), daemon=True).start()
        threading.Thread(target=worker.watch_scheduler, daemon=True).start()
    try:
        worker.work(burst=args.burst, with_scheduler=True, logging_level=args.log_level)
        if args.burst:
            lost = asyncio.run(sweep(settings))
            if lost:
                log.warning(LOST, lost)
    finally:
        stop.set()
        connection.close()
    return 0


class KeptScheduler(BaseWorker):
    """A worker whose ``watch_scheduler`` restarts its dead rq scheduler within seconds.

    The same look takes the scheduling over from another worker that died: its lock expires
    (in 61 s) and the first worker to look then takes it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = threading.Lock()  # the watch, or rq's maintenance or teardown, at a time
        self._stopping = False

    def _start_scheduler(self, *args: Any, **kwargs: Any) -> None:
        with self._guard:
            super()._start_scheduler(*args, **kwargs)

    def run_maintenance_tasks(self) -> None:
        """rq's maintenance (its registries cleaned, its scheduler looked at), kept from
        ending the worker when Redis is away: rq quits on any error there ("found an
        unhandled exception"), as when a failover cut its first cleaning at start. The
        maintenance runs again at the next turn of the loop, which waits for Redis."""
        with self._guard:
            try:
                super().run_maintenance_tasks()  # type: ignore[no-untyped-call]
            except REDIS_AWAY as exc:
                log.warning("rq maintenance: Redis away (%s); again once it answers", exc)

    def check_for_suspension(self, burst: bool) -> None:
        """rq's look for ``rq suspend``, the first read of each turn of its loop, outside its
        wait for Redis: here it waits for Redis as the wait for a job does."""
        self._redis_waited(lambda: super(KeptScheduler, self).check_for_suspension(burst))

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Any, Queue] | None:
        """rq's wait for a job, kept from ending the worker when Redis is away as it starts:
        rq writes the worker's state (idle) before its own loop that waits for Redis, so a
        failover at that moment ended the worker ("found an unhandled exception"; CI met it).
        A replica that was the master answers READONLY, which rq's loop does not wait out
        either."""
        return self._redis_waited(
            lambda: super(KeptScheduler, self).dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        )

    def _redis_waited(self, call: Callable[[], T]) -> T | None:
        """Return what ``call`` returns once Redis answers, trying again after 1, 2, 4 s up
        to rq's limit; None if the worker is asked to stop meanwhile (work() then ends)."""
        pause = 1.0
        while True:
            try:
                return call()
            except REDIS_AWAY as exc:
                if self._stop_requested:
                    return None
                log.warning("rq worker: Redis away (%s); trying again in %.0f s", exc, pause)
                time.sleep(pause)
                pause = min(pause * 2, self.max_connection_wait_time)

    def teardown(self) -> None:
        with self._guard:  # a scheduler started after this would outlive the worker
            self._stopping = True
            super().teardown()  # type: ignore[no-untyped-call]

    def watch_scheduler(self) -> None:
        """Every few seconds, start the scheduler again if it died and its lock is free or
        ours; return when the worker stops."""
        while True:
            time.sleep(SCHEDULER_CHECK_EVERY)
            with self._guard:
                if self._stopping:
                    return
                scheduler = self.scheduler  # set by work(with_scheduler=True)
                process = scheduler._process if scheduler else None
                if scheduler is None or (process is not None and process.is_alive()):
                    continue
                with contextlib.suppress(redis.exceptions.RedisError):  # Redis still away
                    scheduler.acquire_locks(auto_start=True)  # type: ignore[no-untyped-call]


class KeptWorker(KeptScheduler, Worker):
    """rq's Worker (a work horse forked per job) whose scheduler is kept running."""


class KeptSimpleWorker(KeptScheduler, SimpleWorker):
    """rq's SimpleWorker (jobs in this process) whose scheduler is kept running."""


async def sweep(settings: Settings) -> int:
    """Check every deadline whose job is overdue (lost or delayed); return how many."""
    async with worker_service(settings) as service:
        return await service.sweep()


async def digest(settings: Settings) -> int:
    """Queue today's digest if its time has come and no worker did yet; return messages."""
    async with worker_service(settings) as service:
        return await _digest(service, settings)


async def _digest(service: Service, settings: Settings) -> int:
    return await service.digest(settings.digest_at, local_zone()) if settings.digest_at else 0


@dataclass(frozen=True)
class Tick:
    """What one round of the sweeper did."""

    lost: int  # deadlines overdue by more than the sweep's grace: their jobs never ran
    sent: int  # digest messages and held cards queued
    erased: int  # tickets whose reporters' data was erased
    archived: int = 0  # closed tickets moved out of Redis to the archive files
    erased_months: tuple[str, ...] = ()  # archive months whose reporters were erased


async def tick(settings: Settings, clock: Clock = time.time) -> Tick:
    """Sweep lost deadlines, send a due digest and the cards quiet hours held, erase expired
    data, archive old closed tickets, on one set of clients."""
    async with worker_service(settings, clock) as service:
        lost, sent = await service.sweep(), await _digest(service, settings)
        sent += await service.release_held(local_zone())
        expired = PersonalData(service.store.redis, service.clock)
        erased = await expired.expire(settings.retention_days)
        files = ArchiveFiles(settings.archive_folder, local_zone(), service.clock)
        archived = await Archive(service.store.redis, files).sweep(settings.archive_days)
        months = await asyncio.to_thread(files.erase_expired, settings.retention_days)
        return Tick(lost, sent, erased, archived, tuple(months))


def report(done: Tick, settings: Settings) -> None:
    """Log what a round of the sweeper did; a lost deadline job is a warning."""
    if done.lost:
        log.warning(LOST, done.lost)
    if done.sent:
        log.info("digest: %d messages queued", done.sent)
    if done.erased:
        log.info("retention: erased the reporters' data of %d tickets closed more than "
                 "%d days ago", done.erased, settings.retention_days)  # fmt: skip
    for month in done.erased_months:
        log.info("retention: erased the reporters' data in the archive of %s", month)
    if done.archived:
        log.info("archive: moved %d tickets closed more than %d days ago to %s",
                 done.archived, settings.archive_days, settings.archive_folder)  # fmt: skip


def _sweep_forever(settings: Settings, stop: threading.Event) -> None:
    while not stop.wait(SWEEP_EVERY):
        try:
            report(asyncio.run(tick(settings)), settings)
        except Exception:
            log.exception("sweeper failed; trying again in %.0f s", SWEEP_EVERY)
