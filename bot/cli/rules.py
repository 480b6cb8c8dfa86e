"""``lianhu rules check | test | explain | schema``; ``learn | replay`` in bot/cli/learning.py."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.classifier.training import figures
from bot.cli import learning
from bot.cli.classify import ready_engine, verdict_json
from bot.cli.common import default_rules_dir, print_table, report_invalid, stdout
from bot.core.classify import Trace, explain
from bot.core.errors import InvalidRules
from bot.core.evaluate import LabelledMessage, Report, check_examples, evaluate
from bot.core.rules import RuleSet, json_schema
from bot.core.triage import rails
from bot.sources import load_ruleset, rule_files


def register(commands: Any) -> None:
    """Add ``rules`` and its subcommands."""
    parser = commands.add_parser("rules", help="validate, test and explain the routing rules")
    sub = parser.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)

    check = sub.add_parser("check", help="validate a rules directory (exit 1 with every error)")
    check.add_argument("dir", nargs="?", type=Path, default=None)
    check.set_defaults(func=cmd_check)

    test = sub.add_parser("test", help="run every rule's examples, and score a labelled corpus")
    test.add_argument("dir", nargs="?", type=Path, default=None)
    test.add_argument("--corpus", type=Path, help="JSON lines with id, text, category[, urgent]")
    test.add_argument("--json", action="store_true", help="print one JSON report")
    test.add_argument("--errors", action="store_true", help="list every misclassified message")
    test.add_argument(
        "--rules-only", action="store_true", help="skip the model's cross-validated figures"
    )
    test.set_defaults(func=cmd_test)

    why = sub.add_parser("explain", help="show how a message is classified, rule by rule")
    why.add_argument("text")
    why.add_argument("--dir", type=Path, default=None)
    why.add_argument("--json", action="store_true")
    why.add_argument("--rules-only", action="store_true", help="the rules' trace alone")
    why.set_defaults(func=cmd_explain)

    schema = sub.add_parser("schema", help="print the JSON Schema of a rule file")
    schema.set_defaults(func=cmd_schema)

    embed = sub.add_parser(
        "embed", help="store the sentence embeddings of every labelled example beside them"
    )
    embed.add_argument("dir", nargs="?", type=Path, default=None)
    embed.set_defaults(func=cmd_embed)
    learning.register(sub)


def _load(directory: Path | None) -> RuleSet:
    return load_ruleset(directory or default_rules_dir())


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the rules directory."""
    directory = args.dir or default_rules_dir()
    try:
        ruleset = _load(directory)
    except InvalidRules as exc:
        return report_invalid(exc, str(directory))
    files = len(rule_files(directory))
    print(
        f"{directory}: OK: {files} files, {len(ruleset.categories)} categories, "
        f"{len(ruleset.rules)} rules, {ruleset.matcher.size} terms"
    )
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Run the examples and, given a corpus, print the scores."""
    directory = args.dir or default_rules_dir()
    try:
        ruleset = _load(directory)
    except InvalidRules as exc:
        return report_invalid(exc, str(directory))
    count, failures = check_examples(ruleset)
    report = None
    if args.corpus:
        try:
            items = read_corpus(args.corpus)
        except (OSError, ValueError) as exc:
            print(f"{args.corpus}: {exc}", file=sys.stderr)
            return 2
        report = evaluate(items, ruleset)
    cv = None
    on_corpus = None
    if not args.rules_only and ruleset.examples:
        engine = ready_engine(ruleset, False)
        try:
            if engine.model is not None:
                cv = {"thresholds": vars(engine.model.thresholds), "gate": vars(engine.model.gate),
                      **engine.model.meta}  # fmt: skip
                if args.corpus:  # the bot's own decisions on the corpus, as it would make them
                    verdicts = engine.classify_many([i.text for i in items])
                    on_corpus = figures([i.category for i in items], verdicts)
        finally:
            engine.close()
    if args.json:
        out: dict[str, Any] = {
            "examples": {"count": count, "failures": [vars(f) for f in failures]},
        }
        if report is not None:
            out["corpus"] = report_json(report)
        if cv is not None:
            out["model"] = cv
        if on_corpus is not None:
            out["model_on_corpus"] = on_corpus
        print(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        for failure in failures:
            print(f"FAIL {failure}")
        print(f"examples: {count - len(failures)}/{count} pass")
        if report is not None:
            print_report(report, show_errors=args.errors)
        if cv is not None:
            print_cv(cv)
        if on_corpus is not None:
            print_table(
                f"the model on {args.corpus} (the bot's decisions, rails included; "
                "macro-F1 of the best guess)",
                ("corpus", *(title for _, title in CV_COLUMNS if _ in on_corpus)),
                [(str(args.corpus), *(str(on_corpus[k]) for k, _ in CV_COLUMNS if k in on_corpus))],
            )
    return 1 if failures else 0


CV_COLUMNS = (
    ("messages", "messages"),
    ("macro_f1", "macro-F1"),
    ("emergency_recall", "emergency recall"),
    ("emergency_recall_with_danger", "with danger flag"),
    ("false_ticket_rate", "false tickets on none"),
    ("ask_rate", "ask rate"),
    ("flags_per_100", "flags per 100"),
    ("extra_flags_per_100", "flags without an emergency ticket"),
    ("embedded", "embedded"),
)

CV_TABLES = (
    ("cv", "model, leave-one-corpus-out cross-validation (rails included)"),
    ("cv_model_alone", "the model alone (no rails), same folds"),
    ("cv_without_cascade", "every text embedded (no cascade), rails included"),
)


def print_cv(cv: dict[str, Any]) -> None:
    """Print the model's leave-one-corpus-out figures, one row per held-out corpus."""
    for key, title in CV_TABLES:
        figures = cv.get(key)
        if not figures:
            continue
        keys = [k for k, _ in CV_COLUMNS if any(k in row for row in figures.values())]
        columns = ("held-out corpus", *(t for k, t in CV_COLUMNS if k in keys))
        print_table(
            title,
            columns,
            [
                (corpus, *(str(figures[corpus].get(k, "")) for k in keys))
                for corpus in sorted(figures, key=lambda c: (c == "all", c))
            ],  # all last
            right=frozenset(columns[1:]),
        )
    thresholds, gate = cv.get("thresholds", {}), cv.get("gate", {})
    stdout().print(
        f"thresholds: danger p(emergency) >= {thresholds.get('danger')}, "
        f"ask below {thresholds.get('ask')} or when p(none) >= {thresholds.get('doubt')}"
    )

    if gate and gate.get("confident", 2) <= 1:
        stdout().print(
            f"cascade: the TF-IDF model answers alone when its top probability >= "
            f"{gate.get('confident')} and p(emergency) < {gate.get('emergency')}"
        )


