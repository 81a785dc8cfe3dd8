"""Helpers for driving the app: wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from launcher.tui.screens.browse import BrowseScreen


async def wait_until(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the app run until `predicate()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {getattr(predicate, '__name__', predicate)}")
        await pilot.pause(0.01)


async def browse_ready(pilot: Pilot[Any]) -> BrowseScreen:
    """Wait for the Browse table to be planned and shown; return the screen."""
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, BrowseScreen) and bool(app.screen.rows))
    screen = app.screen
    assert isinstance(screen, BrowseScreen)
    await pilot.pause()
    return screen


def table_ids(screen: BrowseScreen) -> list[str]:
    """Model ids in the order the Browse table shows them."""
    return [r.card.id for r in screen.shown]
