"""Whole numbers a user types (counts, indexes, ids): ASCII digits only, never more digits than a bound needs."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
#: Longest text shown back to the user for a value that cannot be used (registry.errors.short_text cuts it).
SHOWN_CHARS = 40


def ascii_int(text: str, high: int) -> int | None:
    """The value of `text` (ASCII digits 0-9, surrounding spaces allowed); None when it is not such a
    number. A number above `high` comes back as `high + 1` without converting all of its digits, so a
    400-digit value costs nothing and the caller's bound check reports it."""
    cleaned = text.strip()
    if not _DIGITS.fullmatch(cleaned):
        return None
    digits = cleaned.lstrip("0") or "0"
    if len(digits) > len(str(high)):
        return high + 1
    return min(int(digits), high + 1)
