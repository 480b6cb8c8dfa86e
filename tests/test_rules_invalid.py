"""Every kind of invalid rule file is refused, each error at its exact place."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.errors import InvalidRules
from bot.sources import load_ruleset

CATEGORIES = """\
categories:
  utilities:
    names: {zh-Hans: 水电气}
    start_tier: village
    severity: normal
deadlines:
  critical: {ack: 15m, resolve: 2h}
  high: {ack: 2h, resolve: 24h}
  normal: {ack: 24h, resolve: 3d}
  low: {ack: 2d, resolve: 7d}
"""

RULE = """\
rules:
  - id: water
    category: utilities
    keywords: [停水]
"""


def load(tmp_path: Path, **files: str) -> list[str]:
    """Write ``files`` (name -> text) beside a valid categories file; return the errors."""
    files.setdefault("categories", CATEGORIES)
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidRules) as caught:
        load_ruleset(tmp_path)
    return [str(p).removeprefix(f"{tmp_path}/") for p in caught.value.problems]


def test_valid_minimal_directory_loads(tmp_path: Path) -> None:
    (tmp_path / "categories.yaml").write_text(CATEGORIES, encoding="utf-8")
    (tmp_path / "water.yaml").write_text(RULE, encoding="utf-8")
    ruleset = load_ruleset(tmp_path)
    assert [r.id for r in ruleset.rules] == ["water"]
    assert ruleset.rules[0].line == 2


def test_yaml_syntax_error_is_located(tmp_path: Path) -> None:
    errors = load(tmp_path, water="rules:\n  - id: water\n    keywords: [停水\n")
    assert len(errors) == 1
    assert errors[0].startswith("water.yaml:4:1: -: invalid YAML:")


def test_unknown_field_is_located_at_its_key(tmp_path: Path) -> None:
    text = RULE + "    keywordz: [没水]\n"
    assert load(tmp_path, water=text) == ["water.yaml:5:5: rules[0].keywordz: unknown field"]


def test_unknown_top_level_section(tmp_path: Path) -> None:
    assert load(tmp_path, water=RULE + "rulez: []\n") == ["water.yaml:5:1: rulez: unknown field"]


def test_duplicate_rule_id_across_files(tmp_path: Path) -> None:
    errors = load(tmp_path, a=RULE, b="# second\n" + RULE)
    assert errors == [
        f"b.yaml:3:5: rules[0].id: duplicate rule id 'water' (first in {tmp_path}/a.yaml)"
    ]


def test_unknown_category(tmp_path: Path) -> None:
    text = RULE.replace("category: utilities", "category: utilties")
    assert load(tmp_path, water=text) == [
        "water.yaml:3:5: rules[0].category: unknown category 'utilties'"
    ]


def test_unknown_tier_in_category(tmp_path: Path) -> None:
    text = CATEGORIES.replace("start_tier: village", "start_tier: town")
    errors = load(tmp_path, categories=text)
    assert errors[0].startswith(
        "categories.yaml:4:5: categories.utilities.start_tier: Input should be"
    )
    assert "'household', 'grid', 'village' or 'street'" in errors[0]


def test_unknown_tier_in_deadline_override(tmp_path: Path) -> None:
    text = CATEGORIES.replace(
        "low: {ack: 2d, resolve: 7d}",
        "low:\n    ack: 2d\n    resolve: 7d\n    tiers:\n      county: {ack: 1d}",
    )
    errors = load(tmp_path, categories=text, water=RULE)
    assert errors[0].startswith("categories.yaml:14:7: deadlines.low.tiers.county: Input should be")


def test_empty_keyword_list(tmp_path: Path) -> None:
    text = RULE.replace("keywords: [停水]", "keywords: []")
    assert load(tmp_path, water=text) == [
        "water.yaml:4:5: rules[0].keywords: List should have at least 1 item after validation, not 0"
    ]


def test_blank_keyword(tmp_path: Path) -> None:
    text = RULE.replace("keywords: [停水]", "keywords:\n      - 停水\n      - '  '")
    errors = load(tmp_path, water=text)
    assert errors == [
        "water.yaml:6:9: rules[0].keywords[1]: String should match pattern '^[^\\n\\r]*\\S[^\\n\\r]*$'"
    ]


def test_keyword_empty_once_normalised(tmp_path: Path) -> None:
    text = RULE.replace("keywords: [停水]", 'keywords: [停水, "\\u200b"]')
    assert load(tmp_path, water=text) == [
        "water.yaml:4:20: rules[0].keywords[1]: '\\u200b' is empty once normalised"
    ]


def test_rule_without_keywords_or_regex(tmp_path: Path) -> None:
    text = "rules:\n  - id: water\n    category: utilities\n    veto: [演练]\n"
    assert load(tmp_path, water=text) == [
        "water.yaml:2:5: rules[0]: a rule needs keywords or regex"
    ]


def test_regex_that_does_not_compile(tmp_path: Path) -> None:
    text = RULE + "    regex: ['停(水']\n"
    errors = load(tmp_path, water=text)
    assert len(errors) == 1
    assert errors[0].startswith(
        "water.yaml:5:13: rules[0].regex[0]: invalid regular expression (RE2 syntax): "
    )
    assert "missing )" in errors[0]


@pytest.mark.parametrize("pattern", [r"(\\w+)\\1", "停(?=水)", "(?<!不)停水"])
def test_backtracking_constructs_are_refused(tmp_path: Path, pattern: str) -> None:
    errors = load(tmp_path, water=RULE + f'    regex: ["{pattern}"]\n')
    assert len(errors) == 1
    assert errors[0].startswith("water.yaml:5:13: rules[0].regex[0]: invalid regular expression")


def test_regex_matching_empty_text_is_refused(tmp_path: Path) -> None:
    errors = load(tmp_path, water=RULE + "    regex: ['(停水)?']\n")
    assert errors == [
        "water.yaml:5:13: rules[0].regex[0]: regular expression matches empty text, so every message"
    ]


def test_catastrophic_pattern_runs_in_linear_time(tmp_path: Path) -> None:
    (tmp_path / "categories.yaml").write_text(CATEGORIES, encoding="utf-8")
    (tmp_path / "water.yaml").write_text(
        "rules:\n  - id: water\n    category: utilities\n    regex: ['(a+)+$']\n", encoding="utf-8"
    )
    ruleset = load_ruleset(tmp_path)
    from bot.core.classify import classify

    # With Python's re this input takes seconds; RE2 cannot backtrack.
    assert classify("a" * 4000 + "!", ruleset) is None
    match = classify("a" * 4000, ruleset)
    assert match is not None and match.category == "utilities"


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    text = RULE + "    category: noise\n"
    assert load(tmp_path, water=text) == [
        "water.yaml:5:5: rules[0].category: duplicate key 'category'"
    ]


def test_duplicate_category_across_files(tmp_path: Path) -> None:
    extra = "categories:\n  utilities:\n    names: {zh-Hans: 水}\n    start_tier: grid\n    severity: low\n"
    assert load(tmp_path, extra=extra) == [
        "extra.yaml:2:3: categories.utilities: duplicate category 'utilities'"
    ]


def test_none_is_reserved(tmp_path: Path) -> None:
    extra = (
        "categories:\n  none:\n    names: {zh-Hans: 无}\n    start_tier: grid\n    severity: low\n"
    )
    assert load(tmp_path, extra=extra) == ["extra.yaml:2:3: categories.none: 'none' is reserved"]


def test_deadlines_defined_twice(tmp_path: Path) -> None:
    deadlines = CATEGORIES[CATEGORIES.index("deadlines:") :]
    assert load(tmp_path, extra=deadlines) == [
        "extra.yaml:1:1: deadlines: deadlines are defined twice"
    ]


def test_deadlines_missing(tmp_path: Path) -> None:
    only_categories = CATEGORIES[: CATEGORIES.index("deadlines:")]
    errors = load(tmp_path, categories=only_categories)
    assert errors == [f"{tmp_path}:1:1: deadlines: no file defines deadlines"]


def test_ack_after_resolve(tmp_path: Path) -> None:
    text = CATEGORIES.replace("high: {ack: 2h, resolve: 24h}", "high: {ack: 2d, resolve: 24h}")
    assert load(tmp_path, categories=text) == [
        "categories.yaml:8:3: deadlines.high: ack must not be later than resolve"
    ]


def test_bad_duration(tmp_path: Path) -> None:
    text = CATEGORIES.replace("low: {ack: 2d, resolve: 7d}", "low: {ack: 2 days, resolve: 7d}")
    assert load(tmp_path, categories=text) == [
        "categories.yaml:10:9: deadlines.low.ack: '2 days' is not a duration such as 15m, 2h, 3d or 1d12h"
    ]


def test_category_needs_chinese_name(tmp_path: Path) -> None:
    text = CATEGORIES.replace("names: {zh-Hans: 水电气}", "names: {en: Utilities}")
    assert load(tmp_path, categories=text) == [
        "categories.yaml:2:3: categories.utilities: names needs a zh-Hans name"
    ]


def test_priority_out_of_range(tmp_path: Path) -> None:
    errors = load(tmp_path, water=RULE + "    priority: 5000\n")
    assert errors == [
        "water.yaml:5:5: rules[0].priority: Input should be less than or equal to 1000"
    ]


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert load(tmp_path, water="- just\n- a list\n") == [
        "water.yaml:1:1: -: a rule file must be a mapping of sections"
    ]


def test_every_error_is_listed_at_once(tmp_path: Path) -> None:
    text = (
        "rules:\n"
        "  - id: a\n    category: nope\n    keywords: [停水]\n"
        "  - id: b\n    category: utilities\n    keywords: []\n"
        "  - id: c\n    category: utilities\n    keywords: [x]\n    regex: ['(']\n"
    )
    errors = load(tmp_path, water=text)
    assert [e.split(": ")[0] + ": " + e.split(": ")[1] for e in errors] == [
        "water.yaml:3:5: rules[0].category",
        "water.yaml:7:5: rules[1].keywords",
        "water.yaml:11:13: rules[2].regex[0]",
    ]


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidRules) as caught:
        load_ruleset(tmp_path)
    assert str(caught.value) == f"{tmp_path}:1:1: -: no rule files (*.yaml) found"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidRules) as caught:
        load_ruleset(tmp_path / "missing")
    assert str(caught.value) == f"{tmp_path}/missing:1:1: -: not a directory"


def test_yaml_scalars_that_are_not_text_get_a_hint(tmp_path: Path) -> None:
    text = RULE.replace("keywords: [停水]", "keywords: [停水, no, 119]")
    assert load(tmp_path, water=text) == [
        "water.yaml:4:20: rules[0].keywords[1]: YAML read this as False, not text: put it in quotes",
        "water.yaml:4:24: rules[0].keywords[2]: YAML read this as 119, not text: put it in quotes",
    ]


def test_a_training_only_file_must_be_one_of_the_examples(tmp_path: Path) -> None:
    from bot.sources import load_ruleset as load

    every = "{ack: 1h, resolve: 1d}"
    (tmp_path / "rules.yaml").write_text(
        "categories:\n  noise: {names: {zh-Hans: 噪音}, start_tier: grid, severity: low}\n"
        f"deadlines: {{critical: {every}, high: {every}, normal: {every}, low: {every}}}\n"
        "examples: [a.jsonl]\ntraining_only: [b.jsonl]\n",
        encoding="utf-8",
    )
    (tmp_path / "a.jsonl").write_text('{"id": "1", "text": "好吵", "category": "noise"}\n')
    with pytest.raises(InvalidRules) as caught:
        load(tmp_path)
    assert any(
        (p.line, p.field) == (5, "training_only[0]")
        and p.message == "b.jsonl is not one of the examples files"
        for p in caught.value.problems
    ), caught.value.problems
