"""The real collaborators the entry point hands to `build_app`: the chat store and the session factory.

Chats go to the SQLite history that `berth history` reads (launcher.run.store), and launching loads real models
through launcher.run.load and launcher.run.session (torch only once a model is launched); demo mode launches the
fake loader instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.run.store import Store
from launcher.tui.adapters import LaunchStackFactory, SqliteChatStore
from launcher.tui.backend import ChatStore, SessionFactory
from launcher.tui.fake import FakeSessionFactory
from registry.catalog import Catalog


@dataclass(frozen=True)
class Wiring:
    """What build_app needs besides the catalog and the host."""

    store: ChatStore
    session_factory: SessionFactory | None


def default_wiring(catalog: Catalog, demo: bool = False) -> Wiring:
    """The store and session factory for this installation (the fake loader in demo mode)."""
    sqlite = Store()
    factory: SessionFactory
    if demo:
        factory = FakeSessionFactory(step_delay_s=0.05, piece_delay_s=0.03)
    else:
        factory = LaunchStackFactory(catalog, sqlite)
    return Wiring(SqliteChatStore(sqlite), factory)
