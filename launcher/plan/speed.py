"""Speed estimates (pure; imports registry only): a roofline with a floor. Decode reads every active weight and
the KV cache once per token (bandwidth-bound); prefill is compute-bound; offload tiers add copies; and every
forward pass pays a per-layer host overhead (kernel launches, Python) that dominates small models. Each runtime's
constants are a named profile; the roofline functions are shared by the planner (transformers at batch 1) and the
fleet (vLLM). Constants were fitted to registry/corpus/decode.yaml (see bench/predictions.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Literal

from registry.memory import Quant

StageKind = Literal["gpu", "cpu", "pcie", "disk"]


@dataclass(frozen=True)
class EngineEfficiency:
    """Shares of a GPU's peak one inference engine reaches, and the fixed costs it adds per forward pass.

    Efficiencies are ≤ 1 and overheads ≥ 0 (physical): a profile can only slow the roofline down."""

    engine: str
    gpu_decode: float
    """Share of peak GPU memory bandwidth a decode step reaches reading the weights."""
    gpu_prefill: float
    """Share of dense bf16 peak FLOP/s a prefill reaches (model FLOPs utilisation)."""
    _: KW_ONLY
    gpu_kv_decode: float = 1.0
    """Share of peak GPU bandwidth reached reading the KV cache during decode (attention at batch 1)."""
    gpu_layer_overhead_s: float = 0.0
    """Host time per decoder layer per forward pass on a GPU: kernel launches and Python."""
    gpu_token_overhead_s: float = 0.0
    """Host time per forward pass outside the layers: sampling, scheduling, the generate loop."""
    gpu_overlapped: bool = True
    """CUDA launches are asynchronous: the host's overhead runs while the GPU works, so a GPU step takes the
    longer of the two, not their sum."""
    tp_layer_overhead_s: float = 0.0
    """Extra time per layer per forward pass for tensor parallelism's all-reduces (two per layer)."""

    def __post_init__(self) -> None:
        shares = (self.gpu_decode, self.gpu_prefill, self.gpu_kv_decode)
        costs = (self.gpu_layer_overhead_s, self.gpu_token_overhead_s, self.tp_layer_overhead_s)
        if not all(0 < s <= 1 for s in shares) or not all(c >= 0 for c in costs):
            raise ValueError(f"{self.engine}: efficiencies must lie in (0, 1] and overheads be >= 0")


@dataclass(frozen=True)
class OffloadEngineEfficiency(EngineEfficiency):
    """An engine that also runs on the CPU and streams offloaded weights (transformers with accelerate)."""

    cpu_decode: float
    """Share of the CPU's sustained memory bandwidth decode reaches (PyTorch GEMV on a few cores)."""
    cpu_prefill: float
    """Share of the CPU's peak FLOP/s a prefill reaches."""
    cpu_bf16_emulation: float
    """Factor on CPU bandwidth efficiency for bf16 on a CPU without AVX512-BF16/AMX (converted on the fly) when
    the CPU's linear layers were not timed (`berth probe --measure`)."""
    pcie: float
    """Share of the host-to-GPU link accelerate's per-layer weight copies reach for CPU-offloaded layers."""
    disk: float
    """Share of the disk's sequential read speed reached when streaming disk-offloaded layers (and loading)."""
    quant_decode: Mapping[Quant | None, float]
    """bitsandbytes kernels at batch 1 against the bandwidth bound of their smaller weights: LLM.int8's outlier
    decomposition makes it several times slower than fp16; nf4 dequantizes on the fly."""
    _: KW_ONLY
    cpu_kv_decode: float = 1.0
    """Share of the CPU's bandwidth reached reading the KV cache."""
    cpu_layer_overhead_s: float = 0.0
    """Time per decoder layer per forward pass on the CPU (Python, op dispatch, thread wake-ups): on a CPU it
    adds to the reading time, since the same cores do both."""
    cpu_token_overhead_s: float = 0.0
    """Time per forward pass on the CPU outside the layers (sampling, the generate loop)."""


