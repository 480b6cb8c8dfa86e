"""Redis replies as text: what every reader of keys, fields and stream ids needs."""

from __future__ import annotations

from typing import Any


def text_of(value: Any) -> str:
    """Return a Redis reply (bytes, or already a str or a number) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
