"""Read rule and organisation files from disk into parsed documents.

The core parses text; this module is the part of the shell that touches the
file system. Loaders raise InvalidConfig subclasses; only the CLI prints.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from bot.core.errors import InvalidOrg, InvalidRules, Problem
from bot.core.org import OrgTree, build_org
from bot.core.rules import RuleSet, build_ruleset, example_paths
from bot.core.yamldoc import Document, parse

RULE_SUFFIXES = (".yaml", ".yml")


def read_document(path: Path, label: str | None = None) -> tuple[Document | None, list[Problem]]:
    """Parse one YAML file; problems name it by ``label`` (default: the path as given)."""
    name = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 1, 1, "", f"cannot read: {exc}")]
    return parse(name, text)


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
    for path in rule_files(directory):
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


def load_org(path: Path) -> OrgTree:
    """Load and validate the organisation tree and roster; raise InvalidOrg."""
    doc, problems = read_document(path)
    if doc is None:
        raise InvalidOrg(problems)
    return build_org(doc)
