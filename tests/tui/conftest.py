"""TUI fixtures: a fixed machine, named hardware that resolves without probing, an app factory, and the Hub
stand-in the Browse screen's Hub source searches."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import huggingface_hub.constants
import pytest
from hub_server import HubServer, bert_tensors, llama_like_tensors, qwen_copy, safetensors_repo

from launcher.tui.app import BerthApp, build_app
from launcher.tui.fake import FakeSessionFactory, MemoryChatStore, TickClock
from registry.catalog import Catalog

from .tui_helpers import TEST_HOST, FakeResolver

# huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported: import it now, at collection, as a `berth`
# process starts, before the autouse berth_home fixture sets HF_HUB_OFFLINE=1 around each test.
HUB_LIBRARY_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE


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


@pytest.fixture(scope="session")
def app_hub() -> Iterator[HubServer]:
    """The Hub stand-in (a real HTTP server on 127.0.0.1, tests/hub_server.py) with what the app's Hub source
    lists: a catalog repository, two that are not in the catalog, a gated one, one that needs its own code and
    an encoder (not text generation, so never listed), by downloads."""
    server = HubServer()
    server.add(
        qwen_copy("Qwen/Qwen2.5-0.5B-Instruct", downloads=900)
    )  # in the catalog: its verified entry is used
    server.add(safetensors_repo("mistralai/Mistral-7B-v0.1", llama_like_tensors, shards=2, downloads=800))
    server.add(qwen_copy("acme/Tiny-Qwen-Chat", downloads=700))  # not in the catalog: derived from the Hub
    server.add(qwen_copy("gated-org/Gated-Chat", downloads=600, gated=True))
    server.add(qwen_copy("custom/Remote-Chat", downloads=500, model_type="my_arch"))
    server.add(safetensors_repo("google-bert/bert-base-uncased", bert_tensors, pipeline_tag="fill-mask"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hub_online(app_hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The app's Hub source talks to the stand-in (HF_ENDPOINT), with its own Hugging Face cache."""
    assert not HUB_LIBRARY_OFFLINE, (
        "run the tests without HF_HUB_OFFLINE set: huggingface_hub reads it at import"
    )
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", app_hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", "5")
    return app_hub
