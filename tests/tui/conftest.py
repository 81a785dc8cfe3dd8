"""TUI fixtures: a fixed machine, named hardware that resolves without probing, and an app factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from launcher.tui.app import BerthApp, build_app
from launcher.tui.fake import FakeSessionFactory, MemoryChatStore, TickClock
from registry.catalog import Catalog

from .tui_helpers import TEST_HOST, FakeResolver


@pytest.fixture
def factory() -> FakeSessionFactory:
    """The fake loader, with repeatable reply timings."""
    return FakeSessionFactory(clock=TickClock())


@pytest.fixture
def store() -> MemoryChatStore:
    """An empty in-memory chat store."""
    return MemoryChatStore()


@pytest.fixture
def make_app(
    catalog: Catalog, factory: FakeSessionFactory, store: MemoryChatStore
) -> Callable[..., BerthApp]:
    """build_app with the test host, the fake loader and store; keyword arguments override."""

    def make(**overrides: Any) -> BerthApp:
        options: dict[str, Any] = {
            "session_factory": factory,
            "store": store,
            "hardware_resolver": FakeResolver(),
        }
        options.update(overrides)
        host = options.pop("host", TEST_HOST)
        return build_app(catalog, host, **options)

    return make
