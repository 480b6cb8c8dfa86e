"""Closed tickets past the archive retention leave Redis for files: once, safely, and readable."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.archive import DAY, Archive, ArchiveFiles
from bot.cli import main, worker
from bot.core.archive import MASKED
from bot.core.org import Role
from bot.core.personal import ERASED
from bot.core.ticket import EventKind
from bot.settings import Settings
from bot.storage import keys
from tests.conftest import RULES_DIR
from tests.test_cli_invite import lianhu
from tests.test_personal_data import command, report
from tests.test_services import ORG, World
from tests.test_services import world as world  # the fixture, re-exported for these tests

ZONE = dt.timezone(dt.timedelta(hours=8))
PHONE = "13812345678"
LAMP = f"村口的路灯坏了半个月，晚上黑漆漆的，电话{PHONE}"


def archive(world: World, folder: Path) -> Archive:
    return Archive(world.redis, ArchiveFiles(folder, ZONE, world.clock))


async def closed_and_open(world: World) -> tuple[str, str, str]:
    """Return a ticket closed 100 days ago, one closed 10 days ago and one still open."""
    chen = world.person(Role.RESIDENT, "H-01")
    huang = world.person(Role.RESIDENT, "H-02")
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    old = await report(world, chen, LAMP)
    await command(world, cadre, f"/dismiss {old} 重复报告")
    world.clock.now += 90 * DAY
    recent = await report(world, huang, "楼下KTV每晚唱到凌晨三点，吵得睡不着")
    await command(world, cadre, f"/dismiss {recent} 已劝停")
    still_open = await report(world, chen, "3栋楼道里堆满了杂物，挡住了消防通道")
    world.clock.now += 10 * DAY
    return old, recent, still_open


async def hot_keys(world: World, ticket_id: str) -> list[str]:
    """Return the keys and index entries that still name a ticket in Redis."""
    found = []
    if await world.redis.exists(keys.ticket(ticket_id)):
        found.append("record")
    if ticket_id in await world.store.all_ids():
        found.append(keys.TICKETS)
    if await world.redis.zscore(keys.CLOSED, ticket_id) is not None:
        found.append(keys.CLOSED)
    for pattern in (keys.by_reporter("*"), keys.reporters("*").rsplit(":", 1)[0] + ":*"):
        async for key in world.redis.scan_iter(match=pattern):
            for member in await world.redis.zrange(key, 0, -1):
                if ticket_id in (member.decode(), keys.parse_pair_member(member.decode())[1]):
                    found.append(key.decode())
    return found


async def test_closed_tickets_past_retention_leave_redis_once(world: World, tmp_path: Path) -> None:
    old, recent, still_open = await closed_and_open(world)
    before = await world.store.read([old])
    assert await hot_keys(world, old) != []
    moved = archive(world, tmp_path)

    assert await moved.sweep(0) == 0  # off
    assert await moved.sweep(90) == 1
    assert await hot_keys(world, old) == []  # record and every index
    assert await world.store.get(old) is None and await world.store.archived(old)
    assert not await world.store.archived(recent) and not await world.store.archived(still_open)
    assert (await world.store.get(recent)) is not None
    assert (await world.store.get(still_open)) is not None
    assert await moved.sweep(90) == 0  # idempotent: nothing left to do

    month = dt.datetime.fromtimestamp(before[0][0].closed_at or 0, ZONE).strftime("%Y-%m")
    [found] = moved.files.records(month)
    ticket, events = before[0]
    assert found == {"ticket": ticket.to_dict(), "events": [e.to_dict() for e in events]}
    [path] = (tmp_path / month).glob("*.jsonl.gz")
    assert path.stat().st_mode & 0o777 == 0o600


async def test_a_retention_of_seconds_archives_what_closed_before_it(
    world: World, tmp_path: Path
) -> None:
    """A fraction of a day is a retention too (the soak archives seconds after closing)."""
    chen = world.person(Role.RESIDENT, "H-01")
    cadre = world.person(Role.VILLAGE_CADRE, "V-01")
    ticket = await report(world, chen, LAMP)
    await command(world, cadre, f"/dismiss {ticket} 重复报告")
    world.clock.now += 90  # closed a minute and a half ago
    moved = archive(world, tmp_path)

    assert await moved.sweep(120 / DAY) == 0  # two minutes: not yet
    assert await world.store.get(ticket) is not None
    assert await moved.sweep(60 / DAY) == 1  # one minute: past it
    assert await world.store.get(ticket) is None and await world.store.archived(ticket)


async def test_a_crash_between_writing_and_removing_leaves_the_ticket_intact(
    world: World, tmp_path: Path
) -> None:
    old, _, _ = await closed_and_open(world)
    moved = archive(world, tmp_path)
    ready = await moved.due(world.clock.now - 90 * DAY)
    assert [t.id for t, _ in ready] == [old]
    await moved.save(ready)  # the files are written ... and the worker dies here
    assert await world.store.read([old]) == ready  # still whole in Redis, still indexed
    assert await world.redis.zscore(keys.CLOSED, old) is not None
    assert not await world.store.archived(old)

    assert await moved.sweep(90) == 1  # the next sweep writes it again, then removes it
    assert await moved.sweep(90) == 0
    month = moved.files.months()[0]
    assert len(list((tmp_path / month).glob("*.jsonl.gz"))) == 2
    assert [r["ticket"]["id"] for r in moved.files.records(month)] == [old]  # once


async def test_a_ticket_changed_after_it_was_read_stays_in_redis(
    world: World, tmp_path: Path
) -> None:
    huang = world.person(Role.RESIDENT, "H-02")
    worker = world.person(Role.GRID_WORKER, "G-01")
    closed = await report(world, huang, "楼下KTV每晚唱到凌晨三点，吵得睡不着")
    await command(world, worker, f"/resolve {closed} 已劝停")
    await command(world, huang, f"/confirm {closed}")
    world.clock.now += 100 * DAY
    moved = archive(world, tmp_path)
    ready = await moved.due(world.clock.now - 90 * DAY)
    assert [t.id for t, _ in ready] == [closed]
    await moved.save(ready)
    await command(world, huang, f"/rate {closed} 5")  # a change after the read
    assert await moved.unhot(ready) == 0
    ticket = await world.store.get(closed)
    assert ticket is not None and ticket.rating == 5 and ticket.seq == len(ready[0][1]) + 1
    assert not await world.store.archived(closed)
    assert await moved.sweep(90) == 1  # archived as it is now, the newer copy read back
    [found] = moved.files.records(moved.files.months()[0])
    assert found["ticket"]["rating"] == 5


async def test_an_archived_ticket_is_answered_archived(world: World, tmp_path: Path) -> None:
    old, _, _ = await closed_and_open(world)
    await archive(world, tmp_path).sweep(90)
    chen = world.person(Role.RESIDENT, "H-01")
    for wanted, reason in ((old, "ticket_archived"), ("999", "no_such_ticket")):
        handled = await world.service.handle_message(world.message(chen, f"/status {wanted}"))
        assert (handled.status, handled.detail) == ("refused", reason)
        answer = (await world.outbox())[-1]
        assert (answer["template"], answer["params"]) == (reason, {"id": wanted})


async def test_export_masks_personal_data_unless_full(
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, _, _ = await closed_and_open(world)
    moved = archive(world, tmp_path)
    await moved.sweep(90)
    [month] = moved.files.months()
    chen = world.person(Role.RESIDENT, "H-01")
    monkeypatch.setenv("LIANHU_ARCHIVE_DIR", str(tmp_path))
    out = tmp_path / "export.jsonl"

    assert main(["archive", "export", "--month", month, "--out", str(out)]) == 0
    [line] = out.read_text(encoding="utf-8").splitlines()
    found = json.loads(line)
    assert found["ticket"]["id"] == old
    assert [e["kind"] for e in found["events"]] == ["opened", "dismissed"]
    assert PHONE not in line and chen.accounts[0] not in line and chen.name not in line
    assert found["ticket"]["reporters"][0]["account"] == MASKED
    assert "138****5678" in found["ticket"]["text"]
    assert found["events"][1]["data"]["reason"] == "重复报告"  # the handler's words are kept

    assert main(["archive", "export", "--month", month, "--full", "--out", str(out)]) == 0
    full = json.loads(out.read_text(encoding="utf-8"))
    assert full == moved.files.records(month)[0]
    assert PHONE in full["ticket"]["text"] and full["ticket"]["reporters"][0]["name"] == chen.name

    capsys.readouterr()
    assert main(["archive", "export", "--month", "2001-01"]) == 1
    assert "nothing archived for 2001-01" in capsys.readouterr().err
    assert main(["archive", "export", "--month", "2026-13"]) == 2
    assert main(["archive", "show", old]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ticket"]["id"] == old and PHONE not in json.dumps(shown, ensure_ascii=False)


async def test_retention_erases_reporters_in_the_archive_month_by_month(
    world: World, tmp_path: Path
) -> None:
    await closed_and_open(world)
    moved = archive(world, tmp_path)
    await moved.sweep(90)
    [month] = moved.files.months()
    assert moved.files.erase_expired(365) == []  # not yet
    world.clock.now += 300 * DAY  # closed 400 days ago: past the month's end + 365 days
    assert moved.files.erase_expired(0) == []  # retention off
    assert moved.files.erase_expired(365) == [month]
    assert moved.files.erase_expired(365) == []  # once
    [found] = moved.files.records(month)
    assert [e["kind"] for e in found["events"]] == ["opened", "dismissed", "erased"]
    assert found["ticket"]["text"] == ERASED
    [path] = (tmp_path / month).glob("*.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as text:
        assert PHONE not in text.read()
    assert found["events"][-1]["kind"] == EventKind.ERASED.value


def test_archiving_comes_before_erasure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANHU_RETENTION_DAYS", "30")
    with pytest.raises(ValidationError, match="LIANHU_ARCHIVE_DAYS"):
        Settings()
    monkeypatch.setenv("LIANHU_ARCHIVE_DAYS", "30")
    assert Settings().archive_days == 30
    monkeypatch.setenv("LIANHU_RETENTION_DAYS", "0")  # kept for ever: any archive age
    monkeypatch.setenv("LIANHU_ARCHIVE_DAYS", "400")
    assert Settings().archive_folder == Path("data") / "archive"


async def test_privacy_export_and_forget_reach_the_archive(
    world: World, tmp_path: Path, redis_url: str
) -> None:
    old, _, _ = await closed_and_open(world)
    moved = archive(world, tmp_path)
    await moved.sweep(90)
    chen = world.person(Role.RESIDENT, "H-01")
    env = {"REDIS_URL": redis_url, "LIANHU_ARCHIVE_DIR": str(tmp_path)}
    shown = lianhu("privacy", "export", chen.accounts[0], **env)
    assert shown.returncode == 0, shown.stderr
    assert old in [t["id"] for t in json.loads(shown.stdout)["tickets"]]
    assert LAMP in shown.stdout

    preview = lianhu("privacy", "forget", chen.accounts[0], **env)
    assert f"ticket {old}: " in preview.stdout and "fields to erase" in preview.stdout
    [month] = moved.files.months()
    assert moved.files.records(month)[0]["ticket"]["text"] == LAMP  # nothing changed yet
    done = lianhu("privacy", "forget", chen.accounts[0], "--yes", **env)
    assert done.returncode == 0, done.stderr
    [found] = moved.files.records(month)
    assert found["ticket"]["text"] == ERASED and found["events"][-1]["kind"] == "erased"
    assert PHONE not in json.dumps(found, ensure_ascii=False)
    again = lianhu("privacy", "export", chen.accounts[0], **env)
    assert PHONE not in again.stdout and chen.name not in again.stdout


async def test_the_workers_round_archives(world: World, tmp_path: Path, redis_url: str) -> None:
    """`lianhu worker`'s sweeper round archives what is past LIANHU_ARCHIVE_DAYS, and says so."""
    old, recent, _ = await closed_and_open(world)
    settings = Settings(
        REDIS_URL=redis_url, rules_dir=RULES_DIR, org_file=ORG, digest_at="",
        archive_dir=tmp_path,
    )  # fmt: skip
    done = await worker.tick(settings, world.clock)
    assert done.archived == 1 and await world.store.archived(old)
    assert not await world.store.archived(recent)
    assert (await worker.tick(settings, world.clock)).archived == 0
