"""Every failure the core names, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a source file, with where it stands."""

    source: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        field = self.field or "-"
        return f"{self.source}:{self.line}:{self.column}: {field}: {self.message}"


class InvalidConfig(Exception):
    """A set of source files did not validate; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InvalidRules(InvalidConfig):
    """The rules directory did not validate."""


class InvalidOrg(InvalidConfig):
    """The organisation tree or roster did not validate."""
