"""Chat: streaming without losing the tail, stop, keys, history of prompts, regenerate, clear, settings,
saved chats reopened after a restart, exports, and a UI that stays responsive while a reply streams."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Input, Markdown, Static, TextArea

from launcher.run.session import GenerationSettings
from launcher.run.store import Store
from launcher.tui.adapters import SqliteChatStore
from launcher.tui.app import BerthApp
from launcher.tui.fake import FakeSessionFactory, TickClock, canned_reply
from launcher.tui.screens.chat import ChatScreen
from launcher.tui.screens.chats import ChatsScreen
from launcher.tui.screens.launch import LaunchScreen
from launcher.tui.screens.settings import SettingsScreen
from launcher.tui.widgets.chat_message import ChatMessage
from launcher.tui.widgets.prompt_input import PromptInput

from .tui_helpers import browse_ready, wait_until

SIZE = (120, 36)
SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


async def start_chat(pilot, model: str = SMOL) -> ChatScreen:
    """From Browse, launch `model` with the fake loader and open its chat."""
    app: BerthApp = pilot.app
    screen = await browse_ready(pilot)
    app.launch(app.catalog.get(model), next(r.result for r in screen.rows if r.card.id == model))
    await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.launched)
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
    chat = app.screen
    assert isinstance(chat, ChatScreen)
    return chat


def bubbles(chat: ChatScreen) -> list[ChatMessage]:
    return list(chat.query(ChatMessage))


async def send(pilot, chat: ChatScreen, text: str) -> None:
    """Type a prompt, press Enter, wait for the reply to finish."""
    turns = len(chat.messages)
    await pilot.press(*text, "enter")
    await wait_until(pilot, lambda: not chat.streaming and len(chat.messages) == turns + 2)


async def test_reply_streams_in_full_with_stats(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await send(pilot, chat, "How big is the sun?")
        expected = canned_reply(chat.messages[:1])
        user, reply = bubbles(chat)
        assert user.text == "How big is the sun?"
        assert reply.text == expected and chat.messages[-1].content == expected
        markdown = reply.query_one(Markdown)
        assert markdown.source == expected  # the tail is there, not only what the stream had drawn
        assert "The end." in markdown.source
        stats = chat.messages[-1].reply
        assert stats is not None and stats.new_tokens == len(expected.split())
        status = str(chat.query_one("#chat-status", Static).render())
        assert "last reply" in status and "tokens/s" in status and "memory" in status


async def test_escape_stops_a_reply_and_keeps_what_came(make_app, factory: FakeSessionFactory):
    factory.piece_delay_s = 0.5  # a reply lasts about 20 s unless stopped: Esc lands mid-reply on any machine
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await pilot.press(*"tell me everything", "enter")
        await wait_until(pilot, lambda: chat.streaming and len(chat._pieces) >= 2)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not chat.streaming)
        reply = chat.messages[-1]
        assert reply.role == "assistant" and reply.reply is not None and reply.reply.stopped
        assert 2 <= reply.reply.new_tokens < len(canned_reply(chat.messages[:1]).split())
        assert bubbles(chat)[-1].query_one(Markdown).source == reply.content


async def test_typing_while_a_reply_streams_stays_responsive(make_app, factory: FakeSessionFactory):
    factory.piece_delay_s = 1.0  # a reply lasts about 40 s unless stopped
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await pilot.press(*"first", "enter")
        await wait_until(pilot, lambda: chat.streaming and chat._pieces)
        prompt = chat.query_one(PromptInput)
        await pilot.press(*"next question")
        assert chat.streaming, "every key was handled while the reply was still streaming"
        assert prompt.text == "next question"
        seen = len(chat._pieces)
        await wait_until(pilot, lambda: len(chat._pieces) > seen)  # pieces keep arriving
        await pilot.press("enter")  # refused while streaming; the text stays
        assert prompt.text == "next question"
        await pilot.press("escape")
        await wait_until(pilot, lambda: not chat.streaming)


async def test_enter_sends_ctrl_j_breaks_lines_and_arrows_recall_prompts(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        prompt = chat.query_one(PromptInput)
        await pilot.press(*"line one", "ctrl+j", *"line two")
        assert prompt.text == "line one\nline two"
        await pilot.press("enter")
        await wait_until(pilot, lambda: not chat.streaming and len(chat.messages) == 2)
        assert chat.messages[0].content == "line one\nline two"
        await send(pilot, chat, "second")
        assert prompt.text == ""
        await pilot.press(*"draft", "up")
        assert prompt.text == "second"
        await pilot.press("up")
        assert prompt.text == "line one\nline two"
        await pilot.press("down")  # cursor is on the last line: next newer prompt
        assert prompt.text == "second"
        await pilot.press("down")
        assert prompt.text == "draft"


async def test_regenerate_clear_and_settings(make_app, factory: FakeSessionFactory):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        session = factory.sessions[-1]
        session.replies = ["first answer", "second answer"]
        await send(pilot, chat, "question")
        assert chat.messages[-1].content == "first answer"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: not chat.streaming and chat.messages[-1].content == "second answer")
        assert [m.role for m in chat.messages] == ["user", "assistant"]
        assert len(bubbles(chat)) == 2
        # Settings: system prompt and sampling reach the session.
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        settings = app.screen
        settings.query_one("#system-prompt", TextArea).text = "Answer in French."
        settings.query_one("#temperature", Input).value = "0"
        settings.query_one("#max-new-tokens", Input).value = "5"
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen is chat)
        assert chat.settings == GenerationSettings(temperature=0.0, top_p=0.95, max_new_tokens=5)
        assert chat.system_prompt == "Answer in French."
        await send(pilot, chat, "again")
        assert chat.messages[-1].reply.new_tokens == 5
        # Clear starts a new chat; the old one stays saved.
        saved = chat.record_id
        await pilot.press("ctrl+l")
        assert chat.messages == [] and bubbles(chat) == [] and chat.record_id is None
        assert app.store.load_chat(saved).messages[-1].reply.new_tokens == 5


async def test_bad_settings_are_refused(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, SettingsScreen))
        app.screen.query_one("#top-p", Input).value = "7"
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, SettingsScreen)
        await pilot.press("escape")
        assert app.screen is chat and chat.settings == GenerationSettings() and chat.system_prompt == ""


async def test_copy_a_message_and_the_last_reply(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await send(pilot, chat, "copy me")
        await pilot.press("f2")
        assert app.clipboard == chat.messages[-1].content
        bubbles(chat)[0].focus()
        await pilot.press("c")
        assert app.clipboard == "copy me"


@pytest.mark.slow  # two app runs, a whole chat each
async def test_history_is_reopened_after_a_restart(catalog, tmp_path, make_app):
    store = SqliteChatStore(Store(tmp_path / "berth.db"))
    app = make_app(store=store)
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await send(pilot, chat, "remember this")
        await send(pilot, chat, "and this")
    # A new app, as after quitting and starting berth again.
    store_again = SqliteChatStore(Store(tmp_path / "berth.db"))
    factory = FakeSessionFactory(clock=TickClock())
    app = make_app(store=store_again, session_factory=factory)
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        await pilot.press("o")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatsScreen))
        assert [c.title for c in app.screen.chats] == ["remember this"]
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        reopened = app.screen
        assert reopened.read_only  # nothing is loaded yet
        assert [m.content for m in reopened.messages if m.role == "user"] == ["remember this", "and this"]
        assert len(bubbles(reopened)) == 4
        assert reopened.query_one(PromptInput).disabled
        await pilot.press("ctrl+b")
        await wait_until(pilot, lambda: app.screen is screen)
        # With the model loaded, reopening continues the conversation.
        chat = await start_chat(pilot)
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatsScreen))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen) and app.screen is not chat)
        continued = app.screen
        assert not continued.read_only
        await send(pilot, continued, "one more")
        assert len(store_again.list_chats()) == 1
        assert store_again.list_chats()[0].message_count == 6
        assert factory.sessions[-1].calls[-1][1][0].content == "remember this"  # the whole chat was sent


async def test_export_markdown_and_json(make_app, berth_home):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot)
        await send(pilot, chat, "export me")
        chat.export("md")
        chat.export("json")
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatsScreen))
        await pilot.press("d")  # delete from the list
        assert app.store.list_chats() == []
    exports = sorted((berth_home / "exports").iterdir())
    assert [p.suffix for p in exports] == [".json", ".md"]
    assert "## You\n\nexport me" in exports[1].read_text()
    assert json.loads(exports[0].read_text())["messages"][0]["content"] == "export me"


async def test_completion_screen_continues_the_prompt_alone(make_app, factory: FakeSessionFactory):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        chat = await start_chat(pilot, "openai-community/gpt2")
        await send(pilot, chat, "Once upon a time")
        await send(pilot, chat, "In a galaxy")
        calls = factory.sessions[-1].calls
        assert calls == [("complete", "Once upon a time"), ("complete", "In a galaxy")]


async def test_fill_mask_screen_lists_guesses(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await browse_ready(pilot)
        model = "google-bert/bert-base-uncased"
        app.launch(app.catalog.get(model), next(r.result for r in screen.rows if r.card.id == model))
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.launched)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.query("#fill-input"))
        fill = app.screen
        await pilot.press("enter")
        await wait_until(pilot, lambda: fill.guesses)
        assert fill.guesses[0].token == "Paris"
        assert fill.query_one("#guesses").row_count == 5
        fill.query_one("#fill-input", Input).value = "no blank here"
        await pilot.press("enter")
        assert any("where the missing word goes" in str(n.message) for n in app._notifications)
