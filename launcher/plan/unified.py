"""Unified memory (Apple silicon): the GPU's share of the Mac's memory, how to raise it, and what runs only as a
GGUF quant through llama.cpp with Metal. Pure: imports launcher.machine, launcher.plan.placement and registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from launcher.display import gib
from launcher.machine.apple import os_reserve_bytes, suggested_wired_limit_mb
from launcher.machine.host import GpuInfo, HostSnapshot
from launcher.plan.metal_speed import metal_decode_tokens_per_s
from launcher.plan.placement import Attempt
from registry.params import count_active_params
from registry.schema import ModelCard

#: Bits per weight of llama.cpp's quants as llama.cpp's quantize tool lists them (Llama-3-8B: Q4_K_M 4.89 bpw,
#: Q8_0 8.50 bpw; examples/quantize/README.md of ggml-org/llama.cpp). Q4_K_M is the usual choice on a Mac.
GGUF_BITS_PER_WEIGHT = {"Q4_K_M": 4.89, "Q8_0": 8.50}
#: KV cache, Metal buffers and compute graph on top of the weights, as a share of them (a rough margin).
GGUF_OVERHEAD = 0.10


@dataclass(frozen=True)
class GgufFit:
    """A llama.cpp quant whose weights fit the GPU's share of unified memory."""

    quant: str
    weight_bytes: int
    gpu_limit_bytes: int
    tokens_per_s: float | None = None
    """llama.cpp's decode speed there (launcher/plan/metal_speed.py), when the chip's bandwidth is known."""

    def describe(self) -> str:
        """'Q4_K_M GGUF (≈ 40.1 GiB, about 12 tokens/s) through llama.cpp with Metal'."""
        speed = f", about {self.tokens_per_s:.2g} tokens/s" if self.tokens_per_s else ""
        return f"{self.quant} GGUF (≈ {gib(self.weight_bytes)}{speed}) through llama.cpp with Metal"


def unified_gpu(host: HostSnapshot) -> GpuInfo | None:
    """The host's Apple GPU, when its memory is unified with the system's."""
    return next((g for g in host.node_gpus(0) if g.unified_memory), None)


def gguf_weight_bytes(params: int, quant: str) -> int:
    """Bytes of a model's weights as a llama.cpp GGUF quant."""
    return int(params * GGUF_BITS_PER_WEIGHT[quant] / 8)


def gguf_fit(card: ModelCard, host: HostSnapshot) -> GgufFit | None:
    """The least-quantized llama.cpp quant (Q8_0, then Q4_K_M) that fits the GPU's share of a Mac's memory."""
    gpu = unified_gpu(host)
    if gpu is None:
        return None
    for quant in ("Q8_0", "Q4_K_M"):
        weights = gguf_weight_bytes(card.params, quant)
        if weights * (1 + GGUF_OVERHEAD) <= gpu.usable_bytes:
            bandwidth = gpu.bandwidth_bytes_per_s
            active = weights * count_active_params(card) // max(card.params, 1)
            speed = (
                metal_decode_tokens_per_s(active, card.architecture.num_layers, bandwidth)
                if bandwidth
                else None
            )
            return GgufFit(quant, weights, gpu.total_bytes, speed)
    return None


def mps_attempts(attempts: Sequence[Attempt]) -> list[Attempt]:
    """The planner's attempts on an Apple GPU alone (what raising the wired limit would help)."""
    return [
        a for a in attempts if a.rung.gpus and all(g.unified_memory for g in a.rung.gpus) and not a.rung.cpu
    ]


def wired_limit_note(host: HostSnapshot) -> str | None:
    """How much of the Mac's memory the GPU may use, and the sysctl that raises it; None off Apple silicon."""
    gpu = unified_gpu(host)
    if gpu is None:
        return None
    ram = host.ram_total_bytes
    raised = suggested_wired_limit_mb(ram)
    if raised * 2**20 <= gpu.total_bytes:
        return f"unified memory: the GPU may use {gib(gpu.total_bytes)} of {gib(ram)}"
    return (
        f"unified memory: macOS lets the GPU use {gib(gpu.total_bytes)} of {gib(ram)}; "
        f"`sudo sysctl iogpu.wired_limit_mb={raised}` raises that to {gib(raised * 2**20)} "
        f"(leaving {gib(os_reserve_bytes(ram))} to macOS) until the next reboot"
    )


def raised_limit_fits(needed_bytes: int, available_bytes: int, host: HostSnapshot) -> bool:
    """Whether a GPU rung that needs `needed_bytes` where `available_bytes` are usable would fit once the wired
    limit is raised as wired_limit_note says (the usable room grows by what the limit grows)."""
    gpu = unified_gpu(host)
    if gpu is None:
        return False
    growth = suggested_wired_limit_mb(host.ram_total_bytes) * 2**20 - gpu.total_bytes
    return available_bytes < needed_bytes <= available_bytes + growth
