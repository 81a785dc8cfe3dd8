"""The real collaborators the entry point hands to `build_app`: the chat store and the session factory.

Chats go to the SQLite history that `berth history` reads (launcher.run.store), and launching loads real models
through launcher.run.load and launcher.run.session (torch only once a model is launched; whichever runtime the
plan picks, the app drives it through that session); demo mode launches the fake loader and keeps its chats in
memory, out of the real history.
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.plan.request import Plan, PlanRequest
from launcher.run.source import ModelSource
from launcher.run.store import Store
from launcher.tui.adapters import LaunchStackFactory, SqliteChatStore
from launcher.tui.backend import ChatStore, SessionFactory
from launcher.tui.fake import FakeSessionFactory, MemoryChatStore
from registry.catalog import Catalog


@dataclass(frozen=True)
class Wiring:
    """What build_app needs besides the catalog and the host."""

    store: ChatStore
    session_factory: SessionFactory | None


def default_wiring(catalog: Catalog, demo: bool = False) -> Wiring:
    """The store and session factory for this installation (the fake loader and a memory store in demo mode)."""
    if demo:
        return Wiring(MemoryChatStore(), FakeSessionFactory(step_delay_s=0.05, piece_delay_s=0.03))
    sqlite = Store()
    return Wiring(SqliteChatStore(sqlite), LaunchStackFactory(catalog, sqlite))


@dataclass(frozen=True)
class LaunchOptions:
    """`berth launch`'s choices for the model it names: where its weights are, and how to load them."""

    source: ModelSource
    request: PlanRequest
    plan: Plan
    trust_remote_code: bool = False
    allow_pickle: bool = False
    memory_limits: dict[int | str, int] | None = None


def launch_wiring(catalog: Catalog, options: LaunchOptions) -> Wiring:
    """The real store and loader for `berth launch` in the app: the named model loads from the source and with
    the request the CLI resolved (a --gguf file, a local folder, --max-memory caps), as plain `berth launch` does."""
    sqlite = Store()
    factory = LaunchStackFactory(
        catalog,
        sqlite,
        trust_remote_code=options.trust_remote_code,
        allow_pickle=options.allow_pickle,
        memory_limits=options.memory_limits,
        initial=(options.source, options.request, options.plan),
    )
    return Wiring(SqliteChatStore(sqlite), factory)
