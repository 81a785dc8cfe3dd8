"""Browse: every catalog model with its fit on the chosen machine, searchable, filterable and sortable."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Checkbox, DataTable, Footer, Header, Input, Select, Static
from textual.worker import get_current_worker

from launcher.plan.rows import Row, plan_all
from launcher.run.figures_cache import kept_figures
from launcher.tui.rows import COLUMNS, BrowseFilter, Column, badge, cells, choices, columns_for, sort_by
from launcher.tui.widgets.host_header import HostHeader
from launcher.tui.widgets.model_table import ModelTable
from launcher.tui.widgets.plan_view import PlanDetails, PlanView

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi
    from launcher.tui.screens.hub import HubState

ANY = Select.NULL
#: Seconds the highlight must rest on a row before the side panel re-plans it.
PANEL_DELAY_S = 0.12


class BrowseScreen(Screen[None]):
    """The model table, its filters, and (on wide terminals) the plan of the highlighted model beside it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # priority: handled as the key arrives, so keys typed right after it already go to the search box
        Binding("slash", "focus_search", "Search", priority=True),
        Binding("f", "toggle_fits", "Fits only"),
        Binding("h", "hardware", "Hardware"),
        Binding("u", "hub", "Hub", tooltip="Search the Hugging Face Hub instead of the catalog."),
        Binding(
            "x", "context", "Context", show=False
        ),  # the context box is in sight; 80 columns hold the rest
        Binding("s", "cycle_sort", "Sort"),
        Binding("r", "reverse_sort", "Reverse sort", show=False),
        Binding("l", "launch", "Launch"),
        Binding("o", "app.chats", "Chats"),
        Binding("c", "resume", "Chat", tooltip="Back to the loaded model's chat."),
        Binding("home", "first_row", "First row", show=False),
        Binding("end", "last_row", "Last row", show=False),
        Binding("t", "cycle_task", "Task filter", show=False),
        Binding("p", "toggle_panel", "Side panel", show=False),
        Binding("escape", "back_to_table", "Back to table", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.shown: list[Row] = []
        self.filter = BrowseFilter()
        self.sort_column = "fit"
        self.sort_reverse = False
        self.panel_open = True
        self._generation = 0
        self._panel_timer: Timer | None = None
        self._panel_model: str | None = None
        self.columns: tuple[Column, ...] = ()
        self.hub_state: HubState | None = None
        """What the Hub source showed last (`u` returns to it)."""

    @property
    def berth(self) -> BerthAppApi:
        """The app, typed."""
        return cast("BerthAppApi", self.app)

    def compose(self) -> ComposeResult:
        catalog = self.berth.catalog
        yield Header()
        yield HostHeader(id="host")
        yield Static(id="status")
        with Horizontal(id="filters"):
            yield Input(placeholder="/ search id, alias, family, task", id="search", compact=True)
            yield Select(
                [(t, t) for t in choices(c.task for c in catalog.models)],
                prompt="task",
                id="task",
                compact=True,
            )
            yield Select(
                [(f, f) for f in choices(c.family for c in catalog.models)],
                prompt="family",
                id="family",
                compact=True,
            )
            yield Select(
                [(lic, lic) for lic in choices(c.license for c in catalog.models)],
                prompt="licence",
                id="license",
                compact=True,
            )
            yield Checkbox("fits only", id="fits", compact=True)
            yield Input(
                placeholder="context",
                id="context",
                type="integer",
                compact=True,
                value=str(self.berth.request.context or ""),
                tooltip="Context length to plan for (tokens); empty means 4096, capped per model.",
            )
        with Horizontal(id="browse-body"):
            table: DataTable[str | Text] = ModelTable(id="models", cursor_type="row", zebra_stripes=True)
            yield table
            with Vertical(id="side"):
                yield PlanView(id="side-plan")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        self._set_columns()
        table.focus()
        self._update_status(planning=True)
        self.replan()

    # ------------------------------------------------------------------ planning

    def replan(self) -> None:
        """Plan every model for the app's host and context in a thread, then refill the table."""
        self._generation += 1
        self._update_status(planning=True)
        self._plan_rows(self._generation)

    @work(thread=True, exclusive=True, group="browse-plan")
    def _plan_rows(self, generation: int) -> None:
        app = self.berth
        with kept_figures():  # shapes sized by earlier runs are not sized again
            rows = plan_all(app.catalog, app.host, app.request, planner=app.planner, gguf=app.gguf_files())
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._rows_ready, rows, generation)

    def _rows_ready(self, rows: list[Row], generation: int) -> None:
        if generation != self._generation:
            return
        self.rows = rows
        self._panel_model = None
        self.refill()
        self.call_after_refresh(self.berth.browse_ready)

    # ------------------------------------------------------------------ table

    def _measured(self) -> Callable[[str], float | None]:
        return self.berth.measured_speed

    def _set_columns(self) -> bool:
        """Use the column set that fits the terminal; True when it changed (the table was emptied)."""
        columns = columns_for(self.app.size.width)
        if columns == self.columns:
            return False
        self.columns = columns
        table = self.query_one("#models", DataTable)
        table.clear(columns=True)
        for column in columns:
            table.add_column(column.label, key=column.key)
        return True

    def refill(self) -> None:
        """Filter, sort and show the rows, keeping the highlighted model where it is still shown."""
        table = self.query_one("#models", DataTable)
        current = self.highlighted_id()
        self._set_columns()
        narrow = self.columns != COLUMNS
        measured = self._measured()
        kept = [r for r in self.rows if self.filter.keep(r)]
        self.shown = sort_by(kept, self.sort_column, self.sort_reverse, measured)
        table.clear()
        for row in self.shown:
            texts = cells(row, measured, narrow)
            label, colour = badge(row.result)
            values: list[str | Text] = []
            for column in self.columns:
                if column.key == "fit":
                    values.append(Text(f" {label} ".ljust(11), style=f"bold black on {colour}"))
                elif column.right:
                    values.append(Text(texts[column.key], justify="right"))
                else:
                    values.append(texts[column.key])
            table.add_row(*values, key=row.card.id)
        if current is not None and any(r.card.id == current for r in self.shown):
            table.move_cursor(row=table.get_row_index(current), scroll=True)
        self._update_status()
        self._schedule_panel()

    def highlighted_id(self) -> str | None:
        """Id of the model under the cursor, if any."""
        table = self.query_one("#models", DataTable)
        if not self.shown or table.cursor_row < 0 or table.cursor_row >= len(self.shown):
            return None
        return self.shown[table.cursor_row].card.id

    def highlighted(self) -> Row | None:
        """The row under the cursor, if any."""
        model = self.highlighted_id()
        return next((r for r in self.shown if r.card.id == model), None)

    def _update_status(self, planning: bool = False) -> None:
        app = self.berth
        fitting = sum(1 for r in self.rows if r.fits)
        arrow = "↑" if self.sort_reverse else "↓"
        context = f"context {app.request.context:,}" if app.request.context else "context 4,096"
        if planning and not self.rows:
            status = f"planning {len(app.catalog.models)} models…"
        else:
            status = (
                f"{fitting}/{len(self.rows)} fit · {len(self.shown)} shown · {context} (capped per model)"
                f" · sort: {self.sort_column} {arrow} · ~ = estimated tok/s"
            )
            if planning:
                status = "re-planning… · " + status
        self.query_one("#host", HostHeader).show(app.host)
        self.query_one("#status", Static).update(status)
        self.sub_title = app.host.label

    # ------------------------------------------------------------------ side panel

    @on(DataTable.RowHighlighted, "#models")
    def _row_highlighted(self) -> None:
        self._schedule_panel()

    def _panel_visible(self) -> bool:
        return self.panel_open and self.app.size.width >= 150

    def _schedule_panel(self) -> None:
        side = self.query_one("#side")
        side.display = self._panel_visible()
        if not side.display:
            return
        if self._panel_timer is not None:
            self._panel_timer.stop()
        self._panel_timer = self.set_timer(PANEL_DELAY_S, self._fill_panel)

    def _fill_panel(self) -> None:
        row = self.highlighted()
        if row is None or row.card.id == self._panel_model:
            return
        self._panel_model = row.card.id
        self._panel_details(row)

    @work(thread=True, exclusive=True, group="browse-panel")
    def _panel_details(self, row: Row) -> None:
        details = self.berth.plan_details(row.card)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_panel, details)

    def _show_panel(self, details: PlanDetails) -> None:
        if details.card.id == self.highlighted_id():
            self.query_one("#side-plan", PlanView).show(details)

    def on_screen_resume(self) -> None:
        """Back from a plan or a session: speeds measured meanwhile show up in the table."""
        if self.rows:
            self.berth.forget_measurements()
            self.refill()

    def on_resize(self) -> None:
        if self.rows and columns_for(self.app.size.width) != self.columns:
            self.refill()
        self._schedule_panel()

    @on(PlanView.AlternativeChosen)
    def _alternative_chosen(self, event: PlanView.AlternativeChosen) -> None:
        row = self.highlighted()
        if row is not None:
            from launcher.tui.screens.plan import PlanScreen

            self.app.push_screen(PlanScreen(row.card, event.alternative.request))

    # ------------------------------------------------------------------ events

    @on(DataTable.RowSelected, "#models")
    def _row_selected(self) -> None:
        row = self.highlighted()
        if row is not None:
            self.berth.open_plan(row.card)

    @on(DataTable.HeaderSelected, "#models")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = key, False
        self.refill()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self._set_filter(search=event.value)

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self.query_one("#models", DataTable).focus()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        value = None if event.value is ANY else str(event.value)
        if event.select.id in ("task", "family", "license"):
            self._set_filter(**{event.select.id: value})

    @on(Checkbox.Changed, "#fits")
    def _fits_changed(self, event: Checkbox.Changed) -> None:
        self._set_filter(fits_only=event.value)

    @on(Input.Changed, "#context")
    def _context_changed(self, event: Input.Changed) -> None:
        text = event.value.strip()
        if not text:
            self.berth.set_context(None)
            return
        try:
            value = int(text)
        except ValueError:
            return
        if value >= 1:
            self.berth.set_context(value)

    @on(Input.Submitted, "#context")
    def _context_submitted(self) -> None:
        self.query_one("#models", DataTable).focus()

    def _set_filter(self, **changes: object) -> None:
        from dataclasses import replace

        self.filter = replace(self.filter, **changes)  # type: ignore[arg-type]
        self.refill()

    # ------------------------------------------------------------------ actions

    def action_focus_search(self) -> None:
        """Jump to the search box (at once: keys typed right after `/` must land in it, in order)."""
        self.set_focus(self.query_one("#search", Input))

    def action_back_to_table(self) -> None:
        """Leave a filter box for the table."""
        self.set_focus(self.query_one("#models", DataTable))

    def action_first_row(self) -> None:
        """Highlight the first model."""
        self.query_one("#models", DataTable).move_cursor(row=0, scroll=True)

    def action_last_row(self) -> None:
        """Highlight the last model."""
        table = self.query_one("#models", DataTable)
        table.move_cursor(row=max(table.row_count - 1, 0), scroll=True)

    def action_resume(self) -> None:
        """Back to the loaded model's live chat."""
        self.berth.resume_session()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:  # noqa: ARG002
        """`c` (back to the chat) shows in the footer only while a model is loaded; `/` in the search box types."""
        if action == "resume":
            return self.berth.launched is not None
        if action == "focus_search":  # in the search box `/` is typed as itself (model ids have one)
            return self.focused is not self.query_one("#search", Input)
        return True

    def action_toggle_fits(self) -> None:
        """Show only models that fit, or all."""
        box = self.query_one("#fits", Checkbox)
        box.value = not box.value

    def action_cycle_task(self) -> None:
        """Task filter: any → chat → completion → fill-mask → any."""
        select = self.query_one("#task", Select)
        tasks = choices(c.task for c in self.berth.catalog.models)
        current = None if select.value is ANY else str(select.value)
        order: list[str | None] = [None, *tasks]
        following = order[(order.index(current) + 1) % len(order)]
        if following is None:
            select.clear()
        else:
            select.value = following

    def action_cycle_sort(self) -> None:
        """Sort by the next column."""
        keys = [c.key for c in COLUMNS]
        self.sort_column = keys[(keys.index(self.sort_column) + 1) % len(keys)]
        self.sort_reverse = False
        self.refill()

    def action_reverse_sort(self) -> None:
        """Flip the sort order."""
        self.sort_reverse = not self.sort_reverse
        self.refill()

    def sort_on(self, column: str) -> None:
        """Sort by a column key."""
        self.sort_column, self.sort_reverse = column, False
        self.refill()

    def action_context(self) -> None:
        """Jump to the context-length box."""
        self.set_focus(self.query_one("#context", Input))

    def action_hardware(self) -> None:
        """Pick or type the hardware to plan for."""
        from launcher.tui.screens.hardware import HardwareScreen

        self.app.push_screen(HardwareScreen(), self._hardware_chosen)

    def _hardware_chosen(self, spec: str | None) -> None:
        self.berth.switch_hardware(spec)

    def action_hub(self) -> None:
        """Switch the source to the Hugging Face Hub: search it (starting from the catalog's search text, or
        where the Hub was left) and plan each repository found; esc or `u` there comes back here."""
        from launcher.tui.screens.hub import HubScreen, HubState

        typed = self.query_one("#search", Input).value.strip()
        state = self.hub_state
        if state is None or state.opened_with != typed:
            state = HubState(query=typed, opened_with=typed)
        self.app.push_screen(HubScreen(state), self._hub_closed)

    def _hub_closed(self, state: HubState | None) -> None:
        self.hub_state = state
        self.set_focus(self.query_one("#models", DataTable))

    def action_launch(self) -> None:
        """Launch the highlighted model as planned."""
        row = self.highlighted()
        if row is not None:
            self.berth.launch(row.card, row.result)

    def action_toggle_panel(self) -> None:
        """Show or hide the plan beside the table (wide terminals)."""
        self.panel_open = not self.panel_open
        self._panel_model = None
        self._schedule_panel()

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Main actions of this screen for the command palette."""
        commands: list[tuple[str, str, Callable[[], object]]] = [
            ("Switch hardware…", "Plan for this machine or any named spec", self.action_hardware),
            ("Set context length…", "Re-plan every model for another context", self.action_context),
            ("Toggle fits only", "Hide models that do not fit", self.action_toggle_fits),
            ("Search models", "Filter by id, alias, family or task", self.action_focus_search),
            ("Search the Hub…", "Any Hub repository, planned on this hardware", self.action_hub),
            ("Launch highlighted model", "Download, load and chat", self.action_launch),
            ("Back to the chat", "The loaded model's conversation", self.action_resume),
            ("Toggle side panel", "The plan beside the table (wide terminals)", self.action_toggle_panel),
        ]
        row = self.highlighted()
        if row is not None:
            card = row.card
            commands.append(
                (
                    f"Open plan of {card.id}",
                    "Reasons, memory per device, alternatives",
                    lambda: self.berth.open_plan(card),
                )
            )
        for column in COLUMNS:
            commands.append(
                (
                    f"Sort by {column.label}",
                    f"Order the table by {column.key}",
                    partial(self.sort_on, column.key),
                )
            )
        return commands
