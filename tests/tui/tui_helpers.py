"""Helpers for the TUI tests: the fixed test machines, a fake hardware resolver, and waiting for a condition
instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from launcher.machine.host import CpuInfo, GpuInfo, HostSnapshot
from launcher.run.session import Reply
from launcher.tui.screens.browse import BrowseScreen

#: How long wait_until waits by default: only a broken app ever needs it, so it is generous enough for a
#: machine busy with other work (a fast run never waits more than it must).
PATIENCE_S = 120.0


async def wait_until(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = PATIENCE_S) -> None:
    """Let the app run until `predicate()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            name = getattr(predicate, "__name__", predicate)
            raise AssertionError(f"still waiting after {timeout:.0f} s for {name}")
        await pilot.pause(0.01)


async def browse_ready(pilot: Pilot[Any]) -> BrowseScreen:
    """Wait for the Browse table to be planned and shown; return the screen."""
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, BrowseScreen) and bool(app.screen.rows))
    screen = app.screen
    assert isinstance(screen, BrowseScreen)
    await pilot.pause()
    return screen


def table_ids(screen: BrowseScreen) -> list[str]:
    """Model ids in the order the Browse table shows them."""
    return [r.card.id for r in screen.shown]


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


def finished_reply(
    text: str, tokens: int, seconds: float, first_s: float | None = None, rate: float | None = None
) -> Reply:
    """A finished reply as the session returns it (and as a saved chat gives it back)."""
    return Reply(
        text=text,
        prompt_tokens=0,
        new_tokens=tokens,
        time_to_first_token_s=first_s,
        tokens_per_s=rate,
        total_s=seconds,
        finish_reason="stop",
    )
