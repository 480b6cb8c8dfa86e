"""``lianhu rules learn | replay``: review what handlers taught, and see what a rule change does.

``learn`` lists the labelled examples waiting in Redis (handlers' re-categorisations,
dismissals, danger confirmations, answers to asks, tickets opened from missed messages);
``--accept`` appends them to the learned examples file that categories.yaml names
(``examples/learned.jsonl``) and drops them from the queue, ``--reject`` only drops them.
``replay`` runs a rule set over the masked messages kept from the last days and prints what
would change, before the rules are applied.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bot.cli.classify import ready_engine
from bot.cli.common import default_rules_dir, print_table, report_invalid, report_settings
from bot.core.errors import InvalidRules
from bot.core.models import NONE_CATEGORY
from bot.core.rules import parse_duration
from bot.redis_clients import async_client
from bot.redis_server import redis_for_command
from bot.settings import Settings
from bot.sources import load_ruleset
from bot.storage.learning import LearningStore, example_line

LEARNED_FILE = "learned.jsonl"  # the examples file accepted examples go to


def register(sub: Any) -> None:
    """Add ``rules learn`` and ``rules replay`` to the ``rules`` subcommands."""
    learn = sub.add_parser("learn", help="review labelled examples learned from handlers")
    learn.add_argument("--dir", type=Path, default=None, help="rules directory")
    learn.add_argument("--accept", nargs="+", metavar="ID", default=[])
    learn.add_argument("--accept-all", action="store_true")
    learn.add_argument("--reject", nargs="+", metavar="ID", default=[])
    learn.set_defaults(func=cmd_learn)

    replay = sub.add_parser("replay", help="show what a rule set would change on past messages")
    replay.add_argument("--since", default="7d", help="how far back (15m, 2h, 7d)")
    replay.add_argument("--rules", type=Path, default=None, help="candidate rules directory")
    replay.add_argument("--rules-only", action="store_true", help="the keyword rules alone")
    replay.set_defaults(func=cmd_replay)


def learned_file(directory: Path) -> Path | None:
    """Return the learned examples file categories.yaml names, or None."""
    path = directory / "categories.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    named = data.get("examples", []) if isinstance(data, dict) else []
    for entry in named if isinstance(named, list) else []:
        if isinstance(entry, str) and Path(entry).name == LEARNED_FILE:
            return directory / entry
    return None


def cmd_learn(args: argparse.Namespace) -> int:
    """List, accept or reject learned examples."""
    try:
        settings = Settings()
    except ValidationError as exc:
        return report_settings(exc, "lianhu rules learn")
    directory = args.dir or default_rules_dir()
    with redis_for_command(settings.redis_url, settings.data_dir) as url:
        return asyncio.run(_learn(url, directory, args))


async def _learn(url: str, directory: Path, args: argparse.Namespace) -> int:
    client = async_client(url)
    try:
        store = LearningStore(client)
        waiting = {e["id"]: e for e in await store.examples()}
        accept = list(waiting) if args.accept_all else args.accept
        unknown = [i for i in [*accept, *args.reject] if i not in waiting]
        if unknown:
            print(f"no learned example {', '.join(unknown)}", file=sys.stderr)
            return 1
        if args.reject:
            await store.remove(args.reject)
            print(f"rejected {len(args.reject)}")
        if accept:
            return await _accept(store, directory, [waiting[i] for i in accept])
        if not args.reject:
            _print_examples(list(waiting.values()))
        return 0
    finally:
        await client.aclose()


async def _accept(store: LearningStore, directory: Path, examples: list[dict[str, Any]]) -> int:
    target = learned_file(directory)
    if target is None:
        print(
            f"{directory / 'categories.yaml'}: name a learned examples file "
            f"(examples/{LEARNED_FILE}) under examples: first",
            file=sys.stderr,
        )
        return 1
    try:
        categories = load_ruleset(directory).categories
    except InvalidRules as exc:
        return report_invalid(exc, str(directory))
    wrong = [e["id"] for e in examples if e["category"] not in {*categories, NONE_CATEGORY}]
    if wrong:
        print(f"examples {', '.join(wrong)} name a category the rules lack", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as out:
        for example in examples:
            out.write(example_line(example) + "\n")
    await store.remove(e["id"] for e in examples)
    print(f"accepted {len(examples)} into {target}")
    return 0


def _print_examples(examples: list[dict[str, Any]]) -> None:
    rows = [
        (
            e["id"],
            dt.datetime.fromtimestamp(float(e["at"]), dt.UTC).strftime("%Y-%m-%d %H:%M"),
            e["source"],
            e["category"],
            e["who"],
            e["text"],
        )
        for e in examples
    ]
    print_table(
        "learned examples awaiting review (UTC)",
        ("id", "at", "source", "category", "who", "text"),
        rows,
    )


def cmd_replay(args: argparse.Namespace) -> int:
    """Print what the rules would change on the kept messages."""
    try:
        settings = Settings()
        since = parse_duration(args.since)
    except ValidationError as exc:
        return report_settings(exc, "lianhu rules replay")
    except ValueError as exc:
        print(f"--since: {exc}", file=sys.stderr)
        return 2
    directory = args.rules or default_rules_dir()
    try:
        ruleset = load_ruleset(directory)
    except InvalidRules as exc:
        return report_invalid(exc, str(directory))
    with redis_for_command(settings.redis_url, settings.data_dir) as url:
        rows = asyncio.run(_classified(url, time.time() - since))
    engine = ready_engine(ruleset, args.rules_only)
    try:
        verdicts = engine.classify_many([r["text"] for r in rows]) if rows else []
    finally:
        engine.close()
    before = Counter((r["category"], r["action"]) for r in rows)
    after = Counter((v.category, v.action.value) for v in verdicts)
    table = [
        (category, action, str(before[(category, action)]), str(after[(category, action)]))
        for category, action in sorted(before.keys() | after.keys())
    ]
    print_table(
        f"{len(rows)} messages since {args.since}", ("category", "action", "was", "would be"), table
    )
    changed = [
        (f"{r['category']}/{r['action']}", f"{v.category}/{v.action.value}", r["text"])
        for r, v in zip(rows, verdicts, strict=True)
        if (r["category"], r["action"]) != (v.category, v.action.value)
    ]
    print_table(f"{len(changed)} would change", ("was", "would be", "text"), changed)
    return 0


async def _classified(url: str, since: float) -> list[dict[str, str]]:
    client = async_client(url)
    try:
        return await LearningStore(client).classified(since)
    finally:
        await client.aclose()
