"""One turn of a chat: who spoke, the text as Markdown, and the reply's stats. Focus it and press c to copy."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Markdown, Static

from launcher.run.session import Reply, Turn
from launcher.run.store import Role
from launcher.tui.transcript import stats_line

SPEAKERS: dict[Role, str] = {"user": "You", "assistant": "Assistant", "system": "System"}


class ChatMessage(Vertical, can_focus=True):
    """A message bubble. `text` always holds the whole message, even while the Markdown catches up."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("c,y", "copy", "Copy message")]

    def __init__(self, role: Role, text: str = "", stats: Reply | None = None, model: str = "") -> None:
        super().__init__(classes=f"message -{role}")
        self.role = role
        self.text = text
        self.stats = stats
        self.model = model

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="message-header")
        yield Markdown(self.text, classes="message-body")

    def _header(self) -> str:
        name = SPEAKERS[self.role]
        if self.role == "assistant" and self.model:
            name = f"{name} ({self.model})"
        if self.stats is not None:
            return f"{name} · {stats_line(self.stats)}"
        return name

    @property
    def body(self) -> Markdown:
        """The Markdown widget that shows the text."""
        return self.query_one(".message-body", Markdown)

    def set_stats(self, stats: Reply | None) -> None:
        """Show a finished reply's stats in the header."""
        self.stats = stats
        self.query_one(".message-header", Static).update(self._header())

    def set_waiting(self, waiting: bool) -> None:
        """Mark the message as still being written."""
        self.set_class(waiting, "-streaming")

    def as_message(self) -> Turn:
        """The turn, with its reply."""
        return Turn(self.role, self.text, self.stats)

    def action_copy(self) -> None:
        """Put the message's text on the clipboard."""
        from launcher.tui.clipboard import copy_text

        self.notify(copy_text(self.app, self.text), timeout=5)
