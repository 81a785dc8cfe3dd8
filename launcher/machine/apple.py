"""Apple silicon: read the chip from sysctl and system_profiler output; unified memory and the GPU's share of it.

Imports launcher.machine.host and registry only. The tools are run through a `Runner` (argv -> stdout, or None
when the command fails), so tests hand in recorded outputs; everything else here is parsing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from launcher.machine.host import GpuInfo
from registry.catalog import Catalog

#: Runs a command and returns its standard output, or None when it cannot run or fails.
Runner = Callable[[Sequence[str]], "str | None"]

SYSCTL_KEYS = (
    "machdep.cpu.brand_string",
    "hw.memsize",
    "hw.perflevel0.physicalcpu",
    "hw.perflevel1.physicalcpu",
    "iogpu.wired_limit_mb",
)
SYSCTL_COMMAND = ("sysctl", *SYSCTL_KEYS)
DISPLAYS_COMMAND = ("system_profiler", "SPDisplaysDataType", "-json")

#: macOS lets the GPU wire at most this share of RAM by default (Metal's recommendedMaxWorkingSetSize):
#: about two thirds on machines with up to 36 GB, three quarters above. `sudo sysctl iogpu.wired_limit_mb=N`
#: raises it (until reboot).
SMALL_MAC_BYTES = 36 * 2**30
SMALL_MAC_SHARE = (2, 3)
LARGE_MAC_SHARE = (3, 4)
#: What to leave macOS itself when suggesting a raised wired limit: 8 GiB, or a quarter of a smaller Mac's memory.
OS_RESERVE_BYTES = 8 * 2**30
OS_RESERVE_SHARE = 4


@dataclass(frozen=True)
class AppleChip:
    """What sysctl and system_profiler say about an Apple silicon Mac."""

    brand: str
    """machdep.cpu.brand_string, e.g. 'Apple M2 Ultra'."""
    memory_bytes: int
    """hw.memsize: all of the unified memory."""
    performance_cores: int | None = None
    efficiency_cores: int | None = None
    gpu_cores: int | None = None
    wired_limit_mb: int | None = None
    """iogpu.wired_limit_mb; 0 or None means the macOS default."""

    @property
    def gpu_limit_bytes(self) -> int:
        """How much of the memory the GPU may use."""
        return working_set_limit(self.memory_bytes, self.wired_limit_mb)


def working_set_limit(memory_bytes: int, wired_limit_mb: int | None = None) -> int:
    """The GPU's share of unified memory: the iogpu.wired_limit_mb setting when raised, else the default."""
    if wired_limit_mb:
        return min(memory_bytes, wired_limit_mb * 2**20)
    num, den = SMALL_MAC_SHARE if memory_bytes <= SMALL_MAC_BYTES else LARGE_MAC_SHARE
    return memory_bytes * num // den


def os_reserve_bytes(memory_bytes: int) -> int:
    """Memory to leave macOS when the GPU's share is raised."""
    return min(OS_RESERVE_BYTES, memory_bytes // OS_RESERVE_SHARE)


def suggested_wired_limit_mb(memory_bytes: int) -> int:
    """A wired limit that leaves os_reserve_bytes to macOS (what `sudo sysctl iogpu.wired_limit_mb=` could be)."""
    return (memory_bytes - os_reserve_bytes(memory_bytes)) // 2**20


def parse_sysctl(text: str) -> dict[str, str]:
    """`sysctl key ...` output ('key: value' lines) as a mapping; lines that are not 'key: value' are skipped."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and " " not in key.strip():
            values[key.strip()] = value.strip()
    return values


def parse_displays(text: str) -> tuple[str | None, int | None]:
    """The Apple GPU's name and core count from `system_profiler SPDisplaysDataType -json`; (None, None) when the
    output names no Apple GPU or is not that JSON."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None, None
    entries = data.get("SPDisplaysDataType") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        name = entry.get("sppci_model") or entry.get("_name")
        apple = "apple" in str(entry.get("spdisplays_vendor", "")).lower() or str(name).startswith("Apple")
        if apple and isinstance(name, str):
            return name.strip(), _count(entry.get("sppci_cores"))
    return None, None


def chip_from_outputs(sysctl_text: str, displays_text: str | None) -> AppleChip | None:
    """The chip from the two tools' outputs; None when sysctl names no Apple chip or no memory size."""
    values = parse_sysctl(sysctl_text)
    brand = values.get("machdep.cpu.brand_string", "")
    memory = _count(values.get("hw.memsize"))
    if not brand.startswith("Apple") or not memory:
        return None
    _, gpu_cores = parse_displays(displays_text) if displays_text else (None, None)
    return AppleChip(
        brand=brand,
        memory_bytes=memory,
        performance_cores=_count(values.get("hw.perflevel0.physicalcpu")),
        efficiency_cores=_count(values.get("hw.perflevel1.physicalcpu")),
        gpu_cores=gpu_cores,
        wired_limit_mb=_count(values.get("iogpu.wired_limit_mb")),
    )


def read_chip(run: Runner, warnings: list[str]) -> AppleChip | None:
    """Run sysctl and system_profiler and read the chip; None (with a warning) when sysctl does not answer."""
    sysctl = run(SYSCTL_COMMAND)
    if sysctl is None:
        warnings.append("Apple silicon not probed: `sysctl` did not answer")
        return None
    displays = run(DISPLAYS_COMMAND)
    chip = chip_from_outputs(sysctl, displays)
    if chip is not None and chip.gpu_cores is None:
        warnings.append("GPU core count unknown: `system_profiler SPDisplaysDataType -json` did not say")
    return chip


def apple_gpu(chip: AppleChip, catalog: Catalog, ram_available: int) -> GpuInfo:
    """The chip's GPU as a GpuInfo: unified memory, its total the working-set limit, free what RAM has free (up
    to that limit), figures from the catalog entry the brand names."""
    acc = catalog.match_gpu_name(chip.brand)
    total = chip.gpu_limit_bytes
    cores = f" ({chip.gpu_cores}-core GPU)" if chip.gpu_cores else ""
    capability = acc.compute_capability.partition(".") if acc else ("", "", "")
    return GpuInfo(
        index=0,
        name=f"{chip.brand}{cores}",
        total_bytes=total,
        free_bytes=max(0, min(total, ram_available)),
        compute_capability=(int(capability[0]), int(capability[2])) if acc else None,
        vendor="apple",
        accelerator_id=acc.id if acc else None,
        bandwidth_bytes_per_s=acc.bandwidth_bytes_per_s if acc else None,
        bf16_tflops=acc.bf16_tflops if acc else None,
        unified_memory=True,
    )


def cpu_label(chip: AppleChip) -> str:
    """The CPU as probes show it: 'Apple M2 Ultra (16 performance + 8 efficiency cores)'."""
    if chip.performance_cores is None or chip.efficiency_cores is None:
        return chip.brand
    return f"{chip.brand} ({chip.performance_cores} performance + {chip.efficiency_cores} efficiency cores)"


def _count(value: object) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None
