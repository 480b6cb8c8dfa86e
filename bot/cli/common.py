"""Helpers shared by the command groups: default paths, error printing, serving a web app."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.core.errors import InvalidConfig
from bot.settings import Settings

if TYPE_CHECKING:
    from aiohttp import web


def default_rules_dir() -> Path:
    """Return the rules directory of the settings (``LIANHU_RULES_DIR``)."""
    return Settings().rules_dir


def default_org_file() -> Path:
    """Return the organisation file of the settings (``LIANHU_ORG_FILE``)."""
    return Settings().org_file


def stdout() -> Console:
    """Return a console on standard output (tables are not wrapped when piped)."""
    return Console(soft_wrap=not sys.stdout.isatty(), highlight=False)


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: frozenset[str] = frozenset(),
    bold: int | None = None,
) -> None:
    """Print a table: drawn for a terminal, plain tab-separated lines when piped.

    Piped output is read by scripts (grep, cut) that must find whole values, so nothing is cut,
    wrapped or padded there: a ``# title`` line, a header line, one line per row, and cells that
    hold several values (newlines in the drawn table) joined by ", ".
    """
    if not sys.stdout.isatty():
        if title:
            print(f"# {title}")
        print("\t".join(columns))
        for row in rows:
            print("\t".join(cell.replace("\n", ", ").replace("\t", " ") for cell in row))
        sys.stdout.flush()
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for index, row in enumerate(rows):
        # Cells are Text, not markup: a name with brackets must print as written.
        table.add_row(*(Text(cell) for cell in row), style="bold" if index == bold else None)
    stdout().print(table)


def report_invalid(exc: InvalidConfig, what: str) -> int:
    """Print every problem of an invalid configuration to stderr; return exit status 1."""
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    count = len(exc.problems)
    print(f"{what}: {count} error{'s' if count != 1 else ''}", file=sys.stderr)
    return 1


def report_settings(exc: ValidationError, command: str) -> int:
    """Print every invalid setting to stderr; return exit status 2."""
    for error in exc.errors(include_url=False):
        print(f"{command}: {'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
    return 2


async def serve_until_stopped(
    app: web.Application,
    host: str,
    port: int,
    command: str,
    started: Callable[[str], None],
    access_log: bool = True,
) -> int:
    """Serve ``app`` on ``host``:``port`` until SIGINT or SIGTERM; return the exit code.

    ``started`` is given the address served (``http://host:port``) once listening; a port
    that cannot be bound is reported as ``command`` and gives 1.
    """
    from aiohttp import web
    from aiohttp.log import access_logger

    runner = web.AppRunner(
        app, handle_signals=False, access_log=access_logger if access_log else None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            print(f"{command}: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 1
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bound = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        started(f"http://{shown}:{bound[1]}")
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        return 0
    finally:
        await runner.cleanup()
