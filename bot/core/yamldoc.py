"""Parse YAML text into plain data, remembering the line and column of every value.

Loaders report errors as ``file:line:column: field: message``; pydantic reports a
location as a path of keys and indexes, so each document keeps a map from such
paths to where they stand in the text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from bot.core.errors import Problem

Path = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Document:
    """One parsed YAML source: its data and where each path stands (1-based)."""

    source: str
    data: Any
    positions: Mapping[Path, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Return the position of the longest prefix of ``path`` found in the text."""
        key = tuple(path)
        while key:
            if key in self.positions:
                return self.positions[key]
            key = key[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        """Return a Problem at ``path`` in this document."""
        line, column = self.locate(path)
        return Problem(self.source, line, column, format_path(path), message)

    def validation_problems(
        self, error: ValidationError, prefix: Sequence[str | int] = ()
    ) -> list[Problem]:
        """Turn a pydantic error raised on data at ``prefix`` into located Problems."""
        problems = []
        for item in error.errors(include_url=False):
            path = [*prefix, *_clean_loc(item["loc"])]
            problems.append(self.problem(path, _message(item)))
        return problems


def format_path(path: Sequence[str | int]) -> str:
    """Return ``rules[2].keywords`` for ``("rules", 2, "keywords")``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse(source: str, text: str) -> tuple[Document | None, list[Problem]]:
    """Parse ``text``; return the document, or None and the problems that stopped it."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        return None, [Problem(source, line, column, "", f"invalid YAML: {message}")]
    except yaml.YAMLError as exc:  # a reader error: bad bytes or control characters
        return None, [Problem(source, 1, 1, "", f"invalid YAML: {exc}")]
    if node is None:
        return Document(source, {}, {(): (1, 1)}), []
    builder = _Builder(source)
    data = builder.build(node, ())
    if builder.problems:
        return None, builder.problems
    return Document(source, data, builder.positions), []


class _Builder:
    """Turn a composed node tree into plain data, noting positions and duplicate keys."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.positions: dict[Path, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._constructor.construct_object(key_node, deep=True)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._add(key_node, path, "merge keys (<<) are not supported")
                    continue
                if not isinstance(key, str | int) or isinstance(key, bool):
                    self._add(key_node, path, f"a key must be text, not {key!r}")
                    continue
                child = (*path, key)
                if key in out:
                    self._add(key_node, child, f"duplicate key {key!r}")
                    continue
                self.positions[child] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._constructor.construct_object(node, deep=True)

    def _add(self, node: yaml.Node, path: Path, message: str) -> None:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        self.problems.append(Problem(self.source, line, column, format_path(path), message))


def _clean_loc(loc: Sequence[str | int]) -> list[str | int]:
    """Drop the tags pydantic adds for unions and function validators."""
    return [p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]


def _message(item: Mapping[str, Any]) -> str:
    kind = item.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    if kind == "string_type" and isinstance(item.get("input"), bool | int | float):
        value = item["input"]
        return f"YAML read this as {value!r}, not text: put it in quotes"
    msg = str(item.get("msg", "invalid"))
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
