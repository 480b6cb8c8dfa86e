"""The ``lianhu`` command: each command group registers its own subparser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot import __version__
from bot.cli import archive, classify, config, demo, org, privacy, rules, run, web, worker


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every ``lianhu`` command."""
    parser = argparse.ArgumentParser(
        prog="lianhu",
        description="Lianhu (联户): a chat bot for tiered community group chats.",
    )
    parser.add_argument("--version", action="version", version=f"lianhu {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (rules, classify, org, privacy, archive, config, worker, run, web, demo):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = func(args)
    except BrokenPipeError:  # `lianhu classify | head` closes our stdout early
        return 0
    return status
