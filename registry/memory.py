"""Memory a model needs, in int bytes: weights by dtype/quantization, KV cache, activations and runtime floor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from registry.layers import attention_layers, layer_kind, recurrent_state_bytes
from registry.layers import kept_tokens as layer_kept_tokens
from registry.params import Block, Layout, layout
from registry.schema import Architecture, Dtype, ModelCard, NativeQuant

Quant = Literal["int8", "nf4", "fp4"]
DeviceKind = Literal["cuda", "rocm", "mps", "cpu"]

DTYPE_BYTES: dict[str, int] = {"float32": 4, "bfloat16": 2, "float16": 2}

#: LLM.int8 keeps one float32 scale (SCB) per output row of every quantized Linear.
INT8_ROW_SCALE_BYTES = 4
#: 4-bit (nf4/fp4) packs two weights per byte.
FOUR_BIT_BYTES_PER_WEIGHT = 0.5
#: bitsandbytes 4-bit block size: one absmax per 64 weights.
FOUR_BIT_BLOCK = 64
#: With double quantization (Berth's default) each absmax is one byte, plus a float32 per 256 absmax values.
FOUR_BIT_NESTED_BLOCK = 256

#: CUDA context, cuBLAS workspace and the framework's own tensors on a GPU before any weight (measured
#: 0.4–0.6 GiB on H100/A100 by vLLM and others; see reference/accelerators.md).
CUDA_RUNTIME_BYTES = 512 * 2**20
#: ROCm's runtime floor is similar to CUDA's.
ROCM_RUNTIME_BYTES = 512 * 2**20
#: Metal keeps little per process beyond the weights.
MPS_RUNTIME_BYTES = 256 * 2**20
#: Resident memory of a Python process running transformers on the CPU before any weight: 249 MiB RSS right
#: after importing torch 2.13 + transformers 5.24 on this project's CI machine, plus tokenizer, thread pools
#: and oneDNN scratch during generation.
CPU_RUNTIME_BYTES = 384 * 2**20
#: Resident growth of a CPU prefill against the live tensors `activation_bytes` counts: rotary copies, GQA's
#: repeated keys/values, float32 norm upcasts and glibc keeping freed blocks. Measured with SmolLM2-135M on this
#: project's CI machine (torch 2.13, transformers 5.24): 1.9–2.4x at 512–4096 tokens, fp32 and bf16.
CPU_ACTIVATION_FACTOR = 2.0
#: FP8 (e4m3) stores one byte per weight, plus one float32 scale per block x block tile (block-quantized
#: checkpoints: DeepSeek-V3 "weight_block_size": [128, 128], its weight_scale_inv tensors) or per output row
#: (per-channel checkpoints without a block size).
FP8_BYTES_PER_WEIGHT = 1
FP8_SCALE_BYTES = 4
#: OCP MXFP4 (gpt-oss): two 4-bit values per byte and one E8M0 scale byte per 32 values; only the routed
#: experts are stored so ("quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert":
#: ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}).
MXFP4_BLOCK = 32
#: Compute capability from which transformers runs these formats natively; below it, it dequantizes the
#: checkpoint to bf16 while loading: FP8 needs Ada/Hopper (8.9) for its e4m3 matmuls (FineGrainedFP8),
#: MXFP4 Hopper (9.0) for the triton kernels gpt-oss uses.
NATIVE_MIN_CAPABILITY: dict[str, tuple[int, int]] = {"fp8": (8, 9), "mxfp4": (9, 0)}
#: Caching-allocator fragmentation and temporary copies while loading, as a share of weights + cache.
ALLOCATOR_SLACK = 0.02

RUNTIME_BYTES: dict[str, int] = {
    "cuda": CUDA_RUNTIME_BYTES,
    "rocm": ROCM_RUNTIME_BYTES,
    "mps": MPS_RUNTIME_BYTES,
    "cpu": CPU_RUNTIME_BYTES,
}


@dataclass(frozen=True)
class Precision:
    """How weights are stored: a dtype, optionally with bitsandbytes quantization of the Linear layers, or the
    checkpoint's own low-precision format kept as published (FP8, MXFP4)."""

    dtype: Dtype
    """dtype of everything that is not quantized (and of compute)."""
    quant: Quant | None = None
    """bitsandbytes quantization of nn.Linear weights, if any."""
    native: NativeQuant | None = None
    """The checkpoint's own format, loaded as published (no bitsandbytes), if any."""
    native_block: int | None = None
    """FP8 tile size of that format (None: one scale per output row)."""

    @property
    def label(self) -> str:
        """Short display name: bf16, fp32, int8, nf4, fp8, mxfp4."""
        if self.quant:
            return self.quant
        if self.native:
            return self.native
        return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[self.dtype]


