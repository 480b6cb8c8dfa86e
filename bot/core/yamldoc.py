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

# Aliases let a few hundred bytes stand for a billion values (an "alias bomb"): the builder
# counts every value it makes, aliases expanded, and stops at this many. The default rules
# hold about 14,000 values in all; a rule file under its 1 MB cap holds far fewer than this.
MAX_VALUES = 200_000
MAX_DEPTH = 64  # nesting deeper than this is no rule file; Python's recursion has a limit
_PLAIN_TAGS: dict[type[yaml.Node], str] = {
    yaml.MappingNode: "tag:yaml.org,2002:map",
    yaml.SequenceNode: "tag:yaml.org,2002:seq",
}
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)


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
    except RecursionError:
        return None, [Problem(source, 1, 1, "", "invalid YAML: nested too deep")]
    if node is None:
        return Document(source, {}, {(): (1, 1)}), []
    builder = _Builder(source)
    try:
        data = builder.build(node, ())
    except _TooMany as exc:
        top = exc.path[:1]
        line, column = builder.positions.get(top, (1, 1))
        message = (
            f"more than {MAX_VALUES:,} values once aliases (*name) are expanded: "
            "refused (an alias bomb, or a file far too big)"
        )
        return None, [Problem(source, line, column, format_path(top), message)]
    except _TooDeep as exc:
        builder.problems.append(exc.problem)
    if builder.problems:
        return None, builder.problems
    return Document(source, data, builder.positions), []


class _TooMany(Exception):
    """The document expands to more than MAX_VALUES values."""

    def __init__(self, path: Path) -> None:
        self.path = path


class _TooDeep(Exception):
    """The document nests deeper than MAX_DEPTH."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class _Builder:
    """Turn a composed node tree into plain data, noting positions and duplicate keys.

    Only YAML's plain types are built: a tag such as ``!!python/object`` is an error at
    its place, never a constructor call (and never a traceback).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.positions: dict[Path, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._values = 0

    def build(self, node: yaml.Node, path: Path) -> Any:
        self._values += 1
        if self._values > MAX_VALUES:
            raise _TooMany(path)
        if len(path) > MAX_DEPTH:
            raise _TooDeep(self._problem(node, path, f"nested deeper than {MAX_DEPTH} levels"))
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if not self._plain(node, path):
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._add(key_node, path, "merge keys (<<) are not supported")
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self._add(key_node, path, "a key must be text, not a list or mapping")
                    continue
                if not self._plain(key_node, path):
                    continue
                found = len(self.problems)
                key = self._scalar(key_node, path)
                if len(self.problems) > found:
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
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except (yaml.constructor.ConstructorError, ValueError) as exc:  # say, 2001-02-30
            self._add(node, path, f"invalid value: {getattr(exc, 'problem', None) or exc}")
            return None

    def _plain(self, node: yaml.Node, path: Path) -> bool:
        """Return whether ``node`` has one of YAML's plain tags; note a problem if not."""
        expected = _PLAIN_TAGS.get(type(node))
        if node.tag == expected or (expected is None and node.tag in _SCALAR_TAGS):
            return True
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        message = f"unknown YAML tag {tag}: only plain text, numbers, lists and mappings"
        self._add(node, path, message)
        return False

    def _problem(self, node: yaml.Node, path: Path, message: str) -> Problem:
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        return Problem(self.source, line, column, format_path(path), message)

    def _add(self, node: yaml.Node, path: Path, message: str) -> None:
        self.problems.append(self._problem(node, path, message))


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
