"""The chat prompt: Enter sends, ctrl+j (or shift+enter) starts a new line, up/down recall earlier prompts."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class PromptInput(TextArea):
    """A multi-line prompt with history. Posts Submitted with the text on Enter (ignores blank text)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+j,shift+enter", "newline", "New line", show=False),
    ]

    class Submitted(Message):
        """The user pressed Enter on a prompt."""

        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

        @property
        def control(self) -> PromptInput:
            """The prompt that sent it."""
            return self.prompt

    def __init__(self, history: list[str] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.prompt_history: list[str] = list(history or [])
        self._index: int | None = None
        """Position in history while recalling; None when editing a new prompt."""
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.submit()
            return
        if event.key == "up" and self.cursor_location[0] == 0 and self.prompt_history:
            event.stop()
            event.prevent_default()
            self.recall(-1)
            return
        if (
            event.key == "down"
            and self._index is not None
            and self.cursor_location[0] == self.document.line_count - 1
        ):
            event.stop()
            event.prevent_default()
            self.recall(+1)
            return
        await super()._on_key(event)

    def submit(self) -> None:
        """Send the text (if any), remember it, and clear the prompt."""
        text = self.text
        if not text.strip():
            return
        if not self.prompt_history or self.prompt_history[-1] != text:
            self.prompt_history.append(text)
        self._index = None
        self._draft = ""
        self.clear()
        self.post_message(self.Submitted(self, text))

    def recall(self, step: int) -> None:
        """Move through earlier prompts (-1 older, +1 newer); past the newest, the unsent draft returns."""
        if self._index is None:
            if step > 0:
                return
            self._draft = self.text
            self._index = len(self.prompt_history)
        index = self._index + step
        if index < 0:
            return
        if index >= len(self.prompt_history):
            self._index = None
            self._set(self._draft)
            return
        self._index = index
        self._set(self.prompt_history[index])

    def _set(self, text: str) -> None:
        self.load_text(text)
        last = self.document.line_count - 1
        self.move_cursor((last, len(self.document.get_line(last))))

    def action_newline(self) -> None:
        """Insert a line break at the cursor."""
        self.insert("\n")
