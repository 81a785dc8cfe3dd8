"""Browse: the table fills without blocking, and search, filters, sort, hardware and context re-plan it."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox, DataTable, Input, Select, Static

from launcher.tui.rows import badge
from launcher.tui.screens.browse import BrowseScreen

from .tui_helpers import SMALL_HOST, TEST_HOST, browse_ready, table_ids, wait_until

SIZE = (120, 36)


async def test_table_lists_every_model_with_the_host_in_the_header(make_app, catalog):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        assert len(screen.shown) == len(catalog.models)
        table = screen.query_one("#models", DataTable)
        assert table.row_count == len(catalog.models)
        header = str(screen.query_one("#host", Static).render())
        assert "RTX 4090 22.0 GiB/24.0 GiB free" in header and "RAM 48.0 GiB/64.0 GiB free" in header
        assert "disk 500.0 GiB free" in header
        assert app.focused is table


async def test_ready_hook_runs_once_the_table_is_shown(make_app):
    seen: list[int] = []
    app = make_app(on_ready=lambda a: seen.append(len(a.screen.shown)))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: seen)
        assert seen[0] > 0


async def test_incremental_search(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        await pilot.press("slash")
        assert app.focused is screen.query_one("#search", Input)
        await pilot.press(*"smollm2")
        await wait_until(pilot, lambda: len(screen.shown) == 3)
        assert all("SmolLM2" in model for model in table_ids(screen))
        await pilot.press(*["backspace"] * 7)
        await wait_until(pilot, lambda: len(screen.shown) == len(screen.rows))
        await pilot.press("escape")
        assert app.focused is screen.query_one("#models", DataTable)


async def test_fits_only_and_task_family_licence_filters(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        everything = len(screen.shown)
        await pilot.press("f")
        assert screen.query_one("#fits", Checkbox).value
        await wait_until(pilot, lambda: len(screen.shown) < everything)
        assert all(r.fits for r in screen.shown)
        await pilot.press("t")  # any -> chat
        await wait_until(pilot, lambda: {r.card.task for r in screen.shown} == {"chat"})
        screen.query_one("#family", Select).value = "qwen2.5"
        await wait_until(pilot, lambda: {r.card.family for r in screen.shown} == {"qwen2.5"})
        screen.query_one("#license", Select).value = "apache-2.0"
        await wait_until(pilot, lambda: all(r.card.license == "apache-2.0" for r in screen.shown))
        assert screen.shown
        await pilot.press("f", "t", "t", "t")  # fits off; task back to any
        screen.query_one("#family", Select).clear()
        screen.query_one("#license", Select).clear()
        await wait_until(pilot, lambda: len(screen.shown) == everything)


async def test_sort_by_key_and_by_clicking_a_header(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        assert badge(screen.shown[0].result)[0] == "GPU"
        await pilot.press("s")  # fit -> model
        assert screen.sort_column == "model"
        assert table_ids(screen) == sorted(table_ids(screen), key=str.lower)
        await pilot.press("r")
        assert table_ids(screen) == sorted(table_ids(screen), key=str.lower, reverse=True)
        table = screen.query_one("#models", DataTable)
        x = 0
        for column in table.ordered_columns:
            if column.key.value == "memory":
                break
            x += column.get_render_width(table)
        await pilot.click("#models", offset=(x + 2, 0))  # the "needs / free" header
        await wait_until(pilot, lambda: screen.sort_column == "memory")
        needed = [r.needed_bytes for r in screen.shown]
        assert needed == sorted(needed)


@pytest.mark.slow  # plans the whole catalog twice
async def test_hardware_switch_replans_everything(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        before = {r.card.id: badge(r.result)[0] for r in screen.rows}
        await pilot.press("h")
        await wait_until(pilot, lambda: app.screen is not screen and app.screen.query("#spec"))
        await pilot.click("#spec")
        await pilot.press(*"cpu,ram=8GB", "enter")
        await wait_until(pilot, lambda: app.host is SMALL_HOST and app.screen is screen)
        await wait_until(
            pilot, lambda: all(r.result.host_label == "cpu,ram=8GB" for r in screen.rows if r.fits)
        )
        after = {r.card.id: badge(r.result)[0] for r in screen.rows}
        assert "GPU" in before.values() and "GPU" not in after.values()
        assert "cpu,ram=8GB" in str(screen.query_one("#host", Static).render())
        # A bad spec says why and keeps the hardware.
        await pilot.press("h")
        await wait_until(pilot, lambda: app.screen.query("#spec"))
        await pilot.click("#spec")
        await pilot.press(*"nonsense", "enter")
        await wait_until(pilot, lambda: app.screen is screen)
        assert app.host is SMALL_HOST
        assert any("unknown hardware" in str(n.message) for n in app._notifications)
        # Back to this machine from the list.
        await pilot.press("h")
        await wait_until(pilot, lambda: app.screen.query("#presets"))
        # focus starts in the spec box; ↓ reaches the first preset: this machine
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.host is TEST_HOST)


async def test_context_setting_replans_everything(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        smol = "HuggingFaceTB/SmolLM2-1.7B-Instruct"
        need_before = next(r.needed_bytes for r in screen.rows if r.card.id == smol)
        await pilot.press("x")
        assert app.focused is screen.query_one("#context", Input)
        await pilot.press(*"8192", "enter")
        await wait_until(pilot, lambda: app.request.context == 8192)
        await wait_until(
            pilot, lambda: next(r.needed_bytes for r in screen.rows if r.card.id == smol) > need_before
        )
        plan = next(r.result for r in screen.rows if r.card.id == smol)
        assert plan.context == 8192
        gpt2 = next(r.result for r in screen.rows if r.card.id == "openai-community/gpt2")
        assert gpt2.context == 1024  # capped at the model's maximum
        assert app.focused is screen.query_one("#models", DataTable)


async def test_narrow_terminal_uses_the_short_columns(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await browse_ready(pilot)
        table = screen.query_one("#models", DataTable)
        assert [str(c.label) for c in table.ordered_columns] == [
            "fit",
            "model",
            "params",
            "needs",
            "dtype",
            "tok/s",
        ]
        assert table.virtual_size.width <= 80


async def test_wide_terminal_shows_the_plan_beside_the_table(make_app):
    app = make_app()
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await browse_ready(pilot)
        assert isinstance(screen, BrowseScreen)
        side = screen.query_one("#side")
        await wait_until(pilot, lambda: side.display and screen._panel_model == screen.highlighted_id())
        await pilot.press("down")
        await wait_until(pilot, lambda: screen._panel_model == screen.shown[1].card.id)
        await pilot.press("p")
        assert not side.display
