"""Tables the CLI prints keep whole values when piped, so scripts can grep them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def lianhu(*args: str, env: dict[str, str] | None = None) -> list[str]:
    """Run the lianhu command with stdout a pipe; return its lines."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "40", **(env or {})},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def test_config_show_piped_prints_every_value_whole(tmp_path: Path) -> None:
    # A long path (longer than any terminal) must come out in one piece on its variable's line.
    deep = tmp_path / ("a-very-long-folder-name-" * 6) / "rules"
    lines = lianhu("config", "show", env={"LIANHU_RULES_DIR": str(deep)})
    assert lines[:2] == ["# Lianhu settings", "variable\tvalue\tmeaning"]
    rows = {line.split("\t")[0]: line.split("\t") for line in lines[2:]}
    assert rows["LIANHU_RULES_DIR"][1] == str(deep)
    assert rows["LIANHU_RULES_DIR"][2] == "Directory of routing rule files."
    assert rows["REDIS_URL"][1] == "(unset)"
    assert all(len(row) == 3 for row in rows.values())


def test_org_show_piped_lists_every_chat_of_a_node_on_its_line() -> None:
    lines = lianhu("org", "show")
    street = next(line for line in lines if line.startswith("S-01\t"))
    assert street.split("\t") == [
        "S-01",
        "海湾街道",
        "street",
        "",
        "telegram:-1001000000101, sim:S-01",
        "telegram:-1001000000201",
    ]
    assert "# people" in lines


def test_rules_test_piped_prints_plain_rows() -> None:
    lines = lianhu("rules", "test", "routing_rules", "--corpus", "routing_rules/examples/dev.jsonl")
    header = lines.index("category\tsupport\tpredicted\tprecision\trecall\tF1")
    emergency = lines[header + 1 :]
    assert any(line.startswith("emergency\t24\t") for line in emergency)
