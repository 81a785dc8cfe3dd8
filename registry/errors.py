"""Berth's one error root, and the registry's errors; stdlib only (every layer imports this module)."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Exit codes: 1 the request is valid but cannot be met (does not fit, load failed), 2 bad input.
EXIT_FAILURE = 1
EXIT_USAGE = 2


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr, also for huge integers and byte strings (whose full repr it would build)."""

    def repr_int(self, x: int, _level: int) -> str:
        if x.bit_length() <= 128:
            return repr(x)
        return f"<an integer of {int(x.bit_length() * 0.30103) + 1:,} digits>"

    def repr_bytes(self, x: bytes, _level: int) -> str:
        return repr(x[: self.maxstring]) + ("..." if len(x) > self.maxstring else "")


def short_repr(value: Any, limit: int = 80) -> str:
    """repr(value) cut to at most `limit` characters, in time and memory bounded whatever the value (deep or
    shared lists from YAML aliases, huge strings and integers): every message that quotes user input uses it."""
    short = _ShortRepr()
    short.maxlevel, short.maxstring, short.maxother = 3, limit, limit
    return short_text(short.repr(value), limit)


def short_text(text: str, limit: int = 80) -> str:
    """`text` cut to at most `limit` characters, ending in '...' when cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


class BerthError(Exception):
    """Root of every error Berth raises on purpose: what went wrong (`message`), the next thing to try
    (`hint`, naming a command or an option where there is one) and the exit code the CLI ends with."""

    exit_code: int = EXIT_FAILURE

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)


class CatalogError(BerthError, ValueError):
    """A catalog file that cannot be read or does not follow the schema."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
        suggestion: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.field = field
        self.suggestion = suggestion
        super().__init__(
            message,
            hint=hint
            or "Fix the entry (each field is described in registry/schema.py), then check the file with "
            f"`berth catalog validate {self.path or 'FILE'}`.",
        )

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        field = f"{self.field}: " if self.field else ""
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return f"{where}{field}{self.message}{hint}"


class _UnknownNameError(BerthError, KeyError):
    """A name the catalog does not know, with the closest names it does."""

    kind = "name"
    exit_code = EXIT_USAGE

    def __init__(self, query: str, suggestions: Sequence[str] = (), hint: str = "") -> None:
        self.query = query
        self.suggestions = list(suggestions)
        super().__init__(f"unknown {self.kind} '{query}'", hint)

    def __str__(self) -> str:
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        return f"unknown {self.kind} '{self.query}'{hint}"


class UnknownModelError(_UnknownNameError):
    """A model name that is not a catalog id, alias or local path."""

    kind = "model"

    def __init__(self, query: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(
            query,
            suggestions,
            hint="See every model with `berth list`, search with `berth list --search TEXT`, or pass a local "
            "model folder or --gguf FILE.",
        )


class UnknownAcceleratorError(_UnknownNameError):
    """A GPU name that is not in the catalog's accelerators."""

    kind = "accelerator"

    def __init__(self, query: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(
            query,
            suggestions,
            hint="Known GPUs are the catalog's accelerators: `berth probe --hardware NAME` checks a name and "
            "lists them. Add others to your catalog overlay.",
        )


class UnsupportedArchitectureError(BerthError, ValueError):
    """A model_type whose parameter layout Berth does not know."""

    exit_code = EXIT_USAGE

    def __init__(self, model_type: str, supported: Sequence[str]) -> None:
        self.model_type = model_type
        self.supported = list(supported)
        super().__init__(
            f"model_type '{model_type}' is not supported; supported: {', '.join(self.supported)}"
        )


class ImportModelError(BerthError, ValueError):
    """A local model directory or file that cannot be turned into a catalog entry."""

    exit_code = EXIT_USAGE


class InputFileError(BerthError, ValueError):
    """A file Berth was asked to read that cannot be used: missing, a folder, unreadable, not text, or too large
    (`registry.bounded_read.read_text_capped` raises it for every layer)."""

    exit_code = EXIT_USAGE

    def __init__(self, path: Path | str, problem: str, hint: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(
            f"{short_text(str(path), 200)}: {problem}", hint or "Check the path, then run the command again."
        )


class UserPathError(BerthError, ValueError):
    """A path Berth cannot expand: `~name/...` for a user this system does not have, or a NUL character
    (`registry.paths.expand_user_path` raises it for every layer)."""

    exit_code = EXIT_USAGE
