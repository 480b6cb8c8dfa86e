"""The classifier's semantics on a small rule set written here, and bad input on the real one."""

from __future__ import annotations

import random

import pytest

from bot.core.classify import classify, explain, term_weight
from bot.core.models import Severity, Tier
from bot.core.rules import RuleSet, build_ruleset
from bot.core.yamldoc import parse

RULES = """\
categories:
  utilities: {names: {zh-Hans: 水电气}, start_tier: village, severity: normal}
  emergency: {names: {zh-Hans: 紧急险情}, start_tier: street, severity: critical}
  property_management: {names: {zh-Hans: 物业}, start_tier: village, severity: normal}
  noise: {names: {zh-Hans: 噪音}, start_tier: grid, severity: low}
deadlines:
  critical: {ack: 15m, resolve: 2h}
  high: {ack: 2h, resolve: 24h}
  normal: {ack: 24h, resolve: 3d, tiers: {street: {ack: 8h}}}
  low: {ack: 2d, resolve: 7d}
negations: [不是, 冇]
negation_exceptions: [是不是, 有冇]
rules:
  - id: water
    category: utilities
    keywords: [停水, 没水, no water]
    veto: [停水通知, 停水演练]
  - id: fire
    category: emergency
    priority: 90
    keywords: [着火, 火灾]
    veto: [消防演练]
  - id: lift
    category: property_management
    keywords: [电梯, 升降机]
    all_of: [[坏, 困人]]
  - id: meter
    category: utilities
    regex: ['电表.{0,4}(乱跳|不准)']
  - id: noise
    category: noise
    keywords: [吵, 嘈]
  - id: thanks
    category: none
    priority: 70
    keywords: [修好了, 搞掂]
    veto: [又坏]
"""


@pytest.fixture(scope="module")
def small() -> RuleSet:
    doc, problems = parse("small.yaml", RULES)
    assert doc is not None and not problems
    return build_ruleset([doc])


def category(text: str, ruleset: RuleSet) -> str:
    match = classify(text, ruleset)
    return match.category if match else "none"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("又停水了", "utilities"),
        ("又停水了", "utilities"),
        ("樓上樓下都沒水", "utilities"),  # Traditional input meets Simplified keywords
        ("NO WATER since 8am", "utilities"),
        ("收到停水通知，明天停水", "none"),  # veto
        ("明天停水演练", "none"),
        ("不是停水，是水压低", "none"),  # negation
        ("冇停水啊", "none"),
        ("是不是停水了？", "utilities"),  # a question is no negation
        ("有冇停水啊", "utilities"),
        ("不是，停水了", "utilities"),  # the negation belongs to another clause
        ("電梯壞咗", "property_management"),  # keyword and all-of group
        ("电梯好新", "none"),  # keyword without its all-of group
        ("电表最近乱跳", "utilities"),  # regex
        ("着火了，好大的烟", "emergency"),
        ("今晚消防演练，着火是假的", "none"),
        ("谢谢，电梯修好了", "none"),  # a none rule wins over a category
        ("电梯修好了又坏了", "property_management"),  # its veto lets the problem through
    ],
)
def test_semantics(small: RuleSet, text: str, expected: str) -> None:
    assert category(text, small) == expected


def test_match_fields(small: RuleSet) -> None:
    match = classify("着火了", small)
    assert match is not None
    assert (match.category, match.rule, match.severity, match.start_tier) == (
        "emergency", "fire", Severity.CRITICAL, Tier.STREET,
    )  # fmt: skip
    assert match.urgent  # every critical category is urgent
    assert match.matched == ("着火",)
    assert match.score == 90 + term_weight("着火")


def test_higher_score_wins_and_ties_go_to_severity(small: RuleSet) -> None:
    # Both fire; the emergency rule has the higher priority.
    assert category("着火了，停水了", small) == "emergency"
    # Same priority and evidence: noise (low) vs water (normal) -> the more severe.
    match = classify("吵，没水", small)
    assert match is not None and match.category == "utilities"


def test_more_evidence_raises_the_score(small: RuleSet) -> None:
    one = classify("停水", small)
    two = classify("停水，没水", small)
    assert one is not None and two is not None
    assert two.score == one.score + term_weight("没水")


def test_term_weight() -> None:
    assert term_weight("停水") == 2
    assert term_weight("no water") == 4
    assert term_weight("一二三四五六七八") == 6


def test_explain_shows_every_candidate_and_the_reason(small: RuleSet) -> None:
    trace = explain("不是停水，系电梯坏咗，消防演练着火", small)
    assert trace.normalised == "不是停水,系电梯坏咗,消防演练着火"
    by_rule = {c.rule: c for c in trace.candidates}
    assert by_rule["water"].negated == ("停水",)
    assert by_rule["water"].verdict == "no keyword (negated)"
    assert by_rule["fire"].vetoes == ("消防演练",)
    assert by_rule["fire"].verdict == "vetoed by 消防演练"
    assert by_rule["lift"].fired and by_rule["lift"].groups == (("坏",),)
    assert trace.winner is by_rule["lift"]
    assert trace.match is not None and trace.match.category == "property_management"
    assert trace.reason == f"lift has the highest score ({by_rule['lift'].score})"


def test_explain_agrees_with_classify(small: RuleSet) -> None:
    for text in ["又停水了", "着火了，停水了", "吵，没水", "谢谢，电梯修好了", "电表乱跳", "hello"]:
        trace = explain(text, small)
        assert trace.match == classify(text, small)


def test_explain_of_a_none_rule(small: RuleSet) -> None:
    trace = explain("谢谢，电梯修好了", small)
    assert trace.match is None
    assert trace.reason.endswith("its category is none, so no ticket")


def test_explain_missing_group(small: RuleSet) -> None:
    trace = explain("电梯好新", small)
    assert trace.winner is None
    assert trace.candidates[0].verdict == "all_of group 1 not found"
    assert trace.reason == "no rule fired"


BAD_INPUTS = [
    "",
    " ",
    "😀😀😀🙏🔥",
    "\x00\x01\x02\x1b[31m\x7f",
    "\u200b\u200d\ufeff",
    "停" * 100_000,
    "水管爆了" * 25_000,  # 100 KB of text that matches
    "русский текст and English and 中文 and العربية and 日本語のテキスト",
    "\ud83d",  # a lone surrogate
    "\n\n\n",
    "a" * 10_000 + "着火",
]


@pytest.mark.parametrize("text", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_never_crashes(ruleset: RuleSet, text: str) -> None:
    match = classify(text, ruleset)
    assert match is None or match.category in ruleset.categories
    trace = explain(text, ruleset)
    assert trace.match == match


def test_empty_and_emoji_are_none(ruleset: RuleSet) -> None:
    for text in ["", "   ", "😀😀😀🙏", "👍👍👍", "[图片]", "\x00\x01"]:
        assert classify(text, ruleset) is None


def test_random_text_never_crashes(ruleset: RuleSet) -> None:
    rng = random.Random(42)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    alphabet += ["\x00", "\u200b", "\ufeff", "🔥", "！", "，"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        match = classify(text, ruleset)
        assert match is None or match.category in ruleset.categories
