"""`berth launch MODEL` on a terminal: the app opens on the model's Launch screen, then its chat; keys typed while
it loads reach the chat; the model stays loaded while the person browses, and `c` or Chats resumes the chat."""

from __future__ import annotations

import threading

from launcher.plan.ladder import make_plan
from launcher.plan.request import Plan
from launcher.run.session import GenerationSettings
from launcher.tui.backend import InitialLaunch
from launcher.tui.screens.browse import BrowseScreen
from launcher.tui.screens.chat import ChatScreen
from launcher.tui.screens.chats import ChatsScreen
from launcher.tui.screens.launch import LaunchScreen
from launcher.tui.widgets.prompt_input import PromptInput

from .test_tui_chat import SMOL, send, start_chat
from .tui_helpers import TEST_HOST, browse_ready, wait_until

SIZE = (120, 36)


def initial(catalog, **settings) -> InitialLaunch:
    card = catalog.get(SMOL)
    plan = make_plan(card, TEST_HOST)
    assert isinstance(plan, Plan)
    return InitialLaunch(card, plan, GenerationSettings(**settings), "be brief")


async def test_the_app_opens_on_the_launch_screen_then_the_chat(make_app, catalog, factory):
    start = initial(catalog, temperature=0.0, max_new_tokens=40)
    app = make_app(initial_launch=start)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, PromptInput))  # the chat is up, ready to type
        chat = app.screen
        assert isinstance(app.screen_stack[1], BrowseScreen)  # Browse is one key away
        assert chat.model_id == SMOL and not chat.read_only
        assert chat.settings == start.settings and chat.system_prompt == "be brief"
        await send(pilot, chat, "hello")
        assert factory.sessions[0].calls[0][0] == "chat"


async def test_keys_typed_while_loading_land_in_the_chat_prompt(make_app, catalog, factory):
    factory.gate = threading.Event()  # loading waits until the test has typed
    app = make_app(initial_launch=initial(catalog))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        launch = app.screen
        plan_text = str(launch.query_one("#launch-plan").render())
        assert SMOL in plan_text  # the plan is on the Launch screen
        await pilot.press(*"What is the capital of France?", "backspace", "?")
        assert launch.typed == "What is the capital of France?"
        assert isinstance(app.screen, LaunchScreen)  # '?' went into the message, not to Help
        factory.gate.set()
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        await wait_until(pilot, lambda: chat.query_one(PromptInput).text == "What is the capital of France?")
        await pilot.pause(0.2)
        assert chat.messages == [] and not chat.streaming  # not sent: Enter was not pressed


async def test_enter_typed_while_loading_sends_the_message_once_loaded(make_app, catalog, factory):
    factory.gate = threading.Event()
    app = make_app(initial_launch=initial(catalog))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        await pilot.press(*"hi there", "enter")
        assert app.screen.send_typed
        factory.gate.set()
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        await wait_until(pilot, lambda: not chat.streaming and len(chat.messages) == 2)
        assert chat.messages[0].content == "hi there"
        assert chat.query_one(PromptInput).text == ""


async def test_the_model_stays_loaded_while_browsing_and_c_resumes_the_live_chat(make_app, factory):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await send(pilot, chat, "remember me")
        await pilot.press("escape")  # no reply streaming: back to Browse
        await wait_until(pilot, lambda: isinstance(app.screen, BrowseScreen))
        assert app.launched is not None and not factory.sessions[0].closed
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.focused, PromptInput))  # the chat is up, ready to type
        resumed = app.screen
        assert resumed is not chat and not resumed.read_only
        assert resumed.messages[0].content == "remember me"
        assert resumed.record_id == chat.record_id  # the same conversation continues
        await send(pilot, resumed, "and now this")
        assert [m.content for m in factory.sessions[0].calls[-1][1] if m.role == "user"] == [
            "remember me",
            "and now this",
        ]


