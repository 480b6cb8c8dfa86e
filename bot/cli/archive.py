"""``lianhu archive export | show``: closed tickets moved out of Redis, read back from the files."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.archive import ArchiveFiles
from bot.cli.common import report_settings
from bot.core.archive import masked
from bot.render import local_zone
from bot.settings import Settings

MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def register(commands: Any) -> None:
    """Add ``archive`` and its subcommands."""
    parser = commands.add_parser(
        "archive", help="export or show closed tickets the worker moved out of Redis"
    )
    sub = parser.add_subparsers(dest="archive_command", metavar="SUBCOMMAND", required=True)
    export = sub.add_parser(
        "export",
        help="write one month of archived tickets as JSON lines",
        description="Write every ticket closed in MONTH and archived (past LIANHU_ARCHIVE_DAYS) "
        "as one JSON line: its snapshot and every event. Reporters' accounts, names, private "
        "chats, photos and places are masked, and phone and ID numbers in texts, unless "
        "--full. Reads the files in LIANHU_ARCHIVE_DIR (default: archive in the data dir).",
    )
    export.add_argument("--month", required=True, metavar="YYYY-MM", help="the month closed in")
    export.add_argument(
        "--full", action="store_true", help="unmasked: personal data as archived (admin only)"
    )
    export.add_argument("--out", type=Path, metavar="FILE", help="write here (default: stdout)")
    export.set_defaults(func=cmd_export)
    show = sub.add_parser(
        "show", help="print one archived ticket (masked unless --full)", description=None
    )
    show.add_argument("ticket", help="the ticket number")
    show.add_argument("--full", action="store_true", help="unmasked (admin only)")
    show.set_defaults(func=cmd_show)


def _archive(command: str) -> ArchiveFiles | int:
    try:
        settings = Settings()
    except ValidationError as exc:
        return report_settings(exc, command)
    return ArchiveFiles(settings.archive_folder, local_zone())


def cmd_export(args: argparse.Namespace) -> int:
    """Write one month of the archive as JSON lines."""
    if not MONTH.fullmatch(args.month):
        print(f"lianhu archive export: --month {args.month!r} is not YYYY-MM", file=sys.stderr)
        return 2
    archive = _archive("lianhu archive export")
    if isinstance(archive, int):
        return archive
    if args.month not in archive.months():
        print(f"lianhu archive export: nothing archived for {args.month} in {archive.folder}",
              file=sys.stderr)  # fmt: skip
        return 1
    lines = list(archive.export(args.month, full=args.full))
    text = "".join(f"{line}\n" for line in lines)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        args.out.chmod(0o600)
    what = "unmasked: handle as personal data" if args.full else "personal data masked"
    print(f"{len(lines)} tickets closed in {args.month} ({what})", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one archived ticket."""
    archive = _archive("lianhu archive show")
    if isinstance(archive, int):
        return archive
    found = archive.find(args.ticket)
    if found is None:
        print(f"lianhu archive show: ticket {args.ticket} is not in {archive.folder}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(json.dumps(found if args.full else masked(found), ensure_ascii=False, indent=2))
    return 0
