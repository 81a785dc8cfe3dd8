"""Chat settings: the system prompt and how replies are sampled."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, TextArea

from launcher.run.session import GenerationSettings

ChatSettings = tuple[GenerationSettings, str]
"""Generation settings and the system prompt ('' for none)."""


class SettingsScreen(ModalScreen[ChatSettings | None]):
    """Edit the system prompt and generation settings; Save returns both, Esc returns None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "save", "Save"),
    ]

    def __init__(self, settings: GenerationSettings, system_prompt: str = "") -> None:
        super().__init__()
        self.settings = settings
        self.system_prompt = system_prompt

    def compose(self) -> ComposeResult:
        s = self.settings
        with Vertical(id="settings", classes="dialog"):
            yield Label("System prompt", classes="plan-heading")
            yield TextArea(self.system_prompt, id="system-prompt", soft_wrap=True)
            with Horizontal(classes="field"):
                yield Label("temperature (0 = greedy)")
                yield Input(str(s.temperature), id="temperature", type="number", compact=True)
            with Horizontal(classes="field"):
                yield Label("top-p")
                yield Input(str(s.top_p), id="top-p", type="number", compact=True)
            with Horizontal(classes="field"):
                yield Label("max new tokens")
                yield Input(str(s.max_new_tokens), id="max-new-tokens", type="integer", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def _read(self) -> ChatSettings | None:
        try:
            temperature = float(self.query_one("#temperature", Input).value or 0)
            top_p = float(self.query_one("#top-p", Input).value or 1)
            max_new = int(self.query_one("#max-new-tokens", Input).value or 1)
        except ValueError:
            return None
        if not (0 <= temperature <= 5 and 0 < top_p <= 1 and 1 <= max_new <= 1_000_000):
            return None
        settings = GenerationSettings(max_new_tokens=max_new, temperature=temperature, top_p=top_p)
        return settings, self.query_one("#system-prompt", TextArea).text.strip()

    def action_save(self) -> None:
        """Return the settings if they are valid."""
        chosen = self._read()
        if chosen is None:
            self.notify(
                "Temperature 0–5, top-p above 0 up to 1, max new tokens at least 1.", severity="error"
            )
            return
        self.dismiss(chosen)

    def action_cancel(self) -> None:
        """Keep the old settings."""
        self.dismiss(None)

    @on(Button.Pressed, "#save")
    def _save_pressed(self) -> None:
        self.action_save()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.action_cancel()
