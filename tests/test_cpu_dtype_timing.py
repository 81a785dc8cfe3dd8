"""`berth probe --measure` times a batch-1 linear layer per dtype and remembers it; the planner then runs a CPU
model in the dtype that was fastest here, not the one the CPU's flags suggest (issue 11)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from launcher.machine import probe as probe_module
from launcher.machine.bandwidth import cached_linear_seconds, save_bandwidth
from launcher.machine.dtype_timing import measure_linear
from launcher.machine.host import CpuInfo, HostSnapshot
from launcher.machine.probe import probe_host
from launcher.plan.ladder import plan_or_raise
from registry.catalog import Catalog

GB = 10**9


def test_measure_linear_times_each_dtype_on_this_cpu():
    timings = measure_linear(calls=3, budget_s=2.0)
    assert {"float32", "bfloat16"} <= set(timings)
    assert all(0 < s < 5 for s in timings.values())


def test_probe_measure_remembers_the_timings(catalog: Catalog, tmp_path: Path):
    cache = tmp_path / "bw.json"
    measured = probe_host(catalog, measure=True, bandwidth_cache=cache).cpu
    assert dict(measured.linear_seconds) == cached_linear_seconds(measured.model, cache)
    later = probe_host(catalog, bandwidth_cache=cache).cpu
    assert later.linear_seconds == measured.linear_seconds


def test_a_plain_probe_reads_the_timings_without_running_torch(
    catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("a plain probe must not time anything")

    monkeypatch.setattr(probe_module, "measure_linear", refuse)
    cache = tmp_path / "bw.json"
    model = probe_module.probe_cpu([], bandwidth_cache=cache).model
    save_bandwidth(model, 9 * GB, cache, linear_seconds={"float32": 3e-3, "bfloat16": 1.8e-3})
    cpu = probe_host(catalog, bandwidth_cache=cache).cpu
    assert dict(cpu.linear_seconds) == {"float32": 3e-3, "bfloat16": 1.8e-3}


def test_a_damaged_timing_entry_is_ignored(tmp_path: Path):
    cache = tmp_path / "bw.json"
    cache.write_text(
        '{"cpus": {"X": {"bytes_per_s": 5, "linear_seconds": {"float32": "fast", "bfloat16": -1}}}}'
    )
    assert cached_linear_seconds("X", cache) == {}


def _host(linear: tuple[tuple[str, float], ...], features: frozenset[str] = frozenset()) -> HostSnapshot:
    return HostSnapshot(
        label="test machine",
        gpus=(),
        ram_total_bytes=32 * GB,
        ram_available_bytes=32 * GB,
        disk_free_bytes=100 * GB,
        cpu=CpuInfo(model="test cpu", features=features, linear_seconds=linear, bandwidth_measured=True),
    )


def test_the_planner_picks_the_dtype_measured_fastest(catalog: Catalog):
    card = catalog.get("HuggingFaceTB/SmolLM2-135M-Instruct")
    # Issue 11's AVX2-only EPYC: bf16 beats fp32 although the CPU has no native bf16.
    avx2 = frozenset({"avx2"})
    fast_bf16 = _host((("bfloat16", 1.77e-3), ("float16", 1.40e-3), ("float32", 2.87e-3)), avx2)
    plan = plan_or_raise(card, fast_bf16)
    assert plan.precision.dtype == "bfloat16"
    # A CPU where bf16 is emulated slowly: fp32 wins, native flags or not.
    slow_bf16 = _host((("bfloat16", 9.0e-3), ("float32", 2.9e-3)), frozenset({"avx512_bf16"}))
    assert plan_or_raise(card, slow_bf16).precision.dtype == "float32"
    # The measured rates set the estimate: the faster bf16 is, the faster the plan.
    faster = dataclasses.replace(
        fast_bf16,
        cpu=dataclasses.replace(fast_bf16.cpu, linear_seconds=(("bfloat16", 1.0e-3), ("float32", 2.87e-3))),
    )
    assert plan_or_raise(card, faster).speed.decode_tokens_per_s > plan.speed.decode_tokens_per_s


def test_a_named_spec_keeps_ram_for_its_operating_system(catalog: Catalog):
    from launcher.machine.hwspec import resolve_host

    small = resolve_host("cpu,ram=4GB", catalog, {})
    desktop = resolve_host("cpu,ram=32GB", catalog, {})
    server = resolve_host("cpu,ram=1024GB", catalog, {})
    assert small.ram_total_bytes - small.ram_available_bytes == 2**30  # at least 1 GiB
    assert desktop.ram_total_bytes - desktop.ram_available_bytes == int(32 * GB * 0.08)
    assert server.ram_total_bytes - server.ram_available_bytes == 8 * 2**30  # at most 8 GiB
    # What the plan puts in RAM stays within what the OS leaves.
    card = catalog.get("HuggingFaceTB/SmolLM2-1.7B-Instruct")
    tight = resolve_host("cpu,ram=5GB", catalog, {})
    plan = plan_or_raise(card, tight)
    assert sum(p.used_bytes for p in plan.placements if p.device == "cpu") <= tight.ram_available_bytes
