"""Plan: why a model runs the way it does here, memory per device, alternatives, and the code to load it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header

from launcher.plan.request import PlanRequest
from launcher.tui.widgets.plan_view import PlanDetails, PlanView
from registry.schema import ModelCard

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi


class PlanScreen(Screen[None]):
    """One model's plan on the chosen machine; enter on an alternative re-plans with that precision."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "launch", "Launch"),
        Binding("c", "copy_snippet", "Copy code"),
        Binding("a", "focus_alternatives", "Alternatives"),
    ]

    def __init__(self, card: ModelCard, request: PlanRequest | None = None) -> None:
        super().__init__()
        self.card = card
        self.request = request
        self.details: PlanDetails | None = None

    @property
    def berth(self) -> BerthAppApi:
        """The app, typed."""
        return cast("BerthAppApi", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        yield PlanView(id="plan")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{self.card.id} on {self.berth.host.label}"
        self.show_plan(self.request)
        self.query_one(PlanView).focus()

    def show_plan(self, request: PlanRequest | None) -> None:
        """Plan (again) with this request, or the app's when None."""
        self.request = request
        self.details = self.berth.plan_details(self.card, request)
        self.query_one(PlanView).show(self.details)

    @on(PlanView.AlternativeChosen)
    def _alternative(self, event: PlanView.AlternativeChosen) -> None:
        event.stop()
        self.show_plan(event.alternative.request)
        self.notify(f"Re-planned with {event.alternative.label}.", timeout=2)

    def action_launch(self) -> None:
        """Launch with the plan shown."""
        if self.details is not None:
            self.berth.launch(self.card, self.details.result)

    def action_copy_snippet(self) -> None:
        """Copy the transformers code that loads the model as planned."""
        if self.details is None or not self.details.snippet:
            self.notify("Nothing to copy: the model does not fit.", severity="warning")
            return
        from launcher.tui.clipboard import copy_text

        self.notify(copy_text(self.app, self.details.snippet, "the Python snippet"), timeout=5)

    def action_focus_alternatives(self) -> None:
        """Move to the alternatives table."""
        self.query_one("#plan-alternatives").focus()

    def palette_commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        """Main actions of this screen for the command palette."""
        return [
            ("Launch this model", "Download, load and chat", self.action_launch),
            (
                "Copy the Python snippet",
                "transformers code that loads it as planned",
                self.action_copy_snippet,
            ),
            ("Back to Browse", "The model table", self.app.pop_screen),
        ]
