"""Helpers shared by the command groups: default paths and error printing."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console

from bot.core.errors import InvalidConfig
from bot.settings import Settings


def default_rules_dir() -> Path:
    """Return the rules directory of the settings (``LIANHU_RULES_DIR``)."""
    return Settings().rules_dir


def default_org_file() -> Path:
    """Return the organisation file of the settings (``LIANHU_ORG_FILE``)."""
    return Settings().org_file


def stdout() -> Console:
    """Return a console on standard output (tables are not wrapped when piped)."""
    return Console(soft_wrap=not sys.stdout.isatty(), highlight=False)


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
