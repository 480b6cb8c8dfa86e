"""The held-out sets stay out of training: none of their texts is a labelled example."""

from __future__ import annotations

import json
from pathlib import Path

from bot.core.rules import RuleSet
from bot.core.text import normalise

HOLDOUT = Path(__file__).resolve().parent / "holdout"


def texts(path: Path) -> set[str]:
    return {
        normalise(json.loads(line)["text"])
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }


def test_no_held_out_text_is_a_training_example(ruleset: RuleSet) -> None:
    held = set().union(*(texts(p) for p in sorted(HOLDOUT.glob("*.jsonl"))))
    assert len(held) >= 480  # the sets are there and read
    examples = ruleset.examples  # every labelled example the rule files name
    trained = {normalise(e.text) for e in examples}
    assert len(trained) > 2000
    # Stock chatter ("收到", "👍👍👍", "晚安各位") is in every chat; anything longer is a message
    # someone wrote, and must not be in both.
    shared = {t for t in held & trained if len(t) > 6}
    assert not shared, sorted(shared)[:5]


def test_the_check_would_see_an_overlap(ruleset: RuleSet) -> None:
    example = next(iter(ruleset.examples))
    assert normalise(example.text) in {normalise(e.text) for e in ruleset.examples}
