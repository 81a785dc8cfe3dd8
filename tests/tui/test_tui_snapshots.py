"""SVG snapshots of the screens people look at, at a fixed size, on the fixed test machine.

Update after a deliberate change with `pytest tests/tui/test_tui_snapshots.py --snapshot-update`, then look at
the report (snapshot_report.html) or the SVGs before committing them. Every snapshot is taken with cursor
blink off (`steady`), so a blink can never land in one, however slowly the machine runs the test.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from launcher.tui.screens.chat import ChatScreen
from launcher.tui.screens.launch import LaunchScreen
from launcher.tui.screens.plan import PlanScreen
from launcher.tui.widgets.device_bar import DeviceBar

from .tui_helpers import browse_ready, wait_until

SIZE = (120, 36)


def steady(steps: Callable[[Pilot[Any]], Awaitable[None]]) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """`steps`, then cursor blink off on every Input and TextArea of every screen (the cursor stays shown
    where the widget has focus): what the snapshot shows no longer depends on when it is taken."""

    async def run_before(pilot: Pilot[Any]) -> None:
        await steps(pilot)
        for screen in pilot.app.screen_stack:
            for widget in [*screen.query(Input), *screen.query(TextArea)]:
                widget.cursor_blink = False
        await pilot.pause()

    return run_before


def test_browse(snap_compare, make_app):
    async def ready(pilot) -> None:
        await browse_ready(pilot)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steady(ready))


def test_browse_narrow(snap_compare, make_app):
    async def ready(pilot) -> None:
        await browse_ready(pilot)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=steady(ready))


def test_plan(snap_compare, make_app):
    async def open_plan(pilot) -> None:
        app = pilot.app
        await browse_ready(pilot)
        app.open_plan(app.catalog.get("h2oai/h2o-danube3-4b-chat"))
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.query(DeviceBar))
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steady(open_plan))


def test_chat(snap_compare, make_app):
    async def chat(pilot) -> None:
        app = pilot.app
        screen = await browse_ready(pilot)
        model = "HuggingFaceTB/SmolLM2-135M-Instruct"
        app.launch(app.catalog.get(model), next(r.result for r in screen.rows if r.card.id == model))
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.launched)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        await pilot.press(*"What fits on a 24 GB GPU?", "enter")
        await wait_until(pilot, lambda: not chat.streaming and len(chat.messages) == 2)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steady(chat))


def test_hub_source(snap_compare, make_app, hub_online):
    """Browse's Hub source after `u`: the stand-in's text-generation repositories planned on the test machine."""

    async def hub(pilot) -> None:
        from launcher.tui.screens.hub import HubScreen

        await browse_ready(pilot)
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, HubScreen))
        await wait_until(pilot, lambda: not pilot.app.screen.searching)
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=steady(hub))
