"""Rule files: their schema, and a whole directory built into one immutable RuleSet.

A directory of YAML files, each a ``RuleFile``, merges into one RuleSet, or
fails with every problem found, each located as ``file:line:column: field``.
Keywords, veto words and negations are normalised here exactly as messages
are before matching, so an administrator may write them in either script.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, NamedTuple

import re2
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from bot.core.errors import InvalidRules, Problem
from bot.core.matcher import Matcher
from bot.core.models import NONE_CATEGORY, Lang, Severity, Tier, Visibility
from bot.core.text import normalise
from bot.core.yamldoc import Document

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (86400, 3600, 60, 1)


def parse_duration(value: Any) -> int:
    """Return seconds for ``90``, ``"15m"``, ``"2h"``, ``"3d"`` or ``"1d12h"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text such as 15m, 2h, 3d, 1d12h")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION_RE.match(str(value).strip())
        if not match or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration such as 15m, 2h, 3d or 1d12h")
        seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNITS, strict=True) if n)
    if seconds <= 0:
        raise ValueError("a duration must be longer than zero")
    return seconds


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "description": "seconds"},
                {"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"},
            ],
            "examples": ["15m", "2h", "3d", "1d12h"],
        }
    ),
]
Term = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\n\r]*\S[^\n\r]*$")]
Terms = Annotated[list[Term], Field(min_length=1)]
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleMode(StrEnum):
    """What a rule does beside the learned model."""

    FEATURE = "feature"  # evidence for the model and for explanations; decides only without one
    FORCE = "force"  # always this category, whatever the model says (danger words)
    NEVER = "never"  # a veto: no ticket and no danger flag (notices, drills, idioms)


class Clock(StrEnum):
    """What a category's deadlines count."""

    WALL = "wall"  # every hour of every day (the default)
    WORKING = "working"  # only working hours of working days (LIANHU_WORK_HOURS, _WORK_DAYS)


# Danger does not wait for Monday: these severities' deadlines always count wall-clock time.
WALL_ONLY = frozenset({Severity.CRITICAL, Severity.HIGH})


class DeadlineOverride(_Strict):
    """Replace one or both deadlines, in a tier or for a category."""

    ack: Duration | None = None
    resolve: Duration | None = None


class SeverityDeadlines(_Strict):
    """How long a tier has to acknowledge and to resolve a ticket of one severity."""

    ack: Duration
    resolve: Duration
    tiers: dict[Tier, DeadlineOverride] = {}

    @model_validator(mode="after")
    def _ack_before_resolve(self) -> SeverityDeadlines:
        if self.ack > self.resolve:
            raise ValueError("ack must not be later than resolve")
        return self


class Deadlines(_Strict):
    """Deadlines for every severity."""

    critical: SeverityDeadlines
    high: SeverityDeadlines
    normal: SeverityDeadlines
    low: SeverityDeadlines


class CategorySpec(_Strict):
    """What a category means for routing: where it starts, how urgent, who hears of it."""

    names: dict[Lang, Annotated[str, Field(min_length=1)]]
    description: str | None = None
    start_tier: Tier
    severity: Severity
    departments: list[Identifier] = []
    visibility: Visibility = Visibility.PUBLIC
    reply_template: Identifier = "ticket_opened"
    deadlines: DeadlineOverride | None = None
    clock: Clock = Clock.WALL

    @model_validator(mode="after")
    def _has_chinese_name(self) -> CategorySpec:
        if Lang.ZH_HANS not in self.names:
            raise ValueError("names needs a zh-Hans name")
        return self

    @field_validator("clock")
    @classmethod
    def _danger_on_the_wall_clock(cls, clock: Clock, info: ValidationInfo) -> Clock:
        severity = info.data.get("severity")  # absent when it was itself invalid
        if clock is Clock.WORKING and severity in WALL_ONLY:
            raise ValueError(
                f"working is for normal and low severity only; a {severity.value} "
                "category's deadlines count every hour"
            )
        return clock


