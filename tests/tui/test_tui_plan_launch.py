"""Plan screen (reasons, bars, alternatives, snippet) and Launch screen (progress, fallbacks, cancel)."""

from __future__ import annotations

import threading

import pytest
from textual.widgets import DataTable, Static

from launcher.plan.request import Plan
from launcher.tui.fake import FakeSessionFactory
from launcher.tui.screens.browse import BrowseScreen
from launcher.tui.screens.chat import ChatScreen, CompletionScreen
from launcher.tui.screens.fill_mask import FillMaskScreen
from launcher.tui.screens.launch import LaunchScreen, memory_rows
from launcher.tui.screens.plan import PlanScreen
from launcher.tui.widgets.device_bar import DeviceBar

from .tui_helpers import TEST_HOST, browse_ready, wait_until

SIZE = (120, 36)
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


async def open_model(pilot, screen: BrowseScreen, model: str) -> None:
    """Search for a model and press Enter on it."""
    await pilot.press("slash", *model, "enter")
    await wait_until(pilot, lambda: screen.shown and screen.shown[0].card.id == model)
    await pilot.press("enter")


@pytest.mark.slow  # several plans drawn in full
async def test_plan_screen_shows_reasons_bars_alternatives_and_code(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        await open_model(pilot, screen, "h2oai/h2o-danube3-4b-chat")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen))
        plan_screen = app.screen
        await wait_until(pilot, lambda: plan_screen.query(DeviceBar))
        bar = plan_screen.query_one(DeviceBar)
        assert bar.placement.device == "cuda:0"
        rendered = str(bar.render())
        assert "weights" in rendered and "KV cache" in rendered and "free after" in rendered
        assert "→ bf16 on GPU 0" in str(plan_screen.query_one("#plan-reasons", Static).render())
        alternatives = plan_screen.query_one("#plan-alternatives", DataTable)
        assert alternatives.row_count == 5
        snippet = plan_screen.details.snippet
        assert snippet and 'device_map="cuda:0"' in snippet
        await pilot.press("c")
        assert app.clipboard == snippet
        # Enter on an alternative (nf4) re-plans with it.
        await pilot.press("a", "down", "down", "down", "down", "enter")
        await wait_until(pilot, lambda: plan_screen.details.result.precision.quant == "nf4")
        assert "BitsAndBytesConfig" in plan_screen.details.snippet
        await pilot.press("escape")
        assert app.screen is screen


async def test_plan_for_a_model_that_does_not_fit_names_ways_out(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        app.open_plan(app.catalog.get("deepseek-ai/DeepSeek-V3"))
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.details)
        reasons = str(app.screen.query_one("#plan-reasons", Static).render())
        assert "way out" in reasons
        assert not app.screen.query(DeviceBar)
        await pilot.press("c")  # nothing to copy
        await pilot.press("l")  # refuses to launch
        assert isinstance(app.screen, PlanScreen)


@pytest.mark.slow  # the whole launch screen, then the chat
async def test_launch_shows_progress_then_memory_then_chat(make_app, factory: FakeSessionFactory):
    factory.fallback = "int8 kernels missing: loaded in bf16 instead"
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        await open_model(pilot, screen, SMOL)
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen))
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        launch = app.screen
        await wait_until(pilot, lambda: launch.launched is not None)
        memory = launch.query_one("#memory", DataTable)
        await wait_until(pilot, lambda: memory.display and memory.row_count == 1)
        assert set(launch.files) == {"config.json", "model.safetensors"}
        assert all(done == total for done, total in launch.files.values())
        assert "fallback: int8 kernels missing" in str(launch.query_one("#fallbacks", Static).render())
        assert memory.get_row_at(0)[3] == "-3%"
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        assert app.launched is not None and app.launched.session.model_id == SMOL


async def test_cancel_returns_to_browse_and_frees_nothing_left_behind(make_app, factory: FakeSessionFactory):
    factory.gate = threading.Event()  # the download finishes, loading waits
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        app.launch(app.catalog.get(SMOL), next(r.result for r in screen.rows if r.card.id == SMOL))
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        launch = app.screen
        await wait_until(pilot, lambda: launch.files.get("model.safetensors", (0, 1))[0] > 0)
        await pilot.press("escape")
        assert app.screen is screen
        assert launch.cancel.is_set()
        await wait_until(pilot, lambda: not any(w.is_running for w in app.workers))
        assert factory.sessions == [] and app.launched is None


async def test_launch_failure_is_shown_and_esc_goes_back(make_app, factory: FakeSessionFactory):
    factory.fail = RuntimeError("out of disk space in the Hugging Face cache")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        app.launch(app.catalog.get(SMOL), next(r.result for r in screen.rows if r.card.id == SMOL))
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.error)
        assert "out of disk space" in str(app.screen.query_one("#launch-hint", Static).render())
        await pilot.press("escape")
        assert app.screen is screen


async def test_launch_is_refused_for_named_hardware_and_without_a_loader(make_app, catalog):
    card = catalog.get(SMOL)
    app = make_app(session_factory=None)
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        app.launch(card, next(r.result for r in screen.rows if r.card.id == SMOL))
        await pilot.pause()
        assert app.screen is screen
        assert any("loader" in str(n.message) for n in app._notifications)
    app = make_app(host_is_this_machine=False)
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        app.launch(card, next(r.result for r in screen.rows if r.card.id == SMOL))
        await pilot.pause()
        assert app.screen is screen
        assert any("launching runs on this machine" in str(n.message) for n in app._notifications)


@pytest.mark.slow  # a launch per task
async def test_each_task_gets_its_screen(make_app, catalog, factory):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        for model, kind in (
            ("openai-community/gpt2", CompletionScreen),
            ("google-bert/bert-base-uncased", FillMaskScreen),
        ):
            card = catalog.get(model)
            app.launch(card, next(r.result for r in screen.rows if r.card.id == model))
            await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.launched)
            await pilot.press("enter")
            await wait_until(pilot, lambda kind=kind: isinstance(app.screen, kind))
            await pilot.press("ctrl+b")
            await wait_until(pilot, lambda: app.screen is screen)
            assert app.launched is not None and app.launched.session.model_id == model  # stays loaded
        assert [s.closed for s in factory.sessions] == [True, False]  # launching the next freed the first


def test_memory_rows_compare_estimate_and_measurement(catalog):
    from launcher.plan.ladder import make_plan

    plan = make_plan(catalog.get(SMOL), TEST_HOST)
    assert isinstance(plan, Plan)
    label = plan.placements[0].label
    rows = memory_rows(plan, {label: plan.placements[0].used_bytes * 11 // 10, "CPU RAM": 2**30})
    assert rows[0][0] == label and rows[0][3] == "+10%"
    assert rows[-1] == ("CPU RAM", "-", "1.0 GiB", "-")
