"""Everything about one model's plan: verdict, per-device bars, speed, reasons, warnings, alternatives, code."""

from __future__ import annotations

from dataclasses import dataclass

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from launcher import display
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError
from launcher.plan.report import verdict
from launcher.plan.request import Plan
from launcher.tui.rows import Alternative, card_warnings, free_bytes
from launcher.tui.widgets.device_bar import DeviceBar
from launcher.tui.widgets.fit_badge import fit_badge_text
from registry.schema import ModelCard


@dataclass(frozen=True)
class PlanDetails:
    """What a PlanView shows: the model, its verdict on a host, the alternatives, and the load snippet."""

    card: ModelCard
    host: HostSnapshot
    result: Plan | DoesNotFitError
    alternatives: tuple[Alternative, ...] = ()
    snippet: str | None = None
    measured_tokens_per_s: float | None = None


def _bullets(items: list[str], style: str = "") -> Text:
    text = Text()
    for i, item in enumerate(items):
        if i:
            text.append("\n")
        text.append("• ", style=style)
        text.append(item)
    return text


class PlanView(VerticalScroll):
    """A scrolling report of one plan; choosing a row in its alternatives table posts AlternativeChosen."""

    class AlternativeChosen(Message):
        """The user picked another precision in the alternatives table."""

        def __init__(self, alternative: Alternative) -> None:
            super().__init__()
            self.alternative = alternative

    def __init__(self, details: PlanDetails | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.details = details
        self._alternatives: list[Alternative] = []

    def compose(self) -> ComposeResult:
        yield Static(id="plan-title")
        yield Static(id="plan-summary")
        yield Vertical(id="plan-devices")
        yield Static("Why", classes="plan-heading")
        yield Static(id="plan-reasons")
        yield Static("Warnings", classes="plan-heading", id="plan-warnings-heading")
        yield Static(id="plan-warnings")
        yield Static("Alternatives (enter re-plans with that precision)", classes="plan-heading")
        table: DataTable[str | Text] = DataTable(
            id="plan-alternatives", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static("Load it yourself (c copies)", classes="plan-heading", id="plan-snippet-heading")
        yield Static(id="plan-snippet")

    def on_mount(self) -> None:
        table = self.query_one("#plan-alternatives", DataTable)
        table.add_columns("precision", "fit", "needs / free", "tok/s")
        if self.details is not None:
            self.show(self.details)

    def show(self, details: PlanDetails) -> None:
        """Fill every section from `details`."""
        self.details = details
        card, result = details.card, details.result
        title = Text()
        title.append_text(fit_badge_text(result, width=0))
        title.append(f" {card.id}", style="bold")
        self.query_one("#plan-title", Static).update(title)
        self.query_one("#plan-summary", Static).update(self._summary(details))
        devices = self.query_one("#plan-devices", Vertical)
        devices.remove_children()
        if isinstance(result, Plan):
            devices.mount_all(DeviceBar(p, classes="device-bar") for p in result.placements)
            reasons = list(result.reasons)
            warnings = list(result.warnings)
        else:
            reasons = self._does_not_fit_reasons(result)
            warnings = card_warnings(card)
        self.query_one("#plan-reasons", Static).update(_bullets(reasons))
        self.query_one("#plan-warnings", Static).update(_bullets(warnings, style="bold yellow"))
        self.query_one("#plan-warnings", Static).display = bool(warnings)
        self.query_one("#plan-warnings-heading", Static).display = bool(warnings)
        self._fill_alternatives(details)
        snippet = details.snippet
        self.query_one("#plan-snippet", Static).update(
            Syntax(snippet, "python", theme="ansi_dark", word_wrap=False) if snippet else ""
        )
        self.query_one("#plan-snippet", Static).display = bool(snippet)
        self.query_one("#plan-snippet-heading", Static).display = bool(snippet)

    @staticmethod
    def _summary(details: PlanDetails) -> Text:
        result, card = details.result, details.card
        text = Text()
        facts = [
            f"{card.family} · {card.task} · {display.params(card.params)} parameters · licence {card.license}"
        ]
        if card.description:
            facts.append(card.description)
        if isinstance(result, Plan):
            speed = result.speed
            facts.append(f"{verdict(result)}: {result.summary}")
            facts.append(
                f"context {result.context:,} tokens · needs {display.gib(result.required_bytes)} of "
                f"{display.gib(free_bytes(result))} free"
            )
            line = (
                f"speed ≈ {display.rate(speed.decode_tokens_per_s)} tokens/s decode, "
                f"{display.seconds(speed.time_to_first_token_s)} to first token, "
                f"load ≈ {display.seconds(speed.load_seconds)} ({speed.bottleneck}-bound)"
            )
            if card.task == "fill-mask":  # an encoder answers in one pass: no token-by-token decode
                line = (
                    f"one pass per input (no decoding) ≈ {display.seconds(speed.time_to_first_token_s)}, "
                    f"load ≈ {display.seconds(speed.load_seconds)}"
                )
            if details.measured_tokens_per_s is not None:
                line += f" · measured here {display.rate(details.measured_tokens_per_s)} tokens/s"
            facts.append(line)
        else:
            facts.append(
                f"does not fit on {details.host.label}: {result.reason}"
                if result.reason
                else f"does not fit on {details.host.label}: needs at least {display.gib(result.required_bytes)}, "
                f"{display.gib(result.available_bytes)} usable"
            )
        text.append("\n".join(facts))
        return text

    @staticmethod
    def _does_not_fit_reasons(error: DoesNotFitError) -> list[str]:
        reasons = []
        if error.detail:
            reasons.append(f"tried: {error.detail}")
        reasons += [f"way out: {s}" for s in error.suggestions]
        return reasons or ["no smaller option is known"]

    def _fill_alternatives(self, details: PlanDetails) -> None:
        table = self.query_one("#plan-alternatives", DataTable)
        table.clear()
        self._alternatives = list(details.alternatives)
        current = details.result.precision.label if isinstance(details.result, Plan) else None
        for alt in self._alternatives:
            name = Text(alt.label + (" ✓" if alt.label == current else ""))
            if alt.result is None:
                problem = alt.problem.split(":", 1)[0]
                table.add_row(name, Text(" n/a", style="dim"), Text(problem, style="dim"), "-")
                continue
            result = alt.result
            decodes = isinstance(result, Plan) and details.card.task != "fill-mask"
            speed = result.speed.decode_tokens_per_s if isinstance(result, Plan) and decodes else None
            table.add_row(
                name,
                fit_badge_text(result),
                f"{display.gib(result.required_bytes)} / {display.gib(free_bytes(result))}",
                display.rate(speed),
            )
        table.display = bool(self._alternatives)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on an alternative: ask the screen to re-plan with it."""
        if event.data_table.id != "plan-alternatives":
            return
        event.stop()
        index = event.cursor_row
        if 0 <= index < len(self._alternatives) and self._alternatives[index].result is not None:
            self.post_message(self.AlternativeChosen(self._alternatives[index]))
