"""Pydantic models of catalog.yaml: models, their architecture fields, and accelerators."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, model_validator
from pydantic import Strict as StrictValue

from registry.errors import short_repr

Task = Literal["chat", "completion", "fill-mask"]
Dtype = Literal["float32", "bfloat16", "float16"]
WeightFormat = Literal["safetensors", "pickle", "gguf"]
ParamsSource = Literal["hub-safetensors", "model-card", "paper", "computed"]
#: Low-precision formats a checkpoint can be published in: FP8 e4m3 with block scales (DeepSeek-V3, Qwen3-FP8,
#: Llama-3.1-405B-FP8) and OCP MXFP4 (gpt-oss's expert weights).
NativeQuant = Literal["fp8", "mxfp4"]

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmMgGtT]?)(i?)[bB]?\s*$")
_UNIT_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}

#: Largest size any field may state (1 PB): anything above is a typo, not a machine.
MAX_BYTES = 10**15


def parse_bytes(value: object) -> object:
    """Turn '80GB', '79.2GiB' or 24_000_000_000 into int bytes; leave anything else for pydantic to reject."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and len(value) <= 100:
        match = _SIZE.match(value)
        if match:
            number, prefix, binary = match.groups()
            base = 1024 if binary else 1000
            size = float(number) * base ** _UNIT_POWER[prefix.lower()]
            if not math.isfinite(size) or size > MAX_BYTES:
                raise ValueError(f"'{value.strip()[:40]}' is more than 1 PB, larger than any machine")
            return round(size)
    return value


Bytes = Annotated[int, BeforeValidator(parse_bytes), Field(ge=0, le=MAX_BYTES)]
#: Bytes per second (memory or link bandwidth), at most 1 PB/s.
Rate = Annotated[int, BeforeValidator(parse_bytes), Field(gt=0, le=MAX_BYTES)]
PositiveInt = Annotated[int, Field(gt=0)]
#: Longest context a model card may declare: 2**24 tokens, above Llama 4 Scout's 10,485,760 (10M) positions.
MAX_CONTEXT = 2**24
#: Largest config.json integer kept verbatim: what a float holds exactly, so arithmetic on it cannot overflow.
MAX_EXTRA_INT = 2**53


def check_extra_value(value: object) -> object:
    """A config.json value kept verbatim: a bounded integer, a finite float, a bool, short text or None."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if abs(value) > MAX_EXTRA_INT:
            raise ValueError(f"integer beyond ±2**53 (got {short_repr(value)})")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number (got {value})")
        return value
    if isinstance(value, str):
        if len(value) > 2000:
            raise ValueError("text longer than 2,000 characters")
        return value
    raise ValueError(f"must be a number, true/false, text or null (got {short_repr(value)})")


ExtraValue = Annotated[int | float | bool | str | None, PlainValidator(check_extra_value)]
#: Short names (ids, aliases, family, licence) and free text (description, source, notes).
Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=2000)]


class Strict(BaseModel):
    """Base: unknown keys are errors and values are never silently coerced to another meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


