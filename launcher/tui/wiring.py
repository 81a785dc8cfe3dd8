"""The real collaborators the CLI hands to `build_app`: the chat store and the session factory.

Until the launch stack (launcher.load / launcher.session / launcher.store) is installed, chats are kept as
JSON files and launching is unavailable, except in demo mode, which uses the fake loader.
"""

from __future__ import annotations

from launcher.tui.backend import ChatStore, SessionFactory
from launcher.tui.history import FileChatStore
from registry.userdirs import data_dir


def default_store() -> ChatStore:
    """Where chats are saved between runs."""
    return FileChatStore(data_dir() / "chats")


def default_session_factory(demo: bool) -> SessionFactory | None:
    """The fake loader in demo mode; otherwise the real one when it is installed, else None."""
    if demo:
        from launcher.tui.fake import FakeSessionFactory

        return FakeSessionFactory(step_delay_s=0.05, piece_delay_s=0.03)
    return None
