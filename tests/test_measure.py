"""Measured memory: per-phase RSS peaks, the load guard, NVML readings through the probe's gateway, and the
estimate a measurement is compared with."""

from __future__ import annotations

import gc

import pytest
from conftest import cpu_host
from hardware_fakes import FakeDevice, FakeNvml

from launcher.plan.advice import named_host
from launcher.plan.ladder import plan_or_raise
from launcher.plan.request import PlanRequest
from launcher.run.errors import MemoryBudgetExceeded
from launcher.run.measure import (
    MemoryGuard,
    MemoryMeter,
    estimated_devices,
    nvml_used_bytes,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
)
from registry.memory import Precision, estimate_memory

GB = 10**9


def test_phase_peaks_and_growth():
    # Earlier tests' large objects freed by a garbage collection during this test would lower RSS by more
    # than the block adds (seen once in a full run): collect them before the baseline.
    gc.collect()
    meter = MemoryMeter()
    assert meter.baseline_rss > 0
    block = bytearray(128 * 2**20)  # above glibc's largest mmap threshold: fresh pages
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    assert meter.growth() >= 60 * 2**20
    peak = meter.peak().devices["cpu"]
    del block
    if reset_peak_rss():
        meter.phase()
        assert meter.peak().devices["cpu"] < peak
    assert peak_rss_bytes() is not None and rss_bytes() is not None


def test_guard_raises_over_its_cap():
    meter = MemoryMeter()
    MemoryGuard(meter, None).check()
    MemoryGuard(meter, 10**12).check()
    block = bytearray(128 * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    with pytest.raises(MemoryBudgetExceeded) as caught:
        MemoryGuard(meter, 2**20).check()
    assert caught.value.device == "cpu" and caught.value.used_bytes > caught.value.limit_bytes
    del block


def test_nvml_readings_by_cuda_index():
    nvml = FakeNvml(
        [
            FakeDevice("NVIDIA H100 80GB HBM3", 80 * GB, 60 * GB),
            FakeDevice("NVIDIA H100 80GB HBM3", 80 * GB, 79 * GB),
        ]
    )
    assert nvml_used_bytes(nvml, {}) == {0: 20 * GB, 1: 1 * GB}
    assert nvml_used_bytes(nvml, {"CUDA_VISIBLE_DEVICES": "1"}) == {0: 1 * GB}
    broken = FakeNvml([], fail={"nvmlInit": RuntimeError("no driver")})
    assert nvml_used_bytes(broken, {}) == {}


def test_estimate_at_the_tokens_used(catalog):
    card = catalog.get("openai-community/gpt2")
    plan = plan_or_raise(card, cpu_host(), PlanRequest(context=1024, dtype="float32"))
    full = estimated_devices(card, plan, plan.context)["cpu"]
    # At the planned context the per-device figure is the registry's whole-process estimate.
    assert full == estimate_memory(card, Precision("float32"), 1024, device="cpu").total
    short = estimated_devices(card, plan, 100)["cpu"]
    assert short < full
    direct = estimate_memory(card, Precision("float32"), 100, device="cpu").total
    assert abs(short - direct) < 0.005 * direct  # only the allocator slack on the unused cache differs
    gpu_plan = plan_or_raise(card, named_host(catalog.accelerator("rtx-4090"), 1))
    assert set(estimated_devices(card, gpu_plan, 50)) == {"cuda:0"}
