"""Read rule and organisation files from disk into parsed documents.

The core parses text; this module is the part of the shell that touches the
file system. Loaders raise InvalidConfig subclasses; only the CLI prints.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bot.core.alerts import InvalidAlertRoutes, Route, build_routes
from bot.core.errors import InvalidOrg, InvalidRules, Problem
from bot.core.open311 import Client, InvalidClients, build_clients
from bot.core.org import OrgTree, build_org
from bot.core.rules import RuleSet, build_ruleset, example_paths
from bot.core.yamldoc import Document, parse

RULE_SUFFIXES = (".yaml", ".yml")
# A file past these is refused unread: the default rules are 35 KB at most per file and
# 190 KB in all, and a 50 MB file once froze a running bot for two minutes.
MAX_RULE_FILE_BYTES = 1024 * 1024
MAX_RULES_BYTES = 8 * 1024 * 1024
MAX_ORG_BYTES = 4 * 1024 * 1024  # the tree and roster of a large street, with room to spare


def read_document(
    path: Path, label: str | None = None, limit: int = MAX_RULE_FILE_BYTES
) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML file of at most ``limit`` bytes; problems name it by ``label``."""
    name = label or str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(limit + 1)  # never more, whatever stat said a moment ago
        if len(raw) > limit:
            return None, [Problem(name, 1, 1, "", f"larger than {_size(limit)}: refused")]
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 1, 1, "", f"cannot read: {exc}")]
    return parse(name, text)


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"


def rule_files(directory: Path) -> list[Path]:
    """Return the rule files of a directory, sorted, subdirectories included."""
    return sorted(p for p in directory.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


def watched_files(directory: Path) -> list[Path]:
    """Return the rule files and the examples files under ``directory``, sorted."""
    suffixes = (*RULE_SUFFIXES, ".jsonl")
    return sorted(p for p in directory.rglob("*") if p.suffix in suffixes and p.is_file())


def load_ruleset(directory: Path) -> RuleSet:
    """Load and validate every rule file under ``directory``; raise InvalidRules."""
    if not directory.is_dir():
        raise InvalidRules([Problem(str(directory), 1, 1, "", "not a directory")])
    documents, problems = [], []
    digest = hashlib.sha256()
    paths = rule_files(directory)
    total = sum(_stat_size(p) for p in paths)
    if total > MAX_RULES_BYTES:
        message = (
            f"all rule files together are larger than {_size(MAX_RULES_BYTES)}: "
            f"refused ({total:,} bytes)"
        )
        raise InvalidRules([Problem(str(directory), 1, 1, "", message)])
    for path in paths:
        doc, found = read_document(path)
        problems.extend(found)
        if doc is not None:
            documents.append(doc)
            digest.update(f"{path.relative_to(directory)}\0{doc.data!r}\0".encode())
    if not documents:
        raise InvalidRules(
            problems or [Problem(str(directory), 1, 1, "", "no rule files (*.yaml) found")]
        )
    examples: dict[str, str | None] = {}
    for doc in documents:
        for name in example_paths(doc):
            try:
                examples[name] = (Path(doc.source).parent / name).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                examples[name] = None
    for name in sorted(examples):
        digest.update(f"{name}\0{examples[name]}\0".encode())
    try:
        ruleset = build_ruleset(
            documents, where=str(directory), example_files=examples, digest=digest.hexdigest()
        )
    except InvalidRules as exc:
        raise InvalidRules(problems + exc.problems) from None
    if problems:
        raise InvalidRules(problems)
    return ruleset


def _stat_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def load_org(path: Path) -> OrgTree:
    """Load and validate the organisation tree and roster; raise InvalidOrg."""
    doc, problems = read_document(path, limit=MAX_ORG_BYTES)
    if doc is None:
        raise InvalidOrg(problems)
    return build_org(doc)


MAX_ALERT_ROUTES_BYTES = 1024 * 1024


def load_alert_routes(path: Path, tree: OrgTree, ruleset: RuleSet) -> tuple[Route, ...]:
    """Load and validate the alert mapping file; raise InvalidAlertRoutes naming every problem."""
    doc, problems = read_document(path, limit=MAX_ALERT_ROUTES_BYTES)
    if doc is None:
        raise InvalidAlertRoutes(problems)
    return build_routes(doc, tree, ruleset)


def load_open311_clients(path: Path, tree: OrgTree) -> tuple[Client, ...]:
    """Load and validate the Open311 clients file; raise InvalidClients naming every problem."""
    doc, problems = read_document(path, limit=MAX_ALERT_ROUTES_BYTES)
    if doc is None:
        raise InvalidClients(problems)
    return build_clients(doc, tree)