async def test_launching_the_loaded_model_again_resumes_its_chat(make_app, factory):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await send(pilot, chat, "still here?")
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: isinstance(app.screen, BrowseScreen))
        app.launch(app.launched_card, app.launched.plan)
        await wait_until(pilot, lambda: isinstance(app.focused, PromptInput))  # the chat is up
        assert isinstance(app.screen, ChatScreen) and app.screen.messages[0].content == "still here?"
        assert len(factory.sessions) == 1 and not factory.sessions[0].closed  # not loaded twice


async def test_the_chats_list_resumes_the_live_chat(make_app, factory):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await send(pilot, chat, "live one")
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: isinstance(app.screen, BrowseScreen))
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatsScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.focused, PromptInput))  # the live chat, ready to type
        assert isinstance(app.screen, ChatScreen)
        assert not app.screen.read_only and app.screen.launched is app.launched
        assert "read-only" not in app.screen.sub_title


async def test_c_shows_in_the_footer_only_while_a_model_is_loaded_and_fits_80_columns(make_app):
    app = make_app()
    async with app.run_test(size=(80, 30)) as pilot:
        screen = await browse_ready(pilot)
        assert "c" not in footer_keys(screen)
        await pilot.press("c")
        assert app.screen is screen  # nothing to return to
        chat = await start_chat(pilot)
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: app.screen is screen)
        await pilot.pause(0.2)
        keys = footer_keys(screen)
        assert keys["c"] == "Chat"
        assert chat.launched is app.launched


def footer_keys(screen) -> dict[str, str]:
    """The footer's keys and their descriptions, each wholly on screen (none cut off at the right edge)."""
    from textual.widgets import Footer

    width = screen.app.size.width
    keys = {}
    for key in screen.query_one(Footer).query("FooterKey"):
        assert key.region.right <= width, f"{key.key} {key.description} is cut off at {width} columns"
        keys[key.key] = key.description
    return keys


# --------------------------------------------------------------------------- the CLI's side


def test_launch_on_a_terminal_hands_the_model_to_the_app(berth, monkeypatch, smollm2_gguf):
    """The CLI resolves the source and plan, then hands them to the entry point's app (nothing is loaded here)."""
    from launcher.cli import cli, launch_cmd

    seen: list[launch_cmd.AppLaunch] = []
    monkeypatch.setattr(cli, "app_launcher", lambda _ctx, launch: seen.append(launch))
    monkeypatch.setattr(launch_cmd, "on_terminal", lambda: True)  # the terminal is the faked boundary
    result = berth("launch", "--gguf", str(smollm2_gguf), "--temperature", "0", "--system", "short")
    assert result.exit_code == 0, result.output
    assert len(seen) == 1
    launch = seen[0]
    assert launch.source.kind == "gguf" and launch.source.path == smollm2_gguf.resolve()
    assert launch.settings.temperature == 0.0 and launch.system == "short"
    assert launch.request.allow_disk is False  # a GGUF file is never disk-offloaded, as plain launch asks
    help_text = " ".join(berth("launch", "--help").output.split())
    assert "--no-tui Chat as plain lines" in help_text and "coming" not in help_text


def test_no_tui_a_pipe_or_a_prompt_keep_plain_streaming(berth, monkeypatch, tiny_models):
    from launcher.cli import cli, launch_cmd

    seen: list[object] = []
    monkeypatch.setattr(cli, "app_launcher", lambda _ctx, launch: seen.append(launch))
    monkeypatch.setattr(launch_cmd, "on_terminal", lambda: True)
    model = str(tiny_models("gpt2"))
    result = berth("launch", model, "--no-tui", input="/exit\n")
    assert result.exit_code == 0, result.output
    assert "Chatting with" in result.stderr and seen == []
    result = berth("launch", model, "--prompt", "hello", "--max-new-tokens", "2")
    assert result.exit_code == 0, result.output
    assert seen == []
    monkeypatch.setattr(launch_cmd, "on_terminal", lambda: False)  # a pipe
    result = berth("launch", model, input="/exit\n")
    assert result.exit_code == 0 and "Chatting with" in result.stderr and seen == []