class RuleSpec(_Strict):
    """One rule: when it fires, and examples that prove it."""

    id: RuleId
    category: Annotated[str, Field(min_length=1)]
    description: str | None = None
    mode: RuleMode = RuleMode.FEATURE
    priority: Annotated[int, Field(ge=0, le=1000)] = 50
    urgent: bool = False
    keywords: Terms | None = None
    all_of: list[Terms] = []
    regex: list[Annotated[str, Field(min_length=1)]] = []
    veto: list[Term] = []
    must_match: list[str] = []
    must_not_match: list[str] = []

    @model_validator(mode="after")
    def _has_trigger(self) -> RuleSpec:
        if self.keywords is None and not self.regex:
            raise ValueError("a rule needs keywords or regex")
        if self.mode is RuleMode.NEVER and self.category != NONE_CATEGORY:
            raise ValueError("a never rule vetoes tickets: its category must be none")
        if self.mode is RuleMode.FORCE and self.category == NONE_CATEGORY:
            raise ValueError("a force rule names the category it forces, not none")
        return self


ExamplePath = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*\.jsonl$", max_length=200)
]


class ExampleSpec(_Strict):
    """One labelled message of an examples file (JSON lines)."""

    id: Annotated[str, Field(min_length=1, max_length=100)]
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    category: Annotated[str, Field(min_length=1)]
    variant: str | None = None
    urgent: bool = False
    tags: list[str] = []
    set: str | None = Field(default=None, description="a part of the corpus (regression: heldout)")


