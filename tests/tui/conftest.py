"""TUI fixtures: a fixed machine, named hardware that resolves without probing, and an app factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from launcher.host import CpuInfo, GpuInfo, HostSnapshot
from launcher.tui.app import BerthApp, build_app
from launcher.tui.fake import FakeSessionFactory, MemoryChatStore, TickClock
from registry.catalog import Catalog

GIB = 2**30

#: The machine every TUI test runs on: one RTX 4090 (22 of 24 GiB free), 48 of 64 GiB RAM free, 500 GiB disk.
TEST_GPU = GpuInfo(
    index=0,
    name="NVIDIA GeForce RTX 4090",
    total_bytes=24 * GIB,
    free_bytes=22 * GIB,
    compute_capability=(8, 9),
    accelerator_id="rtx-4090",
    bandwidth_bytes_per_s=1008 * 10**9,
    bf16_tflops=165.0,
)
TEST_HOST = HostSnapshot(
    label="test box",
    gpus=(TEST_GPU,),
    ram_total_bytes=64 * GIB,
    ram_available_bytes=48 * GIB,
    cpu=CpuInfo("Test CPU", 8, 16, frozenset({"avx2"})),
    disk_free_bytes=500 * GIB,
    disk_path="/data",
)
#: A CPU-only box for hardware switching.
SMALL_HOST = HostSnapshot(
    label="cpu,ram=8GB",
    gpus=(),
    ram_total_bytes=8 * 10**9,
    ram_available_bytes=8 * 10**9,
    cpu=CpuInfo("Spec CPU", 8, 8),
    disk_free_bytes=10**12,
    source="spec",
)


class FakeResolver:
    """Named hardware from a dict; anything else is an error with a message, as the real resolver raises."""

    def __init__(self, hosts: dict[str, HostSnapshot] | None = None) -> None:
        self.hosts = {"cpu,ram=8GB": SMALL_HOST, **(hosts or {})}
        self.asked: list[str] = []

    def __call__(self, spec: str) -> HostSnapshot:
        self.asked.append(spec)
        if spec in self.hosts:
            return self.hosts[spec]
        raise ValueError(f"unknown hardware {spec!r}")


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