def cmd_explain(args: argparse.Namespace) -> int:
    """Explain how one message is classified."""
    directory = args.dir or default_rules_dir()
    try:
        ruleset = _load(directory)
    except InvalidRules as exc:
        return report_invalid(exc, str(directory))
    trace = explain(args.text, ruleset)
    model: dict[str, Any] | None = None
    if not args.rules_only:
        engine = ready_engine(ruleset, False)
        verdict = engine.classify_many([args.text])[0]
        model = {
            "verdict": verdict_json(verdict),
            "top": [{"category": c, "p": round(p, 4)} for c, p in verdict.top],
            "rails": list(verdict.rails),
            "feature_rules": list(rails(args.text, ruleset).features),
            "nearest": [
                {"similarity": round(s, 4), "category": c, "text": t}
                for s, c, t in engine.nearest(args.text)
            ],
        }
        engine.close()
    if args.json:
        print(json.dumps({**trace_json(trace), "model": model}, ensure_ascii=False, indent=2))
    else:
        print_trace(trace)
        if model is not None:
            print_model(model)
    return 0


def print_model(model: dict[str, Any]) -> None:
    """Print what the model and the rails decided, and the nearest labelled examples."""
    console = stdout()
    v = model["verdict"]
    console.print(
        f"decision:   {v['category']} ({v['action']}, danger {v['danger']}, from {v['source']})",
        markup=False,
    )
    top = ", ".join(f"{t['category']} {t['p']:.3f}" for t in model["top"]) or "(no model)"
    console.print(f"model top:  {top}", markup=False)
    console.print(f"rails:      {' '.join(model['rails']) or '-'}", markup=False)
    console.print(f"evidence:   {' '.join(model['feature_rules']) or '-'}", markup=False)
    for n in model["nearest"]:
        console.print(
            f"nearest:    {n['similarity']:.3f} {n['category']}: {n['text']}", markup=False
        )


