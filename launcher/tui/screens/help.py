"""Help: every key of every screen, read from the bindings themselves so it cannot go stale."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from launcher.tui.berth_app import APP_BINDINGS

#: Keys that widgets handle in code rather than through BINDINGS.
EXTRA_KEYS: dict[str, list[tuple[str, str]]] = {
    "Everywhere": [
        ("ctrl+p", "command palette (main actions; type a model name to open its plan)"),
        ("ctrl+q", "quit"),
        ("tab / shift+tab", "next / previous control"),
    ],
    "Browse": [
        ("enter", "open the highlighted model's Plan (reasons, memory per device, alternatives)"),
        ("click a header", "sort by that column (again: reverse)"),
    ],
    "Browse: Hub source (u)": [
        ("enter (search box)", "search the Hub for the words typed (text generation, most downloaded first)"),
        ("enter (table)", "open the repository's Plan (entries from the Hub are not verified by hand)"),
    ],
    "Tables": [
        ("↑ ↓ pgup pgdn home end", "move"),
        ("enter", "open (plan, alternative, chat)"),
        ("click a header", "sort by that column (again: reverse)"),
    ],
    "Chat prompt": [
        ("enter", "send"),
        ("ctrl+j (shift+enter where the terminal passes it)", "new line"),
        ("↑ on the first line / ↓ on the last", "earlier / later prompts"),
    ],
}


def _sections() -> list[tuple[str, list[BindingType]]]:
    from launcher.tui.screens.browse import BrowseScreen
    from launcher.tui.screens.chat import ChatScreen
    from launcher.tui.screens.chats import ChatsScreen
    from launcher.tui.screens.fill_mask import FillMaskScreen
    from launcher.tui.screens.hardware import HardwareScreen
    from launcher.tui.screens.hub import HubScreen
    from launcher.tui.screens.launch import LaunchScreen
    from launcher.tui.screens.plan import PlanScreen
    from launcher.tui.screens.settings import SettingsScreen
    from launcher.tui.widgets.chat_message import ChatMessage

    return [
        ("Everywhere", list(APP_BINDINGS)),
        ("Browse", list(BrowseScreen.BINDINGS)),
        ("Browse: Hub source (u)", list(HubScreen.BINDINGS)),
        ("Plan", list(PlanScreen.BINDINGS)),
        ("Launch", list(LaunchScreen.BINDINGS)),
        ("Chat / completion", list(ChatScreen.BINDINGS)),
        ("A chat message (focused)", list(ChatMessage.BINDINGS)),
        ("Fill-mask", list(FillMaskScreen.BINDINGS)),
        ("Past chats", list(ChatsScreen.BINDINGS)),
        ("Chat settings", list(SettingsScreen.BINDINGS)),
        ("Hardware switcher", list(HardwareScreen.BINDINGS)),
    ]


def _describe(binding: Binding) -> str:
    if binding.description:
        return binding.description
    return binding.action.replace("app.", "").replace("_", " ")


def key_rows(bindings: Iterable[BindingType], key_display: Callable[[Binding], str]) -> list[tuple[str, str]]:
    """(keys, what they do) for each binding, keys of one action joined."""
    grouped: dict[str, list[str]] = {}
    for binding in Binding.make_bindings(bindings):
        grouped.setdefault(_describe(binding), []).append(key_display(binding))
    return [(" / ".join(dict.fromkeys(keys)), what) for what, keys in grouped.items()]


class HelpScreen(ModalScreen[None]):
    """Lists every key, screen by screen. Any of esc, q or f1 closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        self.sections: dict[str, list[tuple[str, str]]] = {}
        """What is shown: (keys, what they do) by section title."""
        for title, bindings in _sections():
            self.sections[title] = key_rows(bindings, self.app.get_key_display) + EXTRA_KEYS.get(title, [])
        for title in ("Tables", "Chat prompt"):
            self.sections[title] = EXTRA_KEYS[title]
        with VerticalScroll(id="help", classes="dialog"):
            yield Static(Text("Keys", style="bold"), classes="plan-heading")
            for title, rows in self.sections.items():
                yield Static(self._table(title, rows), classes="help-section")

    @staticmethod
    def _table(title: str, rows: list[tuple[str, str]]) -> Table:
        table = Table(
            title=title, title_justify="left", title_style="bold", show_header=False, box=None, expand=True
        )
        table.add_column("key", style="bold cyan", ratio=1, no_wrap=False)
        table.add_column("does", ratio=2)
        for key, what in rows:
            table.add_row(key, what)
        return table

    async def action_dismiss(self, _result: None = None) -> None:
        """Close help."""
        self.dismiss(None)
