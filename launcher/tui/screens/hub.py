"""Browse's Hub source: Hub repositories matching a search (text generation, most downloaded first, a page at a
time), each read without weights and planned on the chosen machine in a worker thread as it arrives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from threading import Thread
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, Static

from launcher.machine.host import HostSnapshot
from launcher.plan.hub_rows import HubRow, paragraph, plan_hit, replan
from launcher.plan.request import PlanRequest
from launcher.tui.hub_table import (
    HUB_COLUMNS,
    PROVENANCE,
    HubPage,
    first_page,
    hub_badge,
    hub_cells,
    hub_columns_for,
    status_text,
)
from launcher.tui.rows import Column
from launcher.tui.widgets.host_header import HostHeader
from launcher.tui.widgets.model_table import ModelTable
from registry.errors import BerthError, short_text
from registry.hub_fetch import HubHit, search_hub

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi


@dataclass
class HubState:
    """What the Hub source showed, handed back to Browse so that toggling back finds it as it was."""

    query: str
    opened_with: str
    """The catalog's search text when the Hub was opened (a different one next time starts a new search)."""
    rows: list[HubRow] = field(default_factory=list)
    page: HubPage | None = None
    more: bool = False
    complete: bool = False
    """The last search finished (an interrupted one is searched again)."""


