"""Roofline speed estimates (pure; imports registry only): decode is bandwidth-bound, prefill compute-bound,
offload tiers add copies. One model for the planner (transformers at batch 1) and the fleet (vLLM batched):
each engine's efficiencies are a named profile, the roofline functions are shared."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from registry.memory import Quant

StageKind = Literal["gpu", "cpu", "pcie", "disk"]


@dataclass(frozen=True)
class EngineEfficiency:
    """Shares of a GPU's peak one inference engine reaches: the roofline's efficiencies on a GPU."""

    engine: str
    gpu_decode: float
    """Share of peak GPU memory bandwidth a decode step reaches (tokens/s ≈ η · bandwidth / bytes read)."""
    gpu_prefill: float
    """Share of dense bf16 peak FLOP/s a prefill reaches (model FLOPs utilisation)."""


@dataclass(frozen=True)
class OffloadEngineEfficiency(EngineEfficiency):
    """An engine that also runs on the CPU and streams offloaded weights (transformers with accelerate)."""

    cpu_decode: float
    """Share of the CPU's sustained memory bandwidth decode reaches (PyTorch GEMV on a few cores)."""
    cpu_prefill: float
    """Share of the CPU's peak FLOP/s a prefill reaches."""
    cpu_bf16_emulation: float
    """Factor on CPU efficiency for bf16 on a CPU without AVX512-BF16/AMX (converted to fp32 on the fly)."""
    pcie: float
    """Share of the host-to-GPU link accelerate's per-layer weight copies reach for CPU-offloaded layers."""
    disk: float
    """Share of the disk's sequential read speed reached when streaming disk-offloaded layers (and loading)."""
    quant_decode: Mapping[Quant | None, float]
    """bitsandbytes kernels at batch 1 against the bandwidth bound of their smaller weights: LLM.int8's outlier
    decomposition makes it several times slower than fp16; nf4 dequantizes on the fly."""


#: transformers (accelerate's device map) generating one sequence at a time: what `berth plan` assumes.
#: Batch-1 decode reaches 0.5–0.8 of peak GPU bandwidth in public figures; prefill about 0.35 MFU.
TRANSFORMERS_BATCH1 = OffloadEngineEfficiency(
    engine="transformers, batch 1",
    gpu_decode=0.6,
    gpu_prefill=0.35,
    cpu_decode=0.5,
    cpu_prefill=0.4,
    cpu_bf16_emulation=0.5,
    pcie=0.7,
    disk=0.7,
    quant_decode={None: 1.0, "int8": 0.25, "nf4": 0.55, "fp4": 0.55},
)
#: vLLM with continuous batching: what `berth fleet` assumes. Measured decode on H100/A100 lands between 0.5
#: and 0.8 of peak (see reference/accelerators.md); both figures are starting points to replace with
#: measurements.
VLLM_BATCHED = EngineEfficiency(engine="vLLM, continuous batching", gpu_decode=0.6, gpu_prefill=0.5)

#: Prompt length behind the time-to-first-token figure when the user gives none.
DEFAULT_PROMPT_TOKENS = 512
#: Time to start Python, import torch/transformers and build the model skeleton before reading weights.
LOAD_FIXED_SECONDS = 4.0

BASIS_ESTIMATED = "estimated: bandwidth-bound decode, compute-bound prefill, ±30%"


# --------------------------------------------------------------------------- the roofline


def effective_bandwidth(bandwidth_bytes_per_s: float, efficiency: float) -> float:
    """Bytes per second a bandwidth-bound pass reaches: the efficiency's share of the peak."""
    return efficiency * bandwidth_bytes_per_s


def read_seconds(nbytes: float, bandwidth_bytes_per_s: float, efficiency: float) -> float:
    """Seconds to stream `nbytes` at `efficiency` of a peak bandwidth (memory-bound decode, copies, reads)."""
    return nbytes / effective_bandwidth(bandwidth_bytes_per_s, efficiency)


def compute_seconds(flops: float, peak_flops_per_s: float, efficiency: float, devices: int = 1) -> float:
    """Seconds for `flops` at `efficiency` of a peak FLOP/s, split evenly over `devices` (tensor parallel)."""
    return flops / (devices * (peak_flops_per_s * efficiency))


# --------------------------------------------------------------------------- the planner's stages


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


_BOTTLENECK_NAMES: dict[StageKind, str] = {
    "gpu": "GPU memory bandwidth",
    "cpu": "CPU memory bandwidth",
    "pcie": "PCIe copies",
    "disk": "disk reads",
}


