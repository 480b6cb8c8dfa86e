"""The shipped rules: valid, readable, covering the contract and their examples; the emergency
force rails' coverage; the learned model's cross-validated figures and the rules-only fallback."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import opencc
import pytest
import yaml

from bot.classifier.embedding import E5Embedder, EmbeddingCache
from bot.classifier.engine import SEED_EMBEDDINGS
from bot.classifier.training import train
from bot.cli.rules import read_corpus
from bot.core.classify import classify
from bot.core.evaluate import check_examples, evaluate
from bot.core.models import NONE_CATEGORY, Severity
from bot.core.rules import RuleMode, RuleSet, json_schema
from bot.core.text import normalise
from bot.core.triage import EMERGENCY, rails
from bot.sources import load_ruleset
from tests.conftest import RULES_DIR

# The labelled corpora written by residents' stand-ins (tests/data/README.md), and their sizes;
# examples/train6.jsonl (a new writer, 45% chatter naming a problem word) and train7.jsonl (another
# writer: a third chatter, a fifth emergencies, mostly indirect) and blind7.jsonl (first kept blind)
# are floored apart;
# examples/rails.jsonl (written to cover the rails) is training-only: never held out.
# Training the model once for the cross-validated figures takes ~1 min on an idle machine, more
# under load: longer than the suite's per-test timeout.
pytestmark = pytest.mark.timeout(900)

CORPORA = {"dev": 420, "regression": 667, "blind2": 300, "blind3": 400, "blind4": 300}


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


def test_corpora_are_whole(ruleset: RuleSet) -> None:
    counts = {name: sum(e.corpus == name for e in ruleset.examples) for name in CORPORA}
    assert counts == CORPORA
    assert {e.corpus for e in ruleset.examples} == {*CORPORA, "rails", "train6", "train7", "blind7"}
    assert {e.corpus for e in ruleset.examples if not e.measured} == {"rails"}


def _emergencies(ruleset: RuleSet) -> list[str]:
    return [e.text for e in ruleset.examples if e.corpus in CORPORA and e.category == EMERGENCY]


def test_force_rails_catch_the_emergencies(ruleset: RuleSet) -> None:
    """Nearly every labelled emergency hits a danger rail: the emergency path starts whatever the
    model says. The two left are caught by the model's danger flag (test_model_floors)."""
    emergencies = _emergencies(ruleset)
    missed = [
        text
        for text in emergencies
        if (m := rails(text, ruleset).force_match) is None or m.category != EMERGENCY
    ]
    assert len(emergencies) == 149
    assert len(missed) <= 2, missed


def test_force_rails_fire_on_no_other_message(ruleset: RuleSet) -> None:
    """Drills, hypotheticals, news from elsewhere, hazards and notices in every corpus (the rails'
    counter-examples included) are vetoed: a wrong force rail is a false emergency."""
    wrong = [
        (e.corpus, e.id, e.category, m.rule)
        for e in ruleset.examples
        if e.category != EMERGENCY and (m := rails(e.text, ruleset).force_match) is not None
    ]
    assert wrong == []


def test_only_danger_words_are_force_rails(ruleset: RuleSet) -> None:
    forced = {r.category for r in ruleset.rules if r.mode is RuleMode.FORCE}
    assert forced == {EMERGENCY}


