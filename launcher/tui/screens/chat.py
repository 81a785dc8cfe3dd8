"""Chat (and completion): streaming replies, stop, regenerate, clear, settings, history, per-reply stats.

Generation runs in a thread worker. Pieces come back as messages to this screen and go into a MarkdownStream;
when the reply ends the stream is stopped and the Markdown is set to the whole reply, so the tail of a
message is never lost however the stream batched it.

What the user typed is saved before the reply is generated, and the reply is saved as it streams (every
SAVE_EVERY_TOKENS pieces or SAVE_EVERY_S seconds, then once more with its figures when it ends), so killing
Berth mid-reply loses at most the last few tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message as TextualMessage
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.widgets.markdown import MarkdownStream

from launcher import display
from launcher.run.session import SAVE_EVERY_S, SAVE_EVERY_TOKENS, GenerationSettings, Reply, Turn
from launcher.tui.backend import ChatRecord, Launched, chat_title
from launcher.tui.transcript import stats_line
from launcher.tui.widgets.chat_message import ChatMessage
from launcher.tui.widgets.prompt_input import PromptInput
from registry.schema import ModelCard

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi

#: Seconds between readings of the model's memory for the status line.
MEMORY_EVERY_S = 2.0


class ChatScreen(Screen[None]):
    """A conversation with a loaded chat model (or a saved one, read-only, when `launched` is None)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop_or_leave", "Stop / Browse"),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("ctrl+l", "clear", "Clear"),
        Binding("ctrl+s", "settings", "Settings"),
        Binding("ctrl+o", "app.chats", "Chats"),
        Binding("f2", "copy_last", "Copy reply"),
        Binding("ctrl+b", "browse", "Browse"),
        Binding("ctrl+u", "unload", "Unload", show=False),
    ]

    user_label = "You"
    prompt_placeholder = "Message (Enter sends, ctrl+j new line, ↑ earlier prompts)"

    class Piece(TextualMessage):
        """A piece of the reply being generated."""

        def __init__(self, text: str, turn: int) -> None:
            super().__init__()
            self.text = text
            self.turn = turn

    class Done(TextualMessage):
        """The reply ended (finished, stopped, or failed with `error`)."""

        def __init__(self, text: str, stats: Reply | None, turn: int, error: str = "") -> None:
            super().__init__()
            self.text = text
            self.stats = stats
            self.turn = turn
            self.error = error

    def __init__(
        self,
        card: ModelCard | None,
        launched: Launched | None,
        record: ChatRecord | None = None,
        typed: str = "",
        send: bool = False,
    ) -> None:
        super().__init__()
        self.typed = typed
        """Text typed before this screen opened (while the model loaded): put in the prompt."""
        self.send_typed = send
        self.card = card
        self.launched = launched
        self.model_id = card.id if card else (record.model_id if record else "?")
        self.record_id: str | None = record.id if record else None
        self.created = record.created if record else ""
        self.messages: list[Turn] = list(record.messages) if record else []
        self.settings = record.settings if record else GenerationSettings()
        self.system_prompt = record.system_prompt if record else ""
        self.streaming = False
        self._turn = 0
        self._reply: ChatMessage | None = None
        self._stream: MarkdownStream | None = None
        self._pieces: list[str] = []
        self._unsaved = 0
        self._saved_at = 0.0
        self.last_stats: Reply | None = next(
            (m.reply for m in reversed(self.messages) if m.role == "assistant" and m.reply is not None), None
        )
        self._leave_when_done = False

    @property
    def berth(self) -> BerthAppApi:
        """The app, typed."""
        return cast("BerthAppApi", self.app)

    @property
    def read_only(self) -> bool:
        """A saved chat whose model is not loaded."""
        return self.launched is None

    def compose(self) -> ComposeResult:
        yield Header()
        yield VerticalScroll(id="messages")
        prompt = PromptInput(self._prompt_history(), id="prompt")
        prompt.placeholder = self.prompt_placeholder
        yield prompt
        yield Static(id="chat-status")
        yield Footer(compact=True, show_command_palette=False)

    def _prompt_history(self) -> list[str]:
        return [m.content for m in self.messages if m.role == "user"]

    async def on_mount(self) -> None:
        self.sub_title = self._subtitle()
        container = self.query_one("#messages", VerticalScroll)
        await container.mount_all(self._bubble(m) for m in self.messages)
        container.scroll_end(animate=False)
        prompt = self.query_one("#prompt", PromptInput)
        if self.read_only:
            prompt.disabled = True
            prompt.placeholder = f"Read-only: launch {self.model_id} to continue this chat."
        else:
            prompt.focus()
            self.set_interval(MEMORY_EVERY_S, self._update_status)
            if self.typed:
                prompt.load_text(self.typed)
                last = prompt.document.line_count - 1
                prompt.move_cursor((last, len(prompt.document.get_line(last))))
                if self.send_typed:
                    prompt.submit()
        self._update_status()

    def _subtitle(self) -> str:
        s = self.settings
        mode = "read-only" if self.read_only else f"temperature {s.temperature:g} · top-p {s.top_p:g}"
        return f"{self.model_id} · {mode}"

    def _bubble(self, message: Turn) -> ChatMessage:
        return ChatMessage(message.role, message.content, message.reply, model=self._speaker_suffix())

    def _speaker_suffix(self) -> str:
        return ""

    # ------------------------------------------------------------------ status line

    def _update_status(self) -> None:
        text = Text()
        if self.launched is not None:
            memory = self.launched.session.memory_bytes()
            text.append("memory ", style="bold")
            text.append(" · ".join(f"{label} {display.gib(n)}" for label, n in memory.items()) or "-")
        else:
            text.append("not loaded", style="bold")
        if self.last_stats is not None:
            text.append("  │  last reply ", style="bold")
            text.append(stats_line(self.last_stats))
        elif self.streaming:
            text.append("  │  generating…", style="italic")
        self.query_one("#chat-status", Static).update(text)

    # ------------------------------------------------------------------ sending and streaming

    @on(PromptInput.Submitted, "#prompt")
    async def _submitted(self, event: PromptInput.Submitted) -> None:
        if self.streaming:
            event.prompt.load_text(event.text)
            self.notify("A reply is still streaming; Esc stops it.", severity="warning", timeout=3)
            return
        if self.read_only:
            return
        self.messages.append(Turn("user", event.text))
        self._save()  # written before the model answers
        self._remember()
        await self.query_one("#messages", VerticalScroll).mount(ChatMessage("user", event.text))
        await self._generate()

    async def _generate(self) -> None:
        """Start a reply to the conversation so far."""
        assert self.launched is not None
        self._turn += 1
        self.streaming = True
        self.last_stats = None
        self._pieces = []
        self._unsaved, self._saved_at = 0, time.monotonic()
        reply = ChatMessage("assistant", model=self._speaker_suffix())
        reply.set_waiting(True)
        self._reply = reply
        container = self.query_one("#messages", VerticalScroll)
        await container.mount(reply)
        container.anchor()
        self._stream = reply.body.get_stream(reply.body)
        self._update_status()
        self._run_generation(self._turn, list(self.messages))

    def _call_session(self, messages: list[Turn], on_piece: Callable[[str], None]) -> Reply:
        assert self.launched is not None
        return self.launched.session.chat(messages, self.settings, self.system_prompt, on_piece)

    @work(thread=True, group="generate")
    def _run_generation(self, turn: int, messages: list[Turn]) -> None:
        pieces: list[str] = []

        def on_piece(piece: str) -> None:
            pieces.append(piece)
            self.post_message(self.Piece(piece, turn))

        try:
            stats = self._call_session(messages, on_piece)
        except Exception as error:  # a failed reply is shown in the chat, not raised
            self.post_message(
                self.Done("".join(pieces), None, turn, error=str(error) or type(error).__name__)
            )
            return
        self.post_message(self.Done("".join(pieces), stats, turn))

    async def on_chat_screen_piece(self, message: Piece) -> None:
        if message.turn != self._turn or self._stream is None or self._reply is None:
            return
        self._pieces.append(message.text)
        self._reply.text = "".join(self._pieces)
        self._save_progress()
        await self._stream.write(message.text)

    def _save_progress(self) -> None:
        """Save the reply so far every SAVE_EVERY_TOKENS pieces or SAVE_EVERY_S seconds."""
        self._unsaved += 1
        now = time.monotonic()
        if self._unsaved >= SAVE_EVERY_TOKENS or now - self._saved_at >= SAVE_EVERY_S:
            self._unsaved, self._saved_at = 0, now
            self._save(Turn("assistant", "".join(self._pieces)))

    async def on_chat_screen_done(self, message: Done) -> None:
        if message.turn != self._turn or self._reply is None:
            return
        reply, stream = self._reply, self._stream
        self._stream = None
        if stream is not None:
            await stream.stop()
        reply.text = message.text
        if reply.body.source != message.text:
            await reply.body.update(message.text)
        reply.set_waiting(False)
        reply.set_stats(message.stats)
        self.streaming = False
        self.last_stats = message.stats
        if message.error:
            self.notify(f"The reply failed: {message.error}", severity="error", timeout=8)
        if message.text or message.stats is not None:
            self.messages.append(Turn("assistant", message.text, message.stats))
            self._save()
        self._remember()
        self._update_status()
        if self._leave_when_done:
            self._leave_when_done = False
            self.berth.back_to_browse()

    def _remember(self) -> None:
        """Tell the app how the live conversation stands, so that coming back to it resumes it."""
        if not self.read_only:
            self.berth.remember_live_chat(self.current_record())

    def _save(self, streaming: Turn | None = None) -> None:
        """Save the conversation (with `streaming`, the reply so far, at its end); a failure is shown, not raised."""
        store = self.berth.store
        if store is None or not self.messages:
            return
        try:
            self.record_id = store.save_chat(self.current_record(streaming))
            if not self.created:
                self.created = store.load_chat(self.record_id).created
        except Exception as error:  # a full disk or a locked store must not end the chat
            self.notify(f"Could not save this chat: {error}", severity="error", timeout=8)

    def current_record(self, streaming: Turn | None = None) -> ChatRecord:
        """The conversation as it stands (and the reply being generated, when given)."""
        return ChatRecord(
            model_id=self.model_id,
            messages=(*self.messages, streaming) if streaming else tuple(self.messages),
            partial=streaming is not None,
            settings=self.settings,
            system_prompt=self.system_prompt,
            task=self.card.task if self.card else "chat",
            title=chat_title(self.messages),
            id=self.record_id,
            created=self.created,
            host_label=self.berth.host.label,
        )

    # ------------------------------------------------------------------ actions

    def action_stop(self) -> None:
        """Stop the reply being generated (what came so far stays)."""
        if self.streaming and self.launched is not None:
            self.launched.session.stop()

    def action_stop_or_leave(self) -> None:
        """Stop the reply being generated; with none, back to Browse (the model stays loaded: `c` returns)."""
        if self.streaming:
            self.action_stop()
        else:
            self.action_browse()

    async def action_regenerate(self) -> None:
        """Drop the last reply and ask again."""
        if self.streaming or self.read_only:
            return
        if not self.messages or self.messages[-1].role != "assistant":
            self.notify("No reply to regenerate.", timeout=2)
            return
        self.messages.pop()
        bubbles = self.query_one("#messages", VerticalScroll).query(ChatMessage)
        if bubbles:
            await bubbles.last().remove()
        await self._generate()

    async def action_clear(self) -> None:
        """Start a new conversation (the old one stays in Chats)."""
        if self.streaming:
            self.action_stop()
            return
        self.messages = []
        self.record_id = None
        self.created = ""
        self.last_stats = None
        self._remember()
        await self.query_one("#messages", VerticalScroll).remove_children()
        self._update_status()
        self.notify("New chat.", timeout=2)

    def action_settings(self) -> None:
        """Edit the system prompt and sampling."""
        from launcher.tui.screens.settings import SettingsScreen

        self.app.push_screen(SettingsScreen(self.settings, self.system_prompt), self._settings_chosen)

    def _settings_chosen(self, chosen: tuple[GenerationSettings, str] | None) -> None:
        if chosen is not None:
            self.settings, self.system_prompt = chosen
            self.sub_title = self._subtitle()
            self._remember()

    def action_copy_last(self) -> None:
        """Copy the last reply."""
        replies = [m for m in self.messages if m.role == "assistant"]
        if not replies:
            self.notify("No reply yet.", timeout=2)
            return
        from launcher.tui.clipboard import copy_text

        self.notify(copy_text(self.app, replies[-1].content), timeout=5)

    def action_browse(self) -> None:
        """Back to Browse; the model stays loaded (Browse's `c`, or this chat in Chats, comes back to it)."""
        if self.streaming:
            self._leave_when_done = True
            self.action_stop()
            return
        self._remember()
        if self.launched is not None:
            self.notify(f"{self.model_id} stays loaded: c returns to this chat.", timeout=4)
        self.berth.back_to_browse()

    def action_unload(self) -> None:
        """Unload the model and return to Browse."""
        self.action_stop()
        if self.launched is not None:
            self.berth.unload()
        self.berth.back_to_browse()

    def export(self, fmt: str) -> None:
        """Write this chat as Markdown or JSON and say where."""
        if not self.messages:
            self.notify("Nothing to export yet.", timeout=2)
            return
        path = self.berth.export_chat(self.current_record(), fmt)
        self.notify(f"Exported to {path}", timeout=6)

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Main actions of this screen for the command palette."""
        return [
            ("Stop reply", "End the reply being generated", self.action_stop),
            ("Regenerate last reply", "Ask again", self.action_regenerate),
            ("Clear chat", "Start a new conversation", self.action_clear),
            ("Chat settings", "System prompt, temperature, top-p, max new tokens", self.action_settings),
            ("Copy last reply", "To the clipboard", self.action_copy_last),
            ("Export chat as Markdown", "Write it under the data folder", lambda: self.export("md")),
            ("Export chat as JSON", "Write it under the data folder", lambda: self.export("json")),
            ("Back to Browse", "The model stays loaded (c in Browse returns here)", self.action_browse),
            ("Unload the model", "Free its memory and return to Browse", self.action_unload),
        ]


class CompletionScreen(ChatScreen):
    """For completion models: each prompt is continued on its own (no chat template, no conversation)."""

    prompt_placeholder = "Text to continue (Enter runs, ctrl+j new line, ↑ earlier prompts)"

    def _call_session(self, messages: list[Turn], on_piece: Callable[[str], None]) -> Reply:
        assert self.launched is not None
        prompt = next(m.content for m in reversed(messages) if m.role == "user")
        return self.launched.session.complete(prompt, self.settings, on_piece)

    def _speaker_suffix(self) -> str:
        return "continuation"
