"""Did-you-mean suggestions for a name the user typed, in bounded time whatever its length (pure)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Names longer than this get no suggestion: no real name is, and difflib's cost grows with the length.
MAX_SUGGEST_CHARS = 100


def close_matches(query: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The choices closest to `query` (difflib's ratio, best first), none for an absurdly long query."""
    if len(query) > MAX_SUGGEST_CHARS:
        return []
    return difflib.get_close_matches(query, list(choices), n=n, cutoff=cutoff)
