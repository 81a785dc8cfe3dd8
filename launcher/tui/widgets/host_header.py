"""The machine the table is planned for: GPUs free/total, RAM, disk, and how many models fit."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from launcher.cli.list_cmd import host_line
from launcher.host import HostSnapshot


def host_text(host: HostSnapshot, status: str = "") -> Text:
    """The host line (as `berth list` prints it), its warnings, and a status after it."""
    label, _, rest = host_line(host).partition(":")
    text = Text()
    text.append(f"{label}:", style="bold")
    text.append(rest)
    for warning in host.warnings:
        text.append(f"\n! {warning}", style="yellow")
    if status:
        text.append(f"\n{status}", style="dim")
    return text


class HostHeader(Static):
    """Shows a HostSnapshot in a line or two, with a status line (fit count, context, sort)."""

    def show(self, host: HostSnapshot, status: str = "") -> None:
        """Redraw for this host and status."""
        self.update(host_text(host, status))
