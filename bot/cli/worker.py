"""``lianhu worker``: the rq worker with its scheduler, and the deadline sweeper."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from rq import Queue, SimpleWorker, Worker

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

SWEEP_EVERY = 30.0
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
    kind = SimpleWorker if args.simple else Worker
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweep_forever, args=(settings, stop), daemon=True)
    if not args.burst:
        sweeper.start()
    try:
        kind([queue], connection=connection).work(
            burst=args.burst, with_scheduler=True, logging_level=args.log_level
        )
        if args.burst:
            lost = asyncio.run(sweep(settings))
            if lost:
                log.warning(LOST, lost)
    finally:
        stop.set()
        connection.close()
    return 0


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
