"""Turn a path the user typed into a Path: `~` and `~name` expanded, or an error that says why not."""

from __future__ import annotations

from pathlib import Path

from registry.errors import UserPathError


def expand_user_path(text: str | Path) -> Path:
    """`text` as a Path with a leading `~` or `~name` expanded; UserPathError (exit 2) for a user this system
    does not have, a home folder it cannot find, or a NUL character."""
    raw = str(text)
    if "\0" in raw:
        raise UserPathError(
            f"The path {raw[:80]!r} contains a NUL character", "Type the path again without it."
        )
    path = Path(raw)
    if not raw.startswith("~"):
        return path
    try:
        return path.expanduser()
    except RuntimeError:
        user = raw[1:].split("/", 1)[0]
        who = f"no user '{user[:40]}'" if user else "no home folder (HOME is not set)"
        raise UserPathError(
            f"Cannot expand '{raw[:120]}': this system has {who}",
            "Write the path in full, or start it with ~/ for your own home folder.",
        ) from None
