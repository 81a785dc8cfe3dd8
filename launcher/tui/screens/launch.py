"""Launch: download and load a model as planned, with progress, fallbacks, and estimate vs measured memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from rich.markup import escape
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from launcher import display
from launcher.plan.report import render_plan
from launcher.plan.request import Plan
from launcher.tui.backend import (
    DownloadProgress,
    Fallback,
    LaunchCancelledError,
    Launched,
    LaunchEvent,
    LoadProgress,
    Note,
)
from launcher.tui.widgets.progress_line import ProgressLine, RateMeter, transfer_text
from registry.schema import ModelCard

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi

#: How often progress widgets are redrawn while events pour in (seconds).
REDRAW_S = 0.1


def memory_rows(plan: Plan, measured: dict[str, int]) -> list[tuple[str, str, str, str]]:
    """(device, estimated, measured, difference) for each placement, then devices only measurement names."""
    rows = []
    for placement in plan.placements:
        estimate = placement.used_bytes
        got = measured.get(placement.label)
        if got is None:
            rows.append((placement.label, display.gib(estimate), "-", "-"))
            continue
        diff = (got - estimate) / estimate * 100 if estimate else 0.0
        rows.append((placement.label, display.gib(estimate), display.gib(got), f"{diff:+.0f}%"))
    known = {p.label for p in plan.placements}
    for label, got in measured.items():
        if label not in known:
            rows.append((label, "-", display.gib(got), "-"))
    return rows


class LaunchScreen(Screen[None]):
    """Runs the session factory in a thread; Esc cancels and returns to Browse.

    With `auto_start` (`berth launch MODEL`) the chat opens as soon as the model is loaded, and what the person
    types meanwhile is kept for its prompt (Enter typed meanwhile sends it once the model is ready).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel / back"),
        Binding("enter", "start", "Start", show=False),
    ]

    class Progress(Message):
        """A launch event from the loader thread."""

        def __init__(self, event: LaunchEvent) -> None:
            super().__init__()
            self.event = event

    class Finished(Message):
        """The loader returned a session."""

        def __init__(self, launched: Launched) -> None:
            super().__init__()
            self.launched = launched

    class Failed(Message):
        """The loader raised."""

        def __init__(self, error: BaseException) -> None:
            super().__init__()
            self.error = error

    def __init__(self, card: ModelCard, plan: Plan, auto_start: bool = False) -> None:
        super().__init__()
        self.card = card
        self.plan = plan
        self.auto_start = auto_start
        self.typed = ""
        """Keys typed while loading (auto_start): they go into the chat's prompt."""
        self.send_typed = False
        self.cancel = threading.Event()
        self.launched: Launched | None = None
        self.error: BaseException | None = None
        self.files: dict[str, tuple[int, int | None]] = {}
        self.meters: dict[str, RateMeter] = {}
        self.total_meter = RateMeter()
        self.load: LoadProgress | None = None
        self.notes: list[str] = []
        self.fallbacks: list[str] = []
        self._dirty = False

    @property
    def berth(self) -> BerthAppApi:
        """The app, typed."""
        return cast("BerthAppApi", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="launch"):
            yield Static(id="launch-title")
            yield Static(id="launch-note", classes="dim")
            yield Static(id="launch-typed")
            yield Static("Plan", classes="plan-heading")
            yield Static(Text(render_plan(self.plan), no_wrap=True, overflow="ellipsis"), id="launch-plan")
            yield Static("Download", classes="plan-heading")
            yield Vertical(id="downloads")
            yield ProgressLine("total", id="download-total")
            yield Static("Load", classes="plan-heading")
            yield ProgressLine("weights", id="load-progress")
            yield Static(id="fallbacks")
            yield Static("Memory: estimate vs measured", classes="plan-heading", id="memory-heading")
            memory: DataTable[str] = DataTable(id="memory", cursor_type="none")
            yield memory
            yield Static(id="launch-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"launching {self.card.id}"
        title = Text()
        title.append(f"{self.card.id}", style="bold")
        title.append(f"  {self.plan.summary}")
        self.query_one("#launch-title", Static).update(title)
        self.query_one("#memory-heading").display = False
        self.query_one("#memory").display = False
        self.query_one("#launch-hint", Static).update(
            "Esc cancels and returns to Browse."
            + (" Type your first message meanwhile; the chat opens once loaded." if self.auto_start else "")
        )
        self.set_interval(REDRAW_S, self._redraw)
        self._run()

    @work(thread=True, exclusive=True, group="launch")
    def _run(self) -> None:
        factory = self.berth.session_factory
        assert factory is not None
        try:
            launched = factory(self.card, self.plan, self.berth.host, self._report, self.cancel)
        except LaunchCancelledError:
            return
        except Exception as error:  # shown to the person; the loader's errors say what to do
            if not self.cancel.is_set():
                self.post_message(self.Failed(error))
            return
        if self.cancel.is_set() or not self.post_message(self.Finished(launched)):
            launched.session.close()

    def _report(self, event: LaunchEvent) -> None:
        """Called by the loader thread for each event (post_message is thread-safe)."""
        self.post_message(self.Progress(event))

    # ------------------------------------------------------------------ events from the loader

    def on_launch_screen_progress(self, message: Progress) -> None:
        event = message.event
        now = time.monotonic()
        if isinstance(event, DownloadProgress):
            self.files[event.file] = (event.done_bytes, event.total_bytes)
            self.meters.setdefault(event.file, RateMeter()).add(now, event.done_bytes)
            self.total_meter.add(now, sum(done for done, _ in self.files.values()))
        elif isinstance(event, LoadProgress):
            self.load = event
        elif isinstance(event, Fallback):
            self.fallbacks.append(event.message)
        elif isinstance(event, Note):
            self.notes.append(event.message)
        self._dirty = True

    def on_launch_screen_finished(self, message: Finished) -> None:
        self.launched = message.launched
        self._redraw(force=True)
        launched = message.launched
        self.fallbacks = list(dict.fromkeys([*self.fallbacks, *launched.fallbacks]))
        self._show_fallbacks()
        table = self.query_one("#memory", DataTable)
        table.clear(columns=True)
        table.add_columns("device", "estimated", "measured", "difference")
        for row in memory_rows(launched.plan, launched.measured_bytes):
            table.add_row(*row)
        self.query_one("#memory-heading").display = True
        table.display = True
        self.query_one("#launch-note", Static).update(
            f"Loaded in {display.seconds(launched.load_seconds)} as {launched.plan.summary}."
        )
        self.query_one("#launch-hint", Static).update(
            Text.from_markup("[b]Enter[/b] starts the session · [b]Esc[/b] unloads and returns to Browse")
        )
        self.berth.launched = launched
        if self.auto_start:
            self.berth.start_session(launched, self.card, self.typed, self.send_typed)

    def on_launch_screen_failed(self, message: Failed) -> None:
        self.error = message.error
        self._redraw(force=True)
        self.query_one("#launch-hint", Static).update(
            Text.from_markup(
                f"[b red]Launch failed:[/] {escape(str(message.error))}\n[b]Esc[/b] returns to Browse."
            )
        )

    # ------------------------------------------------------------------ drawing

    def _redraw(self, force: bool = False) -> None:
        if not (self._dirty or force):
            return
        self._dirty = False
        if self.notes:
            self.query_one("#launch-note", Static).update(self.notes[-1])
        downloads = self.query_one("#downloads", Vertical)
        for index, (name, (done, total)) in enumerate(self.files.items()):
            line_id = f"file-{index}"
            found = downloads.query(f"#{line_id}")
            line = found.first(ProgressLine) if found else ProgressLine(name, id=line_id)
            meter = self.meters[name]
            left = None if total is None else meter.eta(total - done)
            line.set_progress(done, total, transfer_text(done, total, meter.rate, left))
            if not found:
                downloads.mount(line)
        if not self.files and (self.load is not None or self.launched is not None):
            self.query_one("#download-total", ProgressLine).set_progress(
                1, 1, "nothing to download (local or cached)"
            )
        done_all = sum(done for done, _ in self.files.values())
        totals = [total for _, total in self.files.values()]
        total_all = sum(t for t in totals if t is not None) if totals and None not in totals else None
        left_all = None if total_all is None else self.total_meter.eta(total_all - done_all)
        if self.files:
            self.query_one("#download-total", ProgressLine).set_progress(
                done_all, total_all, transfer_text(done_all, total_all, self.total_meter.rate, left_all)
            )
        if self.load is not None:
            self.query_one("#load-progress", ProgressLine).set_progress(
                self.load.done, self.load.total, f"{self.load.done}/{self.load.total} {self.load.what}"
            )
        self._show_fallbacks()

    def _show_fallbacks(self) -> None:
        text = Text()
        for i, fallback in enumerate(self.fallbacks):
            if i:
                text.append("\n")
            text.append("fallback: ", style="bold yellow")
            text.append(fallback)
        self.query_one("#fallbacks", Static).update(text)

    # ------------------------------------------------------------------ actions

    def action_cancel(self) -> None:
        """Stop the launch (or unload the finished one) and return to Browse."""
        self.cancel.set()
        if self.launched is not None:
            self.berth.unload()
            self.notify(f"Unloaded {self.card.id}.", timeout=3)
        elif self.error is None:
            self.notify(f"Launch of {self.card.id} cancelled.", timeout=3)
        self.berth.back_to_browse()

    def action_start(self) -> None:
        """Open the chat (or completion / fill-mask) screen once loaded (while loading: send what was typed)."""
        if self.launched is not None:
            self.berth.start_session(self.launched, self.card, self.typed)
        elif self.auto_start and self.typed.strip() and self.error is None:
            self.send_typed = True
            self._show_typed()

    def on_key(self, event: events.Key) -> None:
        """While loading for `berth launch`, keep what is typed for the chat prompt."""
        if not self.auto_start or self.launched is not None or self.error is not None:
            return
        if event.key == "backspace":
            self.typed = self.typed[:-1]
            self.send_typed = False
        elif event.key == "ctrl+j":
            self.typed += "\n"
        elif event.is_printable and event.character:
            self.typed += event.character
            self.send_typed = False
        else:
            return
        event.stop()
        event.prevent_default()
        self._show_typed()

    def _show_typed(self) -> None:
        text = Text()
        if self.typed:
            text.append("your message: ", style="bold")
            text.append(self.typed)
            text.append(
                " (sent once loaded)" if self.send_typed else " (Enter sends it once loaded)", style="dim"
            )
        self.query_one("#launch-typed", Static).update(text)

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Main actions of this screen for the command palette."""
        commands: list[tuple[str, str, Callable[[], object]]] = [
            ("Cancel launch", "Stop and return to Browse", self.action_cancel)
        ]
        if self.launched is not None:
            commands.insert(0, ("Start the session", "Chat with the loaded model", self.action_start))
        return commands