#: transformers (accelerate's device map) generating one sequence at a time, eager/sdpa attention: what
#: `berth plan` assumes. Fitted to the Qwen2.5 speed benchmark (transformers 4.46, A100-80GB, batch 1;
#: https://github.com/QwenLM/Qwen2.5/blob/2abc0f3243e20cf45b6a3ab60308db701c0c3111/docs/source/benchmark/speed_benchmark.rst,
#: rows in registry/corpus/decode.yaml): 0.5B–32B at input length 1 take 0.84–0.90 ms per decoder layer per token
#: whatever their size (24 layers: 47.40 tok/s; 64 layers: 17.54 tok/s), so small models are host-bound; the
#: 72B on two GPUs (8.73 tok/s) is bandwidth-bound at 0.6 of peak. Long prompts slow decode by about one second per
#: 16 GB of KV cache read (attention with repeat_kv expanding grouped KV heads and a concatenated cache): 0.03 of
#: peak bandwidth on the KV bytes. CPU figures are not yet fitted to a corpus (no public batch-1 CPU rows with
#: transformers found): cpu_decode 0.5 of a numpy-copy bandwidth is PyTorch GEMV on a few cores, and 0.3 ms per
#: layer is eager PyTorch's op dispatch for a decoder layer's ~15 ops at ~20 µs each on a desktop core.
TRANSFORMERS_BATCH1 = OffloadEngineEfficiency(
    engine="transformers, batch 1",
    gpu_decode=0.6,
    gpu_prefill=0.35,
    cpu_decode=0.5,
    cpu_prefill=0.4,
    # torch 2.x without AVX512-BF16: a batch-1 2048x8192 linear reads bf16 weights at 0.81 of fp32's bytes/s
    # (issue 11: 2.87 ms fp32, 1.77 ms bf16), so bf16 is faster than fp32, not half as fast.
    cpu_bf16_emulation=0.8,
    pcie=0.7,
    disk=0.7,
    quant_decode={None: 1.0, "int8": 0.25, "nf4": 0.55, "fp4": 0.55},
    gpu_kv_decode=0.03,
    gpu_layer_overhead_s=0.00087,
    gpu_token_overhead_s=0.0,
    gpu_overlapped=True,
    cpu_kv_decode=0.5,
    cpu_layer_overhead_s=0.0003,
    cpu_token_overhead_s=0.0,
)
#: The transformers profile on CUDA and on the CPU are the same engine's two halves.
TRANSFORMERS_CUDA = TRANSFORMERS_BATCH1
TRANSFORMERS_CPU = TRANSFORMERS_BATCH1

#: vLLM with continuous batching: what `berth fleet` assumes for many sequences at once. Measured batched decode
#: on H100/A100 lands between 0.5 and 0.8 of peak (see reference/accelerators.md); a starting point to replace
#: with batched measurements.
VLLM_BATCHED = EngineEfficiency(engine="vLLM, continuous batching", gpu_decode=0.6, gpu_prefill=0.5)

#: vLLM with CUDA graphs serving one sequence (batch 1). Fitted to the vLLM half of the Qwen2.5 speed benchmark
#: (vLLM 0.6.3, A100-80GB, batch 1, enforce_eager=False; registry/corpus/decode.yaml): 0.5B 311.55 tok/s, 7B 84.28,
#: 32B 22.13; 72B 18.19 on TP 2 and 31.37 on TP 4. Weights stream at 0.8 of peak; each step pays about 2 ms of
#: scheduling and sampling and 30 µs per layer (graph replay); tensor parallelism adds ~50 µs per layer for its
#: two all-reduces; paged attention reads the KV cache at about 0.4 of peak at batch 1 (30720-token prompts).
VLLM_CUDA_GRAPHS = EngineEfficiency(
    engine="vLLM, CUDA graphs, batch 1",
    gpu_decode=0.8,
    gpu_prefill=0.5,
    gpu_kv_decode=0.4,
    gpu_layer_overhead_s=0.00003,
    gpu_token_overhead_s=0.002,
    gpu_overlapped=False,
    tp_layer_overhead_s=0.00005,
)

#: Prompt length behind the time-to-first-token figure when the user gives none.
DEFAULT_PROMPT_TOKENS = 512
#: Time to start Python, import torch/transformers and build the model skeleton before reading weights.
LOAD_FIXED_SECONDS = 4.0

#: The decode error of these profiles against registry/corpus/decode.yaml (median and 90th percentile of
#: |estimate − measured| / measured over its rows; tests/test_predictions_corpus.py recomputes both and fails
#: when these drift).
CORPUS_ROWS = 83
CORPUS_MEDIAN_ERROR_PCT = 5
CORPUS_P90_ERROR_PCT = 20
BASIS_ESTIMATED = (
    f"estimated: bandwidth + per-layer overhead; typical error ±{CORPUS_MEDIAN_ERROR_PCT}%, "
    f"±{CORPUS_P90_ERROR_PCT}% for 9 in 10 of {CORPUS_ROWS} published measurements"
)
#: The corpus holds GPU measurements only: a plan that runs on the CPU says its figure is unchecked.
BASIS_ESTIMATED_CPU = (
    "estimated: bandwidth + per-layer overhead; CPU figures not checked against published measurements "
    "(launches here calibrate them)"
)


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


