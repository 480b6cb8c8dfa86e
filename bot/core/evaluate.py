"""Check rules against their own examples and score them on a labelled corpus."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.core.classify import classify
from bot.core.models import NONE_CATEGORY
from bot.core.rules import RuleSet


@dataclass(frozen=True)
class ExampleFailure:
    """A rule's example that the whole rule set classifies otherwise."""

    rule: str
    source: str
    line: int
    kind: str  # must_match | must_not_match
    text: str
    expected: str
    got: str

    def __str__(self) -> str:
        want = self.expected if self.kind == "must_match" else f"not {self.expected}"
        where = f"{self.source}:{self.line}: {self.rule}"
        return f"{where}: {self.kind} {self.text!r}: want {want}, got {self.got}"


def check_examples(ruleset: RuleSet) -> tuple[int, list[ExampleFailure]]:
    """Classify every rule's examples with the whole set; return (count, failures)."""
    failures = []
    count = 0
    for rule in ruleset.rules:
        for text in rule.must_match:
            count += 1
            got = category_of(text, ruleset)
            if got != rule.category:
                failures.append(
                    ExampleFailure(
                        rule.id, rule.source, rule.line, "must_match", text, rule.category, got
                    )
                )
        for text in rule.must_not_match:
            count += 1
            got = category_of(text, ruleset)
            if got == rule.category:
                failures.append(
                    ExampleFailure(
                        rule.id, rule.source, rule.line, "must_not_match", text, rule.category, got
                    )
                )
    return count, failures


def category_of(text: str, ruleset: RuleSet) -> str:
    """Return the category id of ``text``, ``none`` when it opens no ticket."""
    match = classify(text, ruleset)
    return match.category if match else NONE_CATEGORY


@dataclass(frozen=True)
class LabelledMessage:
    """One corpus line."""

    id: str
    text: str
    category: str
    urgent: bool = False


@dataclass(frozen=True)
class Prediction:
    """What the rules made of one labelled message."""

    item: LabelledMessage
    category: str
    urgent: bool


@dataclass(frozen=True)
class CategoryScore:
    """Precision, recall and F1 of one category."""

    category: str
    support: int
    predicted: int
    correct: int

    @property
    def precision(self) -> float:
        """Return correct / predicted (1.0 when nothing was predicted)."""
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        """Return correct / support (1.0 when the corpus has none)."""
        return self.correct / self.support if self.support else 1.0

    @property
    def f1(self) -> float:
        """Return the harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class Report:
    """Scores of a rule set on a labelled corpus."""

    total: int
    accuracy: float
    scores: tuple[CategoryScore, ...]
    macro_f1: float
    emergency_recall: float
    urgent_recall: float
    false_ticket_rate: float
    missed_rate: float
    start_tier_accuracy: float
    confusions: tuple[tuple[str, str, int], ...]
    errors: tuple[Prediction, ...] = field(repr=False)


def evaluate(items: Iterable[LabelledMessage], ruleset: RuleSet) -> Report:
    """Classify every labelled message and score the result.

    Macro-F1 averages the categories that occur in the corpus, ``none``
    excluded (it is scored by the false-ticket rate). Start-tier accuracy
    counts, over every message, a predicted start tier equal to the labelled
    one (no tier for ``none``).
    """
    predictions = []
    for item in items:
        match = classify(item.text, ruleset)
        category = match.category if match else NONE_CATEGORY
        predictions.append(Prediction(item, category, bool(match and match.urgent)))
    return score(predictions, ruleset)


def score(predictions: list[Prediction], ruleset: RuleSet) -> Report:
    """Return the report of a list of predictions."""
    gold = Counter(p.item.category for p in predictions)
    predicted = Counter(p.category for p in predictions)
    correct = Counter(p.category for p in predictions if p.category == p.item.category)
    labels = sorted(set(gold) | set(predicted))
    scores = tuple(CategoryScore(c, gold[c], predicted[c], correct[c]) for c in labels)
    in_corpus = [s for s in scores if s.support and s.category != NONE_CATEGORY]
    macro = sum(s.f1 for s in in_corpus) / len(in_corpus) if in_corpus else 0.0
    total = len(predictions)

    def rate(hits: int, of: int) -> float:
        return hits / of if of else 1.0

    urgent = [p for p in predictions if p.item.urgent]
    none_items = [p for p in predictions if p.item.category == NONE_CATEGORY]
    requests = [p for p in predictions if p.item.category != NONE_CATEGORY]
    tiers = _tiers(ruleset)
    confusions = Counter(
        (p.item.category, p.category) for p in predictions if p.category != p.item.category
    )
    return Report(
        total=total,
        accuracy=rate(sum(correct.values()), total),
        scores=scores,
        macro_f1=macro,
        emergency_recall=rate(correct["emergency"], gold["emergency"]),
        urgent_recall=rate(sum(p.urgent for p in urgent), len(urgent)),
        false_ticket_rate=rate(
            sum(p.category != NONE_CATEGORY for p in none_items), len(none_items)
        )
        if none_items
        else 0.0,
        missed_rate=rate(sum(p.category == NONE_CATEGORY for p in requests), len(requests))
        if requests
        else 0.0,
        start_tier_accuracy=rate(
            sum(tiers.get(p.category) == tiers.get(p.item.category) for p in predictions), total
        ),
        confusions=tuple((g, c, n) for (g, c), n in confusions.most_common()),
        errors=tuple(p for p in predictions if p.category != p.item.category),
    )


def _tiers(ruleset: RuleSet) -> Mapping[str, str | None]:
    tiers: dict[str, str | None] = {
        cid: c.start_tier.value for cid, c in ruleset.categories.items()
    }
    tiers[NONE_CATEGORY] = None
    return tiers
