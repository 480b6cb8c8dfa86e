"""``lianhu config show``: every setting, where it comes from, and its value."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

from bot.cli.common import print_table
from bot.settings import Settings


def register(commands: Any) -> None:
    """Add ``config show``."""
    parser = commands.add_parser("config", help="show the settings")
    sub = parser.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    show = sub.add_parser("show", help="print every setting with its variable and value")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)


def rows() -> list[dict[str, str]]:
    """Return one row per setting: variable, value, meaning."""
    settings = Settings()
    out = []
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        variable = alias if isinstance(alias, str) else f"LIANHU_{name.upper()}"
        value = getattr(settings, name)
        out.append(
            {
                "variable": variable,
                "value": "" if value is None else str(value),
                "meaning": info.description or "",
            }
        )
    return out


def cmd_show(args: argparse.Namespace) -> int:
    """Print the settings."""
    try:
        table_rows = rows()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            print(f"{'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(table_rows, ensure_ascii=False, indent=2))
        return 0
    print_table(
        "Lianhu settings",
        ("variable", "value", "meaning"),
        [(row["variable"], row["value"] or "(unset)", row["meaning"]) for row in table_rows],
    )
    return 0
