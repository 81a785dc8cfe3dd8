"""One replica of a model on one node group: memory per GPU rank, KV cache, decode speed, time to first token.

Pure functions over the registry's parameter layout. Memory follows vLLM's own accounting
(vllm/v1/worker/gpu_worker.py `determine_available_memory`: "available_kv_cache_memory = total_gpu_memory *
gpu_memory_utilization - peak_memory", where peak_memory is the weights, the torch peak of `profile_run` and the
memory allocated outside torch): each rank may use `gpu_memory_utilization` × the total the CUDA runtime reports
(`Accelerator.cuda_total_bytes`, below NVML's figure); weights, the activation peak of the profiling run and
non-torch memory come off the top; what is left is KV cache, cut in blocks of `block_size` tokens, and every rank gets
as many blocks as the tightest rank has room for. The cache is registry.memory's, in vLLM's layout
(`vllm_cache`); speed is launcher.plan.speed's roofline with the VLLM_BATCHED efficiencies. Imports registry,
launcher.display, launcher.machine.host, launcher.plan.speed and the fleet's types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TypeVar, cast

from launcher.display import gib
from launcher.fleet.types import EngineSettings, FleetQuant, NodeGroup, ReplicaEstimate, Shape
from launcher.machine.host import DEFAULT_PCIE_BANDWIDTH
from launcher.plan.speed import VLLM_BATCHED, compute_seconds, read_seconds
from registry.errors import BerthError
from registry.memory import (
    DTYPE_BYTES,
    MXFP4_BLOCK,
    CacheLayout,
    Precision,
    block_weight_bytes,
    kept_tokens,
    kv_bytes_per_token_per_layer,
    kv_cache_bytes_per_layer,
    native_precision,
    routed_expert_params,
)
from registry.params import Block, layout
from registry.schema import Architecture, Dtype, ModelCard

GIB = 2**30
T = TypeVar("T")

#: Upper bound of vLLM's profiling-run activation peak per rank at 8,192 batched tokens when the model is not
#: known (4.76–7.38 GiB measured on H100, llm-d below); used only for coarse pre-checks.
ACTIVATION_PEAK_BYTES = 5 * GIB
#: Batched tokens that upper bound was measured at; it scales with max_num_batched_tokens.
ACTIVATION_PROFILE_TOKENS = 8192
#: vLLM's profile run ends with a sampler warm-up over min(max_num_seqs, max_num_batched_tokens) dummy requests
#: (vllm/v1/worker/gpu_model_runner.py `profile_run` → `_dummy_sampler_run`): float32 logits of shape
#: [requests, vocab] and the sampler's working copies of them (probabilities, log-probabilities, sorted values
#: and their int64 indices for top-k/top-p, masks). That step, not the forward pass, sets the torch peak: the
#: "torch peak memory increase" llm-d measured with vLLM 0.11 on H100 at the default 1,024 sequences is
#: 9.59–9.89 × 1,024 × vocab × 4 bytes for five models from 0.6B to 120B (Llama-3.1-8B 4.76 GiB at vocab
#: 128,256; Qwen3-0.6B 5.56 and Qwen3-32B 5.64 at 151,936; gpt-oss-20b/120b 7.38 at 201,088; Llama-3.3-70B
#: TP2 4.84; llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md). Fitted: 9.7 buffers.
SAMPLER_LOGIT_BUFFERS = 9.7
#: Bytes of one float32 logit.
LOGIT_BYTES = 4
#: Memory outside torch's allocator (NCCL buffers, CUDA context growth): 0.13–0.14 GiB for one rank, 0.54–0.55
#: GiB once ranks talk to each other (llm-d, vLLM 0.11 on H100, "non-torch forward increase memory").
NON_TORCH_BYTES_SINGLE = int(0.13 * GIB)
NON_TORCH_BYTES_DISTRIBUTED = int(0.55 * GIB)
#: vLLM's defaults for the OpenAI server: 8,192 tokens per step and 1,024 sequences on GPUs of 70 GiB or
#: more (not A100), 2,048 and 256 on smaller ones. Berth writes the values it assumed into every export.
LARGE_GPU_BYTES = 70 * GIB
DEFAULT_BATCHED_TOKENS_LARGE = 8192
DEFAULT_BATCHED_TOKENS_SMALL = 2048
DEFAULT_MAX_NUM_SEQS_LARGE = 1024
DEFAULT_MAX_NUM_SEQS_SMALL = 256
#: NVLink bandwidth per GPU and direction when the catalog gives none (A100 NVLink3: 300 GB/s).
DEFAULT_NVLINK_BYTES_PER_S = 300 * 10**9
#: Network between nodes when fleet.yaml gives none (100 Gb/s Ethernet).
DEFAULT_NETWORK_BYTES_PER_S = 12_500_000_000
#: fp8 runs natively from compute capability 8.9 and as weight-only FP8-Marlin from 7.5 (vLLM docs).
FP8_MIN_CAPABILITY = (7, 5)


def native_fleet_quant(card: ModelCard) -> FleetQuant | None:
    """The quantization vLLM runs a checkpoint published in FP8 or MXFP4 with (it reads the checkpoint's
    quantization_config): a fleet file that names none plans the model as published, not in bf16."""
    return card.native_quant


def is_native(card: ModelCard, quant: FleetQuant | None) -> bool:
    """Whether this quantization is the checkpoint's own format (exported without --quantization/--dtype)."""
    return quant is not None and quant == card.native_quant


