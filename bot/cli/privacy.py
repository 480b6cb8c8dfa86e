"""``lianhu privacy export | forget``: what Lianhu stores about one person, shown or erased."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio
from pydantic import ValidationError
from redis.exceptions import ResponseError

from bot.archive import ArchiveFiles
from bot.cli.common import report_invalid, report_settings
from bot.cli.org import person_json
from bot.core.errors import InvalidOrg
from bot.core.personal import ticket_export
from bot.personal import Forgotten, PersonalData
from bot.redis_clients import async_client
from bot.redis_server import redis_for_command
from bot.render import local_zone
from bot.settings import Settings
from bot.sources import load_org

ACCOUNT = re.compile(r"[a-z]+:\S+")  # telegram:123, wecom:abc, sim:p-x
REWRITE_WAIT = 120.0  # seconds to wait for Redis to finish rewriting its AOF


class UnknownPerson(Exception):
    """The argument is neither an account nor a person id of the roster."""


def register(commands: Any) -> None:
    """Add ``privacy`` and its subcommands."""
    parser = commands.add_parser(
        "privacy", help="export or erase what Lianhu stores about one person"
    )
    sub = parser.add_subparsers(dest="privacy_command", metavar="SUBCOMMAND", required=True)
    who_help = "a person id of the roster (all their accounts), or one account (telegram:123)"
    org_help = "organisation file (default: $LIANHU_ORG_FILE or org/sample_street.yaml)"

    export = sub.add_parser(
        "export",
        help="print, as JSON, everything stored about a person",
        description="Print the tickets the person reported or joined (their own texts and the "
        "events that concern them), their enrolments and bindings, and the simulator messages "
        "they sent. Reads Redis (REDIS_URL, or the embedded server in LIANHU_DATA_DIR).",
    )
    export.add_argument("who", metavar="PERSON|ACCOUNT", help=who_help)
    export.add_argument("--org", type=Path, default=None, metavar="FILE", help=org_help)
    export.set_defaults(func=cmd_export)

    forget = sub.add_parser(
        "forget",
        help="erase a person's data from their tickets (without --yes: only show what)",
        description="Replace the person's report texts, names and accounts in their tickets "
        "and those tickets' events with a marker, append an 'erased' event to each, drop them "
        "from the by-reporter index and delete their simulator messages. Every event is kept. "
        "Without --yes nothing is changed.",
    )
    forget.add_argument("who", metavar="PERSON|ACCOUNT", help=who_help)
    forget.add_argument("--org", type=Path, default=None, metavar="FILE", help=org_help)
    forget.add_argument("--yes", action="store_true", help="really erase")
    forget.set_defaults(func=cmd_forget)


def cmd_export(args: argparse.Namespace) -> int:
    """Print everything stored about one person as JSON."""
    found = _subject(args, "lianhu privacy export")
    if isinstance(found, int):
        return found
    settings, accounts, person = found
    with redis_for_command(settings.redis_url, settings.data_dir) as url:
        document = asyncio.run(_export(url, accounts))
    archived = ArchiveFiles(settings.archive_folder, local_zone()).concerning(accounts)
    document["tickets"] += [ticket_export(t, h, accounts) for t, h in archived]
    print(json.dumps({"subject": args.who, "person": person, **document}, ensure_ascii=False,
                     indent=2))  # fmt: skip
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase one person's data (with --yes), or print what would be erased."""
    found = _subject(args, "lianhu privacy forget")
    if isinstance(found, int):
        return found
    settings, accounts, _ = found
    with redis_for_command(settings.redis_url, settings.data_dir) as url:
        done, rewrite = asyncio.run(_forget(url, accounts, args.yes))
    # Archived tickets (bot.archive) are on this host's LIANHU_ARCHIVE_DIR: rewritten too.
    archive = ArchiveFiles(settings.archive_folder, local_zone())
    for ticket_id, fields in archive.forget(accounts, args.yes).items():
        done.tickets[ticket_id] = fields
    if done.empty:
        print(f"nothing stored about {args.who} is left to erase ({', '.join(accounts)})")
        return 0
    verb = "erased" if args.yes else "to erase"
    for ticket_id, fields in done.tickets.items():
        print(f"ticket {ticket_id}: {fields} field{'s' if fields != 1 else ''} {verb}")
    if done.messages or done.quotes:
        deleted = "deleted" if args.yes else "to delete"
        print(f"simulator: {done.messages} messages {deleted}, {done.quotes} quotes {verb}")
    if not args.yes:
        print("nothing changed: run again with --yes to erase")
    elif rewrite:
        print(f"redis: {rewrite}")
    return 0


def _subject(
    args: argparse.Namespace, command: str
) -> tuple[Settings, list[str], dict[str, Any] | None] | int:
    """Return the settings, the accounts and the roster entry named by ``args.who``, or exit."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return report_settings(exc, command)
    if ACCOUNT.fullmatch(args.who):
        return settings, [args.who], None
    path: Path = args.org or settings.org_file
    try:
        tree = load_org(path)
    except InvalidOrg as exc:
        return report_invalid(exc, str(path))
    person = tree.people.get(args.who)
    if person is None:
        print(
            f"{command}: {args.who!r} is no person id in {path} and no account "
            "(such as telegram:123, wecom:abc, sim:p-x); nothing was read or changed",
            file=sys.stderr,
        )
        return 1
    return settings, list(person.accounts), person_json(person)


async def _export(url: str, accounts: list[str]) -> dict[str, Any]:
    client = async_client(url)
    try:
        return await PersonalData(client).export(accounts)
    finally:
        await client.aclose()


async def _forget(url: str, accounts: list[str], apply: bool) -> tuple[Forgotten, str]:
    client = async_client(url)
    try:
        done = await PersonalData(client).forget(accounts, apply)
        rewrite = await _rewrite_aof(client) if apply and not done.empty else ""
        return done, rewrite
    finally:
        await client.aclose()


async def _rewrite_aof(client: redis.asyncio.Redis) -> str:
    """Have Redis rewrite its append-only file without the erased values; say what happened."""
    info = await client.info("persistence")
    if not info.get("aof_enabled"):
        return "AOF is off; RDB snapshots and backups keep the old values until replaced"
    try:
        await client.bgrewriteaof()
    except ResponseError as exc:  # one already running, or the command is not allowed
        if "already in progress" not in str(exc):
            return f"could not rewrite the AOF ({exc}): run BGREWRITEAOF yourself"
    deadline = time.monotonic() + REWRITE_WAIT
    while time.monotonic() < deadline:
        info = await client.info("persistence")
        if not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")):
            if info.get("aof_last_bgrewrite_status") != "ok":
                return "the AOF rewrite failed (see the Redis log): run BGREWRITEAOF again"
            return "AOF rewritten without the erased values; backups keep them until replaced"
        await asyncio.sleep(0.2)
    return "the AOF rewrite is still running; check INFO persistence"
