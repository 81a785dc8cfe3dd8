"""Errors of fleet planning and export, with structured fields; imports only registry.errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from registry.errors import EXIT_USAGE, BerthError


@dataclass(frozen=True)
class FleetProblem:
    """One thing wrong in a fleet file, located by line and dotted field path."""

    message: str
    line: int | None = None
    field: str | None = None
    suggestion: str | None = None

    def text(self, path: Path | None) -> str:
        """path:line: field: message (did you mean …?)."""
        where = ""
        if path is not None:
            where = f"{path}:{self.line}: " if self.line else f"{path}: "
        field = f"{self.field}: " if self.field else ""
        hint = f" (did you mean '{self.suggestion}'?)" if self.suggestion else ""
        return f"{where}{field}{self.message}{hint}"


class FleetFileError(BerthError, ValueError):
    """A fleet file that cannot be read, does not follow the schema, or names things the catalog lacks."""

    exit_code = EXIT_USAGE

    def __init__(self, path: Path | str | None, problems: Sequence[FleetProblem]) -> None:
        self.path = Path(path) if path is not None else None
        self.problems = list(problems)
        super().__init__(
            self.__str__(),
            hint="Each field is described in launcher/fleet/schema.py; examples/fleet.yaml is a complete example.",
        )

    def __str__(self) -> str:
        return "\n".join(p.text(self.path) for p in self.problems)


class FleetShortError(BerthError):
    """The fleet cannot carry the workload, so an export would not deploy as planned."""

    def __init__(self, models: Sequence[str], missing_gpus: int, nothing_placed: bool = False) -> None:
        self.models = list(models)
        self.missing_gpus = missing_gpus
        self.nothing_placed = nothing_placed
        if nothing_placed:
            message = (
                f"no replica of {', '.join(self.models)} has room in the fleet, so there is nothing to export "
                "(Ray Serve refuses an empty list of models)"
            )
        elif missing_gpus:
            message = (
                f"the fleet has no room for all of {', '.join(self.models)} ({missing_gpus} GPUs missing)"
            )
        else:
            message = f"{', '.join(self.models)} cannot run on any node group of the fleet"
        hint = "See what to add with `berth fleet plan FLEET.yaml`, or export what fits with --allow-partial."
        if nothing_placed:
            hint = "See what to add and the cheaper alternatives with `berth fleet plan FLEET.yaml`."
        super().__init__(message, hint=hint)