def quant_bytes_per_linear_weight(quant: FleetQuant | None, dtype: Dtype) -> float:
    """Bytes one nn.Linear weight takes in this precision."""
    if quant == "fp8":
        return 1.0
    if quant == "nf4":
        return 0.5
    return float(DTYPE_BYTES[dtype])


def _large_gpu(group: NodeGroup) -> bool:
    acc = group.accelerator
    return acc.cuda_total_bytes >= LARGE_GPU_BYTES and "a100" not in f"{acc.id} {acc.name}".lower()


def default_batched_tokens(group: NodeGroup) -> int:
    """vLLM's default max_num_batched_tokens for the OpenAI server on this GPU."""
    return DEFAULT_BATCHED_TOKENS_LARGE if _large_gpu(group) else DEFAULT_BATCHED_TOKENS_SMALL


def default_max_num_seqs(group: NodeGroup) -> int:
    """vLLM's default max_num_seqs for the OpenAI server on this GPU."""
    return DEFAULT_MAX_NUM_SEQS_LARGE if _large_gpu(group) else DEFAULT_MAX_NUM_SEQS_SMALL


def forward_peak_bytes(card: ModelCard, batched_tokens: int, dtype: Dtype, tp: int = 1) -> int:
    """Live tensors of the profile run's forward pass over `batched_tokens` tokens on one rank: the residual
    stream, its normed copy and the attention input/output (4 × hidden), and the feed-forward's fused gate/up
    projection and its activated half (3 × its width, split over the TP ranks)."""
    arch = card.architecture
    ffn = arch.intermediate_size or 4 * arch.hidden_size
    if arch.is_moe and arch.moe_intermediate_size and arch.experts_per_token:
        ffn = max(ffn if arch.first_dense_layers else 0, arch.moe_intermediate_size * arch.experts_per_token)
    per_token = 4 * arch.hidden_size + 3 * ffn // tp
    return batched_tokens * per_token * DTYPE_BYTES[dtype]


def sampler_peak_bytes(card: ModelCard, sequences: int) -> int:
    """The sampler warm-up's float32 logits and their working copies over `sequences` dummy requests (the full
    vocabulary on every rank: vLLM gathers the logits before sampling)."""
    return int(SAMPLER_LOGIT_BUFFERS * sequences * card.architecture.vocab_size * LOGIT_BYTES)


def activation_peak_bytes(
    batched_tokens: int,
    card: ModelCard | None = None,
    max_num_seqs: int | None = None,
    dtype: Dtype = "bfloat16",
    tp: int = 1,
) -> int:
    """vLLM's profiled activation peak ("torch peak memory increase") per rank: the larger of the forward pass
    over `batched_tokens` and the sampler warm-up over min(max_num_seqs, batched_tokens) requests. Without a
    card, the measured upper bound scaled to the batched tokens."""
    if card is None:
        return ACTIVATION_PEAK_BYTES * batched_tokens // ACTIVATION_PROFILE_TOKENS
    sequences = min(max_num_seqs or DEFAULT_MAX_NUM_SEQS_SMALL, batched_tokens)
    return max(forward_peak_bytes(card, batched_tokens, dtype, tp), sampler_peak_bytes(card, sequences))