def native_precision(card: ModelCard, dtype: Dtype) -> Precision:
    """The card's weights as published: its native low-precision format where it has one, else `dtype`."""
    return Precision(dtype, native=card.native_quant, native_block=card.native_quant_block)


def runs_native(fmt: NativeQuant, capability: tuple[int, int], vendor: str = "nvidia") -> bool:
    """Whether transformers keeps this format as published on a GPU of this compute capability (else it
    dequantizes to bf16). ROCm's gfx942 (MI300, reported as 9.4) has FP8 units and runs FP8 checkpoints."""
    if vendor == "amd":
        return fmt == "fp8" and capability >= (9, 4)
    return capability >= NATIVE_MIN_CAPABILITY[fmt]


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory for one model instance at a context length and batch, in bytes."""

    weights: int
    kv_cache: int
    activations: int
    overhead: int

    @property
    def total(self) -> int:
        """Everything together."""
        return self.weights + self.kv_cache + self.activations + self.overhead


# --------------------------------------------------------------------------- weights


def routed_expert_params(block: Block, arch: Architecture) -> int:
    """Parameters of a layer's routed experts (fused expert tensors, counted in `other`): the inactive share
    scaled back up to all experts."""
    inactive = block.total - block.active
    if not inactive or not arch.num_experts or not arch.experts_per_token:
        return 0
    return inactive * arch.num_experts // (arch.num_experts - arch.experts_per_token)


def native_block_bytes(block: Block, precision: Precision, arch: Architecture) -> int:
    """Bytes one block takes in the checkpoint's native format: decoder layers only (embeddings, norms and the
    output layer stay in dtype); FP8 covers every Linear and the routed experts, MXFP4 the routed experts."""
    dense = DTYPE_BYTES[precision.dtype]
    if block.role != "layer":
        return block.total * dense
    routed = routed_expert_params(block, arch)
    if precision.native == "mxfp4":
        packed = -(-routed // 2) + -(-routed // MXFP4_BLOCK)
        return packed + (block.total - routed) * dense
    quantized = block.linear + routed
    tile = precision.native_block
    scales = -(-quantized // (tile * tile)) if tile else block.linear_rows
    return quantized * FP8_BYTES_PER_WEIGHT + scales * FP8_SCALE_BYTES + (block.total - quantized) * dense


def block_weight_bytes(block: Block, precision: Precision, arch: Architecture | None = None) -> int:
    """Bytes one block's weights take in this precision (`arch` is needed for native MoE formats)."""
    dense = DTYPE_BYTES[precision.dtype]
    if precision.native is not None and arch is not None:
        return native_block_bytes(block, precision, arch)
    if precision.quant is None:
        return block.total * dense
    other = block.other * dense
    if precision.quant == "int8":
        return block.linear + block.linear_rows * INT8_ROW_SCALE_BYTES + other
    packed = -(-block.linear // 2)
    absmax = -(-block.linear // FOUR_BIT_BLOCK)
    nested = -(-absmax // FOUR_BIT_NESTED_BLOCK) * 4
    return packed + absmax + nested + other


def weight_bytes(card: ModelCard, precision: Precision, lay: Layout | None = None) -> int:
    """Bytes of all weights in this precision."""
    lay = lay or layout(card)
    return sum(block_weight_bytes(b, precision, card.architecture) for b in lay.blocks)


def active_weight_bytes(card: ModelCard, precision: Precision, lay: Layout | None = None) -> int:
    """Bytes read per generated token (MoE reads only the routed experts; estimate by the active share)."""
    lay = lay or layout(card)
    total = 0
    for block in lay.blocks:
        full = block_weight_bytes(block, precision, card.architecture)
        total += full if block.total == 0 else full * block.active // block.total
    return total


# --------------------------------------------------------------------------- KV cache


def kept_tokens(arch: Architecture, layer: int, tokens: int, trim: int = 0) -> int:
    """Tokens one layer keeps in its cache for a sequence of `tokens`: a sliding-window layer keeps at most
    the window (less `trim`: transformers keeps window - 1), a chunked layer one chunk, a linear-attention layer
    none; with global_attention_every, every Nth layer (1-based) attends to everything (registry.layers)."""
    return layer_kept_tokens(arch, layer, tokens, trim)


@dataclass(frozen=True)
class CacheLayout:
    """How a runtime lays out a KV cache: over how many ranks the heads are split, in what size of pages, and
    the runtime's own habits (transformers' per-family quirks)."""

    tensor_parallel: int = 1
    """Ranks the attention heads are split over: each caches its share of the KV heads, at least one (vLLM
    replicates heads when TP exceeds them); MLA's compressed latent is cached whole on every rank."""
    block_tokens: int = 1
    """Tokens per cache page: vLLM allocates whole blocks of `block_size` tokens; transformers' DynamicCache
    grows by the token (1)."""
    runtime: Literal["transformers", "vllm"] = "transformers"
    """Whose cache: transformers (DynamicCache, its per-family layouts) or vLLM (paged, KV heads only)."""


#: transformers' DynamicCache on one device: every head, grown token by token.
TRANSFORMERS_CACHE = CacheLayout()
#: transformers' sliding-window cache layers keep the last `sliding_window - 1` tokens (the token being
#: computed makes the window): measured with transformers 5.24 on tiny Mistral, Starcoder2, Gemma-2 and Gemma-3
#: models (tests/test_transformers_layout.py).
TRANSFORMERS_WINDOW_TRIM = 1


def expands_kv_heads(arch: Architecture, cache: CacheLayout) -> bool:
    """Whether the runtime caches keys and values after repeating them to every query head: transformers'
    Falcon with new_decoder_architecture (Falcon-40B/180B) does (FalconAttention expands its grouped K/V
    before `cache.update`), 59,392 bytes per layer per token in bf16 for Falcon-180B instead of 2,048."""
    return cache.runtime == "transformers" and bool(arch.config_extras.get("new_decoder_architecture"))


def kv_bytes_per_token_per_layer(
    arch: Architecture, dtype: Dtype, cache: CacheLayout = TRANSFORMERS_CACHE
) -> int:
    """Bytes one token adds to one layer's cache on one rank (MLA caches its compressed latent, not per-head
    K/V, and replicates it on every rank)."""
    width = DTYPE_BYTES[dtype]
    if arch.is_mla:
        assert arch.kv_lora_rank and arch.qk_rope_head_dim
        return (arch.kv_lora_rank + arch.qk_rope_head_dim) * width
    cached = arch.num_attention_heads if expands_kv_heads(arch, cache) else arch.kv_heads
    heads = max(1, cached // cache.tensor_parallel)
    return 2 * heads * arch.head_width * width


def kv_cache_bytes_per_layer(
    card: ModelCard,
    tokens: int,
    batch: int = 1,
    dtype: Dtype = "bfloat16",
    cache: CacheLayout = TRANSFORMERS_CACHE,
) -> list[int]:
    """Each layer's cache on one rank for `tokens` tokens per sequence, in whole pages of the runtime's
    layout: sliding-window layers keep at most the window; an encoder (fill-mask) caches nothing."""
    arch = card.architecture
    if card.task == "fill-mask":
        return [0] * arch.num_layers
    per_token = kv_bytes_per_token_per_layer(arch, dtype, cache) * batch
    page = cache.block_tokens
    trim = TRANSFORMERS_WINDOW_TRIM if cache.runtime == "transformers" else 0
    state = recurrent_state_bytes(arch, DTYPE_BYTES[dtype]) * batch  # linear layers: fixed size
    return [
        state
        if layer_kind(arch, layer) == "linear"
        else -(-kept_tokens(arch, layer, tokens, trim) // page) * page * per_token
        for layer in range(arch.num_layers)
    ]


def kv_cache_bytes(
    card: ModelCard,
    tokens: int,
    batch: int = 1,
    dtype: Dtype = "bfloat16",
    cache: CacheLayout = TRANSFORMERS_CACHE,
) -> int:
    """Cache for `tokens` tokens per sequence over all layers (on one rank of the layout)."""
    return sum(kv_cache_bytes_per_layer(card, tokens, batch, dtype, cache))


def kv_bytes_per_token(card: ModelCard, dtype: Dtype = "bfloat16") -> int:
    """Bytes one more token of context costs across all layers in transformers' layout, ignoring window caps
    (the worst case; linear-attention layers keep a fixed state instead)."""
    return kv_bytes_per_token_per_layer(card.architecture, dtype) * attention_layers(card.architecture)


# --------------------------------------------------------------------------- activations

#: Families whose transformers implementation has only eager attention (no SDPA: MPT's hand-written
#: attention; Gemma-2, "sdpa does not support softcapping"), with the bytes each element of one layer's
#: [batch, heads, query, key] score matrix costs at the peak at 16-bit (the scores, their biased/masked/
#: soft-capped copies and the float32 softmax input and output). Measured on this CPU with transformers 5.24,
#: torch 2.13: the growth of the forward's peak allocation from 512 to 1,024 tokens divided by the growth of
#: the score matrix (tests/test_transformers_layout.py repeats the measurement).
EAGER_SCORE_BYTES: dict[str, float] = {"mpt": 12.3, "gemma2": 10.7}
#: Score-matrix copies kept in the compute dtype at the peak: in float32 each costs 2 bytes more.
EAGER_DTYPE_COPIES = 3


def eager_attention_bytes(card: ModelCard, context: int, batch: int = 1, dtype: Dtype = "bfloat16") -> int:
    """Peak of one layer's eager attention over a `context`-token prefill: the full score matrix and its
    copies (0 for families that run SDPA, which never materialises it)."""
    per_element = EAGER_SCORE_BYTES.get(card.model_type)
    if per_element is None:
        return 0
    per_element += (DTYPE_BYTES[dtype] - 2) * EAGER_DTYPE_COPIES
    return int(batch * card.architecture.num_attention_heads * context * context * per_element)


def activation_bytes(
    card: ModelCard, context: int, batch: int = 1, dtype: Dtype = "bfloat16", device: DeviceKind = "cuda"
) -> int:
    """Peak transient memory of one prefill over `context` tokens: SDPA attention (no T² score matrix) except
    for the families transformers runs eagerly (EAGER_SCORE_BYTES), whose score matrix adds its peak.

    Per layer the live tensors are the residual stream and its normed copy, q/k/v and the attention output
    (about 4 × hidden), and the feed-forward's gate, up and activated tensors (3 × its width). Generation
    computes logits for the last position only (float32). On the CPU about twice that stays resident
    (CPU_ACTIVATION_FACTOR).
    """
    arch = card.architecture
    width = DTYPE_BYTES[dtype]
    ffn = arch.intermediate_size or 4 * arch.hidden_size
    if arch.is_moe and arch.moe_intermediate_size and arch.experts_per_token:
        ffn = max(ffn if arch.first_dense_layers else 0, arch.moe_intermediate_size * arch.experts_per_token)
    per_token = (4 * arch.hidden_size + 3 * ffn) * width
    if device == "cpu":
        per_token = int(per_token * CPU_ACTIVATION_FACTOR)
    logits = batch * arch.vocab_size * 4
    return batch * context * per_token + logits + eager_attention_bytes(card, context, batch, dtype)


# --------------------------------------------------------------------------- together


def runtime_bytes(device: DeviceKind) -> int:
    """The floor a process pays on a device before any weight."""
    return RUNTIME_BYTES[device]


def estimate_memory(
    card: ModelCard,
    precision: Precision,
    context: int,
    batch: int = 1,
    device: DeviceKind = "cuda",
    lay: Layout | None = None,
) -> MemoryEstimate:
    """Memory to run the model on one device at this context and batch."""
    weights = weight_bytes(card, precision, lay)
    cache = kv_cache_bytes(card, context, batch, precision.dtype)
    acts = activation_bytes(card, context, batch, precision.dtype, device)
    overhead = runtime_bytes(device) + int((weights + cache) * ALLOCATOR_SLACK)
    return MemoryEstimate(weights=weights, kv_cache=cache, activations=acts, overhead=overhead)


#: The precisions worth showing for any card: fp32, bf16, fp16, int8, nf4 (bf16 compute).
SHOWN_PRECISIONS: tuple[Precision, ...] = (
    Precision("float32"),
    Precision("bfloat16"),
    Precision("float16"),
    Precision("bfloat16", "int8"),
    Precision("bfloat16", "nf4"),
)
