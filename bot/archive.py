"""Closed tickets past their retention leave Redis for compressed files, and come back as exports.

Layout: ``ARCHIVE_DIR/YYYY-MM/<time>-<first id>.jsonl.gz``, one file per batch, under the
month the tickets were closed in (Asia/Shanghai), one JSON record per line
(``bot.core.archive.record``: the snapshot and every event, as stored). Files, not Redis:
the point is to free Redis memory, and a month of gzip'd JSON lines is what an export hands
over anyway. The files must be on a volume every worker shares, and backed up with Redis.

Crash safety: a batch is written to a temporary file, flushed to disk and renamed into place
before any of its tickets leaves Redis; each ticket then leaves in one guarded script (see
``bot.storage.archive``). A crash between the two leaves the tickets in Redis, and the next
sweep writes them again in a new file: readers keep one record per ticket. A ticket changed
after it was read (reopened) stays in Redis; its copy in the file is superseded.
One sweeper archives at a time (a lease), so two workers do not write the same batch.

Retention (``LIANHU_RETENTION_DAYS``) reaches the files too: once a whole month is past
it, every file of the month is rewritten with the reporters erased (``bot.core.personal``),
and a marker says the month is done. A ticket's data is thus erased at most a month after
its retention ends, never before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bot.core import archive as core
from bot.core.personal import erase
from bot.core.ticket import Ticket, TicketEvent
from bot.ports import Clock
from bot.storage import keys
from bot.storage.archive import ArchiveIndex, Unhot
from bot.storage.raw import text_of
from bot.storage.redis import RedisStore, dumps

log = logging.getLogger(__name__)

DAY = 86400.0
ARCHIVE_BATCH = 200  # tickets per file and per sweep: a sweep stays short, the next goes on
LEASE_TTL = 300  # seconds: a sweeper that died mid-batch lets another take over after this
MONTH_DIR = "[0-9][0-9][0-9][0-9]-[0-9][0-9]"
Batch = tuple[Ticket, list[TicketEvent]]
ERASED_MARK = ".erased"  # in a month's folder: its reporters were erased at retention


class Archive:
    """Move closed tickets from Redis to the archive files (``files``)."""

    def __init__(self, redis: Redis, files: ArchiveFiles) -> None:
        self.redis = redis
        self.files = files
        self.clock = files.clock
        self.store = RedisStore(redis)
        self.index = ArchiveIndex(redis)

    async def sweep(self, days: float, batch: int = ARCHIVE_BATCH) -> int:
        """Archive up to ``batch`` tickets closed more than ``days`` ago; return how many.

        0 days turns archiving off. A fraction of a day is taken as it is: the soak
        (bench/scale.py ``--retention``) archives tickets seconds after they closed.
        """
        if days <= 0:
            return 0
        lease = secrets.token_hex(8)
        if not await self.redis.set(keys.ARCHIVE_LEASE, lease, nx=True, ex=LEASE_TTL):
            return 0  # another worker is archiving
        try:
            return await self._sweep(self.clock() - days * DAY, batch)
        finally:
            if await self.redis.get(keys.ARCHIVE_LEASE) == lease.encode():
                await self.redis.delete(keys.ARCHIVE_LEASE)

    async def _sweep(self, cutoff: float, batch: int) -> int:
        ready = await self.due(cutoff, batch)
        await self.save(ready)
        return await self.unhot(ready)

    async def due(self, cutoff: float, batch: int = ARCHIVE_BATCH) -> list[Batch]:
        """Return up to ``batch`` tickets closed before ``cutoff``, with their histories."""
        found = await self.redis.zrangebyscore(keys.CLOSED, "-inf", cutoff, 0, batch)
        ids = [text_of(i) for i in found]
        read = await self.store.read(ids)
        stale = [i for i, (t, _) in zip(ids, read, strict=True) if t is None]
        if stale:  # no such ticket any more: nothing to archive
            await self.redis.zrem(keys.CLOSED, *stale)
        return [(t, e) for t, e in read if t is not None and t.state.final]

    async def save(self, ready: Sequence[Batch]) -> list[Path]:
        """Write tickets to the archive files, one file per month closed in, durably."""
        by_month: dict[str, list[dict[str, Any]]] = {}
        for ticket, events in ready:
            month = core.closed_month(ticket, self.files.zone)
            by_month.setdefault(month, []).append(core.record(ticket, events))
        return [
            await asyncio.to_thread(self.files.write, month, records)
            for month, records in by_month.items()
        ]

    async def unhot(self, ready: Sequence[Batch]) -> int:
        """Remove saved tickets from Redis, each unless it changed since; return how many."""
        moved = 0
        for ticket, events in ready:
            status = await self.index.remove(ticket, len(events))
            if status is Unhot.CONFLICT:
                log.info("archive: ticket %s changed while archived; left in Redis", ticket.id)
            moved += status is Unhot.OK
        return moved


class ArchiveFiles:
    """The archive's files: write a batch, read and export a month, erase at retention."""

    def __init__(self, folder: Path, zone: dt.tzinfo, clock: Clock = time.time) -> None:
        self.folder = folder
        self.zone = zone
        self.clock = clock

    def write(self, month: str, records: list[dict[str, Any]]) -> Path:
        """Write one batch of records into ``month``'s folder, durably; return the file."""
        folder = self.folder / month
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        first = records[0]["ticket"]["id"]
        name = f"{int(self.clock() * 1000):014d}-{first}-{secrets.token_hex(3)}.jsonl.gz"
        final = folder / name
        partial = folder / f".{name}.part"
        _write(partial, records)
        partial.rename(final)
        _sync_dir(folder)
        return final

    def erase_expired(self, days: int) -> list[str]:
        """Erase the reporters of every month wholly closed more than ``days`` ago; return them."""
        if days <= 0:
            return []
        cutoff = self.clock() - days * DAY
        done = []
        for month in self.months():
            folder = self.folder / month
            if (folder / ERASED_MARK).exists() or _month_end(month, self.zone) > cutoff:
                continue
            for path in sorted(folder.glob("*.jsonl.gz")):
                self._rewrite(path, self._erased)
            (folder / ERASED_MARK).write_text(f"{self.clock()}\n")
            done.append(month)
        return done

    def _erased(self, found: dict[str, Any]) -> dict[str, Any]:
        return self._erase(found, None, "retention")[0]

    def _erase(
        self, found: dict[str, Any], accounts: Collection[str] | None, by: str
    ) -> tuple[dict[str, Any], int]:
        """Return a record with ``accounts`` (None: every reporter) erased, and how many fields."""
        ticket, history = _loaded(found)
        erasure = erase(ticket, history, accounts, self.clock(), by)
        if erasure is None:
            return found, 0
        events = [erasure.rewritten.get(i, e) for i, e in enumerate(history)]
        return core.record(erasure.after, [*events, erasure.event]), erasure.fields

    def concerning(self, accounts: Collection[str]) -> list[tuple[Ticket, list[TicketEvent]]]:
        """Return the archived tickets ``accounts`` reported or joined (``privacy export``)."""
        found = []
        for month in self.months():
            for record in self.records(month):
                ticket, history = _loaded(record)
                if any(r.account in accounts for r in ticket.reporters):
                    found.append((ticket, history))
        return found

    def forget(self, accounts: Collection[str], apply: bool) -> dict[str, int]:
        """Erase ``accounts`` from every archived ticket; return ticket id -> fields erased.

        Without ``apply`` nothing is written. Each file that holds one is rewritten whole.
        """
        done: dict[str, int] = {}
        for month in self.months():
            for path in sorted((self.folder / month).glob("*.jsonl.gz")):
                with gzip.open(path, "rt", encoding="utf-8") as lines:
                    records = [json.loads(line) for line in lines if line.strip()]
                counts = [self._erase(r, accounts, "cli")[1] for r in records]
                for record, fields in zip(records, counts, strict=True):
                    if fields:
                        done[str(record["ticket"]["id"])] = fields
                if apply and any(counts):
                    self._rewrite(path, lambda r: self._erase(r, accounts, "cli")[0])
        return done

    def _rewrite(self, path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Replace one archive file by its records changed by ``change`` (atomically)."""
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            records = [change(json.loads(line)) for line in lines if line.strip()]
        partial = path.with_name(f".{path.name}.part")
        _write(partial, records)
        partial.rename(path)
        _sync_dir(path.parent)

    def months(self) -> list[str]:
        """Return the months that have archive files, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.glob(MONTH_DIR) if p.is_dir())

    def records(self, month: str) -> list[dict[str, Any]]:
        """Return one record per ticket archived under ``month`` (``YYYY-MM``), by ticket id."""
        return [dict(r) for r in core.newest(self._lines(month))]

    def _lines(self, month: str) -> Iterator[dict[str, Any]]:
        for path in sorted((self.folder / month).glob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        yield json.loads(line)

    def find(self, ticket_id: str) -> dict[str, Any] | None:
        """Return the archive record of one ticket, newest month first (reads the files)."""
        for month in reversed(self.months()):
            for found in self.records(month):
                if str(found["ticket"]["id"]) == ticket_id:
                    return found
        return None

    def export(self, month: str, full: bool = False) -> Iterator[str]:
        """Yield ``month``'s records as JSON lines; masked (bot.core.archive) unless ``full``."""
        for found in self.records(month):
            yield dumps(found if full else core.masked(found))


def _loaded(found: dict[str, Any]) -> tuple[Ticket, list[TicketEvent]]:
    """Return the ticket and history of an archive record."""
    return Ticket.from_dict(found["ticket"]), [TicketEvent.from_dict(e) for e in found["events"]]


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    """Write records as gzip'd JSON lines to ``path`` (owner only), flushed to the disk."""
    with path.open("wb") as raw:
        os.fchmod(raw.fileno(), 0o600)
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            for found in records:
                out.write(dumps(found).encode() + b"\n")
        raw.flush()
        os.fsync(raw.fileno())


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` survive a power cut."""
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _month_end(month: str, zone: dt.tzinfo) -> float:
    """Return the first instant after ``month`` (``YYYY-MM``) in ``zone``."""
    year, number = map(int, month.split("-"))
    following = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return following.timestamp()
