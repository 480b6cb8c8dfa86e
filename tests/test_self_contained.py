"""The repository runs from a clone alone: no tracked file points outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Paths that only exist on the developers' machines: the project's shared folder beside the
# clone, and absolute paths of a workstation. Spelled in pieces, so that this file itself
# names none of them.
SHARED, UP, WORK, HOME = "shared", "..", "work", "root"
OUTSIDE = re.compile(
    rf"{re.escape(UP)}/{SHARED}|\b{SHARED}/(?:corpus|spec)|/{WORK}/|ROOT\.parent\b|/{HOME}/"
)


def tracked_text_files() -> list[Path]:
    """Return every tracked file that is text (the lock files' hashes are text too)."""
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = []
    for name in filter(None, names):
        path = ROOT / name.decode()
        data = path.read_bytes()
        if b"\0" not in data:
            files.append(path)
    return files


def test_no_tracked_file_points_outside_the_repository() -> None:
    offenders = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_pattern_finds_what_it_looks_for() -> None:
    root = "ROOT"
    assert OUTSIDE.search(f'default={root}.parent / "{SHARED}" / "corpus"')
    assert OUTSIDE.search(f"lianhu rules test --corpus {UP}/{SHARED}/corpus/dev.jsonl")
    assert OUTSIDE.search(f"/{WORK}/{SHARED}/spec/categories.yaml")
    assert not OUTSIDE.search("tests/data/dev.jsonl")


def test_data_the_tests_read_is_in_the_repository() -> None:
    data = ROOT / "tests" / "data"
    assert (data / "categories.yaml").is_file()
    for name in ("dev.jsonl", "regression.jsonl", "blind2.jsonl", "blind3.jsonl", "blind4.jsonl"):
        assert (ROOT / "routing_rules" / "examples" / name).is_file(), name
    assert "categories.yaml" in (data / "README.md").read_text(encoding="utf-8")
