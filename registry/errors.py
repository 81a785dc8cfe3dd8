"""Errors of the registry, with structured fields the CLI turns into one-paragraph messages."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class RegistryError(Exception):
    """Base class of every error the registry raises on purpose."""


class CatalogError(RegistryError, ValueError):
    """A catalog file that cannot be read or does not follow the schema."""

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        field: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        self.field = field
        self.suggestion = suggestion
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        field = f"{self.field}: " if self.field else ""
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return f"{where}{field}{self.message}{hint}"


class _UnknownNameError(RegistryError, KeyError):
    """A name the catalog does not know, with the closest names it does."""

    kind = "name"

    def __init__(self, query: str, suggestions: Sequence[str] = ()) -> None:
        self.query = query
        self.suggestions = list(suggestions)
        super().__init__(query)

    def __str__(self) -> str:
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        return f"unknown {self.kind} '{self.query}'{hint}"


class UnknownModelError(_UnknownNameError):
    """A model name that is not a catalog id, alias or local path."""

    kind = "model"


class UnknownAcceleratorError(_UnknownNameError):
    """A GPU name that is not in the catalog's accelerators."""

    kind = "accelerator"


class UnsupportedArchitectureError(RegistryError, ValueError):
    """A model_type whose parameter layout Berth does not know."""

    def __init__(self, model_type: str, supported: Sequence[str]) -> None:
        self.model_type = model_type
        self.supported = list(supported)
        super().__init__(
            f"model_type '{model_type}' is not supported; supported: {', '.join(self.supported)}"
        )


class ImportModelError(RegistryError, ValueError):
    """A local model directory or file that cannot be turned into a catalog entry."""
