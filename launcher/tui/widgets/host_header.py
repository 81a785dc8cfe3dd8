"""The machine the table is planned for: GPUs free/total, RAM, disk, and how many models fit."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from launcher.machine.host import HostSnapshot
from launcher.plan.rows import host_line


def host_text(host: HostSnapshot) -> Text:
    """The host line (as `berth list` prints it), then one line per warning."""
    label, _, rest = host_line(host).partition(":")
    text = Text()
    text.append(f"{label}:", style="bold")
    text.append(rest)
    for warning in host.warnings:
        text.append(f"\n! {warning}", style="yellow")
    return text


class HostHeader(Static):
    """Shows a HostSnapshot: GPUs free/total, RAM, disk, and what could not be read."""

    def show(self, host: HostSnapshot) -> None:
        """Redraw for this host."""
        self.update(host_text(host))
