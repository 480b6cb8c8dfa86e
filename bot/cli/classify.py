"""``lianhu classify``: JSON lines in, one JSON line out per line, streaming."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.cli.common import default_rules_dir, report_invalid
from bot.core.classify import classify
from bot.core.errors import InvalidRules
from bot.core.models import NONE_CATEGORY
from bot.core.rules import RuleSet
from bot.sources import load_ruleset


def register(commands: Any) -> None:
    """Add ``classify``."""
    parser = commands.add_parser(
        "classify",
        help="classify JSON lines ({id, text}) from stdin; one JSON line out per line in",
    )
    parser.add_argument("--rules", type=Path, default=None, help="rules directory")
    parser.set_defaults(func=cmd_classify)


def cmd_classify(args: argparse.Namespace) -> int:
    """Stream stdin through the classifier."""
    directory = args.rules or default_rules_dir()
    try:
        ruleset = load_ruleset(directory)
    except InvalidRules as exc:
        return report_invalid(exc, str(directory))
    return stream(sys.stdin, sys.stdout, ruleset)


def stream(lines: TextIO, out: TextIO, ruleset: RuleSet) -> int:
    """Classify each input line; a bad line gets an ``error`` line, never a crash."""
    for number, line in enumerate(lines, 1):
        out.write(json.dumps(classify_line(line, number, ruleset), ensure_ascii=False) + "\n")
        out.flush()
    return 0


def classify_line(line: str, number: int, ruleset: RuleSet) -> dict[str, Any]:
    """Return the output record for one input line."""
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        ident = row.get("id") if isinstance(row, dict) else None
        return {"id": ident, "line": number, "error": 'expected {"id": ..., "text": "..."}'}
    match = classify(row["text"], ruleset)
    if match is None:
        return {
            "id": row.get("id"), "category": NONE_CATEGORY, "start_tier": None,
            "severity": None, "urgent": False, "matched": [],
        }  # fmt: skip
    return {
        "id": row.get("id"),
        "category": match.category,
        "start_tier": match.start_tier.value,
        "severity": match.severity.value,
        "urgent": match.urgent,
        "matched": list(match.matched),
    }
