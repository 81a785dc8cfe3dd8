"""The llama.cpp rungs of the planner (pure; no llama_cpp import): a GGUF file run quantized as stored.

llama.cpp keeps the token embeddings in RAM and offloads the LAST `n_gpu_layers` decoder layers to a GPU (one
more than the model has also moves the output head), each device computing its own layers, so nothing is
copied per token. Memory per device = its tensors' bytes as in the file + the KV cache of its layers (n_ctx
rounded up to 256, in f16, q8_0 or q4_0) + llama.cpp's compute buffer, and the process or CUDA floor. The
ladder, first that fits wins:

    1. every layer and the head on the fastest GPU, KV cache f16, then q8_0, then q4_0
    2. as many layers as fit on that GPU, the rest on the CPU (KV cache f16)
    3. the CPU alone, KV cache f16, then q8_0, then q4_0

A forced cache type (`PlanRequest.kv_cache`) replaces the f16 → q8_0 → q4_0 steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from launcher.display import gib
from launcher.machine.host import GpuInfo, HostSnapshot
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.gguf import GgufWeights
from launcher.plan.placement import GPU_HEADROOM_FRACTION, RAM_HEADROOM_BYTES, Placement, Strategy, gpu_label
from launcher.plan.request import KvCacheType, LlamaCppSettings, Plan, PlanRequest
from launcher.plan.speed import (
    LLAMACPP_BATCH1,
    LLAMACPP_LOAD_FIXED_SECONDS,
    LOAD_FIXED_SECONDS,
    SpeedEstimate,
    Stage,
    estimate_speed,
)
from registry.memory import DTYPE_BYTES, Precision, kv_cache_bytes_per_layer, runtime_bytes
from registry.schema import ModelCard

#: llama.cpp rounds the context up to a multiple of 256 (llama-context.cpp: `cparams.n_ctx = GGML_PAD(cparams.n_ctx,
#: 256)`) and allocates (and zeroes) the whole KV cache when the context is made.
CONTEXT_PAD = 256
#: Prompt tokens processed per step (llama-cpp-python's n_batch/n_ubatch default): sizes the compute buffer.
N_UBATCH = 512
#: KV cache types: (values per block, bytes per block), from ggml's type table.
KV_TYPE_BLOCKS: dict[str, tuple[int, int]] = {"f16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18)}
KV_TYPES: tuple[KvCacheType, ...] = ("f16", "q8_0", "q4_0")
#: Resident memory of the Python process running Berth before llama.cpp comes in (the interpreter, click,
#: pydantic, the catalog, the probe): 68 MiB measured in `berth launch` on this project's CI machine.
PYTHON_PROCESS_BYTES = 72 * 2**20
#: What importing llama_cpp adds (numpy, libllama, libggml): 20.9 MiB measured (bench/results/launch-gguf.txt).
LLAMACPP_LIBRARY_BYTES = 21 * 2**20
#: What loading a model and making its context adds besides tensors, KV cache and compute buffer (the
#: vocabulary and its lookup tables, graph metadata, the logits of one token, the thread pool): 0–23 MiB
#: measured with SmolLM2's 49k-token vocabulary, depending on how much freed heap the process could reuse.
LLAMACPP_CONTEXT_BYTES = 4 * 2**20
VOCAB_BYTES_PER_TOKEN = 128
#: Flash attention with an f16 cache too: no score matrix over the whole context in the compute buffer, and on
#: CPUs no slower (llama.cpp's own default, "auto", turns it on where the backend supports it).
FLASH_ATTN_F16 = True


@dataclass(frozen=True)
class GgufPrecision(Precision):
    """Weights kept as the GGUF file stores them (a llama.cpp quantization), shown by its name."""

    quantization: str = "unknown"

    @property
    def label(self) -> str:
        """Q4_K_M, Q8_0, F16 …"""
        return self.quantization


def padded_context(context: int) -> int:
    """The context llama.cpp allocates for a requested one."""
    return -(-max(context, 1) // CONTEXT_PAD) * CONTEXT_PAD


def kv_layer_bytes(card: ModelCard, context: int, kv_type: KvCacheType) -> list[int]:
    """Each layer's KV cache in llama.cpp at this context and cache type."""
    f16 = kv_cache_bytes_per_layer(card, padded_context(context), 1, "float16")
    values, block = KV_TYPE_BLOCKS[kv_type]
    width = DTYPE_BYTES["float16"]
    return [-(-(b // width) // values) * block for b in f16]


def compute_bytes(card: ModelCard, context: int, flash_attn: bool, holds_head: bool = True) -> int:
    """llama.cpp's compute buffer on a device, reserved for a worst-case 512-token step: float32 logits for
    every token of the step (n_vocab × 512) where the device computes the head, plus two hidden-state rows
    per token; without flash attention the score matrix over the whole context may be larger than the logits.
    Checked against llama.cpp's "compute buffer size" log line: 98.25 MiB for SmolLM2 (49,152-token vocabulary,
    hidden 576) at any context with flash attention."""
    arch = card.architecture
    tokens = min(N_UBATCH, padded_context(context))
    widest = arch.vocab_size if holds_head else 0
    if not flash_attn:
        widest = max(widest, arch.num_attention_heads * padded_context(context))
    return 4 * tokens * (widest + 2 * arch.hidden_size)


def compute_resident_bytes(card: ModelCard, tokens: int) -> int:
    """The part of the CPU compute buffer a step over `tokens` prompt tokens touches (the buffer is reserved
    for 512 tokens of logits, but a chat computes logits for the last token only): the step's hidden states
    and feed-forward activations, and one row of logits."""
    arch = card.architecture
    ffn = arch.intermediate_size or 4 * arch.hidden_size
    step = min(max(tokens, 1), N_UBATCH)
    return 4 * step * (3 * arch.hidden_size + 2 * ffn) + 4 * arch.vocab_size


def context_bytes(card: ModelCard) -> int:
    """What a loaded model and its context hold besides tensors, KV cache and compute buffer."""
    return LLAMACPP_CONTEXT_BYTES + card.architecture.vocab_size * VOCAB_BYTES_PER_TOKEN


@dataclass(frozen=True)
class _Split:
    """One llama.cpp arrangement: layers on the GPU (the last ones), cache type, and what each device needs."""

    gpu: GpuInfo | None
    gpu_layers: int
    head_on_gpu: bool
    kv_type: KvCacheType
    gpu_weights: int
    gpu_kv: int
    gpu_overhead: int
    cpu_weights: int
    cpu_kv: int
    cpu_overhead: int

    @property
    def strategy(self) -> Strategy:
        if self.gpu is None or self.gpu_layers == 0:
            return "cpu"
        return "gpu" if self.head_on_gpu else "offload"

    @property
    def n_gpu_layers(self) -> int:
        return self.gpu_layers + (1 if self.head_on_gpu else 0)


def _split(
    card: ModelCard,
    weights: GgufWeights,
    gpu: GpuInfo | None,
    gpu_layers: int,
    kv_type: KvCacheType,
    context: int,
) -> _Split:
    n = weights.n_layers
    gpu_layers = min(gpu_layers, n) if gpu is not None else 0
    head_on_gpu = gpu is not None and gpu_layers == n
    first_gpu = n - gpu_layers
    kv = kv_layer_bytes(card, context, kv_type)
    kv += [0] * (n - len(kv))
    flash = flash_attn(kv_type)
    gpu_weights = sum(weights.layer_bytes[first_gpu:]) + (weights.head_bytes if head_on_gpu else 0)
    cpu_weights = weights.input_bytes + sum(weights.layer_bytes[:first_gpu])
    if not head_on_gpu:
        cpu_weights += weights.output_bytes
    on_gpu = gpu is not None and gpu_layers > 0
    gpu_overhead = runtime_bytes("cuda") + compute_bytes(card, context, flash, head_on_gpu) if on_gpu else 0
    cpu_compute = compute_bytes(card, context, flash, holds_head=not head_on_gpu)
    return _Split(
        gpu=gpu if on_gpu else None,
        gpu_layers=gpu_layers,
        head_on_gpu=head_on_gpu,
        kv_type=kv_type,
        gpu_weights=gpu_weights,
        gpu_kv=sum(kv[first_gpu:n]),
        gpu_overhead=gpu_overhead,
        cpu_weights=cpu_weights,
        cpu_kv=sum(kv[:first_gpu]),
        cpu_overhead=PYTHON_PROCESS_BYTES + LLAMACPP_LIBRARY_BYTES + context_bytes(card) + cpu_compute,
    )


def flash_attn(kv_type: KvCacheType) -> bool:
    """Flash attention: needed for a quantized V cache; with f16, FLASH_ATTN_F16."""
    return kv_type != "f16" or FLASH_ATTN_F16


def _gpu_room(gpu: GpuInfo) -> int:
    return gpu.usable_bytes - int(gpu.total_bytes * GPU_HEADROOM_FRACTION)


def _ram_room(host: HostSnapshot) -> int:
    return host.ram_available_bytes - (0 if host.ram_capped else RAM_HEADROOM_BYTES)


def _fits(split: _Split, host: HostSnapshot) -> bool:
    cpu_ok = split.cpu_weights + split.cpu_kv + split.cpu_overhead <= _ram_room(host)
    if split.gpu is None:
        return cpu_ok
    return cpu_ok and split.gpu_weights + split.gpu_kv + split.gpu_overhead <= _gpu_room(split.gpu)


def _gpus(host: HostSnapshot, request: PlanRequest) -> list[GpuInfo]:
    """GPUs llama.cpp can offload to here (discrete NVIDIA/AMD), fastest first; none for --device cpu."""
    if request.device == "cpu":
        return []
    gpus = [g for g in host.node_gpus(0) if g.vendor in ("nvidia", "amd") and not g.unified_memory]
    if request.gpus is not None:
        gpus = [g for g in gpus if g.index in request.gpus]
    return sorted(gpus, key=lambda g: (-(g.bandwidth_bytes_per_s or 0), -g.usable_bytes, g.index))


@dataclass
class _Search:
    reasons: list[str]
    closest: tuple[int, int] | None = None
    """(needed, usable) of the attempt that came closest, for a does-not-fit verdict."""

    def miss(self, what: str, needed: int, usable: int) -> None:
        self.reasons.append(f"{what}: needs {gib(needed)}, {gib(max(usable, 0))} usable → no")
        if self.closest is None or needed - usable < self.closest[0] - self.closest[1]:
            self.closest = (needed, usable)


def _gpu_need(split: _Split) -> int:
    return split.gpu_weights + split.gpu_kv + split.gpu_overhead


def _cpu_need(split: _Split) -> int:
    return split.cpu_weights + split.cpu_kv + split.cpu_overhead


def _try_whole_gpu(
    card: ModelCard,
    weights: GgufWeights,
    host: HostSnapshot,
    gpu: GpuInfo,
    context: int,
    kv_types: Sequence[KvCacheType],
    search: _Search,
) -> _Split | None:
    for kv_type in kv_types:
        split = _split(card, weights, gpu, weights.n_layers, kv_type, context)
        if _fits(split, host):
            return split
        search.miss(
            f"{weights.quantization} on {gpu_label(gpu)}, KV cache {kv_type}",
            _gpu_need(split),
            _gpu_room(gpu),
        )
    return None


def _try_partial(
    card: ModelCard,
    weights: GgufWeights,
    host: HostSnapshot,
    gpu: GpuInfo,
    context: int,
    kv_type: KvCacheType,
    search: _Search,
) -> _Split | None:
    """The most layers that fit on the GPU, with the rest (and the head) in RAM."""
    for layers in range(weights.n_layers - 1, 0, -1):
        split = _split(card, weights, gpu, layers, kv_type, context)
        if _gpu_need(split) > _gpu_room(gpu):
            continue
        if _cpu_need(split) > _ram_room(host):
            search.miss(
                f"{weights.quantization} on {gpu_label(gpu)} ({layers} layers) + CPU RAM",
                _cpu_need(split),
                _ram_room(host),
            )
            return None
        return split
    return None


def _try_cpu(
    card: ModelCard,
    weights: GgufWeights,
    host: HostSnapshot,
    context: int,
    kv_types: Sequence[KvCacheType],
    search: _Search,
) -> _Split | None:
    for kv_type in kv_types:
        split = _split(card, weights, None, 0, kv_type, context)
        if _fits(split, host):
            return split
        search.miss(
            f"{weights.quantization} on CPU RAM, KV cache {kv_type}", _cpu_need(split), _ram_room(host)
        )
    return None


def _choose(
    card: ModelCard,
    weights: GgufWeights,
    host: HostSnapshot,
    request: PlanRequest,
    context: int,
    search: _Search,
) -> _Split | None:
    kv_types: tuple[KvCacheType, ...] = (request.kv_cache,) if request.kv_cache else KV_TYPES
    gpus = _gpus(host, request)
    for gpu in gpus[:1]:
        chosen = _try_whole_gpu(card, weights, host, gpu, context, kv_types, search)
        if chosen is None and request.allow_offload:
            chosen = _try_partial(card, weights, host, gpu, context, kv_types[0], search)
        if chosen is not None:
            return chosen
    if request.device == "gpu":
        return None
    return _try_cpu(card, weights, host, context, kv_types, search)


def _placements(split: _Split, weights: GgufWeights, host: HostSnapshot) -> tuple[Placement, ...]:
    n = weights.n_layers
    first_gpu = n - split.gpu_layers
    cpu_blocks = ("token_embd", *(f"blk.{i}" for i in range(first_gpu)))
    if not split.head_on_gpu:
        cpu_blocks += ("output",)
    placements = []
    if split.gpu is not None:
        gpu_blocks = (*(f"blk.{i}" for i in range(first_gpu, n)), *(("output",) if split.head_on_gpu else ()))
        placements.append(
            Placement(
                device=f"cuda:{split.gpu.index}",
                label=gpu_label(split.gpu),
                blocks=gpu_blocks,
                layers=(first_gpu, n - 1) if split.gpu_layers else None,
                weights_bytes=split.gpu_weights,
                kv_cache_bytes=split.gpu_kv,
                overhead_bytes=split.gpu_overhead,
                budget_bytes=split.gpu.usable_bytes,
                weights_budget_bytes=split.gpu_weights,
            )
        )
    placements.append(
        Placement(
            device="cpu",
            label="CPU RAM",
            blocks=cpu_blocks,
            layers=(0, first_gpu - 1) if first_gpu else None,
            weights_bytes=split.cpu_weights,
            kv_cache_bytes=split.cpu_kv,
            overhead_bytes=split.cpu_overhead,
            budget_bytes=host.ram_available_bytes,
            weights_budget_bytes=split.cpu_weights,
        )
    )
    return tuple(placements)


def _speed(
    card: ModelCard, weights: GgufWeights, host: HostSnapshot, split: _Split, prompt_tokens: int, context: int
) -> SpeedEstimate:
    """Stages of the roofline: each device reads its own layers (and the KV cache at the prompt's length)."""
    n = weights.n_layers
    first_gpu = n - split.gpu_layers
    share = prompt_tokens / padded_context(context)
    params_per_byte = card.params / max(weights.tensor_bytes, 1)
    cpu_read = sum(weights.layer_bytes[:first_gpu]) + (0 if split.head_on_gpu else weights.head_bytes)
    stages = []
    if split.gpu is not None:
        gpu = split.gpu
        gpu_read = sum(weights.layer_bytes[first_gpu:]) + (weights.head_bytes if split.head_on_gpu else 0)
        stages.append(
            Stage(
                "gpu",
                bytes_per_token=gpu_read + int(split.gpu_kv * share),
                bandwidth_bytes_per_s=gpu.bandwidth_bytes_per_s or 400 * 10**9,
                flops=(gpu.bf16_tflops or 50.0) * 1e12,
                active_params=int(gpu_read * params_per_byte),
                layers=split.gpu_layers,
            )
        )
    if cpu_read:
        stages.append(
            Stage(
                "cpu",
                bytes_per_token=cpu_read + int(split.cpu_kv * share),
                bandwidth_bytes_per_s=host.cpu.memory_bandwidth_bytes_per_s,
                flops=float(host.cpu.flops),
                active_params=int(cpu_read * params_per_byte),
                layers=first_gpu,
            )
        )
    speed = estimate_speed(
        stages,
        None,
        file_bytes=weights.tensor_bytes,
        disk_bandwidth_bytes_per_s=host.disk_bandwidth_bytes_per_s,
        prompt_tokens=prompt_tokens,
        engine=LLAMACPP_BATCH1,
    )
    load = speed.load_seconds - LOAD_FIXED_SECONDS + LLAMACPP_LOAD_FIXED_SECONDS
    return replace(speed, load_seconds=load)


def _why(card: ModelCard, weights: GgufWeights) -> str:
    dequantized = card.params * DTYPE_BYTES["float32"]
    return (
        f"weights: {weights.file_name}, {weights.quantization}, {gib(weights.tensor_bytes)} of tensors → llama.cpp "
        f"runs them quantized as stored (transformers would dequantize them to fp32, about {gib(dequantized)})"
    )


def _where(split: _Split, weights: GgufWeights) -> str:
    if split.gpu is None:
        return "CPU RAM"
    if split.head_on_gpu:
        return f"{gpu_label(split.gpu)}, all {weights.n_layers} layers and the head"
    return f"{gpu_label(split.gpu)} ({split.gpu_layers} of {weights.n_layers} layers) + CPU RAM"


def use_llamacpp(request: PlanRequest) -> bool:
    """Whether the request is planned for llama.cpp: GGUF weights, unless transformers is asked for."""
    if request.runtime == "llama.cpp" and request.gguf is None:
        raise PlanRequestError(
            "llama.cpp runs GGUF files, and this launch has none",
            hint="give a .gguf file (MODEL or --gguf FILE), or drop --runtime llama.cpp",
        )
    return request.gguf is not None and request.runtime != "transformers"


def plan_llamacpp(
    card: ModelCard, host: HostSnapshot, request: PlanRequest, context: int
) -> Plan | DoesNotFitError:
    """The llama.cpp plan for the request's GGUF weights, or why nothing fits."""
    weights = request.gguf
    assert weights is not None
    search = _Search([_why(card, weights)])
    split = _choose(card, weights, host, request, context, search)
    if split is None:
        needed, usable = search.closest or (weights.tensor_bytes, _ram_room(host))
        return DoesNotFitError(
            card.id, needed, max(usable, 0), _ways_out(weights, request), detail="; ".join(search.reasons[1:])
        )
    prompt_tokens = min(request.prompt_tokens or 512, context)
    threads = max(host.cpu.physical_cores, 1)
    settings = LlamaCppSettings(
        file_name=weights.file_name,
        quantization=weights.quantization,
        n_gpu_layers=split.n_gpu_layers,
        kv_cache_type=split.kv_type,
        n_threads=threads,
        flash_attn=flash_attn(split.kv_type),
        main_gpu=split.gpu.index if split.gpu is not None else 0,
    )
    placements = _placements(split, weights, host)
    used = "; ".join(f"{p.label} {gib(p.used_bytes)} of {gib(p.budget_bytes)}" for p in placements)
    search.reasons.append(
        f"→ {weights.quantization} on {_where(split, weights)} with llama.cpp: n_gpu_layers={split.n_gpu_layers}, "
        f"KV cache {split.kv_type}, {threads} threads; {used}"
    )
    return Plan(
        model_id=card.id,
        strategy=split.strategy,
        precision=GgufPrecision("float16", quantization=weights.quantization),
        context=context,
        batch=1,
        placements=placements,
        speed=_speed(card, weights, host, split, prompt_tokens, context),
        reasons=tuple(search.reasons),
        warnings=tuple(_warnings(weights)),
        host_label=host.label,
        device_map=_device_map(placements),
        runtime="llama.cpp",
        llama_cpp=settings,
    )


def _device_map(placements: Sequence[Placement]) -> dict[str, int | str]:
    if len(placements) == 1:
        return {"": "cpu"}
    result: dict[str, int | str] = {}
    for p in placements:
        key: int | str = int(p.device.split(":")[1]) if p.device.startswith("cuda:") else p.device
        result.update((block, key) for block in p.blocks)
    return result


def _warnings(weights: GgufWeights) -> list[str]:
    notes = []
    if weights.estimated:
        notes.append("sized from the file's size alone (its tensor table was not read)")
    return notes


def _ways_out(weights: GgufWeights, request: PlanRequest) -> list[str]:
    ways = []
    if request.kv_cache not in (None, "q4_0"):
        ways.append("a smaller KV cache: --kv-cache q4_0")
    ways.append(
        f"a smaller quantization than {weights.quantization} (a Q4_K_M or Q3_K_M file of the same model)"
    )
    ways.append("a shorter context: --context 2048")
    return ways
