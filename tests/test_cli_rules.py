"""``lianhu rules …`` and ``lianhu classify`` as an administrator and a script use them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.core.rules import json_schema
from tests.conftest import ROOT

RULES = """\
categories:
  utilities: {names: {zh-Hans: 水电气}, start_tier: village, severity: normal}
  emergency: {names: {zh-Hans: 紧急险情}, start_tier: street, severity: critical}
deadlines:
  critical: {ack: 15m, resolve: 2h}
  high: {ack: 2h, resolve: 24h}
  normal: {ack: 24h, resolve: 3d}
  low: {ack: 2d, resolve: 7d}
negations: [不是]
rules:
  - id: water
    category: utilities
    keywords: [停水, 没水]
    veto: [演练]
    must_match: [又停水了]
    must_not_match: [停水演练]
  - id: fire
    category: emergency
    priority: 90
    keywords: [着火]
    must_match: [着火了]
    must_not_match: [火锅]
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "all.yaml").write_text(RULES, encoding="utf-8")
    return directory


def test_check_valid(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(rules_dir)]) == 0
    assert capsys.readouterr().out == f"{rules_dir}: OK: 1 files, 2 categories, 2 rules, 5 terms\n"


def test_check_invalid_lists_errors(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rules_dir / "bad.yaml").write_text("rules:\n  - id: x\n    category: nope\n    keywords: []\n")
    assert main(["rules", "check", str(rules_dir)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{rules_dir}/bad.yaml:4:5: rules[0].keywords: List should have at least 1 item after validation, not 0",
        f"{rules_dir}: 1 error",
    ]


def test_check_reports_category_and_keyword_errors_together(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (rules_dir / "bad.yaml").write_text(
        "rules:\n  - id: x\n    category: nope\n    keywords: [a]\n  - id: y\n    category: utilities\n    keywords: []\n"
    )
    assert main(["rules", "check", str(rules_dir)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        f"{rules_dir}/bad.yaml:3:5: rules[0].category: unknown category 'nope'",
        f"{rules_dir}/bad.yaml:7:5: rules[1].keywords: List should have at least 1 item after validation, not 0",
    ]
    assert err[2] == f"{rules_dir}: 2 errors"


def test_test_passes_and_fails_on_examples(
    rules_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rules", "test", str(rules_dir)]) == 0
    assert "examples: 4/4 pass" in capsys.readouterr().out
    text = RULES.replace("must_not_match: [停水演练]", "must_not_match: [停水了]")
    (rules_dir / "all.yaml").write_text(text, encoding="utf-8")
    assert main(["rules", "test", str(rules_dir)]) == 1
    out = capsys.readouterr().out
    assert (
        f"FAIL {rules_dir}/all.yaml:11: water: must_not_match '停水了': want not utilities, got utilities"
        in out
    )
    assert "examples: 3/4 pass" in out


def test_test_scores_a_corpus(
    rules_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"id": "1", "text": "又停水了", "category": "utilities", "urgent": False},
        {"id": "2", "text": "著火了！", "category": "emergency", "urgent": True},
        {"id": "3", "text": "谢谢大家", "category": "none", "urgent": False},
        {"id": "4", "text": "停水演练通知", "category": "none", "urgent": False},
        {"id": "5", "text": "电梯坏了", "category": "utilities", "urgent": False},
        {"id": "6", "text": "没水洗澡，好热", "category": "none", "urgent": False},
    ]
    corpus.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    assert main(["rules", "test", str(rules_dir), "--corpus", str(corpus), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["corpus"]
    assert report["total"] == 6
    assert report["emergency_recall"] == 1.0
    assert report["false_ticket_rate"] == round(1 / 3, 4)  # row 6 is a false ticket
    assert report["categories"]["utilities"] == {
        "support": 2, "predicted": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5,
    }  # fmt: skip
    assert report["macro_f1"] == round((0.5 + 1.0) / 2, 4)
    assert report["start_tier_accuracy"] == round(4 / 6, 4)
    assert {"gold": "utilities", "predicted": "none", "count": 1} in report["confusions"]
    assert [e["id"] for e in report["errors"]] == ["5", "6"]
    # The same report as tables for a person.
    assert main(["rules", "test", str(rules_dir), "--corpus", str(corpus), "--errors"]) == 0
    out = capsys.readouterr().out
    assert "macro-F1: 0.7500" in out and "false-ticket rate on none: 0.3333" in out
    assert "5\tutilities -> none\t电梯坏了" in out


def test_test_refuses_a_broken_corpus(
    rules_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": 1, "text": "x", "category": "none"}\n{"id": 2}\n', encoding="utf-8")
    assert main(["rules", "test", str(rules_dir), "--corpus", str(corpus)]) == 2
    assert "line 2: not a labelled message" in capsys.readouterr().err


def test_explain(rules_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "explain", "--dir", str(rules_dir), "不是停水，係著火啊"]) == 0
    out = capsys.readouterr().out
    assert "normalised: 不是停水,系着火啊" in out
    assert "category:   emergency" in out
    assert "why:        fire has the highest score (92)" in out
    assert main(["rules", "explain", "--dir", str(rules_dir), "--json", "不是停水"]) == 0
    trace = json.loads(capsys.readouterr().out)
    assert trace["category"] == "none"
    assert trace["candidates"][0]["negated"] == ["停水"]
    assert trace["reason"] == "no rule fired"


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_classify_streams_one_line_out_per_line_in(rules_dir: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "classify", "--rules", str(rules_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8", cwd=ROOT,
    ) as proc:  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        # Each answer arrives before the next line is written: streaming, not batch.
        proc.stdin.write('{"id": 1, "text": "又停水了"}\n')
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert first == {
            "id": 1, "category": "utilities", "tier": "village", "confidence": 1.0,
            "action": "ticket", "danger": False, "source": "rules-only",
        }  # fmt: skip
        proc.stdin.write('{"id": "x", "text": "著火了"}\n')
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        assert (second["id"], second["category"], second["danger"]) == ("x", "emergency", True)
        proc.stdin.write('{"id": 3, "text": "早晨"}\nnot json\n\n{"id": 4}\n')
        proc.stdin.close()
        rest = [json.loads(line) for line in proc.stdout]
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert rest[0] == {
        "id": 3, "category": "none", "tier": None, "confidence": 1.0, "action": "ignore",
        "danger": False, "source": "rules-only",
    }  # fmt: skip
    assert [r.get("line") for r in rest[1:]] == [4, 5, 6]
    assert all("error" in r for r in rest[1:])
    assert rest[3]["id"] == 4


def test_classify_with_invalid_rules_exits_1(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("rules: [", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "classify", "--rules", str(tmp_path)],
        input="", capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"{tmp_path}/bad.yaml:2:1: -: invalid YAML: ")


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "rules" in capsys.readouterr().err


def test_config_show(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LIANHU_DEADLINE_SCALE", "0.001")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6399/0")
    assert main(["config", "show", "--json"]) == 0
    rows = {r["variable"]: r["value"] for r in json.loads(capsys.readouterr().out)}
    assert rows["LIANHU_DEADLINE_SCALE"] == "0.001"
    assert rows["REDIS_URL"] == "redis://127.0.0.1:6399/0"
    assert {"LIANHU_RULES_DIR", "LIANHU_ORG_FILE", "LIANHU_DATA_DIR", "LIANHU_QUEUE"} <= rows.keys()
    monkeypatch.setenv("LIANHU_DEADLINE_SCALE", "-1")
    assert main(["config", "show"]) == 1
    assert "deadline_scale: Input should be greater than 0" in capsys.readouterr().err
