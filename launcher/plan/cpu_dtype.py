"""Which dtype runs fastest on a CPU, and how fast its weights stream (pure; imports launcher.machine, registry).

With `berth probe --measure` the CPU's batch-1 linear layer was timed in each dtype: the dtype whose weights
multiply fastest per parameter wins, whatever the CPU's flags say (torch converts bf16/fp16 in its kernels, and
half the bytes to read can outweigh the conversion). Without a timing (a named spec, or a machine never
measured) the documented rule: bf16 streams at full speed with AVX512-BF16/AMX, at CPU_BF16_AVX2_FACTOR of
fp32's bytes/s on an x86 CPU with AVX2 (measured on this repository's AVX2-only EPYC, issue 11), and at half
speed on a CPU Berth knows nothing about; the faster per parameter wins, fp32 on a tie."""

from __future__ import annotations

from collections.abc import Sequence

from launcher.machine.host import CpuInfo
from registry.memory import DTYPE_BYTES
from registry.schema import Dtype

#: bf16/fp16 bytes/s against fp32's on an AVX2 CPU without native bf16: 2.87 ms fp32 vs 1.77 ms bf16 for the
#: linear above (torch 2.13, issue 11) = (2 / 1.77) / (4 / 2.87) = 0.81.
CPU_BF16_AVX2_FACTOR = 0.8
#: The same for a CPU whose features are unknown (a named spec): PyTorch's fallback converts to fp32 first.
CPU_BF16_UNKNOWN_FACTOR = 0.5
#: dtypes the planner considers on a CPU, in the order used when speeds tie.
CPU_DTYPES: tuple[Dtype, ...] = ("float32", "bfloat16")


def linear_seconds(cpu: CpuInfo, dtype: str) -> float | None:
    """The measured time of the probe's linear layer in this dtype, if measured."""
    return next((s for d, s in cpu.linear_seconds if d == dtype and s > 0), None)


def cpu_dtype_slowdown(cpu: CpuInfo, dtype: str) -> float:
    """This dtype's weight bytes/s against fp32's on this CPU (1.0 for fp32): measured when timed, else the
    documented rule."""
    if dtype == "float32":
        return 1.0
    own, fp32 = linear_seconds(cpu, dtype), linear_seconds(cpu, "float32")
    if own and fp32:
        return (DTYPE_BYTES[dtype] / own) / (DTYPE_BYTES["float32"] / fp32)
    if cpu.fast_bf16:
        return 1.0
    return CPU_BF16_AVX2_FACTOR if "avx2" in cpu.features else CPU_BF16_UNKNOWN_FACTOR


def seconds_per_parameter(cpu: CpuInfo, dtype: str) -> float:
    """Relative time to stream one weight in this dtype (fp32 = 4 bytes at full rate)."""
    return DTYPE_BYTES[dtype] / cpu_dtype_slowdown(cpu, dtype)


def cpu_dtype_order(cpu: CpuInfo, candidates: Sequence[Dtype] = CPU_DTYPES) -> list[Dtype]:
    """Candidates fastest first (the planner takes the first that fits); ties keep the given order."""
    return sorted(candidates, key=lambda d: seconds_per_parameter(cpu, d))


def measured(cpu: CpuInfo) -> bool:
    """Whether this CPU's dtypes were timed (`berth probe --measure`)."""
    return bool(cpu.linear_seconds)


def cpu_dtype_basis(cpu: CpuInfo) -> str:
    """In words, what the CPU dtype order rests on."""
    if measured(cpu):
        times = ", ".join(f"{d} {s * 1000:.2f} ms" for d, s in cpu.linear_seconds)
        return f"measured linear layer: {times}"
    if cpu.fast_bf16:
        return "native bf16 (AVX512-BF16/AMX)"
    return "not measured; `berth probe --measure` times each dtype"