class Architecture(Strict):
    """The config.json fields that parameter count and memory depend on (names follow Llama's config)."""

    num_layers: Annotated[int, Field(gt=0, le=1000)]
    """Transformer blocks (num_hidden_layers / n_layer / n_layers)."""
    hidden_size: Annotated[int, Field(gt=0, le=131072)]
    """Model width (hidden_size / n_embd / d_model)."""
    intermediate_size: Annotated[int, Field(gt=0, le=1048576)] | None = None
    """Feed-forward width of a dense block (n_inner / ffn_hidden_size); None where the family derives it."""
    num_attention_heads: Annotated[int, Field(gt=0, le=4096)]
    """Query heads."""
    num_key_value_heads: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Key/value heads: equal to num_attention_heads for multi-head, 1 for multi-query, fewer for GQA."""
    head_dim: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Explicit per-head width where it is not hidden_size / num_attention_heads (Gemma: 256)."""
    vocab_size: Annotated[int, Field(gt=0, le=10_000_000)]
    """Rows of the token embedding."""
    tie_word_embeddings: bool
    """Whether the output layer shares the input embedding's weights."""
    attention_bias: bool | None = None
    """Bias on the q/k/v projections; None means the family's default."""
    mlp_bias: bool | None = None
    """Bias on the feed-forward projections; None means the family's default."""
    sliding_window: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    """Tokens a sliding-window attention layer keeps in its cache; None for full attention everywhere."""
    global_attention_every: Annotated[int, Field(gt=0, le=1000)] | None = None
    """With a sliding window or chunked attention: every Nth layer (1-based) attends globally (Gemma 2: 2,
    Gemma 3: 6, gpt-oss: 2, Llama 4: 4); None means every layer slides (or is chunked)."""
    # Layer patterns beyond sliding windows (issue 13)
    attention_chunk_size: Annotated[int, Field(gt=0, le=100_000_000)] | None = None
    """Chunked local attention (Llama 4): a chunked layer attends within its chunk of this many tokens, so it
    keeps at most that many in its cache; global_attention_every says which layers attend to everything."""
    full_attention_interval: Annotated[int, Field(gt=0, le=1000)] | None = None
    """Hybrid linear attention (Qwen3-Next): every Nth layer (1-based) is full attention with a KV cache; the
    others are linear-attention (Gated DeltaNet) layers that keep a fixed recurrent state, whatever the length."""
    linear_num_key_heads: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Key heads of a linear-attention layer."""
    linear_num_value_heads: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Value heads of a linear-attention layer (one recurrent state matrix each)."""
    linear_key_head_dim: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Per-head key width of a linear-attention layer."""
    linear_value_head_dim: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Per-head value width of a linear-attention layer."""
    linear_conv_kernel_dim: Annotated[int, Field(gt=0, le=64)] | None = None
    """Width of the short causal convolution before a linear-attention layer (its state keeps that many
    steps)."""
    # Mixture of experts
    num_experts: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Routed experts per MoE layer."""
    experts_per_token: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Routed experts each token uses."""
    moe_intermediate_size: Annotated[int, Field(gt=0, le=1048576)] | None = None
    """Feed-forward width of one routed expert where it differs from intermediate_size."""
    num_shared_experts: Annotated[int, Field(ge=0, le=4096)] | None = None
    """Always-on experts per MoE layer (DeepSeek)."""
    first_dense_layers: Annotated[int, Field(ge=0, le=1000)] | None = None
    """Leading layers that use a dense feed-forward instead of experts (first_k_dense_replace)."""
    # Multi-head latent attention (DeepSeek-V2/V3)
    q_lora_rank: Annotated[int, Field(gt=0, le=131072)] | None = None
    """Rank of the low-rank query projection (MLA)."""
    kv_lora_rank: Annotated[int, Field(gt=0, le=131072)] | None = None
    """Width of the compressed key/value latent that MLA caches."""
    qk_nope_head_dim: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Per-head query/key width without rotary position (MLA)."""
    qk_rope_head_dim: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Per-head query/key width that carries rotary position (MLA); cached once per token."""
    v_head_dim: Annotated[int, Field(gt=0, le=4096)] | None = None
    """Per-head value width (MLA)."""
    config_extras: dict[Name, ExtraValue] = Field(default_factory=dict)
    """Other config.json keys, verbatim, needed to rebuild the exact architecture in transformers."""

    @property
    def kv_heads(self) -> int:
        """Key/value heads, defaulting to multi-head attention."""
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_width(self) -> int:
        """Per-head width: the explicit head_dim, else hidden_size / num_attention_heads."""
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def is_moe(self) -> bool:
        """Whether feed-forward blocks are routed experts."""
        return bool(self.num_experts)

    @property
    def is_mla(self) -> bool:
        """Whether attention is multi-head latent attention (caches a compressed latent)."""
        return self.kv_lora_rank is not None

    @model_validator(mode="after")
    def _consistent(self) -> Architecture:
        if self.head_dim is None and not self.is_mla and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) does not divide hidden_size "
                f"({self.hidden_size}); give head_dim explicitly if the model really uses uneven heads"
            )
        if self.num_attention_heads % self.kv_heads:
            raise ValueError(
                f"num_key_value_heads ({self.kv_heads}) does not divide num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.kv_heads > self.num_attention_heads:
            raise ValueError("num_key_value_heads is larger than num_attention_heads")
        if (self.num_experts is None) != (self.experts_per_token is None):
            raise ValueError("num_experts and experts_per_token go together")
        if self.num_experts and self.experts_per_token and self.experts_per_token > self.num_experts:
            raise ValueError("experts_per_token is larger than num_experts")
        mla = (self.kv_lora_rank, self.qk_nope_head_dim, self.qk_rope_head_dim, self.v_head_dim)
        if any(v is not None for v in mla) and any(v is None for v in mla):
            raise ValueError(
                "MLA needs kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim and v_head_dim together"
            )
        if (
            self.global_attention_every is not None
            and self.sliding_window is None
            and not self.attention_chunk_size
        ):
            raise ValueError("global_attention_every needs sliding_window or attention_chunk_size")
        if self.first_dense_layers is not None and self.first_dense_layers > self.num_layers:
            raise ValueError("first_dense_layers is larger than num_layers")
        return self

    @model_validator(mode="after")
    def _layer_patterns(self) -> Architecture:
        if self.sliding_window is not None and self.attention_chunk_size is not None:
            raise ValueError("give sliding_window or attention_chunk_size, not both")
        linear = (
            self.full_attention_interval,
            self.linear_num_key_heads,
            self.linear_num_value_heads,
            self.linear_key_head_dim,
            self.linear_value_head_dim,
            self.linear_conv_kernel_dim,
        )
        if any(v is not None for v in linear) and any(v is None for v in linear):
            raise ValueError(
                "full_attention_interval needs linear_num_key_heads, linear_num_value_heads, linear_key_head_dim, "
                "linear_value_head_dim and linear_conv_kernel_dim, all together"
            )
        return self


class MeasuredBlock(Strict):
    """One top-level block of a model counted on the meta device (see registry.params.Block)."""

    name: Name
    role: Literal["embedding", "layer", "norm", "head"]
    linear: Annotated[int, Field(ge=0, le=10**13)]
    linear_rows: Annotated[int, Field(ge=0, le=10**13)]
    other: Annotated[int, Field(ge=0, le=10**13)]
    active: Annotated[int, Field(ge=0, le=10**13)]
    tied_to: Name | None = None


class MeasuredLayout(Strict):
    """The block tree transformers builds for an architecture Berth has no layout rules for, counted on the
    meta device (entries read from the Hub on demand)."""

    no_split_class: Name
    """The decoder-layer class accelerate keeps on one device."""
    blocks: Annotated[list[MeasuredBlock], Field(min_length=1, max_length=10_000)]
    """Blocks in forward order."""
    source: Text
    """How the counts were obtained (transformers version, model class)."""


class ModelCard(Strict):
    """One open model: who publishes it, what it does, and what its memory depends on."""

    id: Annotated[str, Field(min_length=3, max_length=200, pattern=r"^[\w.\-]+/[\w.\-]+$")]
    """Hugging Face repo id, e.g. h2oai/h2o-danube-1.8b-chat."""
    aliases: list[Name] = Field(default_factory=list)
    """Short names users type (danube-1.8b-chat)."""
    family: Name
    """Model family for filtering (llama-3.1, qwen2.5, falcon …)."""
    model_type: Name
    """transformers' model_type from config.json (llama, mistral, falcon, gpt2 …)."""
    task: Task
    """What a session does with it: chat (has a chat template), completion, or fill-mask."""
    license: Name
    """Licence identifier (apache-2.0, llama3.1, gemma, mit …)."""
    gated: bool = False
    """Whether the Hub asks users to accept terms before downloading."""
    native_dtype: Dtype
    """dtype the weights are published in (config.json torch_dtype); with native_quant, the dtype of what is
    not quantized (norms, embeddings, the output layer) and of compute."""
    native_quant: NativeQuant | None = None
    """Low-precision format the published checkpoint stores its Linear weights in (config.json
    quantization_config.quant_method fp8 / mxfp4); absent means every weight is native_dtype."""
    native_quant_block: Annotated[int, Field(gt=0, le=4096)] | None = None
    """FP8 block size (weight_block_size, e.g. 128 for 128x128 tiles with one float32 scale each); None means
    the format's default (fp8: per-tensor scale; mxfp4: 32-element blocks with one E8M0 scale byte)."""
    context_length: Annotated[int, Field(gt=0, le=MAX_CONTEXT)]
    """Longest context the model supports (max_position_embeddings or the documented window)."""
    params: Annotated[int, StrictValue(), Field(gt=0, le=10**13)]
    """Published parameter count (the Hub's safetensors total where published), exact."""
    params_source: ParamsSource = "hub-safetensors"
    """Where `params` comes from; 'computed' means no total is published and the analytic count is used."""
    stored_extra_params: Annotated[int, Field(ge=0, le=10**13)] = 0
    """Values stored in the published files that the transformers model does not build as parameters."""
    stored_extra_note: Text | None = None
    """Why the published total is larger (attention-mask buffers, a multi-token-prediction layer …)."""
    remote_code: bool = False
    """Whether loading needs trust_remote_code (transformers has no native class)."""
    weight_format: WeightFormat = "safetensors"
    """How the Hub repo stores weights; pickle-only repos need --allow-pickle."""
    revision: Name | None = None
    """Pinned Hub revision (commit or tag), if any."""
    architecture: Architecture
    """The config.json fields memory depends on."""
    unconfirmed: list[Name] = Field(default_factory=list)
    """Fields whose values could not be confirmed against a published config.json."""
    measured_layout: MeasuredLayout | None = None
    """Blocks counted on the meta device, for an architecture without layout rules (Hub entries only)."""
    source: Text | None = None
    """Where the values were read (config.json URL)."""
    description: Text | None = None
    """One line for people browsing."""

    @model_validator(mode="after")
    def _stored_note(self) -> ModelCard:
        if self.stored_extra_params and not self.stored_extra_note:
            raise ValueError("stored_extra_params needs stored_extra_note saying what the extra values are")
        return self


#: What the driver keeps below NVML's total before any CUDA context: an H100 80GB HBM3 reports 81559 MiB to NVML
#: (modal-labs/modal-client#2797) and 79.18 GiB (81,080 MiB) to cudaMemGetInfo (llm-d/llm-d-benchmark
#: config_explorer/empirical-vllm-memory-results.md: "Free memory on device: 78.57/79.18 GiB on startup"):
#: 479 MiB. Used where an accelerator has no measured cuda_memory_bytes.
CUDA_DRIVER_RESERVE_BYTES = 480 * 2**20


class Accelerator(Strict):
    """A GPU model and the figures the planner and speed estimates use."""

    id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[a-z0-9][a-z0-9.\-]*$")]
    """Short lowercase name used in hardware specs (a100-80gb, rtx-4090)."""
    name: Name
    """Marketing name as NVML reports it (NVIDIA A100-SXM4-80GB)."""
    aliases: list[Name] = Field(default_factory=list)
    """Other names accepted in specs and matched against NVML names."""
    vendor: Literal["nvidia", "amd", "apple"] = "nvidia"
    """Who makes it."""
    memory_bytes: Bytes
    """Memory quoted on the box (vendors quote GB = 10^9 bytes)."""
    usable_memory_bytes: Bytes | None = None
    """Total memory as the driver reports it (NVML / nvidia-smi memory.total, rocm-smi VRAM Total), when known:
    what `berth probe` reads on the real card, so named specs plan with the same figure."""
    cuda_memory_bytes: Bytes | None = None
    """Total as the CUDA runtime reports it (cudaMemGetInfo, torch.cuda.mem_get_info), which vLLM budgets
    gpu_memory_utilization against: the driver keeps a few hundred MiB below NVML's total."""
    bandwidth_bytes_per_s: Rate
    """Peak memory bandwidth in bytes per second."""
    bf16_tflops: Annotated[float, Field(gt=0, le=1_000_000)]
    """Dense bf16/fp16 tensor throughput in TFLOP/s (no sparsity)."""
    compute_capability: Annotated[str, Field(pattern=r"^\d+\.\d+$")]
    """CUDA compute capability; bf16 needs 8.0 or newer."""
    interconnect: Literal["nvlink", "pcie"] = "pcie"
    """How GPUs of this kind are usually linked inside one machine."""
    interconnect_bytes_per_s: Rate | None = None
    """Per-GPU bandwidth of that link, when known."""
    source: Annotated[str, Field(min_length=1, max_length=2000)]
    """Where the figures come from."""

    @property
    def total_bytes(self) -> int:
        """Memory to plan with: the driver-reported total where known, else the quoted figure."""
        return self.usable_memory_bytes or self.memory_bytes

    @property
    def cuda_total_bytes(self) -> int:
        """Memory the CUDA runtime reports as total: measured where known, else the driver total less the
        typical driver reserve (CUDA_DRIVER_RESERVE_BYTES)."""
        if self.cuda_memory_bytes:
            return self.cuda_memory_bytes
        return max(0, self.total_bytes - CUDA_DRIVER_RESERVE_BYTES)

    @property
    def capability(self) -> tuple[int, int]:
        """Compute capability as (major, minor)."""
        major, minor = self.compute_capability.split(".")
        return int(major), int(minor)

    @property
    def supports_bf16(self) -> bool:
        """bf16 kernels need compute capability 8.0 (Ampere) or newer."""
        return int(self.compute_capability.split(".")[0]) >= 8


class CatalogFile(Strict):
    """The whole catalog.yaml (or a user overlay, where every section is optional)."""

    schema_version: Literal[1] = 1
    """Format version of this file."""
    models: list[ModelCard] = Field(default_factory=list)
    """Models, in display order."""
    accelerators: list[Accelerator] = Field(default_factory=list)
    """GPU kinds that hardware specs may name."""