def test_each_category_file_is_readable() -> None:
    """One file per category, opening with its description (Chinese, then an English line), and
    a modest list of defining words: phrasing variety belongs in the labelled examples."""
    described: dict[str, str] = {}
    for path in sorted(RULES_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        categories = data.get("categories", {})
        assert len(categories) <= 1, f"{path.name}: one category per file"
        for cid, spec in categories.items():
            described[cid] = spec.get("description") or ""
            assert all(r["category"] == cid for r in data.get("rules", [])), path.name
    ruleset = load_ruleset(RULES_DIR)
    assert described.keys() == ruleset.categories.keys()
    for cid, text in described.items():
        lines = [line for line in text.splitlines() if line.strip()]
        assert re.search(r"[\u4e00-\u9fff]", lines[0]), f"{cid}: the description opens in Chinese"
        assert lines[-1].isascii() and len(lines[-1]) > 20, f"{cid}: an English line closes it"
    for cid in ruleset.categories:
        if cid == EMERGENCY:
            continue
        terms = sum(
            len(r.keywords) + sum(len(g) for g in r.all_of) + len(r.regex)
            for r in ruleset.rules
            if r.category == cid
        )
        assert 10 <= terms <= 40, f"{cid}: {terms} defining terms"


@pytest.fixture(scope="module")
def cross_validated(ruleset: RuleSet) -> dict[str, Any]:
    """Train the model as the bot does and return its leave-one-corpus-out figures (~20 s; the
    embeddings of the shipped examples are in routing_rules/examples/e5-small.npz)."""
    embedder = E5Embedder()
    cache = EmbeddingCache(None, sorted(SEED_EMBEDDINGS.glob("*.npz")))
    vectors = cache.vectors(embedder, [normalise(e.text) for e in ruleset.examples])
    cv: dict[str, Any] = train(ruleset, vectors, embedder.name).meta["cv"]
    return cv


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_model_floors(cross_validated: dict[str, Any], corpus: str) -> None:
    """Held out one corpus at a time, the model with its rails finds every emergency (as an
    emergency, or flagged as danger for a grid worker to confirm) and stays at the figures reached
    (README "Rules": before and after the rewrite)."""
    figures = cross_validated[corpus]
    assert figures["messages"] == CORPORA[corpus]
    assert figures["emergency_recall_with_danger"] == 1.0
    assert figures["emergency_recall"] >= 0.97
    assert figures["macro_f1"] >= 0.94
    assert figures["false_ticket_rate"] <= 0.07


def test_the_hard_negatives_corpus_and_the_training_only_one(
    cross_validated: dict[str, Any],
) -> None:
    """train6, held out, is the hardest (its chatter names problem words the others rarely use
    that way): every emergency is still caught, at the figures reached. rails is never held
    out, so it neither scores the model nor chooses its thresholds."""
    figures = cross_validated["train6"]
    assert figures["messages"] == 450
    assert figures["emergency_recall_with_danger"] == 1.0
    assert figures["macro_f1"] >= 0.89
    assert figures["false_ticket_rate"] <= 0.12
    assert "rails" not in cross_validated
    assert cross_validated["all"]["messages"] == sum(CORPORA.values()) + 450 + 599 + 483


def test_the_indirect_corpus(cross_validated: dict[str, Any]) -> None:
    """train7, held out, is mostly indirect wording (smoke from a window, a neighbour not seen
    for days): out of fold every one of its 120 emergencies gets a ticket or a flag, and its
    chatter rarely becomes a ticket, at the figures reached."""
    figures = cross_validated["train7"]
    assert figures["messages"] == 599
    assert figures["emergency_recall_with_danger"] == 1.0
    assert figures["macro_f1"] >= 0.89
    assert figures["false_ticket_rate"] <= 0.05


def test_the_corpus_first_kept_blind(cross_validated: dict[str, Any]) -> None:
    """blind7, scored once while held out and then learned from (tests/holdout/README.md),
    held out again here: every one of its 69 emergencies gets a ticket or a flag, at the
    figures reached."""
    figures = cross_validated["blind7"]
    assert figures["messages"] == 483
    assert figures["emergency_recall_with_danger"] == 1.0
    assert figures["macro_f1"] >= 0.93
    assert figures["false_ticket_rate"] <= 0.04


@pytest.mark.parametrize("corpus", list(CORPORA))
def test_rules_only_fallback(ruleset: RuleSet, corpus: str) -> None:
    """Without a model the defining words decide: far below the model (they are not fitted to
    these corpora any more), but no danger is missed and most requests find their category."""
    report = evaluate(read_corpus(RULES_DIR / "examples" / f"{corpus}.jsonl"), ruleset)
    assert report.total == CORPORA[corpus]
    assert report.emergency_recall >= 0.95
    assert report.macro_f1 >= 0.65
    assert report.false_ticket_rate <= 0.2