def vllm_decode_seconds(
    weight_bytes_per_gpu: float,
    kv_bytes_per_gpu: float,
    layers: int,
    bandwidth_bytes_per_s: float,
    tp: int = 1,
    engine: EngineEfficiency = VLLM_CUDA_GRAPHS,
) -> float:
    """Seconds per decode step of one sequence on a tensor-parallel vLLM replica: each GPU reads its shard of
    the weights and of the KV cache, plus the engine's per-step and per-layer costs and TP's all-reduces."""
    device = read_seconds(weight_bytes_per_gpu, bandwidth_bytes_per_s, engine.gpu_decode)
    device += read_seconds(kv_bytes_per_gpu, bandwidth_bytes_per_s, engine.gpu_kv_decode)
    host = engine.gpu_token_overhead_s + layers * engine.gpu_layer_overhead_s
    tp_cost = layers * engine.tp_layer_overhead_s if tp > 1 else 0.0
    return (max(device, host) if engine.gpu_overlapped else device + host) + tp_cost


# --------------------------------------------------------------------------- the planner's stages


@dataclass(frozen=True)
class Stage:
    """One part of a forward pass: a device computing its blocks, or a link that copies offloaded weights."""

    kind: StageKind
    bytes_per_token: int
    """Weight bytes this stage reads (or copies) for every generated token."""
    bandwidth_bytes_per_s: int
    flops: float = 0.0
    """Peak FLOP/s of a compute stage (0 for links)."""
    active_params: int = 0
    """Parameters this stage multiplies per token (prefill cost)."""
    prefill_bytes: int = 0
    """Bytes a link copies once per prefill (offloaded weights are copied per forward pass)."""
    slowdown: float = 1.0
    """Factor (≤ 1 after the engine's efficiency) on this stage's weight reads: bf16 emulated on a CPU without
    native bf16, or the CPU's measured linear-layer rate for this dtype against its memory bandwidth."""
    kv_bytes_per_token: int = 0
    """KV-cache bytes this stage reads per generated token (its layers' cache at the planned context)."""
    layers: int = 0
    """Decoder layers this device runs (each costs the engine's per-layer overhead per forward pass)."""


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
_OVERHEAD_NAMES: dict[StageKind, str] = {
    "gpu": "per-layer overhead (kernel launches, Python)",
    "cpu": "per-layer overhead (Python, op dispatch)",
    "pcie": "PCIe copies",
    "disk": "disk reads",
}


def _read_efficiency(kind: StageKind, engine: OffloadEngineEfficiency) -> float:
    """The engine's bandwidth efficiency on this kind of stage."""
    return {"gpu": engine.gpu_decode, "cpu": engine.cpu_decode, "pcie": engine.pcie, "disk": engine.disk}[
        kind
    ]


def _device_seconds(stage: Stage, quant: Quant | None, engine: OffloadEngineEfficiency) -> float:
    """Seconds a stage's device (or link) spends per token reading weights and KV cache."""
    efficiency = min(_read_efficiency(stage.kind, engine) * stage.slowdown, 1.0)
    if stage.kind == "gpu":
        efficiency *= engine.quant_decode[quant]
    seconds = read_seconds(stage.bytes_per_token, stage.bandwidth_bytes_per_s, efficiency)
    if stage.kv_bytes_per_token and stage.kind in ("gpu", "cpu"):
        # The cache is held in the stage's dtype, so attention pays the same conversion as the weights.
        kv = engine.gpu_kv_decode if stage.kind == "gpu" else engine.cpu_kv_decode
        seconds += read_seconds(
            stage.kv_bytes_per_token, stage.bandwidth_bytes_per_s, min(kv * stage.slowdown, 1.0)
        )
    return seconds


def _host_seconds(stage: Stage, engine: OffloadEngineEfficiency) -> float:
    """Host overhead per forward pass for the layers a stage computes."""
    if stage.kind == "gpu":
        return stage.layers * engine.gpu_layer_overhead_s
    if stage.kind == "cpu":
        return stage.layers * engine.cpu_layer_overhead_s
    return 0.0


def _token_overhead(stages: Sequence[Stage], engine: OffloadEngineEfficiency) -> float:
    """Per-forward-pass cost outside the layers, charged once (on the main device's kind)."""
    kinds = {s.kind for s in stages}
    return engine.gpu_token_overhead_s if "gpu" in kinds else engine.cpu_token_overhead_s


