"""Helpers shared by the command groups: default paths and error printing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from bot.core.errors import InvalidConfig


def default_rules_dir() -> Path:
    """Return ``$LIANHU_RULES_DIR`` or ``routing_rules``."""
    return Path(os.environ.get("LIANHU_RULES_DIR", "routing_rules"))


def default_org_file() -> Path:
    """Return ``$LIANHU_ORG_FILE`` or the sample street."""
    return Path(os.environ.get("LIANHU_ORG_FILE", "org/sample_street.yaml"))


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