def gpu_budget_bytes(group: NodeGroup, engine: EngineSettings) -> int:
    """What vLLM may use on one GPU of this group: gpu_memory_utilization × the total the CUDA runtime reports."""
    return int(group.accelerator.cuda_total_bytes * engine.gpu_memory_utilization)


def non_torch_bytes(gpus: int) -> int:
    """Memory outside torch per rank: more once ranks communicate."""
    return NON_TORCH_BYTES_SINGLE if gpus == 1 else NON_TORCH_BYTES_DISTRIBUTED


def capability(group: NodeGroup) -> tuple[int, int]:
    """The group's CUDA compute capability as a tuple."""
    major, minor = group.accelerator.compute_capability.split(".")
    return int(major), int(minor)


def valid_tensor_sizes(arch: Architecture, limit: int) -> tuple[int, ...]:
    """TP sizes vLLM accepts up to `limit`: they divide the query heads, and the key/value heads divide them
    or they divide the key/value heads (more ranks than KV heads replicate the heads). MLA has no KV heads."""
    sizes = []
    for tp in range(1, limit + 1):
        if arch.num_attention_heads % tp:
            continue
        kv = arch.kv_heads
        if not arch.is_mla and kv % tp and tp % kv:
            continue
        sizes.append(tp)
    return tuple(sizes)


def stage_layer_counts(num_layers: int, pp: int) -> tuple[int, ...]:
    """Layers per pipeline stage as vLLM splits them: evenly, the remainder going to the stages before the
    last one, counting backwards (the first and last stages already hold the embeddings and the head)."""
    base = num_layers // pp
    counts = [base] * pp
    for i in range(2, num_layers % pp + 2):
        counts[-i] += 1
    return tuple(counts)


