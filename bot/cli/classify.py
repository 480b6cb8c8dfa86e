"""``lianhu classify``: JSON lines in, one JSON line out per line, streaming."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.classifier.engine import Engine
from bot.cli.common import default_rules_dir, report_invalid
from bot.core.errors import InvalidRules
from bot.core.triage import Verdict
from bot.settings import Settings
from bot.sources import load_ruleset


def register(commands: Any) -> None:
    """Add ``classify``."""
    parser = commands.add_parser(
        "classify",
        help="classify JSON lines ({id, text}) from stdin; one JSON line out per line in",
    )
    parser.add_argument("--rules", type=Path, default=None, help="rules directory")
    parser.add_argument(
        "--rules-only", action="store_true", help="the keyword rules alone, no learned model"
    )
    parser.set_defaults(func=cmd_classify)


def ready_engine(ruleset: Any, rules_only: bool) -> Engine:
    """Return an engine with its model loaded, or trained now (said on stderr) if not cached.

    ``LIANHU_CLASSIFIER=rules`` or ``rules_only`` gives an engine without a model.
    """
    settings = Settings()
    mode = "rules" if rules_only else settings.classifier
    engine = Engine(ruleset, settings.data_dir, embeddings=mode == "model", train=mode != "rules")
    if mode != "rules":
        job = engine.start()
        if job is not None:
            print("training the classifier (cached for next time)...", file=sys.stderr)
            job.result()
    return engine


def cmd_classify(args: argparse.Namespace) -> int:
    """Stream stdin through the classifier."""
    directory = args.rules or default_rules_dir()
    try:
        ruleset = load_ruleset(directory)
    except InvalidRules as exc:
        return report_invalid(exc, str(directory))
    engine = ready_engine(ruleset, args.rules_only)
    try:
        return stream(sys.stdin, sys.stdout, engine, args.rules_only)
    finally:
        engine.close()


def stream(lines: TextIO, out: TextIO, engine: Engine, rules_only: bool = False) -> int:
    """Classify each input line; a bad line gets an ``error`` line, never a crash."""
    for number, line in enumerate(lines, 1):
        record = classify_line(line, number, engine, rules_only)
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return 0


def classify_line(line: str, number: int, engine: Engine, rules_only: bool) -> dict[str, Any]:
    """Return the output record for one input line."""
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    if not isinstance(row, dict) or not isinstance(row.get("text"), str):
        ident = row.get("id") if isinstance(row, dict) else None
        return {"id": ident, "line": number, "error": 'expected {"id": ..., "text": "..."}'}
    verdict = engine.classify_many([row["text"]], rules_only=rules_only)[0]
    return {"id": row.get("id"), **verdict_json(verdict)}


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """Return the fields of a verdict as plain JSON data."""
    return {
        "category": verdict.category,
        "tier": verdict.tier.value if verdict.tier else None,
        "confidence": round(verdict.confidence, 4),
        "action": verdict.action.value,
        "danger": verdict.danger,
        "source": verdict.source.value,
    }
