"""The real collaborators the CLI hands to `build_app`: the chat store and the session factory.

With the launch stack installed (launcher.run.load, launcher.run.session, launcher.run.store), chats go to the SQLite
history that `berth history` reads and launching loads real models. Without it, chats are kept as JSON files
and launching is unavailable, except in demo mode, which uses the fake loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

from launcher.tui.backend import ChatStore, SessionFactory
from registry.catalog import Catalog
from registry.userdirs import data_dir


def launch_stack_available() -> bool:
    """Whether launcher.run.load, launcher.run.session and launcher.run.store exist (found without importing torch)."""
    try:
        return all(
            find_spec(f"launcher.{name}") is not None for name in ("load", "session", "store", "source")
        )
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Wiring:
    """What build_app needs besides the catalog and the host."""

    store: ChatStore
    session_factory: SessionFactory | None


def default_wiring(catalog: Catalog, demo: bool = False) -> Wiring:
    """The store and session factory for this installation (the fake loader in demo mode)."""
    sqlite: Any = None
    store: ChatStore
    if launch_stack_available():
        from launcher.run.store import Store
        from launcher.tui.adapters import SqliteChatStore

        sqlite = Store()
        store = SqliteChatStore(sqlite)
    else:
        from launcher.tui.history import FileChatStore

        store = FileChatStore(data_dir() / "chats")
    factory: SessionFactory | None = None
    if demo:
        from launcher.tui.fake import FakeSessionFactory

        factory = FakeSessionFactory(step_delay_s=0.05, piece_delay_s=0.03)
    elif sqlite is not None:
        from launcher.tui.adapters import LaunchStackFactory

        factory = LaunchStackFactory(catalog, sqlite)
    return Wiring(store, factory)
