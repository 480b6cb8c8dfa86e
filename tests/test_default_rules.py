"""The shipped rules: valid, covering the contract, their examples, and the corpus bar."""

from __future__ import annotations

import json
from pathlib import Path

import opencc
import pytest
import yaml

from bot.cli.rules import read_corpus
from bot.core.classify import classify
from bot.core.evaluate import LabelledMessage, check_examples, evaluate
from bot.core.models import NONE_CATEGORY, Severity
from bot.core.rules import RuleSet, json_schema
from bot.core.text import normalise
from bot.sources import load_ruleset
from tests.conftest import RULES_DIR


def examples() -> list[tuple[str, str, str]]:
    ruleset = load_ruleset(RULES_DIR)
    out = []
    for rule in ruleset.rules:
        out += [(rule.id, "must_match", text) for text in rule.must_match]
        out += [(rule.id, "must_not_match", text) for text in rule.must_not_match]
    return out


@pytest.mark.parametrize(("rule_id", "kind", "text"), examples())
def test_rule_example(ruleset: RuleSet, rule_id: str, kind: str, text: str) -> None:
    rule = next(r for r in ruleset.rules if r.id == rule_id)
    match = classify(text, ruleset)
    got = match.category if match else NONE_CATEGORY
    if kind == "must_match":
        assert got == rule.category, f"{rule.source}:{rule.line}: {text!r} -> {got}"
    else:
        assert got != rule.category, f"{rule.source}:{rule.line}: {text!r} -> {got}"


def test_every_rule_has_examples(ruleset: RuleSet) -> None:
    bare = [r.id for r in ruleset.rules if not r.must_match or not r.must_not_match]
    assert bare == []
    count, failures = check_examples(ruleset)
    assert count >= 2 * len(ruleset.rules)
    assert failures == []


def test_rules_cover_the_contract(ruleset: RuleSet, data: Path) -> None:
    contract = yaml.safe_load((data / "categories.yaml").read_text(encoding="utf-8"))
    for entry in contract["categories"]:
        if entry["id"] == NONE_CATEGORY:
            continue
        category = ruleset.categories[entry["id"]]
        assert category.start_tier.value == entry["start_tier"], entry["id"]
        assert category.severity.value == entry["severity"], entry["id"]
        assert any(r.category == entry["id"] for r in ruleset.rules), f"no rule for {entry['id']}"


def test_corpus_bar(ruleset: RuleSet, examples: Path) -> None:
    lines = (examples / "dev.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    report = evaluate(
        [LabelledMessage(r["id"], r["text"], r["category"], r["urgent"]) for r in rows], ruleset
    )
    assert report.total == len(rows) > 0
    assert report.macro_f1 >= 0.92
    assert report.emergency_recall == 1.0
    assert report.false_ticket_rate <= 0.03
    assert report.start_tier_accuracy >= 0.95


CONVERTERS = [opencc.OpenCC(c) for c in ("s2t", "s2hk", "s2tw")]


def test_urgent_keywords_match_in_every_script(ruleset: RuleSet) -> None:
    """A keyword written in Simplified must catch its Traditional, HK and Taiwan forms."""
    misses = []
    for rule in ruleset.rules:
        category = ruleset.categories.get(rule.category)
        if not (rule.urgent or (category and category.severity is Severity.CRITICAL)):
            continue
        for keyword in rule.keywords:
            for converter in CONVERTERS:
                if normalise(converter.convert(keyword)) != keyword:
                    misses.append((rule.id, keyword, converter.convert(keyword)))
    assert misses == []


def test_schema_file_is_in_sync() -> None:
    on_disk = json.loads((RULES_DIR / "schema.json").read_text(encoding="utf-8"))
    assert on_disk == json_schema(), "run: python -m bot rules schema > routing_rules/schema.json"


def test_regression_corpus(ruleset: RuleSet) -> None:
    """Messages the team wrote (tests/data/README.md) stay classified as before."""
    report = evaluate(read_corpus(RULES_DIR / "examples" / "regression.jsonl"), ruleset)
    assert report.total == 667
    assert report.macro_f1 >= 0.97
    assert report.emergency_recall == 1.0
    assert report.false_ticket_rate <= 0.01


@pytest.mark.parametrize(
    ("name", "total", "false_tickets", "macro_f1"),
    [("blind2", 300, 0.03, 0.97), ("blind3", 400, 0.05, 0.94), ("blind4", 300, 0.02, 0.83)],
)
def test_blind_corpus_floors(
    ruleset: RuleSet, name: str, total: int, false_tickets: float, macro_f1: float
) -> None:
    """Messages written without reading the rules (tests/data/README.md): no emergency missed,
    and no worse than the figures reached (the first-run figures are in the README)."""
    report = evaluate(read_corpus(RULES_DIR / "examples" / f"{name}.jsonl"), ruleset)
    assert report.total == total
    assert report.emergency_recall == 1.0
    assert report.false_ticket_rate <= false_tickets
    assert report.macro_f1 >= macro_f1
