"""Sessions with a scripted backend: streaming, history written before generation, stop, errors, figures."""

from __future__ import annotations

import threading

import pytest

from launcher.run.session import (
    SAVE_EVERY_TOKENS,
    Finished,
    GenerationSettings,
    Piece,
    ScriptedBackend,
    Session,
    SessionBusyError,
    SessionInputError,
)
from launcher.run.store import Store


def test_chat_streams_and_keeps_both_turns(tmp_path):
    store = Store(tmp_path / "b.db")
    backend = ScriptedBackend(replies=[["Par", "is", "."], ["Ber", "lin", "."]])
    session = Session(backend, "org/chat", store=store, system="Answer in one word.")
    pieces: list[str] = []
    first = session.send("Capital of France?", on_piece=pieces.append)
    assert pieces == ["Par", "is", "."] and first.text == "Paris."
    assert first.new_tokens == 3 and first.finish_reason == "stop" and not first.stopped
    assert first.time_to_first_token_s is not None and first.time_to_first_token_s >= 0
    second = session.send("And Germany?")
    assert second.text == "Berlin."
    # The second prompt carried the system prompt and the first exchange.
    assert [t.role for t in backend.prompts[1].messages] == ["system", "user", "assistant", "user"]
    assert backend.prompts[1].messages[2].content == "Paris."
    chat = store.chat(session.chat_id)
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Answer in one word."),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "And Germany?"),
        ("assistant", "Berlin."),
    ]
    assert chat.messages[2].stats["new_tokens"] == 3


def test_user_message_is_stored_before_generation_and_survives_a_crash(tmp_path):
    store = Store(tmp_path / "b.db")
    seen: list[list[str]] = []

    class Crashing(ScriptedBackend):
        def run(self, prompt, stop, emit):
            chat = store.chat(session.chat_id)
            seen.append([m.content for m in chat.messages])
            emit(Piece("half a", 1, 0.0))
            raise RuntimeError("the model fell over")

    session = Session(Crashing(), "org/chat", store=store)
    stream = session.stream("something I typed")
    with pytest.raises(RuntimeError, match="fell over"):
        list(stream)
    assert seen == [["something I typed"]]
    assert stream.reply is not None and stream.reply.finish_reason == "error" and stream.reply.error
    messages = store.chat(session.chat_id).messages
    assert [m.content for m in messages] == ["something I typed", "half a"]
    assert not session.busy
    # The session goes on after a failed reply.
    session.backend = ScriptedBackend(replies=[["ok"]])
    assert session.send("again").text == "ok"


def test_stop_from_another_thread_ends_the_reply(tmp_path):
    store = Store(tmp_path / "b.db")
    backend = ScriptedBackend(replies=[[f"w{i} " for i in range(200)]], delay_s=0.2)  # 40 s unless stopped
    session = Session(backend, "org/chat", store=store)
    stream = session.stream("go on forever")
    got = [next(stream)]
    assert session.busy
    with pytest.raises(SessionBusyError):
        session.stream("interrupting")
    threading.Thread(target=session.stop).start()
    got += list(stream)
    reply = stream.reply
    assert reply is not None and reply.stopped and 0 < reply.new_tokens < 200
    assert "".join(got) == reply.text
    saved = store.chat(session.chat_id).messages[-1]
    assert saved.role == "assistant" and saved.stats["stopped"] is True
    assert not session.busy and session.history[-1].content == reply.text


def test_interrupted_iteration_can_resume():
    """Ctrl-C while reading a stream leaves it usable: stop, then keep reading to the end."""
    backend = ScriptedBackend(replies=[[f"{i} " for i in range(100)]], delay_s=0.2)  # 20 s unless stopped
    session = Session(backend, "m")
    stream = session.stream("count")
    next(stream)
    stream.stop()  # what the CLI does on KeyboardInterrupt
    rest = list(stream)
    assert stream.reply is not None and stream.reply.stopped
    assert len(rest) < 99
    assert list(stream) == []  # exhausted streams stay exhausted