def cmd_embed(args: argparse.Namespace) -> int:
    """Write examples/e5-small.npz: the embeddings of every example the rules name.

    Shipped with the rules, it spares every new installation from embedding the examples
    before its first model (minutes on a small machine). Only the examples' vectors are
    kept, so removed examples leave the file too.
    """
    from bot.classifier.embedding import (
        E5Embedder,
        EmbeddingCache,
        EmbeddingUnavailable,
        text_key,
    )
    from bot.core.text import normalise

    directory = args.dir or default_rules_dir()
    try:
        ruleset = _load(directory)
    except InvalidRules as exc:
        return report_invalid(exc, "rules")
    try:
        embedder = E5Embedder()
    except EmbeddingUnavailable as exc:
        print(f"rules embed: {exc}", file=sys.stderr)
        return 1
    seed = directory / "examples" / "e5-small.npz"
    cache = EmbeddingCache(None, [seed])
    before = len(cache)
    texts = [normalise(e.text) for e in ruleset.examples]
    cache.vectors(embedder, texts)
    keys = sorted({text_key(embedder.name, t) for t in texts})
    cache.save(only=keys, path=seed)
    print(f"{seed}: {len(keys)} examples ({len(cache) - before} embedded now)")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of a rule file."""
    print(json.dumps(json_schema(), ensure_ascii=False, indent=2))
    return 0


def read_corpus(path: Path) -> list[LabelledMessage]:
    """Read a JSON-lines corpus; raise ValueError naming the first bad line."""
    items = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                items.append(
                    LabelledMessage(
                        str(row.get("id", number)),
                        str(row["text"]),
                        str(row["category"]),
                        bool(row.get("urgent", False)),
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"line {number}: not a labelled message ({exc})") from None
    return items


def report_json(report: Report) -> dict[str, Any]:
    """Return the corpus report as plain JSON data."""
    return {
        "total": report.total,
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "emergency_recall": round(report.emergency_recall, 4),
        "urgent_recall": round(report.urgent_recall, 4),
        "false_ticket_rate": round(report.false_ticket_rate, 4),
        "missed_rate": round(report.missed_rate, 4),
        "start_tier_accuracy": round(report.start_tier_accuracy, 4),
        "categories": {
            s.category: {
                "support": s.support,
                "predicted": s.predicted,
                "precision": round(s.precision, 4),
                "recall": round(s.recall, 4),
                "f1": round(s.f1, 4),
            }
            for s in report.scores
        },
        "confusions": [{"gold": g, "predicted": p, "count": n} for g, p, n in report.confusions],
        "errors": [
            {"id": e.item.id, "text": e.item.text, "gold": e.item.category, "predicted": e.category}
            for e in report.errors
        ],
    }


def print_report(report: Report, show_errors: bool) -> None:
    """Print the corpus report as tables."""
    console = stdout()
    columns = ("category", "support", "predicted", "precision", "recall", "F1")
    print_table(
        f"corpus: {report.total} messages",
        columns,
        [
            (s.category, str(s.support), str(s.predicted),
             f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}")
            for s in report.scores
        ],
        right=frozenset(columns[1:]),
    )  # fmt: skip
    if report.confusions:
        print_table(
            "confusions (labelled -> predicted)",
            ("labelled", "predicted", "count"),
            [(gold, got, str(n)) for gold, got, n in report.confusions[:15]],
            right=frozenset({"count"}),
        )
    summary = [
        ("macro-F1", report.macro_f1),
        ("accuracy", report.accuracy),
        ("emergency recall", report.emergency_recall),
        ("urgent recall", report.urgent_recall),
        ("false-ticket rate on none", report.false_ticket_rate),
        ("missed requests (labelled, predicted none)", report.missed_rate),
        ("start-tier accuracy", report.start_tier_accuracy),
    ]
    for name, value in summary:
        console.print(f"{name}: {value:.4f}")
    if show_errors:  # tab-separated, for grep and cut
        for e in report.errors:
            print(f"{e.item.id}\t{e.item.category} -> {e.category}\t{e.item.text}", flush=True)


def trace_json(trace: Trace) -> dict[str, Any]:
    """Return a trace as plain JSON data."""
    return {
        "text": trace.text,
        "normalised": trace.normalised,
        "category": trace.match.category if trace.match else "none",
        "winner": trace.winner.rule if trace.winner else None,
        "reason": trace.reason,
        "candidates": [vars(c) for c in trace.candidates],
    }


def print_trace(trace: Trace) -> None:
    """Print a trace for a person."""
    console = stdout()
    console.print(f"text:       {trace.text}", markup=False)
    console.print(f"normalised: {trace.normalised}", markup=False)
    if trace.candidates:
        print_table(
            None,
            ("rule", "category", "prio", "keywords", "all_of", "regex", "vetoed/negated",
             "verdict"),
            [
                (c.rule, c.category, str(c.priority), " ".join(c.keywords),
                 " | ".join(" ".join(g) for g in c.groups), " ".join(c.regex),
                 " ".join([*c.vetoes, *(f"¬{n}" for n in c.negated)]), c.verdict)
                for c in trace.candidates
            ],
            bold=next((i for i, c in enumerate(trace.candidates) if trace.winner is c), None),
        )  # fmt: skip
    category = trace.match.category if trace.match else "none"
    console.print(f"category:   {category}", markup=False)
    console.print(f"why:        {trace.reason}", markup=False)
