"""Past chats: reopen one, export it as Markdown or JSON, or delete it."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from launcher.tui.backend import ChatStore, ChatSummary

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi


class ChatsScreen(ModalScreen[str | None]):
    """A table of saved chats; Enter returns the chosen chat's id."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Close"),
        Binding("m", "export('md')", "Export Markdown"),
        Binding("j", "export('json')", "Export JSON"),
        Binding("delete,d", "delete", "Delete"),
    ]

    def __init__(self, store: ChatStore) -> None:
        super().__init__()
        self.store = store
        self.chats: list[ChatSummary] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="chats", classes="dialog"):
            yield Label("Past chats — Enter reopens · m Markdown · j JSON · d delete", classes="plan-heading")
            table: DataTable[str] = DataTable(id="chat-list", cursor_type="row", zebra_stripes=True)
            yield table
            yield Label("", id="chats-empty", classes="dim")

    def on_mount(self) -> None:
        table = self.query_one("#chat-list", DataTable)
        table.add_columns("started", "model", "title", "turns")
        self._fill()
        table.focus()

    def _fill(self) -> None:
        table = self.query_one("#chat-list", DataTable)
        table.clear()
        self.chats = self.store.list_chats()
        for chat in self.chats:
            table.add_row(
                chat.created[:16].replace("T", " "), chat.model_id, chat.title, str(chat.message_count)
            )
        self.query_one("#chats-empty", Label).update("" if self.chats else "No saved chats yet.")

    def _selected(self) -> ChatSummary | None:
        row = self.query_one("#chat-list", DataTable).cursor_row
        return self.chats[row] if 0 <= row < len(self.chats) else None

    @on(DataTable.RowSelected, "#chat-list")
    def _chosen(self) -> None:
        chat = self._selected()
        if chat is not None:
            self.dismiss(chat.id)

    def action_export(self, fmt: str) -> None:
        """Write the highlighted chat as Markdown ('md') or JSON ('json')."""
        chat = self._selected()
        if chat is None:
            return
        app = cast("BerthAppApi", self.app)
        path = app.export_chat(self.store.load_chat(chat.id), fmt)
        self.notify(f"Exported to {path}", timeout=6)

    def action_delete(self) -> None:
        """Delete the highlighted chat."""
        chat = self._selected()
        if chat is None:
            return
        try:
            self.store.delete_chat(chat.id)
        except NotImplementedError as error:
            self.notify(str(error) or "This store keeps every chat.", severity="warning")
            return
        self._fill()

    def action_cancel(self) -> None:
        """Close without choosing."""
        self.dismiss(None)
