"""HostSnapshot: what a machine (or a named spec standing in for one) has, total and free, in int bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Vendor = Literal["nvidia", "amd", "apple"]

#: Sustained CPU memory bandwidth when nothing better is known (two-channel DDR4/DDR5 desktop, bytes/s).
DEFAULT_CPU_BANDWIDTH = 40 * 10**9
#: Sustained read speed of the disk that holds offloaded weights, when not measured (NVMe SSD, bytes/s).
DEFAULT_DISK_BANDWIDTH = 2 * 10**9
#: Host-to-GPU copy bandwidth for CPU-offloaded layers (PCIe 4.0 x16, achievable, bytes/s).
DEFAULT_PCIE_BANDWIDTH = 25 * 10**9
#: Dense bf16/fp32 matrix throughput of a CPU when nothing better is known (FLOP/s, a few cores with AVX2).
DEFAULT_CPU_FLOPS = 200 * 10**9


@dataclass(frozen=True)
class GpuInfo:
    """One GPU: memory in bytes, capability, and the catalog's figures for its kind."""

    index: int
    """CUDA device index on a probed machine; a spec's indexes count on over its nodes (8-15 on node 1)."""
    name: str
    total_bytes: int
    free_bytes: int | None
    """Free memory as the driver reports it; None when the reading failed."""
    used_bytes: int | None = None
    compute_capability: tuple[int, int] | None = None
    vendor: Vendor = "nvidia"
    accelerator_id: str | None = None
    """The catalog accelerator this GPU matched, if any."""
    bandwidth_bytes_per_s: int | None = None
    bf16_tflops: float | None = None
    node: int = 0
    """Which machine of a multi-node spec the GPU belongs to."""
    nvlink_peers: tuple[int, ...] = ()
    """Indexes of GPUs this one reaches over NVLink (NVML or the spec)."""
    pcie_bandwidth_bytes_per_s: int = DEFAULT_PCIE_BANDWIDTH
    unified_memory: bool = False
    """Apple silicon: GPU memory is the system RAM."""

    @property
    def usable_bytes(self) -> int:
        """Free memory when known, else the total."""
        return self.free_bytes if self.free_bytes is not None else self.total_bytes

    @property
    def supports_bf16(self) -> bool:
        """bf16 needs compute capability 8.0 (Ampere) or newer on NVIDIA; AMD CDNA2+ and RDNA3 have it; on Apple
        silicon the capability holds the Metal GPU family, and bf16 needs Apple8 (M2) or newer."""
        if self.vendor == "amd":
            return True
        if self.vendor == "apple" and self.compute_capability is None:
            return True
        return self.compute_capability is not None and self.compute_capability >= (8, 0)


@dataclass(frozen=True)
class CpuInfo:
    """The CPU: model name, cores, and the features that decide fp32 vs bf16."""

    model: str = "unknown CPU"
    physical_cores: int = 1
    logical_cores: int = 1
    features: frozenset[str] = frozenset()
    """Lowercase flags from /proc/cpuinfo (avx2, avx512f, avx512_bf16, amx_bf16 …)."""
    memory_bandwidth_bytes_per_s: int = DEFAULT_CPU_BANDWIDTH
    flops: int = DEFAULT_CPU_FLOPS
    bandwidth_measured: bool = False
    linear_seconds: tuple[tuple[str, float], ...] = ()
    """Measured seconds of one batch-1 2048→8192 linear layer per dtype ('float32', 'bfloat16', 'float16'),
    from `berth probe --measure`; empty when never measured."""

    @property
    def fast_bf16(self) -> bool:
        """bf16 matmuls run natively (AVX512-BF16 or AMX); otherwise fp32 is the faster CPU dtype."""
        return bool({"avx512_bf16", "amx_bf16"} & self.features)


@dataclass(frozen=True)
class HostSnapshot:
    """A machine's memory, total and free, at one moment (or a named spec's nominal figures)."""

    label: str
    """'this machine' or the spec text."""
    gpus: tuple[GpuInfo, ...]
    ram_total_bytes: int
    """RAM of one machine (of the smallest node, for a multi-node spec: offload stays on its own node)."""
    ram_available_bytes: int
    ram_capped: bool = False
    """ram_available_bytes is a cap this process was given (--max-memory cpu=…), not what the OS has free:
    the planner keeps no headroom for other programs inside it."""
    cpu: CpuInfo = field(default_factory=CpuInfo)
    swap_free_bytes: int = 0
    disk_free_bytes: int | None = None
    """Free space where offloaded weights and the Hugging Face cache go."""
    disk_path: str | None = None
    disk_bandwidth_bytes_per_s: int = DEFAULT_DISK_BANDWIDTH
    nodes: int = 1
    source: Literal["probe", "spec"] = "probe"
    warnings: tuple[str, ...] = ()
    """Readings that failed, in words."""

    @property
    def gpu_count(self) -> int:
        """Number of GPUs over all nodes."""
        return len(self.gpus)

    def node_gpus(self, node: int = 0) -> tuple[GpuInfo, ...]:
        """GPUs of one machine."""
        return tuple(g for g in self.gpus if g.node == node)
