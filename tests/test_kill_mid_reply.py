"""Killed mid-reply (SIGKILL, no chance to clean up): the store keeps what the user typed and the reply so far.

Each test starts a real process that generates a long reply into a real store file (the command-line session,
and the app driven headless), waits until the store shows part of the reply, kills the process, and reads
the store. The fake models only stand in for the weights; the session, the chat screen and the store are real.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from launcher.run.store import Store

ROOT = Path(__file__).resolve().parent.parent
#: Seconds to wait for the child's partial reply: generous, since only a broken build ever waits this long.
PATIENCE_S = 120.0
TYPED = "keep what I typed"

CLI_CHILD = """
import sys
from launcher.run.session import GenerationSettings, ScriptedBackend, Session
from launcher.run.store import Store

backend = ScriptedBackend(replies=[[f"w{i} " for i in range(5000)]], delay_s=0.01)
session = Session(backend, "org/chat", store=Store(sys.argv[1]))
session.send(sys.argv[2], settings=GenerationSettings(max_new_tokens=5000))
"""

APP_CHILD = """
import asyncio
import sys

import launcher.tui.fake as fake

fake.canned_reply = lambda _messages: " ".join(f"w{i}" for i in range(5000))

from launcher.run.store import Store
from launcher.tui.adapters import SqliteChatStore
from launcher.tui.app import build_app
from launcher.tui.screens.chat import ChatScreen
from launcher.tui.screens.launch import LaunchScreen
from registry.catalog import load_catalog
from tests.tui.tui_helpers import TEST_HOST, FakeResolver, browse_ready, wait_until

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


async def main() -> None:
    factory = fake.FakeSessionFactory(piece_delay_s=0.01)
    store = SqliteChatStore(Store(sys.argv[1]))
    app = build_app(
        load_catalog(overlay=False), TEST_HOST, session_factory=factory, store=store,
        hardware_resolver=FakeResolver(),
    )
    async with app.run_test(size=(120, 36)) as pilot:
        screen = await browse_ready(pilot)
        app.launch(app.catalog.get(MODEL), next(r.result for r in screen.rows if r.card.id == MODEL))
        await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.launched)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ChatScreen))
        await pilot.press(*sys.argv[2], "enter")
        await pilot.pause(600)


asyncio.run(main())
"""


def _rows(path: Path) -> list[tuple[str, str, dict[str, object]]]:
    """(role, content, stats) of every stored message, read without creating or changing the file."""
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT role, content, stats FROM messages ORDER BY id").fetchall()
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return []
    return [(role, content, json.loads(stats)) for role, content, stats in rows]


def _kill_once_partial(child: str, path: Path, tmp_path: Path) -> str:
    """Run `child`, kill it with SIGKILL once the store holds part of a reply; the partial text seen."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(child))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    process = subprocess.Popen(
        [sys.executable, str(script), str(path), TYPED],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + PATIENCE_S
    try:
        while time.monotonic() < deadline and process.poll() is None:
            partial = [c for role, c, stats in _rows(path) if role == "assistant" and stats.get("partial")]
            if partial:
                process.send_signal(signal.SIGKILL)
                process.wait(30)
                return partial[0]
            time.sleep(0.05)
        _, err = process.communicate(timeout=5) if process.poll() is not None else (b"", b"")
        pytest.fail(f"no partial reply was stored (exit {process.poll()}): {err.decode()[-2000:]}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("child", [CLI_CHILD, APP_CHILD], ids=["cli-session", "app"])
def test_a_kill_mid_reply_keeps_the_message_and_the_reply_so_far(tmp_path, child):
    path = tmp_path / "berth.db"
    seen = _kill_once_partial(child, path, tmp_path)
    with Store(path) as store:
        (chat,) = store.chats()
        messages = store.chat(chat.id).messages
    assert [m.role for m in messages] == ["user", "assistant"] and messages[0].content == TYPED
    reply = messages[1]
    assert reply.stats.get("partial") and reply.content.startswith("w0 w1 ")
    assert len(reply.content) >= len(seen)  # what was written before the kill is all there
    assert chat.title == TYPED
