"""What a load and a generation really used: process RSS (peak included) on the CPU, torch's peak on each GPU.

The RSS figures come from /proc/self/status (VmRSS, and VmHWM for the peak, which writing "5" to
/proc/self/clear_refs resets, so each phase gets its own peak). Where /proc is missing the peak falls back to
getrusage's lifetime maximum. GPU peaks come from torch's caching allocator (`max_memory_reserved`, read only
when torch is already imported); NVML's reading of each GPU's used memory (which also holds the CUDA context)
comes through the probe's guarded NVML gateway. Also here: the planner's estimate for the same devices at the
tokens really used, so the two can be printed side by side.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from launcher.machine.host import HostSnapshot
from launcher.plan.measured import Measurement, machine_key
from launcher.plan.request import Plan
from launcher.run.errors import MemoryBudgetExceeded
from registry.memory import DeviceKind, activation_bytes, estimate_memory, runtime_bytes
from registry.schema import ModelCard

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(key: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def rss_bytes() -> int | None:
    """Resident memory of this process now."""
    return _status_bytes("VmRSS")


def peak_rss_bytes() -> int | None:
    """Peak resident memory since the last reset (or since the process started)."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def reset_peak_rss() -> bool:
    """Start a new peak (Linux 4.0+); False where the peak cannot be reset."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _torch_cuda() -> Any | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:  # a broken driver is the same as no GPU here
        return None


def gpu_peaks() -> dict[int, int]:
    """Peak bytes torch's allocator reserved on each GPU since the last reset."""
    cuda = _torch_cuda()
    if cuda is None:
        return {}
    return {i: int(cuda.max_memory_reserved(i)) for i in range(cuda.device_count())}


def nvml_used_bytes(nvml: Any = None, environ: Mapping[str, str] | None = None) -> dict[int, int]:
    """Used memory of each GPU as NVML reports it, by CUDA index (through the probe's guarded gateway).

    `nvml` is the NVML module (default: pynvml when installed); failures become an empty reading.
    """
    from launcher.machine.probe import load_nvml, probe_nvidia_gpus
    from registry.catalog import Catalog

    module = nvml if nvml is not None else load_nvml()
    if module is None:
        return {}
    gpus = probe_nvidia_gpus(module, Catalog((), ()), os.environ if environ is None else environ, [])
    return {g.index: g.used_bytes for g in gpus if g.used_bytes is not None}


def reset_gpu_peaks() -> None:
    """Start new GPU peaks."""
    cuda = _torch_cuda()
    if cuda is not None:
        for i in range(cuda.device_count()):
            cuda.reset_peak_memory_stats(i)


@dataclass(frozen=True)
class PhasePeak:
    """Peak memory of one phase (loading, or generating), per device, in bytes."""

    devices: Mapping[str, int] = field(default_factory=dict)
    """'cpu': peak process RSS; 'cuda:N': peak reserved by torch on GPU N."""

    @property
    def total(self) -> int:
        """All devices together."""
        return sum(self.devices.values())


class MemoryMeter:
    """Peaks per phase: call `phase()` to start one and `peak()` to read it. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.baseline_rss = rss_bytes() or 0
        """Resident memory when the meter was made (before the model)."""
        self._resettable = reset_peak_rss()
        reset_gpu_peaks()

    @property
    def resettable(self) -> bool:
        """Whether each phase has its own CPU peak (else peaks run from process start)."""
        return self._resettable

    def phase(self) -> None:
        """Start a new phase: peaks from here on."""
        with self._lock:
            self._resettable = reset_peak_rss()
            reset_gpu_peaks()

    def peak(self) -> PhasePeak:
        """The current phase's peaks so far."""
        with self._lock:
            devices: dict[str, int] = {}
            cpu = peak_rss_bytes()
            if cpu is not None:
                devices["cpu"] = cpu
            for index, value in gpu_peaks().items():
                devices[f"cuda:{index}"] = value
            return PhasePeak(devices)

    def growth(self) -> int:
        """Resident memory added since the meter was made."""
        return max((rss_bytes() or 0) - self.baseline_rss, 0)


