"""The table of models Browse and its Hub source show (textual only)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable


class ModelTable(DataTable[str | Text]):
    """The model table: Home and End move to the first and last model (DataTable's own scroll sideways)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home", "screen.first_row", "First row", show=False),
        Binding("end", "screen.last_row", "Last row", show=False),
    ]