@dataclass(frozen=True)
class ModelWeights:
    """A model's weights in one precision, cut the way pipeline stages and batch-dependent reads need."""

    card: ModelCard
    dtype: Dtype
    quant: FleetQuant | None
    layer_bytes: tuple[int, ...]
    """Each decoder layer's weights."""
    routed_bytes: tuple[int, ...]
    """Each layer's routed-expert weights (0 for dense layers): a decode step reads only the touched ones."""
    embed_bytes: int
    """Embeddings held by the first stage."""
    token_embed_bytes: int
    """The token embedding alone: a tied head needs its own copy on the last stage when pp > 1."""
    head_bytes: int
    """Final norm and output layer held by the last stage."""
    tied: bool
    active_params: int

    @cached_property
    def total_bytes(self) -> int:
        """All weights on one device."""
        return sum(self.layer_bytes) + self.embed_bytes + self.head_bytes

    @cached_property
    def _prefix(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        weights, routed = [0], [0]
        for w, r in zip(self.layer_bytes, self.routed_bytes, strict=True):
            weights.append(weights[-1] + w)
            routed.append(routed[-1] + r)
        return tuple(weights), tuple(routed)

    def stage_bytes(self, start: int, stop: int, first: bool, last: bool, pp: int) -> tuple[int, int]:
        """(all weights, routed-expert weights) of the layers [start, stop) plus the stage's ends."""
        weights, routed = self._prefix
        total = weights[stop] - weights[start]
        if first:
            total += self.embed_bytes
        if last:
            total += self.head_bytes
            if self.tied and pp > 1:
                total += self.token_embed_bytes
        return total, routed[stop] - routed[start]


def _block_bytes(
    block: Block, card: ModelCard, dtype: Dtype, quant: FleetQuant | None, routed: int
) -> tuple[int, int]:
    """(bytes, routed-expert bytes) of one block in this precision. A checkpoint's own FP8/MXFP4 format is
    sized by its real bytes, scales included (registry.memory.native_block_bytes)."""
    width = DTYPE_BYTES[dtype]
    if is_native(card, quant):
        size = block_weight_bytes(block, native_precision(card, dtype), card.architecture)
        if quant == "mxfp4":
            return size, -(-routed // 2) + -(-routed // MXFP4_BLOCK)
        return size, routed
    if quant == "fp8":
        # vLLM's online fp8 quantizes every Linear and the fused experts; the output layer stays 16-bit.
        return block.linear + routed + (block.other - routed) * width, routed
    if quant == "nf4":
        return block_weight_bytes(block, Precision(dtype, "nf4")), routed * width
    return block_weight_bytes(block, Precision(dtype)), routed * width


def model_weights(card: ModelCard, dtype: Dtype, quant: FleetQuant | None) -> ModelWeights:
    """The card's weights in this precision, per decoder layer and per stage end."""
    lay = layout(card)
    arch = card.architecture
    layers: list[int] = []
    routed: list[int] = []
    embed = token_embed = head = 0
    tied = False
    for block in lay.blocks:
        size, routed_size = _block_bytes(block, card, dtype, quant, routed_expert_params(block, arch))
        if block.role == "layer":
            layers.append(size)
            routed.append(routed_size)
        elif block.role == "embedding":
            if not embed:
                token_embed = size
            embed += size
        else:
            head += size
            tied = tied or block.tied_to is not None
    return ModelWeights(
        card=card,
        dtype=dtype,
        quant=quant,
        layer_bytes=tuple(layers),
        routed_bytes=tuple(routed),
        embed_bytes=embed,
        token_embed_bytes=token_embed,
        head_bytes=head,
        tied=tied,
        active_params=lay.active,
    )


def vllm_cache(shape: Shape, engine: EngineSettings) -> CacheLayout:
    """vLLM's paged KV cache for a replica of this shape: heads split over the TP ranks, blocks of
    `block_size` tokens."""
    return CacheLayout(tensor_parallel=shape.tp, block_tokens=engine.block_size, runtime="vllm")


def _replicated_kv_bytes_per_layer(arch: Architecture, tp: int, linear_bytes: float) -> int:
    """Extra key/value projection weights per rank and layer when TP exceeds the KV heads (replicated)."""
    if arch.is_mla or tp <= arch.kv_heads:
        return 0
    per_head = 2 * arch.hidden_size * arch.head_width
    return int(per_head * linear_bytes - per_head * arch.kv_heads * linear_bytes / tp)


@dataclass(frozen=True)
class Load:
    """The traffic shape sizing needs: context, prompt and output lengths, speed target."""

    context: int
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tokens_per_s_per_user: float | None = None

    @property
    def live_tokens(self) -> int:
        """Average tokens a running sequence holds: the prompt plus half the output, else half the context."""
        if self.prompt_tokens is not None and self.output_tokens is not None:
            return min(self.context, self.prompt_tokens + self.output_tokens // 2)
        return max(1, self.context // 2)

    @property
    def ttft_prompt(self) -> int:
        """Prompt length the time to first token is reported for (the whole context when unknown)."""
        return self.prompt_tokens if self.prompt_tokens is not None else self.context


@dataclass(frozen=True)
class _Stage:
    layers: tuple[int, ...]
    weights_per_rank: int
    routed_per_rank: int
    kv_token_bytes: int
    """Cache bytes per token on one rank of this stage, all its layers (no window caps)."""
    kv_sequence_bytes: int
    """Cache bytes one full-context sequence takes on one rank, in whole blocks, window caps applied."""
    kv_live_bytes: int
    """Cache bytes a decode step reads per running sequence (the average live length)."""


class ShapeDoesNotFitError(BerthError):
    """This replica shape cannot hold the model or is too slow (a reason, in words); the planner tries the next
    shape, so it reaches a user only inside a fleet plan's reasons."""


#: Per-card figures the shape search asks for again for every shape (KV prefix sums per layer, attention
#: FLOPs of a prompt), by (card identity, what else they depend on); bounded, cleared when full.
_MEMO: dict[tuple[object, ...], tuple[ModelCard, object]] = {}
_MEMO_MAX = 4096


def _memo(card: ModelCard, key: tuple[object, ...], compute: Callable[[], T]) -> T:
    full = (id(card), *key)
    found = _MEMO.get(full)
    if found is None or found[0] is not card:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        found = (card, compute())
        _MEMO[full] = found
    return cast(T, found[1])


def _kv_prefix(card: ModelCard, tokens: int, dtype: Dtype, cache: CacheLayout) -> tuple[int, ...]:
    """Prefix sums of kv_cache_bytes_per_layer: entry i is the first i layers' bytes."""

    def compute() -> tuple[int, ...]:
        sums = [0]
        for value in kv_cache_bytes_per_layer(card, tokens, dtype=dtype, cache=cache):
            sums.append(sums[-1] + value)
        return tuple(sums)

    return _memo(card, ("kv", tokens, dtype, cache), compute)


def sequence_kv_bytes(card: ModelCard, context: int, dtype: Dtype, block_tokens: int) -> int:
    """KV cache of one full-context sequence over all layers, heads unsplit (no replicated heads): the least
    a replica of any shape spends on it."""
    return _kv_prefix(card, context, dtype, CacheLayout(tensor_parallel=1, block_tokens=block_tokens))[-1]


def _attention_flops(card: ModelCard, prompt: int) -> int:
    """Causal attention FLOPs of one prompt over all layers (sliding windows keep fewer tokens)."""
    arch = card.architecture

    def compute() -> int:
        return sum(
            2 * prompt * kept_tokens(arch, i, prompt) * arch.num_attention_heads * arch.head_width
            for i in range(arch.num_layers)
        )

    return _memo(card, ("attention", prompt), compute)


def _stages(weights: ModelWeights, shape: Shape, load: Load, cache: CacheLayout) -> list[_Stage]:
    """Each pipeline stage's weights and KV cache per rank. The cache a sequence is allotted is counted in
    whole blocks; a decode step reads only the tokens a sequence holds."""
    card = weights.card
    arch = card.architecture
    per_layer = kv_bytes_per_token_per_layer(arch, weights.dtype, cache)
    allotted = _kv_prefix(card, load.context, weights.dtype, cache)
    held = _kv_prefix(card, load.live_tokens, weights.dtype, replace(cache, block_tokens=1))
    replicated = _replicated_kv_bytes_per_layer(
        arch, shape.tp, quant_bytes_per_linear_weight(weights.quant, weights.dtype)
    )
    stages = []
    start = 0
    counts = stage_layer_counts(arch.num_layers, shape.pp)
    for index, count in enumerate(counts):
        stop = start + count
        total, routed = weights.stage_bytes(start, stop, index == 0, index == shape.pp - 1, shape.pp)
        stages.append(
            _Stage(
                layers=tuple(range(start, stop)),
                weights_per_rank=-(-total // shape.tp) + replicated * count,
                routed_per_rank=routed // shape.tp,
                kv_token_bytes=per_layer * count,
                kv_sequence_bytes=allotted[stop] - allotted[start],
                kv_live_bytes=held[stop] - held[start],
            )
        )
        start = stop
    return stages


def _expert_share(arch: Architecture, tokens: int) -> float:
    """Share of routed experts a step of `tokens` tokens touches: 1 − (1 − k/E)^tokens."""
    if not arch.num_experts or not arch.experts_per_token:
        return 1.0
    return 1.0 - (1.0 - arch.experts_per_token / arch.num_experts) ** tokens


def decode_rate(
    weights: ModelWeights, stages: tuple[_Stage, ...], shape: Shape, group: NodeGroup, batch: int
) -> float:
    """Tokens per second each of `batch` sequences sees. A step reads every rank's weights (MoE: the experts
    the batch touches) and every running sequence's cache at its live length; pipeline stages work on
    pp micro-batches in turn, so a sequence advances once per pp stage-steps of the slowest stage."""
    arch = weights.card.architecture
    micro = -(-batch // shape.pp)
    share = _expert_share(arch, micro)
    bandwidth = group.accelerator.bandwidth_bytes_per_s
    slowest = 0.0
    for stage in stages:
        read = stage.weights_per_rank - stage.routed_per_rank * (1.0 - share) + micro * stage.kv_live_bytes
        slowest = max(slowest, read_seconds(read, bandwidth, VLLM_BATCHED.gpu_decode))
    return 1.0 / (shape.pp * slowest)


def _link_bandwidth(group: NodeGroup) -> int:
    acc = group.accelerator
    if group.nvlink:
        return acc.interconnect_bytes_per_s or DEFAULT_NVLINK_BYTES_PER_S
    return DEFAULT_PCIE_BANDWIDTH


def time_to_first_token(
    weights: ModelWeights, shape: Shape, group: NodeGroup, prompt: int, network_bytes_per_s: int | None
) -> float:
    """Seconds to prefill one prompt: matmul FLOPs (2 × active parameters per token) and causal attention
    at vLLM's prefill efficiency of the TP group's peak, plus TP all-reduces over the node's links and the hidden
    states handed between pipeline stages (over the network where stages sit on different nodes)."""
    compute, allreduce, hops = _prefill_parts(weights, shape, group, prompt, network_bytes_per_s)
    return compute + allreduce + hops


def prefill_tokens_per_s(
    weights: ModelWeights,
    stages: tuple[_Stage, ...],
    shape: Shape,
    group: NodeGroup,
    prompt: int,
    batched: int,
) -> float:
    """Prompt tokens per second one replica prefills when prompts keep arriving (chunked prefill): each
    engine step takes a chunk of at most `batched` tokens; a chunk costs its share of the same compute and
    all-reduces as the time to first token, and never less than one read of the stage's weights; pipeline
    stages work on different chunks at once, so a replica prefills pp chunks per stage time."""
    compute, allreduce, _ = _prefill_parts(weights, shape, group, prompt, None)
    chunks = -(-prompt // max(1, min(batched, prompt)))
    bandwidth = group.accelerator.bandwidth_bytes_per_s
    floor = max(read_seconds(s.weights_per_rank, bandwidth, VLLM_BATCHED.gpu_decode) for s in stages)
    seconds = max((compute + allreduce) / shape.pp, chunks * floor)
    return prompt / seconds


def _prefill_parts(
    weights: ModelWeights, shape: Shape, group: NodeGroup, prompt: int, network_bytes_per_s: int | None
) -> tuple[float, float, float]:
    """(compute, TP all-reduce, pipeline hand-off) seconds of one prompt's prefill."""
    card = weights.card
    arch = card.architecture
    width = DTYPE_BYTES[weights.dtype]
    flops = 2 * weights.active_params * prompt + _attention_flops(card, prompt)
    peak = group.accelerator.bf16_tflops * 1e12
    compute = compute_seconds(flops, peak, VLLM_BATCHED.gpu_prefill, devices=shape.tp)
    hidden_bytes = prompt * arch.hidden_size * width
    allreduce = 0.0
    if shape.tp > 1:
        ring = 2 * (shape.tp - 1) / shape.tp
        allreduce = arch.num_layers * 2 * ring * hidden_bytes / _link_bandwidth(group)
    hops = 0.0
    if shape.pp > 1:
        cross = min(shape.pp - 1, max(0, -(-shape.gpus // group.gpus_per_node) - 1))
        network = network_bytes_per_s or DEFAULT_NETWORK_BYTES_PER_S
        hops = cross * hidden_bytes / network + (shape.pp - 1 - cross) * hidden_bytes / _link_bandwidth(group)
    return compute, allreduce, hops


@dataclass(frozen=True)
class Sizing:
    """A replica's memory and speed: the estimate, and what later speed questions need."""

    estimate: ReplicaEstimate
    stages: tuple[_Stage, ...]
    weights: ModelWeights
    group: NodeGroup

    def rate_at(self, batch: int) -> float:
        """Per-sequence decode tokens/s at this batch."""
        return decode_rate(self.weights, self.stages, self.estimate.shape, self.group, batch)


@dataclass(frozen=True)
class _Memory:
    """Per-rank memory of a replica before its KV cache: vLLM's budget and what comes off it."""

    budget: int
    activation: int
    other: int
    heaviest: int
    """Weights of the heaviest stage's rank."""
    rooms: tuple[int, ...]
    """What each stage's ranks have left for KV cache."""


def _memory(
    weights: ModelWeights,
    shape: Shape,
    group: NodeGroup,
    engine: EngineSettings,
    batched: int,
    stages: tuple[_Stage, ...],
) -> _Memory:
    """vLLM's budget per rank less weights, the profiled activation peak and non-torch memory; raises
    ShapeDoesNotFitError when the tightest rank has nothing left for the cache."""
    acc = group.accelerator
    budget = gpu_budget_bytes(group, engine)
    seqs = engine.max_num_seqs or default_max_num_seqs(group)
    activation = activation_peak_bytes(batched, weights.card, seqs, weights.dtype, shape.tp)
    other = non_torch_bytes(shape.gpus)
    heaviest = max(s.weights_per_rank for s in stages)
    rooms = tuple(budget - s.weights_per_rank - activation - other for s in stages)
    if min(rooms) <= 0:
        raise ShapeDoesNotFitError(
            f"{shape.label}: weights {gib(heaviest)} + activations {gib(activation)} + "
            f"{gib(other)} non-torch per GPU exceed the {gib(budget)} vLLM may use "
            f"({engine.gpu_memory_utilization:g} of {gib(acc.cuda_total_bytes)})"
        )
    return _Memory(budget, activation, other, heaviest, rooms)


def _batch_for_target(
    weights: ModelWeights, stages: tuple[_Stage, ...], shape: Shape, group: NodeGroup, cap: int, load: Load
) -> int:
    """The largest batch up to `cap` at which each sequence still decodes at the load's speed target (`cap`
    without one); raises ShapeDoesNotFitError when even one sequence alone is too slow."""
    target = load.tokens_per_s_per_user
    if target is None:
        return cap
    single = decode_rate(weights, stages, shape, group, 1)
    if single < target:
        raise ShapeDoesNotFitError(
            f"{shape.label}: {single:.1f} tokens/s per user at batch 1, below the {target:g} target"
        )
    low, high = 1, cap
    while low < high:
        mid = (low + high + 1) // 2
        if decode_rate(weights, stages, shape, group, mid) >= target:
            low = mid
        else:
            high = mid - 1
    return low


def size_replica(
    weights: ModelWeights,
    shape: Shape,
    group: NodeGroup,
    load: Load,
    engine: EngineSettings,
    network_bytes_per_s: int | None = None,
) -> Sizing:
    """One replica of this shape on this group, its batch chosen by the cache, the speed target and
    max_num_seqs; raises ShapeDoesNotFitError with the reason when the shape cannot hold the model or is too slow."""
    batched = engine.max_num_batched_tokens or default_batched_tokens(group)
    stages = tuple(_stages(weights, shape, load, vllm_cache(shape, engine)))
    memory = _memory(weights, shape, group, engine, batched, stages)
    block = engine.block_size
    pairs = list(zip(memory.rooms, stages, strict=True))
    tokens = min(r // (s.kv_token_bytes * block) for r, s in pairs) * block
    sequences = min(r // s.kv_sequence_bytes for r, s in pairs)
    if sequences < 1:
        raise ShapeDoesNotFitError(
            f"{shape.label}: the KV cache ({gib(min(memory.rooms))} per GPU) holds no "
            f"{load.context:,}-token sequence"
        )
    cap = min(sequences, engine.max_num_seqs or default_max_num_seqs(group), batched)
    batch = _batch_for_target(weights, stages, shape, group, cap, load)
    rate = decode_rate(weights, stages, shape, group, batch)
    estimate = ReplicaEstimate(
        group=group.name,
        accelerator=group.accelerator.id,
        shape=shape,
        dtype=weights.dtype,
        quantization=weights.quant,
        context=load.context,
        weights_bytes_per_rank=memory.heaviest,
        activation_bytes_per_rank=memory.activation,
        non_torch_bytes_per_rank=memory.other,
        kv_cache_bytes_per_rank=min(memory.rooms),
        kv_cache_tokens=tokens,
        max_concurrent_sequences=sequences,
        batch=batch,
        decode_tokens_per_s_per_user=rate,
        decode_tokens_per_s=rate * batch,
        ttft_s=time_to_first_token(weights, shape, group, load.ttft_prompt, network_bytes_per_s),
        ttft_prompt_tokens=load.ttft_prompt,
        max_num_batched_tokens=batched,
        prefill_tokens_per_s=prefill_tokens_per_s(weights, stages, shape, group, load.ttft_prompt, batched),
    )
    return Sizing(estimate=estimate, stages=stages, weights=weights, group=group)
