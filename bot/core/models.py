"""Plain value types shared across the core."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    """A level of the four-level group ladder, lowest first."""

    HOUSEHOLD = "household"
    GRID = "grid"
    VILLAGE = "village"
    STREET = "street"

    @property
    def level(self) -> int:
        """Return 1 for household up to 4 for street."""
        return _TIER_LEVEL[self]


_TIER_LEVEL = {Tier.HOUSEHOLD: 1, Tier.GRID: 2, Tier.VILLAGE: 3, Tier.STREET: 4}


class Severity(StrEnum):
    """How serious a category is; drives deadlines."""

    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Return 4 for critical down to 1 for low."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.NORMAL: 2, Severity.LOW: 1}


class Visibility(StrEnum):
    """Whether a ticket card may be posted to a public group."""

    PUBLIC = "public"
    STAFF = "staff"


class Lang(StrEnum):
    """A language of the interface."""

    ZH_HANS = "zh-Hans"
    ZH_HANT = "zh-Hant"
    EN = "en"


NONE_CATEGORY = "none"
"""The reserved category of messages that are not requests for help."""
