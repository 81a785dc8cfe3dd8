"""What screens and palette providers may ask of the running app, as a Protocol (and the app-wide keys), so
they never import `launcher.tui.app`, which imports them. Imports textual bindings and the TUI's seam."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from textual.binding import Binding, BindingType

from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError
from launcher.plan.gguf import GgufWeights
from launcher.plan.request import Plan, PlanRequest
from launcher.tui.backend import ChatRecord, ChatStore, Launched, Planner, SessionFactory
from launcher.tui.widgets.plan_view import PlanDetails
from registry.catalog import Catalog
from registry.schema import ModelCard

#: Keys that work on every screen (the app's BINDINGS; the Help screen lists them).
APP_BINDINGS: list[BindingType] = [
    Binding("f1", "help", "Help", tooltip="Every key, screen by screen."),
    Binding("question_mark", "help", "Help", show=False),
]


class BerthAppApi(Protocol):
    """The app as its screens see it: what is planned for, the collaborators, and the navigation they ask for."""

    catalog: Catalog
    host: HostSnapshot
    request: PlanRequest
    planner: Planner
    session_factory: SessionFactory | None
    store: ChatStore | None
    launched: Launched | None

    def browse_ready(self) -> None:
        """Browse's first table is on screen."""

    def measured_speed(self, model_id: str) -> float | None:
        """Decode tokens/s measured for a model on the current host, if any."""

    def forget_measurements(self) -> None:
        """Read measured speeds from the store again."""

    def plan_details(self, card: ModelCard, request: PlanRequest | None = None) -> PlanDetails:
        """The full plan for one model, its alternatives and its snippet."""
        ...

    def gguf_files(self) -> dict[str, GgufWeights]:
        """The tensor tables of the local GGUF files catalog entries run from, by id (planned for llama.cpp)."""
        ...

    def set_host(self, host: HostSnapshot) -> None:
        """Plan for another machine from now on."""

    def set_context(self, context: int | None) -> None:
        """Plan for another context length from now on."""

    def switch_hardware(self, spec: str | None) -> None:
        """Plan for the hardware a spec names (None: keep the current one); a bad spec is a notification."""

    def resolve_hardware(self, spec: str) -> HostSnapshot:
        """A HostSnapshot for a hardware spec ('' is this machine)."""
        ...

    def open_plan(self, card: ModelCard) -> None:
        """Show the Plan screen for a model."""

    def launch(self, card: ModelCard, result: Plan | DoesNotFitError) -> None:
        """Start loading a model as planned."""

    def start_session(self, launched: Launched, card: ModelCard, typed: str = "", send: bool = False) -> None:
        """Open the screen for a loaded model's task (`typed` into its prompt, sent when `send`)."""

    def remember_live_chat(self, record: ChatRecord) -> None:
        """The loaded model's conversation as it stands, for coming back to it."""

    def resume_session(self) -> None:
        """Back to the loaded model's live chat."""

    def unload(self) -> None:
        """Free the loaded model, if any."""

    def back_to_browse(self) -> None:
        """Pop every screen above Browse."""

    def export_chat(self, record: ChatRecord, fmt: str) -> Path:
        """Write a chat as Markdown or JSON; returns the file."""
        ...
