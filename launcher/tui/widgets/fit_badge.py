"""The fit verdict as a coloured badge: GPU, sharded, quantized, offload, CPU, disk, no fit."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from launcher.plan.errors import DoesNotFitError
from launcher.plan.request import Plan
from launcher.tui.rows import badge


def fit_badge_text(result: Plan | DoesNotFitError, width: int = 9) -> Text:
    """The badge as Rich text, padded to `width` cells (for table cells and labels)."""
    label, colour = badge(result)
    return Text(f" {label} ".ljust(width), style=f"bold black on {colour}")


class FitBadge(Static):
    """A verdict badge for one plan or does-not-fit result."""

    def __init__(self, result: Plan | DoesNotFitError, *, id: str | None = None) -> None:
        super().__init__(fit_badge_text(result, width=0), id=id)
        self.result = result

    def show(self, result: Plan | DoesNotFitError) -> None:
        """Switch to another verdict."""
        self.result = result
        self.update(fit_badge_text(result, width=0))
