"""Fill-mask: type a sentence with the mask token, see the likeliest words for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from launcher import display
from launcher.run.session import Candidate
from launcher.tui.backend import Launched
from registry.schema import ModelCard

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi

#: Cells of the probability bar.
BAR_CELLS = 20


def guess_bar(score: float, cells: int = BAR_CELLS) -> Text:
    """A probability as a bar of `cells` cells and a percentage."""
    filled = round(max(0.0, min(score, 1.0)) * cells)
    text = Text("█" * filled, style="dodger_blue1")
    text.append("░" * (cells - filled), style="grey30")
    text.append(f" {score * 100:5.1f}%")
    return text


class FillMaskScreen(Screen[None]):
    """An input for a sentence with one mask, and a table of guesses."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+b", "browse", "Browse"),
        Binding("escape", "focus_input", "Edit", show=False),
    ]

    def __init__(self, card: ModelCard, launched: Launched) -> None:
        super().__init__()
        self.card = card
        self.launched = launched
        self.guesses: list[Candidate] = []

    @property
    def berth(self) -> BerthAppApi:
        """The app, typed."""
        return cast("BerthAppApi", self.app)

    @property
    def mask(self) -> str:
        """The model's mask token."""
        return self.launched.session.mask_token or "[MASK]"

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="fill-mask"):
            yield Static(
                Text(f"Write a sentence with {self.mask} where a word is missing, then press Enter."),
                id="fill-help",
            )
            yield Input(value=f"The capital of France is {self.mask}.", id="fill-input")
            guesses: DataTable[str | Text] = DataTable(id="guesses", cursor_type="row")
            yield guesses
        yield Static(id="chat-status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.card.id} · fill-mask"
        self.query_one("#guesses", DataTable).add_columns("token", "probability", "sentence")
        self.query_one("#fill-input", Input).focus()
        memory = self.launched.session.memory_bytes()
        self.query_one("#chat-status", Static).update(
            "memory " + " · ".join(f"{label} {display.gib(n)}" for label, n in memory.items())
        )

    @on(Input.Submitted, "#fill-input")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.mask not in event.value:
            self.notify(f"Put {self.mask} where the missing word goes.", severity="warning")
            return
        self._guess(event.value)

    @work(thread=True, exclusive=True, group="fill-mask")
    def _guess(self, text: str) -> None:
        try:
            guesses = self.launched.session.fill_mask(text)
        except Exception as error:  # shown to the person
            self.app.call_from_thread(self.notify, f"Failed: {error}", severity="error")
            return
        self.app.call_from_thread(self._show, guesses)

    def _show(self, guesses: list[Candidate]) -> None:
        self.guesses = guesses
        table = self.query_one("#guesses", DataTable)
        table.clear()
        for guess in guesses:
            table.add_row(guess.token, guess_bar(guess.score), guess.text)

    def action_focus_input(self) -> None:
        """Back to the sentence."""
        self.query_one("#fill-input", Input).focus()

    def action_browse(self) -> None:
        """Back to Browse; the model stays loaded (Browse's `c` comes back here)."""
        self.berth.back_to_browse()

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Main actions of this screen for the command palette."""
        return [("Back to Browse", "Unload the model", self.action_browse)]