def _read_efficiency(kind: StageKind, engine: OffloadEngineEfficiency) -> float:
    """The engine's bandwidth efficiency on this kind of stage."""
    return {"gpu": engine.gpu_decode, "cpu": engine.cpu_decode, "pcie": engine.pcie, "disk": engine.disk}[
        kind
    ]


def _decode_seconds(stage: Stage, quant: Quant | None, engine: OffloadEngineEfficiency) -> float:
    efficiency = _read_efficiency(stage.kind, engine) * stage.slowdown
    if stage.kind == "gpu":
        efficiency *= engine.quant_decode[quant]
    return read_seconds(stage.bytes_per_token, stage.bandwidth_bytes_per_s, efficiency)


def _prefill_seconds(stage: Stage, prompt_tokens: int, batch: int, engine: OffloadEngineEfficiency) -> float:
    read = _read_efficiency(stage.kind, engine)
    if stage.kind in ("pcie", "disk"):
        return read_seconds(stage.prefill_bytes, stage.bandwidth_bytes_per_s, read)
    mfu = engine.gpu_prefill if stage.kind == "gpu" else engine.cpu_prefill
    compute = (
        compute_seconds(2 * stage.active_params * prompt_tokens * batch, stage.flops, mfu * stage.slowdown)
        if stage.flops
        else 0.0
    )
    return max(compute, read_seconds(stage.bytes_per_token, stage.bandwidth_bytes_per_s, read))


def estimate_speed(
    stages: Sequence[Stage],
    quant: Quant | None,
    file_bytes: int,
    disk_bandwidth_bytes_per_s: int,
    batch: int = 1,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    engine: OffloadEngineEfficiency = TRANSFORMERS_BATCH1,
) -> SpeedEstimate:
    """Stages run one after another per token (layer split, not tensor parallel), so their times add up."""
    decode = {s: _decode_seconds(s, quant, engine) for s in stages if s.bytes_per_token}
    per_token = sum(decode.values()) or 1e-9
    slowest = max(decode, key=lambda s: decode[s]) if decode else None
    ttft = sum(_prefill_seconds(s, prompt_tokens, batch, engine) for s in stages)
    load = LOAD_FIXED_SECONDS + read_seconds(file_bytes, disk_bandwidth_bytes_per_s, engine.disk)
    return SpeedEstimate(
        decode_tokens_per_s=batch / per_token,
        time_to_first_token_s=ttft,
        load_seconds=load,
        bottleneck=_BOTTLENECK_NAMES[slowest.kind] if slowest else "none",
        prompt_tokens=prompt_tokens,
    )


# --------------------------------------------------------------------------- llama.cpp (issue 14)

#: llama.cpp through llama-cpp-python, one sequence: GGUF weights read quantized as stored; a layer split between
#: a GPU and the CPU copies no weights per token (each device computes its own layers), so no PCIe stage.
#: GPU: https://github.com/ggml-org/llama.cpp/pull/4766 (RTX 4090, 1008 GB/s, 165 bf16 TFLOP/s):
#: "| llama 7B Q8_0 | 6.67 GiB | 6.74 B | CUDA | 99 | tg 128 | 98.13 ± 0.07 |" → 7.16e9 B × 98.13/s = 0.70 of
#: peak bandwidth; "| llama 7B Q8_0 | 6.67 GiB | 6.74 B | CUDA | 99 | pp 512 | 7664.00 ± 108.83 |" → 2 × 6.74e9 ×
#: 7664 = 103 TFLOP/s, 0.62 of peak. CPU decode: issue 14 measured llama-cpp-python 0.3.36 "decodes the SmolLM2
#: Q4_1 GGUF at about 133 tokens/s on 2 threads" on this project's CI machine (2 AMD EPYC cores, 40 GB/s
#: assumed bandwidth): 133 × 108 MB read per token (96.6 MB of tensors, the tied head included, and the KV cache
#: at 512 tokens) = 14.4 GB/s, 0.36 of it. bench/results/launch-gguf.txt has Berth's own measurement.
LLAMACPP_BATCH1 = OffloadEngineEfficiency(
    engine="llama.cpp, batch 1",
    gpu_decode=0.7,
    gpu_prefill=0.6,
    cpu_decode=0.36,
    cpu_prefill=0.4,
    cpu_bf16_emulation=1.0,
    pcie=0.7,
    disk=0.7,
    quant_decode={None: 1.0},
)
#: Seconds before llama.cpp reads weights: importing llama_cpp and building the context (no torch).
LLAMACPP_LOAD_FIXED_SECONDS = 0.5
