"""The app's chats in the SQLite store: a reply saved as it streams grows in place and is finished in place."""

from __future__ import annotations

from launcher.run.session import Turn
from launcher.run.store import Store
from launcher.tui.adapters import SqliteChatStore
from launcher.tui.backend import ChatRecord

from .tui_helpers import finished_reply


def test_a_streaming_reply_is_updated_in_place_then_finished(tmp_path):
    store = Store(tmp_path / "berth.db")
    chats = SqliteChatStore(store)
    user = Turn("user", "tell me")
    chat_id = chats.save_chat(ChatRecord("org/m", (user,)))
    for text in ("Once", "Once upon", "Once upon a time"):
        partial = ChatRecord("org/m", (user, Turn("assistant", text)), id=chat_id, partial=True)
        assert chats.save_chat(partial) == chat_id
        stored = store.chat(int(chat_id)).messages
        assert [(m.content, dict(m.stats)) for m in stored] == [("tell me", {}), (text, {"partial": True})]
    reply = finished_reply("Once upon a time.", 5, 1.0)
    done = ChatRecord("org/m", (user, Turn("assistant", reply.text, reply)), id=chat_id)
    assert chats.save_chat(done) == chat_id
    stored = store.chat(int(chat_id)).messages
    assert [m.content for m in stored] == ["tell me", "Once upon a time."]
    assert stored[1].stats["new_tokens"] == 5 and "partial" not in stored[1].stats
    # the conversation goes on in the same chat; a finished reply is never rewritten
    more = ChatRecord("org/m", (*done.messages, Turn("user", "more")), id=chat_id)
    assert chats.save_chat(more) == chat_id and len(store.chat(int(chat_id)).messages) == 3
    changed = ChatRecord("org/m", (user, Turn("assistant", "other")), id=chat_id, partial=True)
    assert chats.save_chat(changed) != chat_id