def _step_seconds(
    stages: Sequence[Stage], device: Sequence[float], engine: OffloadEngineEfficiency
) -> tuple[float, bool]:
    """Seconds per forward pass from the stages' device times, and whether host overhead is the bottleneck.

    Stages of a layer split run one after another, so every stage's time adds up. On a GPU the host's
    launches overlap the device's work when the engine says so (the step takes the longer of the two); on a
    CPU, and for links, the same cores do both, so they add."""
    token = _token_overhead(stages, engine)
    gpu_device = sum(t for s, t in zip(stages, device, strict=True) if s.kind == "gpu")
    rest = sum(t for s, t in zip(stages, device, strict=True) if s.kind != "gpu")
    cpu_host = sum(_host_seconds(s, engine) for s in stages if s.kind == "cpu")
    if any(s.kind == "gpu" for s in stages):
        host = sum(_host_seconds(s, engine) for s in stages if s.kind == "gpu") + token
        gpu_part = max(gpu_device, host) if engine.gpu_overlapped else gpu_device + host
        return gpu_part + rest + cpu_host, host > gpu_device
    return rest + cpu_host + token, cpu_host + token > rest


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
    weights = read_seconds(
        stage.bytes_per_token, stage.bandwidth_bytes_per_s, min(read * stage.slowdown, 1.0)
    )
    return max(compute, weights) + _host_seconds(stage, engine)


def _bottleneck(stages: Sequence[Stage], device: Sequence[float], host_bound: bool) -> str:
    if not stages:
        return "none"
    slowest = max(range(len(stages)), key=lambda i: device[i])
    kind = stages[slowest].kind
    return _OVERHEAD_NAMES[kind] if host_bound and kind in ("gpu", "cpu") else _BOTTLENECK_NAMES[kind]


def estimate_speed(
    stages: Sequence[Stage],
    quant: Quant | None,
    file_bytes: int,
    disk_bandwidth_bytes_per_s: int,
    batch: int = 1,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    engine: OffloadEngineEfficiency = TRANSFORMERS_BATCH1,
) -> SpeedEstimate:
    """Decode tokens/s, time to first token and load time of a forward pass made of `stages`, which run one
    after another (a layer split, not tensor parallel): every stage's time counts, identical ones included."""
    stages = [s for s in stages if s.bytes_per_token or s.kv_bytes_per_token or s.layers]
    device = [_device_seconds(s, quant, engine) for s in stages]
    per_token, host_bound = _step_seconds(stages, device, engine) if stages else (1e-9, False)
    ttft = sum(_prefill_seconds(s, prompt_tokens, batch, engine) for s in stages) + _token_overhead(
        stages, engine
    )
    load = LOAD_FIXED_SECONDS + read_seconds(file_bytes, disk_bandwidth_bytes_per_s, engine.disk)
    on_gpu = any(s.kind == "gpu" for s in stages)
    return SpeedEstimate(
        decode_tokens_per_s=batch / (per_token or 1e-9),
        time_to_first_token_s=ttft,
        load_seconds=load,
        bottleneck=_bottleneck(stages, device, host_bound),
        basis=BASIS_ESTIMATED if on_gpu else BASIS_ESTIMATED_CPU,
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
#: GPU floor: a small model is not bandwidth-bound. https://github.com/geerlingguy/ai-benchmarks/issues/43
#: (RTX 4090, llama.cpp build 086a63e3a, Vulkan): "| llama 1B Q4_K - Medium | 636.18 MiB | 1.10 B | Vulkan | 99 |
#: tg128 | 762.37 ± 4.41 |" (TinyLlama, 22 layers). With the 7B Q8_0 row above (32 layers) and time per token =
#: bytes / (bandwidth × e) + layers × t: e = 0.74 and t = 19 µs per layer, added to the reading (kernels run
#: one after another on the GPU). Without it a 135M model on a 4090 was estimated at 6,400 tokens/s.
LLAMACPP_BATCH1 = OffloadEngineEfficiency(
    engine="llama.cpp, batch 1",
    gpu_decode=0.74,
    gpu_prefill=0.6,
    cpu_decode=0.36,
    cpu_prefill=0.4,
    cpu_bf16_emulation=1.0,
    pcie=0.7,
    disk=0.7,
    quant_decode={None: 1.0},
    gpu_layer_overhead_s=0.000019,
    gpu_overlapped=False,
)
#: Seconds before llama.cpp reads weights: importing llama_cpp and building the context (no torch).
LLAMACPP_LOAD_FIXED_SECONDS = 0.5