class HubScreen(Screen[HubState]):
    """The Hub table: search on enter, `m` for a further page, enter on a row for its plan; esc or `u` returns
    to the catalog."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_search", "Search", priority=True),
        Binding("m", "more", "More", tooltip="The next page of matches."),
        Binding("f", "toggle_fits", "Fits only"),
        Binding("h", "hardware", "Hardware"),
        Binding("l", "launch", "Launch"),
        Binding("u", "catalog", "Catalog", tooltip="Back to the catalog (the search text is kept)."),
        Binding("escape", "catalog", "Back to the catalog", show=False),
        Binding("home", "first_row", "First row", show=False),
        Binding("end", "last_row", "Last row", show=False),
    ]

    def __init__(self, state: HubState) -> None:
        super().__init__()
        self.state = state
        self.shown: list[HubRow] = []
        self.fits_only = False
        self.searching = False
        self._generation = 0
        self._planned_for: tuple[HostSnapshot, PlanRequest] | None = None
        self.columns: tuple[Column, ...] = ()

    @property
    def berth(self) -> BerthAppApi:
        """The app, typed."""
        return cast("BerthAppApi", self.app)

    @property
    def rows(self) -> list[HubRow]:
        """Every hit planned so far, in the Hub's order (most downloaded first)."""
        return self.state.rows

    def compose(self) -> ComposeResult:
        yield Header()
        yield HostHeader(id="host")
        yield Static(id="status")
        with Horizontal(id="filters"):
            yield Input(
                value=self.state.query,
                placeholder="Hub search: words, then enter (empty: the most downloaded)",
                id="hub-search",
                compact=True,
            )
            yield Checkbox("fits only", id="fits", compact=True)
        yield Static(PROVENANCE, id="hub-note", classes="dim")
        yield ModelTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static(id="hub-message")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.title = "Berth · Hub"
        self.query_one("#hub-message", Static).display = False
        self._set_columns()
        if self.state.complete and self.state.page is not None:
            self.replan()
        else:
            self.search(self.state.query)
        self.query_one("#models", DataTable).focus()  # `/` goes to the search box, as in the catalog

    def on_unmount(self) -> None:
        self._generation += 1  # a search still running hands nothing more to a screen that is gone

    # ------------------------------------------------------------------ searching

    def search(self, query: str) -> None:
        """Start a new search (the table empties; the first page fills it as each hit is planned)."""
        self.state.query = query.strip()
        self.state.rows = []
        self.state.complete = False
        self._start(first_page(self.state.query))

    def action_more(self) -> None:
        """Ask for the next page of matches."""
        page = self.state.page
        if self.searching:
            self.notify("Still reading this page; m asks for more once it is done.", timeout=3)
        elif page is None or not self.state.more:
            self.notify("No more matches for this search.", timeout=3)
        else:
            self._start(page.following())

    def _start(self, page: HubPage) -> None:
        self._generation += 1
        self.state.page = page
        self.searching = True
        self.refresh_bindings()
        self._show_message("")
        self.refill()
        self._set_status(f"searching the Hub for '{page.query}' (text generation, most downloaded first)…")
        seen = frozenset(r.hit.repo_id for r in self.rows)
        Thread(
            target=self._search_worker, args=(page, seen, self._generation), name="berth-hub", daemon=True
        ).start()

    def _search_worker(self, page: HubPage, seen: frozenset[str], generation: int) -> None:
        """Search, then read and plan each new hit, handing each row to the UI as it is planned. It runs in a
        daemon thread, not a Textual worker: quitting the app never waits for a slow or unreachable Hub."""
        try:
            self._search_and_plan(page, seen, generation)
        except _Stale:
            return

    def _search_and_plan(self, page: HubPage, seen: frozenset[str], generation: int) -> None:
        try:
            hits = search_hub(page.query, page.wanted)
        except BerthError as error:
            self._tell(generation, self._failed, paragraph(error), generation)
            return
        except Exception as error:  # never a traceback in the app: say what went wrong and stay usable
            self._tell(generation, self._failed, _unexpected(error), generation)
            return
        new = [h for h in hits[page.already :] if h.repo_id not in seen]
        for number, hit in enumerate(new, 1):
            self._tell(generation, self._reading, number, len(new), hit.repo_id, generation)
            host, request = self.berth.host, self.berth.request
            hub_row = self._plan(hit, host, request)
            self._tell(generation, self._arrived, hub_row, (host, request), generation)
        more = len(hits) >= page.wanted and page.can_grow
        self._tell(generation, self._finished, more, generation)

    def _tell(self, generation: int, callback: Callable[..., None], *args: object) -> None:
        """Run `callback` on the UI thread; _Stale once a newer search, esc or quitting has made this one moot."""
        if generation != self._generation:
            raise _Stale
        try:
            self.app.call_from_thread(callback, *args)
        except RuntimeError:  # the app has stopped
            raise _Stale from None

    def _plan(self, hit: HubHit, host: HostSnapshot, request: PlanRequest) -> HubRow:
        app = self.berth
        try:
            return plan_hit(hit, app.catalog, host, request, app.planner)
        except Exception as error:  # one repository that breaks the reader must not end the search
            return HubRow(hit, None, "cannot plan: " + type(error).__name__, _unexpected(error))

    def _current(self, generation: int) -> bool:
        return generation == self._generation and self.is_mounted

    def _reading(self, number: int, total: int, repo_id: str, generation: int) -> None:
        if self._current(generation):
            self._set_status(
                f"reading and planning {number}/{total}: {repo_id} (config and safetensors headers, no weights)…"
            )

    def _arrived(
        self, hub_row: HubRow, planned_for: tuple[HostSnapshot, PlanRequest], generation: int
    ) -> None:
        if not self._current(generation):
            return
        app = self.berth
        if planned_for != (app.host, app.request):  # the hardware changed while it was being read
            hub_row = replan(hub_row, app.catalog, app.host, app.request, app.planner)
        self.state.rows.append(hub_row)
        self._add_row(hub_row)

    def _finished(self, more: bool, generation: int) -> None:
        if not self._current(generation):
            return
        self.searching = False
        self.state.more = more
        self.refresh_bindings()
        self.state.complete = True
        self._planned_for = (self.berth.host, self.berth.request)
        self._update_status()
        if not self.rows:
            self._show_message(
                f"The Hub has no text-generation repository matching '{self.state.query}'. "
                "Try other words (enter searches), or esc for the catalog."
            )

    def _failed(self, message: str, generation: int) -> None:
        if not self._current(generation):
            return
        self.searching = False
        self.state.complete = False
        self.refresh_bindings()
        self._show_message(message)
        self._set_status(
            "the Hub search failed · esc: back to the catalog · enter in the search box: try again"
        )

    # ------------------------------------------------------------------ table

    def replan(self) -> None:
        """Plan every hit again for the app's host and context (from the entries already read; no network)."""
        app = self.berth
        if self._planned_for == (app.host, app.request):
            self.refill()
            return
        self.state.rows = [replan(r, app.catalog, app.host, app.request, app.planner) for r in self.rows]
        if not self.searching:
            self._planned_for = (app.host, app.request)
        self.refill()

    def _set_columns(self) -> None:
        columns = hub_columns_for(self.app.size.width)
        if columns == self.columns:
            return
        self.columns = columns
        table = self.query_one("#models", DataTable)
        table.clear(columns=True)
        for column in columns:
            table.add_column(column.label, key=column.key)

    def refill(self) -> None:
        """Show the rows that pass the filter, keeping the highlighted one where it is still shown."""
        table = self.query_one("#models", DataTable)
        current = self.highlighted()
        self._set_columns()
        table.clear()
        self.shown = []
        for hub_row in self.rows:
            self._add_row(hub_row)
        ids = [r.hit.repo_id for r in self.shown]
        if current is not None and current.hit.repo_id in ids:
            table.move_cursor(row=ids.index(current.hit.repo_id), scroll=True)
        self._update_status()

    def _add_row(self, hub_row: HubRow) -> None:
        if self.fits_only and not hub_row.fits:
            return
        texts = hub_cells(hub_row, narrow=self.columns != HUB_COLUMNS)
        label, colour = hub_badge(hub_row)
        values: list[str | Text] = []
        for column in self.columns:
            if column.key == "fit":
                values.append(Text(f" {label} ".ljust(11), style=f"bold black on {colour}"))
            elif column.key == "note":
                values.append(Text(texts["note"], style="yellow" if hub_row.problem else "dim"))
            else:
                values.append(Text(texts[column.key], justify="right") if column.right else texts[column.key])
        self.query_one("#models", DataTable).add_row(*values, key=hub_row.hit.repo_id)
        self.shown.append(hub_row)
        if not self.searching:
            self._update_status()

    def highlighted(self) -> HubRow | None:
        """The hit under the cursor, if any."""
        table = self.query_one("#models", DataTable)
        if 0 <= table.cursor_row < len(self.shown):
            return self.shown[table.cursor_row]
        return None

    def _update_status(self) -> None:
        self.query_one("#host", HostHeader).show(self.berth.host)
        self.sub_title = self.berth.host.label
        if not self.searching:
            self._set_status(status_text(self.rows, len(self.shown), self.state.query, self.state.more))

    def _set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    def _show_message(self, text: str) -> None:
        message = self.query_one("#hub-message", Static)
        message.update(text)
        message.display = bool(text)

    def on_resize(self) -> None:
        if hub_columns_for(self.app.size.width) != self.columns:
            self.refill()

    # ------------------------------------------------------------------ events

    @on(DataTable.RowHighlighted, "#models")
    def _row_highlighted(self) -> None:
        """Under the table: why the highlighted repository could not be planned (nothing when it was)."""
        hub_row = self.highlighted()
        if hub_row is not None:
            self._show_message(_why(hub_row) if hub_row.problem else "")

    @on(DataTable.RowSelected, "#models")
    def _row_selected(self) -> None:
        hub_row = self.highlighted()
        if hub_row is None:
            return
        if hub_row.row is None:
            self.notify(_why(hub_row), severity="warning", timeout=10)
            return
        self.berth.open_plan(hub_row.row.card)

    @on(Input.Submitted, "#hub-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        self.search(event.value)
        self.query_one("#models", DataTable).focus()

    @on(Checkbox.Changed, "#fits")
    def _fits_changed(self, event: Checkbox.Changed) -> None:
        self.fits_only = event.value
        self.refill()

    # ------------------------------------------------------------------ actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:  # noqa: ARG002
        """In the search box `/` is typed as itself; `m` shows in the footer only while more can be asked for."""
        if action == "focus_search":
            return self.focused is not self.query_one("#hub-search", Input)
        if action == "more":
            return self.state.more and not self.searching
        return True

    def action_focus_search(self) -> None:
        """Jump to the search box."""
        self.set_focus(self.query_one("#hub-search", Input))

    def action_catalog(self) -> None:
        """Back to the catalog (Browse keeps this search for the next toggle)."""
        self._generation += 1  # results of a search still running are dropped
        self.dismiss(self.state)

    def action_toggle_fits(self) -> None:
        """Show only repositories that fit, or all."""
        box = self.query_one("#fits", Checkbox)
        box.value = not box.value

    def action_hardware(self) -> None:
        """Pick or type the hardware to plan for (the Hub rows are planned again, without reading them again)."""
        from launcher.tui.screens.hardware import HardwareScreen

        self.app.push_screen(HardwareScreen(), self.berth.switch_hardware)

    def action_launch(self) -> None:
        """Launch the highlighted repository as planned."""
        hub_row = self.highlighted()
        if hub_row is not None and hub_row.row is not None:
            self.berth.launch(hub_row.row.card, hub_row.row.result)

    def action_first_row(self) -> None:
        """Highlight the first repository."""
        self.query_one("#models", DataTable).move_cursor(row=0, scroll=True)

    def action_last_row(self) -> None:
        """Highlight the last repository."""
        table = self.query_one("#models", DataTable)
        table.move_cursor(row=max(table.row_count - 1, 0), scroll=True)

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Main actions of this screen for the command palette."""
        return [
            ("Search the Hub", "Words to look for (enter searches)", self.action_focus_search),
            ("More Hub matches", "The next page of the search", self.action_more),
            ("Back to the catalog", "The verified models (the search text is kept)", self.action_catalog),
            ("Switch hardware…", "Plan for this machine or any named spec", self.action_hardware),
            ("Toggle fits only", "Hide repositories that do not fit", self.action_toggle_fits),
        ]


class _Stale(Exception):
    """A search thread's results are no longer wanted (a newer search, esc, or the app has quit)."""


def _why(hub_row: HubRow) -> str:
    """Why a repository could not be planned, naming it once."""
    repo = hub_row.hit.repo_id
    return hub_row.detail if repo in hub_row.detail else f"{repo}: {hub_row.detail}"


def _unexpected(error: Exception) -> str:
    """One paragraph for an error Berth has no message for."""
    return (
        f"Berth could not read this from the Hub ({type(error).__name__}: {short_text(str(error), 200)}). "
        "Try again, or esc for the catalog; `berth list --hub WORDS` shows the same search in the terminal."
    )
