"""Browse's Hub source against the Hub stand-in (a real HTTP server on 127.0.0.1, reached through HF_ENDPOINT;
nothing in huggingface_hub is replaced): search, rows planned as they arrive, a further page, the Plan screen of
a derived entry, the catalog's search text kept, and errors as one paragraph in an app that stays usable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hub_server import HubServer, qwen_copy
from textual.widgets import Checkbox, DataTable, Input, Static

from launcher.plan.report import verdict
from launcher.tui import hub_table
from launcher.tui.screens.help import HelpScreen
from launcher.tui.screens.hub import HubScreen
from launcher.tui.screens.launch import LaunchScreen
from launcher.tui.screens.plan import PlanScreen
from launcher.tui.widgets.device_bar import DeviceBar

from .tui_helpers import browse_ready, wait_until

SIZE = (120, 36)
LISTED = [  # text generation only (bert is fill-mask), most downloaded first
    "Qwen/Qwen2.5-0.5B-Instruct",
    "mistralai/Mistral-7B-v0.1",
    "acme/Tiny-Qwen-Chat",
    "gated-org/Gated-Chat",
    "custom/Remote-Chat",
]


async def open_hub(pilot) -> HubScreen:
    """Press `u` in Browse and wait for the search to finish (or fail)."""
    await pilot.press("u")
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HubScreen))
    screen = pilot.app.screen
    await wait_until(pilot, lambda: not screen.searching)
    await pilot.pause()
    return screen


def hub_ids(screen: HubScreen) -> list[str]:
    return [r.hit.repo_id for r in screen.shown]


def text_of(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def info_reads(hub: HubServer, repo_id: str) -> int:
    """How many times the model info of a repository was asked for."""
    return sum(1 for _, path in hub.requests if path.split("?")[0] == f"/api/models/{repo_id}")


def searches(hub: HubServer) -> list[str]:
    return [path for _, path in hub.requests if path.startswith("/api/models?")]


async def test_hub_source_lists_and_plans_each_repository(make_app, hub_online):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        screen = await open_hub(pilot)
        assert hub_ids(screen) == LISTED
        rows = {r.hit.repo_id: r for r in screen.rows}
        assert rows["Qwen/Qwen2.5-0.5B-Instruct"].verified  # the catalog's verified entry
        derived = rows["acme/Tiny-Qwen-Chat"]
        assert not derived.verified and derived.fits and derived.row is not None
        assert derived.row.card.params == 494_032_768  # counted from the safetensors header served
        assert derived.row.card.revision == hub_online.repos["acme/Tiny-Qwen-Chat"].sha
        assert rows["mistralai/Mistral-7B-v0.1"].fits
        assert rows["gated-org/Gated-Chat"].problem == "gated: log in"
        assert rows["custom/Remote-Chat"].problem == "needs remote code"
        table = screen.query_one("#models", DataTable)
        assert table.row_count == len(LISTED)
        notes = [str(table.get_cell(repo, "note")) for repo in LISTED]
        assert notes == ["catalog ✓", "catalog ✓", "Hub, unverified", "gated: log in", "needs remote code"]
        assert "not verified by hand" in text_of(screen, "#hub-note")
        status = text_of(screen, "#status")
        assert "3/5 fit" in status and "2 unread" in status and "no more matches" in status
        # every repository not in the catalog was read from the server: model info, config, safetensors header
        asked = {path.split("?")[0] for _, path in hub_online.requests}
        assert "/api/models/acme/Tiny-Qwen-Chat" in asked
        assert not any(p.startswith("/api/models/Qwen/") for p in asked)  # the catalog's entry needs no read


async def test_a_hub_row_opens_the_same_plan_screen_and_esc_returns(make_app, hub_online):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        browse = await browse_ready(pilot)
        screen = await open_hub(pilot)
        screen.query_one("#models", DataTable).move_cursor(row=LISTED.index("acme/Tiny-Qwen-Chat"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, PlanScreen) and app.screen.query(DeviceBar))
        plan = app.screen
        assert plan.card.id == "acme/Tiny-Qwen-Chat" and plan.details.result.required_bytes > 0
        assert "not verified by hand" in text_of(plan, "#plan-summary")
        await pilot.press("escape")
        assert app.screen is screen
        # a repository that could not be read says why, in one paragraph under the table and on enter
        screen.query_one("#models", DataTable).move_cursor(row=LISTED.index("gated-org/Gated-Chat"))
        await wait_until(pilot, lambda: "accepting its terms" in text_of(screen, "#hub-message"))
        await pilot.press("enter")
        assert app.screen is screen
        await pilot.press("u")
        assert app.screen is browse


async def test_catalog_search_text_is_the_query_and_is_kept(make_app, hub_online):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        browse = await browse_ready(pilot)
        await pilot.press("slash", *"qwen", "escape")
        await wait_until(pilot, lambda: len(browse.shown) < len(browse.rows))
        catalog_shown = list(browse.shown)
        screen = await open_hub(pilot)
        assert screen.query_one("#hub-search", Input).value == "qwen"
        assert hub_ids(screen) == ["Qwen/Qwen2.5-0.5B-Instruct", "acme/Tiny-Qwen-Chat"]
        await pilot.press("escape")
        assert app.screen is browse
        assert browse.query_one("#search", Input).value == "qwen" and browse.shown == catalog_shown
        asked = len(searches(hub_online))
        screen = await open_hub(pilot)  # back where it was left, without searching again
        assert hub_ids(screen) == ["Qwen/Qwen2.5-0.5B-Instruct", "acme/Tiny-Qwen-Chat"]
        assert len(searches(hub_online)) == asked
        await pilot.press("slash", *"mistral", "enter")
        await wait_until(
            pilot, lambda: not screen.searching and hub_ids(screen) == ["mistralai/Mistral-7B-v0.1"]
        )
        await pilot.press("u")
        assert app.screen is browse and browse.query_one("#search", Input).value == "qwen"


async def test_a_further_page_on_demand(make_app, hub_online, monkeypatch):
    monkeypatch.setattr(hub_table, "HUB_PAGE", 2)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        screen = await open_hub(pilot)
        assert hub_ids(screen) == LISTED[:2] and "m: 2 more" in text_of(screen, "#status")
        before = info_reads(hub_online, "acme/Tiny-Qwen-Chat")
        await pilot.press("m")
        await wait_until(pilot, lambda: not screen.searching and len(screen.shown) == 4)
        assert hub_ids(screen) == LISTED[:4]
        await pilot.press("m")
        await wait_until(pilot, lambda: not screen.searching and len(screen.shown) == 5)
        assert hub_ids(screen) == LISTED and "no more matches" in text_of(screen, "#status")
        assert [p.split("limit=")[1].split("&")[0] for p in searches(hub_online)[-3:]] == ["2", "4", "6"]
        # hits already shown are not read again for a further page
        after = info_reads(hub_online, "acme/Tiny-Qwen-Chat")
        assert after - before == 1
        await pilot.press("m")  # nothing more: a notification, the table as it was
        assert hub_ids(screen) == LISTED


async def test_fits_only_and_hardware_replan_without_reading_again(make_app, hub_online):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        screen = await open_hub(pilot)
        await pilot.press("f")
        assert screen.query_one("#fits", Checkbox).value
        await wait_until(pilot, lambda: len(screen.shown) == 3)
        assert all(r.fits for r in screen.shown)
        asked = len(hub_online.requests)

        def verdict_of(repo_id: str) -> str:
            row = next(r.row for r in screen.rows if r.hit.repo_id == repo_id)
            assert row is not None
            return verdict(row.result)

        assert verdict_of("acme/Tiny-Qwen-Chat") == "fits on GPU"
        app.switch_hardware("cpu,ram=8GB")
        await wait_until(pilot, lambda: verdict_of("acme/Tiny-Qwen-Chat") == "CPU")
        assert verdict_of("mistralai/Mistral-7B-v0.1") == "disk offload"  # 14 GB of bf16 weights, 8 GB of RAM
        assert "cpu,ram=8GB" in str(screen.sub_title)
        assert len(hub_online.requests) == asked  # planned again from the entries already read


@pytest.fixture
def slow_hub(tmp_path, monkeypatch) -> Iterator[HubServer]:
    """A stand-in with one quick repository and one that answers after 1.5 s."""
    server = HubServer()
    server.add(qwen_copy("quick/Tiny-Chat", downloads=2))
    server.add(qwen_copy("slow/Slow-Chat", downloads=1, delay_s=1.5))
    server.start()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield server
    server.stop()


async def test_rows_arrive_one_by_one_with_progress_and_the_app_stays_responsive(
    make_app, slow_hub, monkeypatch
):
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", "10")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, HubScreen))
        screen = app.screen
        # the quick one is planned and shown while the slow one is still being read
        await wait_until(pilot, lambda: hub_ids(screen) == ["quick/Tiny-Chat"])
        await wait_until(
            pilot, lambda: "reading and planning 2/2: slow/Slow-Chat" in text_of(screen, "#status")
        )
        assert screen.searching
        await pilot.press("f")  # keys work meanwhile
        assert screen.query_one("#fits", Checkbox).value
        await wait_until(pilot, lambda: not screen.searching)
        assert hub_ids(screen) == ["quick/Tiny-Chat", "slow/Slow-Chat"]


async def test_a_repository_that_times_out_is_one_row_with_a_reason(make_app, slow_hub, monkeypatch):
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", "0.3")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        screen = await open_hub(pilot)
        slow = screen.rows[1]
        assert slow.hit.repo_id == "slow/Slow-Chat" and slow.problem == "Hub did not answer"
        assert "did not answer within 0.3 s" in slow.detail and "BERTH_HUB_TIMEOUT" in slow.detail
        assert screen.rows[0].fits


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
        (
            {"HF_ENDPOINT": "http://127.0.0.1:9"},
            "could not be reached (connection refused) while reading the search for ''",
        ),
    ],
)
async def test_offline_or_unreachable_is_one_paragraph_and_the_app_stays_usable(
    make_app, hub_online, monkeypatch, setting, says
):
    for name, value in setting.items():
        monkeypatch.setenv(name, value)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        browse = await browse_ready(pilot)
        screen = await open_hub(pilot)
        message = text_of(screen, "#hub-message")
        assert says in message and "Traceback" not in message
        assert "\n\n" not in message and screen.query_one("#hub-message").display
        assert screen.rows == [] and "failed" in text_of(screen, "#status")
        await pilot.press("escape")
        assert app.screen is browse
        await pilot.press("f")  # Browse works as before
        await wait_until(pilot, lambda: all(r.fits for r in browse.shown))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", hub_online.url)
        screen = await open_hub(pilot)  # the failed search is tried again
        assert hub_ids(screen) == LISTED


async def test_help_and_footer_name_the_hub_key(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        browse = await browse_ready(pilot)
        keys = {
            b.binding.key: b.binding.description for b in browse.active_bindings.values() if b.binding.show
        }
        assert keys.get("u") == "Hub"
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        sections = app.screen.sections
        assert ("u", "Hub") in sections["Browse"]
        hub_keys = dict(sections["Browse: Hub source (u)"])
        assert hub_keys["m"] == "More" and hub_keys["u"] == "Catalog"


async def test_launch_from_a_hub_row_loads_the_derived_entry(make_app, hub_online, factory):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await browse_ready(pilot)
        screen = await open_hub(pilot)
        screen.query_one("#models", DataTable).move_cursor(row=LISTED.index("acme/Tiny-Qwen-Chat"))
        await pilot.press("l")
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        assert app.screen.card.id == "acme/Tiny-Qwen-Chat"
        await wait_until(pilot, lambda: factory.sessions)  # the (fake) loader was handed the Hub entry
        assert factory.sessions[0].model_id == "acme/Tiny-Qwen-Chat"


async def test_leaving_mid_search_drops_its_results_and_coming_back_searches_again(
    make_app, slow_hub, monkeypatch
):
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", "10")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        browse = await browse_ready(pilot)
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, HubScreen))
        first = app.screen
        await wait_until(pilot, lambda: "2/2: slow/Slow-Chat" in text_of(first, "#status"))
        await pilot.press("escape")  # while the slow repository is being read
        assert app.screen is browse
        state = browse.hub_state
        assert state is not None and not state.complete and state.query == ""
        await pilot.press("u")
        await wait_until(pilot, lambda: isinstance(app.screen, HubScreen) and app.screen is not first)
        again = app.screen
        assert isinstance(again, HubScreen)
        await wait_until(pilot, lambda: not again.searching)
        assert hub_ids(again) == ["quick/Tiny-Chat", "slow/Slow-Chat"]
        assert hub_ids(first) == ["quick/Tiny-Chat"]  # the first search's late row went nowhere
