"""bot/core is pure: it imports no I/O library and reads no clock, file or socket."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "bot" / "core"

FORBIDDEN_MODULES = {
    "aiohttp", "asyncio", "http", "httpx", "io", "logging", "os", "pathlib", "redis",
    "requests", "rq", "selectors", "shutil", "socket", "sqlite3", "ssl", "subprocess",
    "sys", "telegram", "tempfile", "threading", "time", "urllib",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}
CLOCK_ATTRIBUTES = {"now", "today", "utcnow", "time", "monotonic", "perf_counter"}


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        else:
            names = []
        found += [f"import {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_CALLS:
                found.append(f"call {func.id}()")
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_ATTRIBUTES:
                found.append(f"call .{func.attr}()")
    return found


def test_core_has_modules() -> None:
    assert len(core_files()) >= 8


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []


def test_the_check_catches_io() -> None:
    bad = "import os\nfrom redis import asyncio\nimport asyncio.tasks\nopen('x')\ndatetime.now()\n"
    assert violations(bad) == [
        "import os", "import redis", "import asyncio.tasks", "call open()", "call .now()",
    ]  # fmt: skip