class MemoryGuard:
    """Enforces a cap on process RSS growth while loading (raises MemoryBudgetExceeded, handled as out of memory).

    GPU caps are enforced by torch itself (`set_per_process_memory_fraction`, see load.py).
    """

    def __init__(self, meter: MemoryMeter, cpu_limit_bytes: int | None) -> None:
        self.meter = meter
        self.cpu_limit_bytes = cpu_limit_bytes

    def check(self) -> None:
        """Raise when the process has grown past its cap."""
        if self.cpu_limit_bytes is None:
            return
        grown = self.meter.growth()
        if grown > self.cpu_limit_bytes:
            raise MemoryBudgetExceeded("cpu", grown, self.cpu_limit_bytes)


# --------------------------------------------------------------------------- estimates to compare against


def estimated_devices(card: ModelCard, plan: Plan, tokens: int) -> dict[str, int]:
    """The plan's memory per device as a process would use it after `tokens` tokens of cache.

    The plan reserves its KV cache and activations for the full context; a measurement after a shorter
    conversation holds only `tokens` tokens, so both are scaled to that. Disk is not memory and is left out.
    GPU figures leave out the CUDA context, as torch's allocator peak (what is measured there) does.
    """
    tokens = max(min(tokens, plan.context), 1)
    dtype = plan.precision.dtype
    cpu_only = not plan.uses_gpu
    kind: DeviceKind = "cpu" if cpu_only else "cuda"
    planned_acts = activation_bytes(card, plan.context, plan.batch, dtype, kind)
    used_acts = activation_bytes(card, tokens, plan.batch, dtype, kind)
    result: dict[str, int] = {}
    for p in plan.placements:
        if p.device == "disk":
            continue
        kv = p.kv_cache_bytes * tokens // plan.context
        value = p.used_bytes - p.kv_cache_bytes + kv
        if p.device != "cpu" or cpu_only:
            value += used_acts - planned_acts
        if p.device.startswith("cuda:"):
            value -= runtime_bytes(
                "cuda"
            )  # the CUDA context: in NVML's reading, not in torch's allocator peak
        result[p.device] = max(value, 0)
    return result


def estimated_total(card: ModelCard, plan: Plan, tokens: int) -> int:
    """The registry's whole-process estimate at `tokens` tokens for a plan that runs on one device."""
    device: DeviceKind = "cpu" if not plan.uses_gpu else "cuda"
    return estimate_memory(card, plan.precision, max(tokens, 1), plan.batch, device=device).total


class Launched(Protocol):
    """What a loaded model (transformers' or llama.cpp's) offers for its measurement."""

    @property
    def card(self) -> ModelCard: ...
    @property
    def plan(self) -> Plan: ...
    @property
    def host(self) -> HostSnapshot: ...
    @property
    def load_seconds(self) -> float: ...
    @property
    def load_peak(self) -> PhasePeak: ...


def launch_measurement(
    loaded: Launched,
    tokens_used: int,
    measured: Mapping[str, int],
    estimated: Mapping[str, int],
    extra_devices: Mapping[str, int],
    time_to_first_token_s: float | None,
    tokens_per_s: float | None,
    estimated_tokens_per_s: float | None = None,
) -> Measurement:
    """The Measurement of a launch: `measured` beside `estimated` on the same devices, and in `devices` the
    measured figures, the load's peak per device ('….load_peak') and the runtime's `extra_devices`."""
    devices = dict(measured)
    devices.update({f"{k}.load_peak": v for k, v in loaded.load_peak.devices.items()})
    devices.update(extra_devices)
    return Measurement(
        model_id=loaded.card.id,
        precision=loaded.plan.precision.label,
        strategy=loaded.plan.strategy,
        context=loaded.plan.context,
        tokens_used=tokens_used,
        machine_key=machine_key(loaded.host),
        host_label=loaded.host.label,
        peak_bytes=sum(measured.values()),
        estimated_bytes=sum(v for k, v in estimated.items() if k in measured),
        devices=devices,
        load_seconds=loaded.load_seconds,
        time_to_first_token_s=time_to_first_token_s,
        tokens_per_s=tokens_per_s,
        estimated_tokens_per_s=estimated_tokens_per_s,
    )
