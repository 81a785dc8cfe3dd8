"""The one table that turns Berth's errors into the paragraph a user reads; imports only the small errors modules
(never torch, transformers or a planner), so `berth list` stays quick to start."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import Any

from launcher.fleet.errors import FleetFileError, FleetShortError
from launcher.machine.errors import HardwareSpecError, ProbeError, UserFileError
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.run.errors import LoadError, SessionError, UnsafePickleError
from registry.errors import (
    EXIT_FAILURE,
    EXIT_USAGE,
    BerthError,
    CatalogError,
    ImportModelError,
    InputFileError,
    UnknownAcceleratorError,
    UnknownModelError,
    UnsupportedArchitectureError,
    UserPathError,
)

__all__ = ["EXIT_FAILURE", "EXIT_USAGE", "explain", "paragraph"]


def _did_you_mean(suggestions: list[str], otherwise: str = "") -> str:
    return f"Did you mean {', '.join(suggestions)}? " if suggestions else otherwise


def _unknown_model(error: UnknownModelError) -> str:
    close = _did_you_mean(error.suggestions, "No catalog entry looks close. ")
    return f"Unknown model '{error.query}'. {close}{error.hint}"


def _unknown_accelerator(error: UnknownAcceleratorError) -> str:
    return f"Unknown accelerator '{error.query}'. {_did_you_mean(error.suggestions)}{error.hint}"


def _fleet_file(error: FleetFileError) -> str:
    count = len(error.problems)
    where = error.path or "the fleet file"
    listed = "\n".join(p.text(error.path) for p in error.problems)
    # \b keeps wrap_paragraphs from rewrapping the located problems, one per line.
    return f"{count} problem{'s' if count > 1 else ''} in {where}:\n\n\b\n{listed}\n\n{error.hint}"


def _with(prefix: str, hint_format: str = "{}") -> Callable[[Any], str]:
    """'{prefix}{message}.' followed by the hint, put in `hint_format`, when there is one."""

    def text(error: BerthError) -> str:
        hint = f" {hint_format.format(error.hint)}" if error.hint else ""
        return f"{prefix}{error.message}.{hint}"

    return text


#: What the user reads for each error class; the most specific class listed in an error's MRO wins.
PARAGRAPHS: dict[type[BerthError], Callable[[Any], str]] = {
    CatalogError: lambda e: f"Catalog problem: {e}. {e.hint}",
    UnknownModelError: _unknown_model,
    UnknownAcceleratorError: _unknown_accelerator,
    UnsupportedArchitectureError: lambda e: (
        f"Berth cannot size model_type '{e.model_type}' yet. Supported: {', '.join(e.supported)}."
    ),
    ImportModelError: lambda e: f"Cannot use that model: {e}",
    InputFileError: _with("Cannot read "),
    UserPathError: _with(""),
    HardwareSpecError: lambda e: f"{str(e)[0].upper()}{str(e)[1:]} {e.hint}",
    ProbeError: _with("Cannot describe this machine: "),
    PlanRequestError: _with("Cannot plan that: ", hint_format="Try: {}."),
    DoesNotFitError: lambda e: (
        f"{e.model_id} does not fit. Ways out: {e.hint or 'no smaller option is known'}."
    ),
    LoadError: _with("", hint_format="Next: {}."),
    UnsafePickleError: _with("Refused to load: ", hint_format="Next: {}."),
    SessionError: lambda e: f"{e}.",
    FleetFileError: _fleet_file,
    FleetShortError: _with("Cannot export: "),
    UserFileError: lambda e: f"{e.message[:1].upper()}{e.message[1:]}. {e.hint}",
    BerthError: lambda e: f"{e.message}. {e.hint}".rstrip(),
}


def paragraph(error: BerthError) -> str:
    """The one paragraph (before wrapping) that says what went wrong and what to run next."""
    for cls in type(error).__mro__:
        if cls in PARAGRAPHS:
            return PARAGRAPHS[cls](error)
    raise AssertionError("BerthError is in the table")  # pragma: no cover


def explain(error: BaseException) -> tuple[str, int] | None:
    """The paragraph and exit code for an error Berth raises on purpose; None for a bug (shown as a traceback)."""
    if not isinstance(error, BerthError):
        return None
    return paragraph(error), error.exit_code


def wrap_paragraphs(text: str, width: int = 100) -> str:
    """Wrap each paragraph of a message at `width`, never inside a model id, a path or a `command` (no breaks
    at hyphens, no split words, none inside backticks), so what the message names can be copied whole; a
    paragraph that starts with a \\b line (click's marker) keeps its lines as they are."""
    return "\n\n".join(
        part.removeprefix("\b\n") if part.startswith("\b\n") else _fill(part, width)
        for part in text.split("\n\n")
    )


def _fill(paragraph: str, width: int) -> str:
    glued = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", _GLUE), " ".join(paragraph.split()))
    filled = textwrap.fill(glued, width, break_on_hyphens=False, break_long_words=False)
    return filled.replace(_GLUE, " ")


_GLUE = "\0"  # stands for a space inside backticks while wrapping
