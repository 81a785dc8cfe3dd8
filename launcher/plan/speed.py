"""Roofline speed estimates (pure): decode is bandwidth-bound, prefill compute-bound, offload tiers add copies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from registry.memory import Quant

StageKind = Literal["gpu", "cpu", "pcie", "disk"]

#: Share of peak GPU memory bandwidth batch-1 decode reaches with transformers (public figures: 0.5–0.8).
GPU_DECODE_EFFICIENCY = 0.6
#: Share of the CPU's sustained memory bandwidth decode reaches (PyTorch GEMV on a few cores).
CPU_DECODE_EFFICIENCY = 0.5
#: Share of the host-to-GPU link accelerate's per-layer weight copies reach for CPU-offloaded layers.
PCIE_EFFICIENCY = 0.7
#: Share of the disk's sequential read speed reached when streaming disk-offloaded layers.
DISK_EFFICIENCY = 0.7
#: bitsandbytes kernels at batch 1 against the bandwidth bound of their smaller weights: LLM.int8's outlier
#: decomposition makes it several times slower than fp16; nf4 dequantizes on the fly.
QUANT_DECODE_FACTOR: dict[Quant | None, float] = {None: 1.0, "int8": 0.25, "nf4": 0.55, "fp4": 0.55}
#: Share of peak tensor throughput a transformers prefill reaches (model FLOPs utilisation).
GPU_PREFILL_MFU = 0.35
#: Share of the CPU's peak FLOP/s a prefill reaches.
CPU_PREFILL_EFFICIENCY = 0.4
#: bf16 matrix products on a CPU without AVX512-BF16/AMX convert to fp32 on the fly.
CPU_BF16_EMULATION_FACTOR = 0.5
#: Prompt length behind the time-to-first-token figure when the user gives none.
DEFAULT_PROMPT_TOKENS = 512
#: Time to start Python, import torch/transformers and build the model skeleton before reading weights.
LOAD_FIXED_SECONDS = 4.0

BASIS_ESTIMATED = "estimated: bandwidth-bound decode, compute-bound prefill, ±30%"

_DECODE_EFFICIENCY: dict[StageKind, float] = {
    "gpu": GPU_DECODE_EFFICIENCY,
    "cpu": CPU_DECODE_EFFICIENCY,
    "pcie": PCIE_EFFICIENCY,
    "disk": DISK_EFFICIENCY,
}


@dataclass(frozen=True)
class Stage:
    """One part of a forward pass: a device computing its blocks, or a link that copies offloaded weights."""

    kind: StageKind
    bytes_per_token: int
    """Bytes this stage reads (or copies) for every generated token."""
    bandwidth_bytes_per_s: int
    flops: float = 0.0
    """Peak FLOP/s of a compute stage (0 for links)."""
    active_params: int = 0
    """Parameters this stage multiplies per token (prefill cost)."""
    prefill_bytes: int = 0
    """Bytes a link copies once per prefill (offloaded weights are copied per forward pass)."""
    slowdown: float = 1.0
    """Extra factor on this stage's efficiency (bf16 emulated on a CPU without native bf16)."""


@dataclass(frozen=True)
class SpeedEstimate:
    """Decode speed, time to first token and load time, with how they were obtained."""

    decode_tokens_per_s: float
    time_to_first_token_s: float
    load_seconds: float
    bottleneck: str
    basis: str = BASIS_ESTIMATED
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS


def _decode_seconds(stage: Stage, quant: Quant | None, batch: int) -> float:
    efficiency = _DECODE_EFFICIENCY[stage.kind] * stage.slowdown
    if stage.kind == "gpu":
        efficiency *= QUANT_DECODE_FACTOR[quant]
    return stage.bytes_per_token / (stage.bandwidth_bytes_per_s * efficiency)


def _prefill_seconds(stage: Stage, prompt_tokens: int, batch: int) -> float:
    if stage.kind in ("pcie", "disk"):
        return stage.prefill_bytes / (stage.bandwidth_bytes_per_s * _DECODE_EFFICIENCY[stage.kind])
    mfu = GPU_PREFILL_MFU if stage.kind == "gpu" else CPU_PREFILL_EFFICIENCY
    compute = (
        2 * stage.active_params * prompt_tokens * batch / (stage.flops * mfu * stage.slowdown)
        if stage.flops
        else 0.0
    )
    memory = stage.bytes_per_token / (stage.bandwidth_bytes_per_s * _DECODE_EFFICIENCY[stage.kind])
    return max(compute, memory)


def estimate_speed(
    stages: Sequence[Stage],
    quant: Quant | None,
    file_bytes: int,
    disk_bandwidth_bytes_per_s: int,
    batch: int = 1,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
) -> SpeedEstimate:
    """Stages run one after another per token (layer split, not tensor parallel), so their times add up."""
    decode = {s: _decode_seconds(s, quant, batch) for s in stages if s.bytes_per_token}
    per_token = sum(decode.values()) or 1e-9
    slowest = max(decode, key=lambda s: decode[s]) if decode else None
    ttft = sum(_prefill_seconds(s, prompt_tokens, batch) for s in stages)
    load = LOAD_FIXED_SECONDS + file_bytes / (disk_bandwidth_bytes_per_s * DISK_EFFICIENCY)
    names = {
        "gpu": "GPU memory bandwidth",
        "cpu": "CPU memory bandwidth",
        "pcie": "PCIe copies",
        "disk": "disk reads",
    }
    return SpeedEstimate(
        decode_tokens_per_s=batch / per_token,
        time_to_first_token_s=ttft,
        load_seconds=load,
        bottleneck=names[slowest.kind] if slowest else "none",
        prompt_tokens=prompt_tokens,
    )