def test_settings_reach_the_backend_and_limit_tokens():
    backend = ScriptedBackend(replies=[["a", "b", "c", "d"]])
    session = Session(backend, "m", settings=GenerationSettings(max_new_tokens=2, temperature=0, seed=3))
    reply = session.send("x")
    assert reply.text == "ab" and reply.finish_reason == "length"
    assert backend.prompts[0].settings.seed == 3


def test_completion_and_fill_mask_sessions():
    completion = Session(
        ScriptedBackend(replies=[[" there was"]], task="completion"), "gpt2", system="ignored"
    )
    assert completion.system is None
    completion.send("Once upon a time")
    assert [t.role for t in completion.backend.prompts[0].messages] == ["user"]

    fill = Session(ScriptedBackend(replies=[["paris", "lyon"]], task="fill-mask"), "bert")
    with pytest.raises(SessionInputError, match=r"\[MASK\]"):
        fill.stream("no mask here")
    reply = fill.send("The capital of France is [MASK].")
    assert reply.text == "The capital of France is paris."
    assert [c.token for c in reply.candidates] == ["paris", "lyon"]


def test_empty_messages_are_refused_and_reset_starts_a_new_chat(tmp_path):
    store = Store(tmp_path / "b.db")
    session = Session(ScriptedBackend(), "m", store=store)
    with pytest.raises(SessionInputError):
        session.stream("   ")
    session.send("hi")
    first = session.chat_id
    session.reset(system="new system")
    assert session.history == [] and session.system == "new system"
    session.send("hi again")
    assert session.chat_id != first and len(store.chats()) == 2


def test_rates_come_from_token_times():
    class Timed(ScriptedBackend):
        def run(self, prompt, stop, emit):
            for i in range(5):
                emit(Piece(f"t{i}", 1, 100.0 + i * 0.5))
            return Finished(7, "stop")

    session = Session(Timed(), "m")
    reply = session.send("x")
    assert reply.tokens_per_s == pytest.approx(4 / 2.0)
    assert reply.prompt_tokens == 7 and reply.new_tokens == 5


def test_ctrl_c_during_send_stops_the_reply_not_the_program(tmp_path):
    store = Store(tmp_path / "b.db")

    class Interrupted(ScriptedBackend):
        def run(self, prompt, stop, emit):
            emit(Piece("Once ", 1, 1.0))
            emit(Piece("upon", 1, 1.1))
            raise KeyboardInterrupt  # what SIGINT raises in the main thread mid-generation

    session = Session(Interrupted(), "m", store=store)
    got: list[str] = []
    reply = session.send("tell me a story", on_piece=got.append)
    assert reply.stopped and reply.text == "Once upon" and got == ["Once ", "upon"]
    assert store.chat(session.chat_id).messages[-1].stats["stopped"] is True
    assert not session.busy


def test_the_reply_is_written_as_it_streams_and_finalised_in_place(tmp_path):
    store = Store(tmp_path / "b.db")
    halfway, resume = threading.Event(), threading.Event()

    class Pausing(ScriptedBackend):
        def run(self, prompt, stop, emit):
            for i in range(SAVE_EVERY_TOKENS + 4):
                emit(Piece(f"w{i} ", 1, 0.0))  # one instant: only the token count triggers a write
            halfway.set()
            resume.wait(10)
            emit(Piece("end", 1, 0.0))
            return Finished(3, "stop")

    session = Session(Pausing(), "org/chat", store=store)
    stream = session.stream("tell me a story")
    assert halfway.wait(10)
    messages = store.chat(session.chat_id).messages
    assert [m.role for m in messages] == ["user", "assistant"]
    expected = "".join(f"w{i} " for i in range(SAVE_EVERY_TOKENS))
    assert messages[1].content == expected and messages[1].stats == {"partial": True}
    assert "cut off" in store.export(session.chat_id)
    resume.set()
    assert "".join(stream).endswith("end")
    final = store.chat(session.chat_id).messages
    assert len(final) == 2 and final[1].id == messages[1].id and final[1].content.endswith("w19 end")
    assert final[1].stats["new_tokens"] == SAVE_EVERY_TOKENS + 5 and "partial" not in final[1].stats
    assert "cut off" not in store.export(session.chat_id)
