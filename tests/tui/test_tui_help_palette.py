"""Help lists every key of every screen; the command palette offers each screen's main actions."""

from __future__ import annotations

import pytest
from textual.binding import Binding

from launcher.tui.screens.browse import BrowseScreen
from launcher.tui.screens.help import HelpScreen, _sections
from launcher.tui.screens.plan import PlanScreen

from .tui_helpers import browse_ready, wait_until

SIZE = (120, 36)


async def palette_run(pilot, title: str) -> None:
    """Open the command palette, type `title`, wait until that command is the highlighted hit, press Enter."""
    await pilot.press("ctrl+p", *title)
    options = pilot.app.screen.query_one("CommandList")

    def highlighted_is_it() -> bool:
        index = options.highlighted
        return index is not None and title in str(options.get_option_at_index(index).prompt)

    await wait_until(pilot, highlighted_is_it)
    await pilot.press("enter")


async def test_help_lists_every_binding(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        shown = app.screen.sections
        for title, bindings in _sections():
            described = {what for _, what in shown[title]}
            for binding in Binding.make_bindings(bindings):
                assert binding.description in described, binding
        text = repr(shown)
        assert "ctrl+j" in text and "command palette" in text
        assert len(app.screen.query(".help-section")) == len(shown)
        await pilot.press("escape")
        assert app.screen is screen
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("q")
        assert app.screen is screen


async def test_palette_offers_the_main_actions(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        titles = [c.title for c in app.get_system_commands(screen)]
        for wanted in (
            "Switch hardware…",
            "Set context length…",
            "Toggle fits only",
            "Sort by tok/s",
            "Launch highlighted model",
            "Past chats",
            "Help: every key",
            "Quit",
        ):
            assert wanted in titles
        fits = next(c for c in app.get_system_commands(screen) if c.title == "Toggle fits only")
        fits.callback()
        await wait_until(pilot, lambda: screen.filter.fits_only)


async def test_palette_finds_a_model_and_opens_its_plan(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"danube3-4b")
        options = app.screen.query_one("CommandList")
        await wait_until(
            pilot,
            lambda: (
                options.option_count
                and "Plan: h2oai/h2o-danube3-4b-chat" in str(options.get_option_at_index(0).prompt)
            ),
        )
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen))
        assert app.screen.card.id == "h2oai/h2o-danube3-4b-chat"
        assert isinstance(app.screen_stack[1], BrowseScreen)


@pytest.mark.slow  # launch, chat, export and regenerate in one run
async def test_palette_runs_chat_actions(make_app, berth_home):
    from launcher.tui.screens.chat import ChatScreen
    from launcher.tui.screens.launch import LaunchScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        model = "HuggingFaceTB/SmolLM2-135M-Instruct"
        app.launch(app.catalog.get(model), next(r.result for r in screen.rows if r.card.id == model))
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.launched)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        await pilot.press(*"hello", "enter")
        await wait_until(pilot, lambda: not chat.streaming and len(chat.messages) == 2)
        titles = [c.title for c in app.get_system_commands(chat)]
        assert {"Stop reply", "Regenerate last reply", "Chat settings", "Back to Browse"} <= set(titles)
        await palette_run(pilot, "Export chat as JSON")
        await wait_until(
            pilot, lambda: (berth_home / "exports").is_dir() and any((berth_home / "exports").iterdir())
        )
        await palette_run(pilot, "Regenerate last reply")
        await wait_until(pilot, lambda: len(chat._pieces) and not chat.streaming and len(chat.messages) == 2)
        assert chat._turn == 2
