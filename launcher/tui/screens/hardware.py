"""The hardware switcher: plan for this machine, a named GPU or server, or any spec typed in."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from launcher.tui.rows import hardware_presets

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi


class HardwareScreen(ModalScreen[str | None]):
    """Returns a spec ('' for this machine), or None when dismissed.

    Focus starts in the spec box, so what is typed is what Enter applies; ↓ (or tab) moves to the presets, and
    typing there goes back to the box. Nothing is applied unless typed or picked."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        app = cast("BerthAppApi", self.app)
        presets = hardware_presets(a.id for a in app.catalog.accelerators)
        with Vertical(id="hardware", classes="dialog"):
            yield Label("Plan for which hardware?", classes="plan-heading")
            yield Input(
                placeholder="type a spec: 2xA100-80GB,ram=512GB · rtx-4090 · cpu,ram=32GB — Enter",
                id="spec",
                select_on_focus=False,
            )
            yield OptionList(*[Option(p.label, id=p.spec or "-this-") for p in presets], id="presets")
            yield Label(f"now: {app.host.label}", classes="dim")

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#spec", Input))

    @on(Input.Submitted, "#spec")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())
        else:
            self.notify("Type a spec (rtx-4090, 2xA100-80GB, cpu,ram=32GB), or ↓ to pick one.", timeout=4)

    def on_key(self, event: events.Key) -> None:
        """↓ in the box goes to the presets; a character typed on the presets goes into the box."""
        spec = self.query_one("#spec", Input)
        presets = self.query_one("#presets", OptionList)
        if self.focused is spec and event.key == "down":
            event.stop()
            self.set_focus(presets)
        elif self.focused is presets and event.is_printable and event.character:
            event.stop()
            self.set_focus(spec)
            spec.insert_text_at_cursor(event.character)

    @on(OptionList.OptionSelected, "#presets")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        spec = event.option.id or ""
        self.dismiss("" if spec == "-this-" else spec)

    def action_cancel(self) -> None:
        """Keep the current hardware."""
        self.dismiss(None)