class RuleFile(_Strict):
    """One YAML file of the rules directory; every section is optional."""

    categories: dict[Identifier, CategorySpec] = {}
    deadlines: Deadlines | None = None
    negations: list[Term] = Field(
        default=[],
        description="Words that cancel a keyword right after them: 不是停水 is no outage.",
    )
    negation_exceptions: list[Term] = Field(
        default=[],
        description="Phrases in which a negation asks rather than denies (是不是, 有冇).",
    )
    force_vetoes: list[Term] = Field(
        default=[],
        description=(
            "Words that stop every force rail, added to each force rule's own veto: what-ifs,"
            " notices and drills, an emergency already over (假如, 通知, 没有生命危险). The model"
            " still decides such a message, and its danger flag still fires."
        ),
    )
    rules: list[RuleSpec] = []
    examples: list[ExamplePath] = Field(
        default=[],
        description=(
            "Files of labelled messages (JSON lines: id, text, category[, variant, urgent, tags])"
            " relative to the rules directory; the file name is the corpus name."
        ),
    )
    training_only: list[ExamplePath] = Field(
        default=[],
        description=(
            "Examples files (also listed under examples) the model learns from but that are not"
            " samples of real chat (edge cases written to cover the rails): never held out in"
            " cross-validation, so they neither score the model nor choose its thresholds."
        ),
    )


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a rule file, for editors."""
    schema = RuleFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Lianhu routing rules file"
    return schema


@dataclass(frozen=True)
class Category:
    """A category as the rest of the bot sees it."""

    id: str
    names: Mapping[Lang, str]
    start_tier: Tier
    severity: Severity
    departments: tuple[str, ...]
    visibility: Visibility
    reply_template: str
    deadlines: DeadlineOverride | None
    clock: Clock = Clock.WALL

    def name(self, lang: Lang = Lang.ZH_HANS) -> str:
        """Return the display name in ``lang``, falling back to Simplified Chinese."""
        return self.names.get(lang) or self.names[Lang.ZH_HANS]


@dataclass(frozen=True)
class Rule:
    """A validated rule, its terms normalised and its regexes compiled."""

    id: str
    category: str
    priority: int
    urgent: bool
    keywords: tuple[str, ...]
    all_of: tuple[tuple[str, ...], ...]
    regex: tuple[Any, ...]
    veto: tuple[str, ...]
    must_match: tuple[str, ...]
    must_not_match: tuple[str, ...]
    source: str
    line: int
    mode: RuleMode = RuleMode.FEATURE


@dataclass(frozen=True)
class Example:
    """A labelled message the classifier learns from; ``corpus`` names its file."""

    id: str
    text: str
    category: str
    corpus: str
    urgent: bool = False
    measured: bool = True  # False: a training-only corpus, never held out (see RuleFile)


class Outcome(NamedTuple):
    """What a rule decides when it wins: all of a Match but the score and the terms."""

    category: str
    rule: str
    severity: Severity
    urgent: bool
    start_tier: Tier


@dataclass(frozen=True)
class RuleSet:
    """Every category, deadline and rule of one directory, ready to classify with."""

    categories: Mapping[str, Category]
    rules: tuple[Rule, ...]
    deadlines: Deadlines
    negations: tuple[str, ...]
    negation_exceptions: tuple[str, ...]
    matcher: Matcher = field(repr=False)
    regex_rules: frozenset[int] = frozenset()  # indexes of the rules with regexes
    severity_ranks: tuple[int, ...] = ()  # per rule: its category's severity rank (none: 0)
    priorities: tuple[int, ...] = ()  # per rule: its priority
    outcomes: tuple[Outcome | None, ...] = ()  # per rule: what it decides (None: category none)
    examples: tuple[Example, ...] = ()
    digest: str = ""  # a hash of every rule and example file: the learned model's cache key

    def deadline(self, category: str, tier: Tier) -> tuple[int, int]:
        """Return (ack, resolve) seconds for a ticket of ``category`` at ``tier``."""
        cat = self.categories[category]
        base = getattr(self.deadlines, cat.severity.value)
        ack, resolve = base.ack, base.resolve
        for override in (cat.deadlines, base.tiers.get(tier)):
            if override is not None:
                ack = override.ack or ack
                resolve = override.resolve or resolve
        return ack, max(ack, resolve)


def build_ruleset(
    documents: Sequence[Document],
    where: str = "routing_rules",
    example_files: Mapping[str, str | None] | None = None,
    digest: str = "",
) -> RuleSet:
    """Validate and merge parsed rule files; raise InvalidRules listing every problem.

    ``example_files`` maps each examples path a file names (as written) to its text, or
    None when it could not be read; the shell reads them (see ``example_paths``).
    """
    problems: list[Problem] = []
    categories: dict[str, Category] = {}
    deadlines: Deadlines | None = None
    deadlines_seen = False
    negations: list[str] = []
    exceptions: list[str] = []
    force_vetoes: list[str] = []
    specs: list[tuple[Document, int, RuleSpec]] = []
    seen_rules: dict[str, str] = {}
    example_refs: list[tuple[Document, int, str]] = []
    training_only: set[str] = set()
    for doc in documents:
        parts = _validate_file(doc, problems)
        for cid, spec in parts.categories:
            if cid == NONE_CATEGORY:
                problems.append(doc.problem(("categories", cid), "'none' is reserved"))
            elif cid in categories:
                problems.append(doc.problem(("categories", cid), f"duplicate category {cid!r}"))
            else:
                categories[cid] = Category(
                    cid, MappingProxyType(dict(spec.names)), spec.start_tier, spec.severity,
                    tuple(spec.departments), spec.visibility, spec.reply_template, spec.deadlines,
                    spec.clock,
                )  # fmt: skip
        if parts.has_deadlines:
            if deadlines_seen:
                problems.append(doc.problem(("deadlines",), "deadlines are defined twice"))
            deadlines_seen = True
            deadlines = parts.deadlines or deadlines
        negations.extend(_terms(doc, ("negations",), parts.negations, problems))
        exceptions.extend(_terms(doc, ("negation_exceptions",), parts.exceptions, problems))
        force_vetoes.extend(_terms(doc, ("force_vetoes",), parts.force_vetoes, problems))
        example_refs.extend((doc, i, path) for i, path in enumerate(parts.examples))
        training_only.update(parts.training_only)
        for i, spec_rule in parts.rules:
            if spec_rule.id in seen_rules:
                message = (
                    f"duplicate rule id {spec_rule.id!r} (first in {seen_rules[spec_rule.id]})"
                )
                problems.append(doc.problem(("rules", i, "id"), message))
                continue
            seen_rules[spec_rule.id] = doc.source
            specs.append((doc, i, spec_rule))

    if documents and not deadlines_seen:
        problems.append(Problem(where, 1, 1, "deadlines", "no file defines deadlines"))
    rules = [_compile_rule(doc, i, spec, categories, problems) for doc, i, spec in specs]
    examples = _examples(example_refs, example_files or {}, categories, problems, training_only)
    if problems:
        raise InvalidRules(problems)
    if deadlines is None:
        raise InvalidRules([Problem(where, 1, 1, "", "no rule files found")])
    compiled = tuple(
        _with_vetoes(r, force_vetoes) if r.mode is RuleMode.FORCE else r
        for r in rules
        if r is not None
    )
    negation_terms = tuple(dict.fromkeys(negations))
    exception_terms = tuple(dict.fromkeys(exceptions))
    return RuleSet(
        categories=MappingProxyType(categories),
        rules=compiled,
        deadlines=deadlines,
        negations=negation_terms,
        negation_exceptions=exception_terms,
        matcher=Matcher(compiled, negation_terms, exception_terms),
        regex_rules=frozenset(i for i, rule in enumerate(compiled) if rule.regex),
        severity_ranks=tuple(
            categories[r.category].severity.rank if r.category in categories else 0
            for r in compiled
        ),
        priorities=tuple(r.priority for r in compiled),
        outcomes=tuple(_outcome(r, categories) for r in compiled),
        examples=examples,
        digest=digest,
    )


def example_paths(document: Document) -> list[str]:
    """Return the examples paths a parsed rule file names (unvalidated), for the shell."""
    data = document.data
    paths = data.get("examples", []) if isinstance(data, dict) else []
    return [p for p in paths if isinstance(p, str)] if isinstance(paths, list) else []


def corpus_name(path: str) -> str:
    """Return the corpus name of an examples path: its file name without .jsonl."""
    return posixpath.basename(path).removesuffix(".jsonl")


_EXAMPLE = TypeAdapter(ExampleSpec)


def _examples(
    refs: Sequence[tuple[Document, int, str]],
    texts: Mapping[str, str | None],
    categories: Mapping[str, Category],
    problems: list[Problem],
    training_only: Collection[str] = (),
) -> tuple[Example, ...]:
    """Parse every named examples file; each bad line is a problem at file:line."""
    out: list[Example] = []
    corpora: dict[str, str] = {}
    for doc, index, path in refs:
        corpus = corpus_name(path)
        if corpus in corpora:
            message = f"corpus {corpus!r} is named twice (first {corpora[corpus]})"
            problems.append(doc.problem(("examples", index), message))
            continue
        corpora[corpus] = path
        text = texts.get(path)
        label = posixpath.join(posixpath.dirname(doc.source), path)
        if text is None:
            problems.append(doc.problem(("examples", index), f"cannot read {label}"))
            continue
        seen: set[str] = set()
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                spec = _EXAMPLE.validate_python(json.loads(line))
            except ValueError as exc:
                for where, message in _line_errors(exc):
                    problems.append(Problem(label, number, 1, where, message))
                continue
            if spec.category != NONE_CATEGORY and spec.category not in categories:
                problems.append(
                    Problem(label, number, 1, "category", f"unknown category {spec.category!r}")
                )
            elif spec.id in seen:
                problems.append(Problem(label, number, 1, "id", f"duplicate id {spec.id!r}"))
            else:
                seen.add(spec.id)
                measured = path not in training_only
                out.append(
                    Example(spec.id, spec.text, spec.category, corpus, spec.urgent, measured)
                )
    return tuple(out)


def _line_errors(exc: ValueError) -> list[tuple[str, str]]:
    """Return (field, message) pairs for a line that is not a valid example."""
    if isinstance(exc, ValidationError):
        return [
            (".".join(str(p) for p in e["loc"]), str(e["msg"]))
            for e in exc.errors(include_url=False)
        ]
    return [("", f"not JSON: {exc}")]


def _outcome(rule: Rule, categories: Mapping[str, Category]) -> Outcome | None:
    """Return what a rule decides when it wins, or None for a rule of category none."""
    category = categories.get(rule.category)
    if category is None:
        return None
    urgent = rule.urgent or category.severity is Severity.CRITICAL
    return Outcome(rule.category, rule.id, category.severity, urgent, category.start_tier)


@dataclass
class _FileParts:
    """The valid parts of one rule file."""

    categories: list[tuple[str, CategorySpec]] = field(default_factory=list)
    deadlines: Deadlines | None = None
    has_deadlines: bool = False
    negations: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    force_vetoes: list[str] = field(default_factory=list)
    rules: list[tuple[int, RuleSpec]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    training_only: list[str] = field(default_factory=list)


_CATEGORY_ID = TypeAdapter(Identifier)


def _validate_file(doc: Document, problems: list[Problem]) -> _FileParts:
    """Validate one file section by section and rule by rule.

    One bad rule must not hide the errors of the others, so each category and
    each rule is validated on its own; what is valid is kept for the checks
    that span files (duplicates, unknown categories).
    """
    parts = _FileParts()
    data = doc.data
    if not isinstance(data, dict):
        problems.append(doc.problem((), "a rule file must be a mapping of sections"))
        return parts
    rest = {k: v for k, v in data.items() if k not in ("categories", "rules")}
    try:
        head = RuleFile.model_validate(rest)
    except ValidationError as exc:
        problems.extend(doc.validation_problems(exc))
        head = None
    parts.has_deadlines = "deadlines" in data
    if head is not None:
        parts.deadlines = head.deadlines
        parts.negations = list(head.negations)
        parts.exceptions = list(head.negation_exceptions)
        parts.force_vetoes = list(head.force_vetoes)
        parts.examples = list(head.examples)
        parts.training_only = list(head.training_only)
        for i, path in enumerate(head.training_only):
            if path not in head.examples:
                problems.append(
                    doc.problem(("training_only", i), f"{path} is not one of the examples files")
                )
    categories = data.get("categories", {})
    if not isinstance(categories, dict):
        problems.append(
            doc.problem(("categories",), "categories must be a mapping of id to category")
        )
        categories = {}
    for cid, raw in categories.items():
        try:
            parts.categories.append(
                (_CATEGORY_ID.validate_python(cid), CategorySpec.model_validate(raw))
            )
        except ValidationError as exc:
            problems.extend(doc.validation_problems(exc, ("categories", cid)))
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        problems.append(doc.problem(("rules",), "rules must be a list of rules"))
        rules = []
    for i, raw in enumerate(rules):
        try:
            parts.rules.append((i, RuleSpec.model_validate(raw)))
        except ValidationError as exc:
            problems.extend(doc.validation_problems(exc, ("rules", i)))
    return parts


def _compile_rule(
    doc: Document, index: int, spec: RuleSpec, categories: Mapping[str, Category],
    problems: list[Problem],
) -> Rule | None:  # fmt: skip
    at = ("rules", index)
    before = len(problems)
    if spec.category != NONE_CATEGORY and spec.category not in categories:
        problems.append(doc.problem((*at, "category"), f"unknown category {spec.category!r}"))
    keywords = _terms(doc, (*at, "keywords"), spec.keywords or [], problems)
    all_of = tuple(
        tuple(_terms(doc, (*at, "all_of", g), group, problems))
        for g, group in enumerate(spec.all_of)
    )
    veto = _terms(doc, (*at, "veto"), spec.veto, problems)
    regexes = [_regex(doc, (*at, "regex", i), rx, problems) for i, rx in enumerate(spec.regex)]
    if len(problems) > before:
        return None
    line, _ = doc.locate(at)
    return Rule(
        id=spec.id, category=spec.category, priority=spec.priority, urgent=spec.urgent,
        keywords=tuple(dict.fromkeys(keywords)), all_of=all_of,
        regex=tuple(r for r in regexes if r is not None), veto=tuple(dict.fromkeys(veto)),
        must_match=tuple(spec.must_match), must_not_match=tuple(spec.must_not_match),
        source=doc.source, line=line, mode=spec.mode,
    )  # fmt: skip


def _with_vetoes(rule: Rule, vetoes: Sequence[str]) -> Rule:
    return replace(rule, veto=tuple(dict.fromkeys((*rule.veto, *vetoes))))


def _terms(
    doc: Document, at: tuple[str | int, ...], terms: Sequence[str], problems: list[Problem]
) -> list[str]:
    out = []
    for i, term in enumerate(terms):
        normal = normalise(term)
        if not normal:
            problems.append(doc.problem((*at, i), f"{term!r} is empty once normalised"))
        else:
            out.append(normal)
    return out


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _regex(
    doc: Document, at: tuple[str | int, ...], pattern: str, problems: list[Problem]
) -> Any | None:
    # RE2 runs in time linear in the input and cannot backtrack, so no pattern
    # can be catastrophic; it refuses backreferences and lookarounds instead.
    try:
        compiled = re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        problems.append(doc.problem(at, f"invalid regular expression (RE2 syntax): {detail}"))
        return None
    if compiled.search("") is not None:
        problems.append(doc.problem(at, "regular expression matches empty text, so every message"))
        return None
    return compiled
