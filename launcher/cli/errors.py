"""Turn Berth's errors into one paragraph that names the next command, and an exit code."""

from __future__ import annotations

from collections.abc import Callable

from registry.errors import (
    CatalogError,
    ImportModelError,
    UnknownAcceleratorError,
    UnknownModelError,
    UnsupportedArchitectureError,
)

#: Exit codes: 0 ok, 1 the request is valid but cannot be met (does not fit, load failed), 2 bad input.
EXIT_FAILURE = 1
EXIT_USAGE = 2


def explain(error: BaseException) -> tuple[str, int] | None:
    """A message and exit code for an error Berth raises on purpose; None for a bug (shown as a traceback)."""
    if isinstance(error, CatalogError):
        return (
            f"Catalog problem: {error}. Fix the entry (each field is described in registry/schema.py), "
            f"then check the file with `berth catalog validate {error.path or 'FILE'}`.",
            EXIT_USAGE,
        )
    if isinstance(error, UnknownModelError):
        hint = (
            f"Did you mean {', '.join(error.suggestions)}? "
            if error.suggestions
            else "No catalog entry looks close. "
        )
        return (
            f"Unknown model '{error.query}'. {hint}See every model with `berth list`, search with "
            f"`berth list --search TEXT`, or pass a local model folder or --gguf FILE.",
            EXIT_USAGE,
        )
    if isinstance(error, UnknownAcceleratorError):
        hint = f"Did you mean {', '.join(error.suggestions)}? " if error.suggestions else ""
        return (
            f"Unknown accelerator '{error.query}'. {hint}Known GPUs are the catalog's accelerators: "
            f"see `berth show --accelerators`, or add one to your catalog overlay.",
            EXIT_USAGE,
        )
    if isinstance(error, UnsupportedArchitectureError):
        return (
            f"Berth cannot size model_type '{error.model_type}' yet. Supported: "
            f"{', '.join(error.supported)}.",
            EXIT_USAGE,
        )
    if isinstance(error, ImportModelError):
        return (f"Cannot use that model: {error}", EXIT_USAGE)
    for handler in _EXTRA_HANDLERS:
        found = handler(error)
        if found is not None:
            return found
    return None


_EXTRA_HANDLERS: list[Callable[[BaseException], tuple[str, int] | None]] = []


def register(handler: Callable[[BaseException], tuple[str, int] | None]) -> None:
    """Add a handler for errors of a later stage (probe, plan, load) without importing them here."""
    _EXTRA_HANDLERS.append(handler)
