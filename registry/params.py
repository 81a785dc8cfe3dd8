"""Parameter counts from architecture fields, per family, as the ordered blocks transformers builds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from registry.errors import UnsupportedArchitectureError
from registry.layers import layer_kind
from registry.schema import Architecture, ModelCard

BlockRole = Literal["embedding", "layer", "norm", "head"]
NormKind = Literal["rms", "layer", "layer_nobias"]


@dataclass(frozen=True)
class Block:
    """One top-level module that accelerate places whole on a device (an embedding, a decoder layer …)."""

    name: str
    """Module path in the transformers model (model.layers.3, transformer.wte, lm_head)."""
    role: BlockRole
    linear: int
    """Weights of nn.Linear / Conv1D modules that bitsandbytes replaces (8/4-bit)."""
    linear_rows: int
    """Output rows of those modules: LLM.int8 keeps one fp32 scale per row."""
    other: int
    """Everything else, kept 16-bit under bitsandbytes: embeddings, norms, biases, routers, fused experts."""
    active: int
    """Parameters one token passes through (MoE: only the routed experts it uses)."""
    tied_to: str | None = None
    """Block whose weights this one shares (a tied lm_head holds no parameters of its own)."""

    @property
    def total(self) -> int:
        """All parameters stored in this block."""
        return self.linear + self.other


@dataclass(frozen=True)
class Layout:
    """The blocks of a model in forward order, with transformers' names."""

    blocks: tuple[Block, ...]
    no_split_class: str
    """The transformers class accelerate keeps on one device (LlamaDecoderLayer …)."""

    @property
    def total(self) -> int:
        """Total parameters, tied weights counted once."""
        return sum(b.total for b in self.blocks)

    @property
    def active(self) -> int:
        """Parameters used per token (equals total for dense models)."""
        return sum(b.active for b in self.blocks)

    @property
    def layers(self) -> tuple[Block, ...]:
        """The repeated transformer blocks."""
        return tuple(b for b in self.blocks if b.role == "layer")


@dataclass(frozen=True)
class _Part:
    """A running sum of one module's parameters."""

    linear: int = 0
    linear_rows: int = 0
    other: int = 0
    inactive: int = 0  # routed-expert parameters a token does not use

    def __add__(self, other: _Part) -> _Part:
        return _Part(
            self.linear + other.linear,
            self.linear_rows + other.linear_rows,
            self.other + other.other,
            self.inactive + other.inactive,
        )


def _linear(n_in: int, n_out: int, bias: bool = False) -> _Part:
    return _Part(linear=n_in * n_out, linear_rows=n_out, other=n_out if bias else 0)


def _norm(width: int, kind: NormKind) -> _Part:
    return _Part(other=width * 2 if kind == "layer" else width)


def _sum(*parts: _Part) -> _Part:
    total = _Part()
    for part in parts:
        total = total + part
    return total


@dataclass(frozen=True)
class _Family:
    """How one transformers model_type arranges its modules."""

    root: str
    embed: str
    layers: str
    final_norm: str | None
    no_split: str
    norm: NormKind = "rms"
    norms_per_layer: int = 2
    gated_mlp: bool = True
    attention_bias: bool = False
    output_bias: bool | None = None  # o_proj bias; None follows attention_bias
    mlp_bias: bool = False
    qk_norm: Literal["none", "head", "full"] = "none"
    head_bias: bool = False
    learned_positions: str | None = None  # module name of a learned position embedding
    attention_sinks: bool = False  # one learned sink logit per query head (gpt-oss)
    expert_bias: bool = False  # routed experts carry biases (gpt-oss: gate_up and down)
    router_bias: bool = False  # the MoE router has a bias
    qk_norm_key: str | None = (
        None  # config.json switch that turns the head q/k norm on (glm4_moe: use_qk_norm)
    )
    gated_attention: bool = False  # q_proj also yields an output gate: twice the query rows (Qwen3-Next)
    shared_expert: Literal["none", "expert", "gated"] = "none"
    """One always-on expert beside the routed ones, whatever num_shared_experts says: "expert" as wide as a routed
    expert (Llama 4), "gated" as wide as shared_expert_intermediate_size with a sigmoid gate (Qwen3-Next)."""


def _llama_like(no_split: str, **differences: Any) -> _Family:
    """A family laid out as Llama: model.embed_tokens, model.layers.N, model.norm, lm_head."""
    return _Family(
        root="model",
        embed="embed_tokens",
        layers="layers",
        final_norm="norm",
        no_split=no_split,
        **differences,
    )


FAMILIES: dict[str, _Family] = {
    "llama": _llama_like("LlamaDecoderLayer"),
    "mistral": _llama_like("MistralDecoderLayer"),
    "granite": _llama_like("GraniteDecoderLayer"),
    "phi3": _llama_like("Phi3DecoderLayer"),
    "qwen2": _llama_like("Qwen2DecoderLayer", attention_bias=True, output_bias=False),
    "qwen3": _llama_like("Qwen3DecoderLayer", qk_norm="head"),
    "gemma": _llama_like("GemmaDecoderLayer"),
    "gemma2": _llama_like("Gemma2DecoderLayer", norms_per_layer=4),
    "gemma3_text": _llama_like("Gemma3DecoderLayer", norms_per_layer=4, qk_norm="head"),
    "olmo2": _llama_like("Olmo2DecoderLayer", qk_norm="full"),
    # StableLM: use_qkv_bias puts biases on q/k/v only; o_proj never has one (StableLmAttention).
    "stablelm": _llama_like("StableLmDecoderLayer", norm="layer", output_bias=False),
    "smollm3": _llama_like("SmolLM3DecoderLayer"),
    "starcoder2": _llama_like(
        "Starcoder2DecoderLayer",
        norm="layer",
        gated_mlp=False,
        attention_bias=True,
        mlp_bias=True,
    ),
    "phi": _Family(
        root="model",
        embed="embed_tokens",
        layers="layers",
        final_norm="final_layernorm",
        no_split="PhiDecoderLayer",
        norm="layer",
        norms_per_layer=1,
        gated_mlp=False,
        attention_bias=True,
        mlp_bias=True,
        head_bias=True,
    ),
    "mixtral": _llama_like("MixtralDecoderLayer"),
    "qwen3_moe": _llama_like("Qwen3MoeDecoderLayer", qk_norm="head"),
    "deepseek_v3": _llama_like("DeepseekV3DecoderLayer"),
    # GLM-4.5: attention_bias puts biases on q/k/v only (o_proj has none); use_qk_norm adds head q/k norms.
    "glm4_moe": _llama_like("Glm4MoeDecoderLayer", output_bias=False, qk_norm_key="use_qk_norm"),
    "llama4_text": _llama_like("Llama4TextDecoderLayer", shared_expert="expert"),
    "qwen3_next": _llama_like(
        "Qwen3NextDecoderLayer", qk_norm="head", gated_attention=True, shared_expert="gated"
    ),
    "gpt_oss": _llama_like(
        "GptOssDecoderLayer",
        attention_bias=True,
        attention_sinks=True,
        expert_bias=True,
        router_bias=True,
    ),
    "gpt2": _Family(
        root="transformer",
        embed="wte",
        layers="h",
        final_norm="ln_f",
        no_split="GPT2Block",
        norm="layer",
        gated_mlp=False,
        attention_bias=True,
        mlp_bias=True,
        learned_positions="wpe",
    ),
    "gptj": _Family(
        root="transformer",
        embed="wte",
        layers="h",
        final_norm="ln_f",
        no_split="GPTJBlock",
        norm="layer",
        norms_per_layer=1,
        gated_mlp=False,
        mlp_bias=True,
        head_bias=True,
    ),
    "gpt_neox": _Family(
        root="gpt_neox",
        embed="embed_in",
        layers="layers",
        final_norm="final_layer_norm",
        no_split="GPTNeoXLayer",
        norm="layer",
        gated_mlp=False,
        attention_bias=True,
        mlp_bias=True,
    ),
    "mpt": _Family(
        root="transformer",
        embed="wte",
        layers="blocks",
        final_norm="norm_f",
        no_split="MptBlock",
        norm="layer_nobias",
        gated_mlp=False,
    ),
    "falcon": _Family(
        root="transformer",
        embed="word_embeddings",
        layers="h",
        final_norm="ln_f",
        no_split="FalconDecoderLayer",
        norm="layer",
        gated_mlp=False,
    ),
    "bert": _Family(
        root="bert",
        embed="embeddings",
        layers="encoder.layer",
        final_norm=None,
        no_split="BertLayer",
        norm="layer",
        gated_mlp=False,
        attention_bias=True,
        mlp_bias=True,
    ),
}

#: model_types whose modules transformers builds with a custom nn.Linear subclass that bitsandbytes skips
#: (`type(module) is nn.Linear` in transformers 5); Berth's loader swaps the subclass for nn.Linear first.
LINEAR_SUBCLASS_FAMILIES = frozenset({"falcon"})


def supported_model_types() -> tuple[str, ...]:
    """The transformers model_types Berth can count."""
    return tuple(sorted(FAMILIES))


def _extra(arch: Architecture, key: str, default: object) -> object:
    value = arch.config_extras.get(key)
    return default if value is None else value


def _ffn_width(arch: Architecture, model_type: str) -> int:
    if arch.intermediate_size is not None:
        return arch.intermediate_size
    if model_type == "mpt":
        return int(_extra(arch, "expansion_ratio", 4)) * arch.hidden_size  # type: ignore[call-overload]
    return 4 * arch.hidden_size


def _attention(arch: Architecture, model_type: str, fam: _Family) -> _Part:
    h, heads, kv, hd = arch.hidden_size, arch.num_attention_heads, arch.kv_heads, arch.head_width
    bias = fam.attention_bias if arch.attention_bias is None else arch.attention_bias
    out_bias = bias if fam.output_bias is None else fam.output_bias
    if model_type == "falcon":
        new_arch = bool(_extra(arch, "new_decoder_architecture", False))
        multi_query = bool(_extra(arch, "multi_query", True))
        falcon_bias = bool(_extra(arch, "bias", False))
        if new_arch:
            qkv_rows = (heads + 2 * kv) * hd
        elif multi_query:
            qkv_rows = (heads + 2) * hd
        else:
            qkv_rows = 3 * h
        return _linear(h, qkv_rows, falcon_bias) + _linear(h, h, falcon_bias)
    if model_type == "deepseek_v3":
        return _mla(arch)
    qk_norm = _Part()
    if fam.qk_norm_key is not None:
        if _extra(arch, fam.qk_norm_key, False):
            qk_norm = _Part(other=2 * hd)
    elif fam.qk_norm == "head":
        qk_norm = _Part(other=2 * hd)
    elif fam.qk_norm == "full":
        qk_norm = _Part(other=heads * hd + kv * hd)
    sinks = _Part(other=heads if fam.attention_sinks else 0)
    query_rows = heads * hd * (2 if fam.gated_attention else 1)
    return _sum(
        _linear(h, query_rows, bias),
        _linear(h, kv * hd, bias),
        _linear(h, kv * hd, bias),
        _linear(heads * hd, h, out_bias),
        qk_norm,
        sinks,
    )


def _mla(arch: Architecture) -> _Part:
    """DeepSeek multi-head latent attention: low-rank q, a shared compressed kv latent, rope key once."""
    assert arch.kv_lora_rank and arch.qk_nope_head_dim and arch.qk_rope_head_dim and arch.v_head_dim
    h, heads = arch.hidden_size, arch.num_attention_heads
    qk_head = arch.qk_nope_head_dim + arch.qk_rope_head_dim
    if arch.q_lora_rank:
        q = (
            _linear(h, arch.q_lora_rank)
            + _Part(other=arch.q_lora_rank)
            + _linear(arch.q_lora_rank, heads * qk_head)
        )
    else:
        q = _linear(h, heads * qk_head)
    kv = _sum(
        _linear(h, arch.kv_lora_rank + arch.qk_rope_head_dim),
        _Part(other=arch.kv_lora_rank),
        _linear(arch.kv_lora_rank, heads * (arch.qk_nope_head_dim + arch.v_head_dim)),
    )
    return q + kv + _linear(heads * arch.v_head_dim, h)


def _dense_mlp(arch: Architecture, model_type: str, fam: _Family, width: int | None = None) -> _Part:
    h = arch.hidden_size
    i = width or _ffn_width(arch, model_type)
    bias = fam.mlp_bias if arch.mlp_bias is None else arch.mlp_bias
    if model_type == "falcon":
        bias = bool(_extra(arch, "bias", False))
    if fam.gated_mlp:
        return _sum(_linear(h, i, bias), _linear(h, i, bias), _linear(i, h, bias))
    return _linear(h, i, bias) + _linear(i, h, bias)


def is_moe_layer(arch: Architecture, model_type: str, layer: int) -> bool:
    """Whether layer `layer` (0-based) routes to experts: all but the first `first_dense_layers` (DeepSeek, GLM),
    every `interleave_moe_layer_step`th (Llama 4 Maverick: 2), every `decoder_sparse_step`th not in
    `mlp_only_layers` (Qwen3-Next)."""
    if not arch.is_moe:
        return False
    if layer < (arch.first_dense_layers or 0):
        return False
    if model_type == "llama4_text":
        step = int(_extra(arch, "interleave_moe_layer_step", 1))  # type: ignore[call-overload]
        return (layer + 1) % step == 0
    if model_type == "qwen3_next":
        step = int(_extra(arch, "decoder_sparse_step", 1))  # type: ignore[call-overload]
        return (layer + 1) % step == 0
    return True


def _moe_mlp(arch: Architecture, model_type: str, fam: _Family) -> _Part:
    """Routed experts are fused 3D tensors in transformers 5 (not nn.Linear): they stay 16-bit under bnb."""
    assert arch.num_experts and arch.experts_per_token
    h = arch.hidden_size
    width = arch.moe_intermediate_size or _ffn_width(arch, model_type)
    per_expert = 3 * h * width + (2 * width + h if fam.expert_bias else 0)
    routed = _Part(
        other=arch.num_experts * per_expert,
        inactive=(arch.num_experts - arch.experts_per_token) * per_expert,
    )
    router = _Part(other=arch.num_experts * (h + 1 if fam.router_bias else h))
    shared = _Part()
    if fam.shared_expert == "expert":
        shared = _dense_mlp(arch, model_type, fam, width=width)
    elif fam.shared_expert == "gated":
        shared_width = int(_extra(arch, "shared_expert_intermediate_size", width))  # type: ignore[call-overload]
        shared = _dense_mlp(arch, model_type, fam, width=shared_width) + _linear(h, 1)
    elif arch.num_shared_experts:
        shared = _dense_mlp(arch, model_type, fam, width=width * arch.num_shared_experts)
    return routed + router + shared


def _linear_attention(arch: Architecture) -> _Part:
    """A Gated DeltaNet layer (Qwen3-Next): fused q/k/v/z and b/a projections, a depthwise causal convolution
    over q/k/v, per-head dt bias and A, a gated RMSNorm over the value head width, and the output projection."""
    assert arch.linear_num_key_heads and arch.linear_num_value_heads and arch.linear_key_head_dim
    assert arch.linear_value_head_dim and arch.linear_conv_kernel_dim
    h = arch.hidden_size
    key_dim = arch.linear_num_key_heads * arch.linear_key_head_dim
    value_dim = arch.linear_num_value_heads * arch.linear_value_head_dim
    conv_dim = 2 * key_dim + value_dim
    return _sum(
        _linear(h, 2 * key_dim + 2 * value_dim),
        _linear(h, 2 * arch.linear_num_value_heads),
        _Part(other=conv_dim * arch.linear_conv_kernel_dim),
        _Part(other=2 * arch.linear_num_value_heads + arch.linear_value_head_dim),
        _linear(value_dim, h),
    )


def _layer(arch: Architecture, model_type: str, fam: _Family, moe: bool, linear: bool) -> _Part:
    h = arch.hidden_size
    norms_per_layer = fam.norms_per_layer
    if model_type == "falcon":
        new_arch = bool(_extra(arch, "new_decoder_architecture", False))
        parallel = bool(_extra(arch, "parallel_attn", True))
        if new_arch:
            norms_per_layer = int(_extra(arch, "num_ln_in_parallel_attn", 2))  # type: ignore[call-overload]
        else:
            norms_per_layer = 1 if parallel else 2
    norms = _Part(other=_norm(h, fam.norm).other * norms_per_layer)
    if moe:
        mlp = _moe_mlp(arch, model_type, fam)
    elif model_type == "llama4_text":
        dense_width = int(_extra(arch, "intermediate_size_mlp", 16384))  # type: ignore[call-overload]
        mlp = _dense_mlp(arch, model_type, fam, width=dense_width)
    else:
        mlp = _dense_mlp(arch, model_type, fam)
    attention = _linear_attention(arch) if linear else _attention(arch, model_type, fam)
    return attention + mlp + norms


def _block(name: str, role: BlockRole, part: _Part, tied_to: str | None = None) -> Block:
    return Block(
        name=name,
        role=role,
        linear=part.linear,
        linear_rows=part.linear_rows,
        other=part.other,
        active=part.linear + part.other - part.inactive,
        tied_to=tied_to,
    )


def _bert_blocks(arch: Architecture, context: int) -> list[Block]:
    h = arch.hidden_size
    type_vocab = int(_extra(arch, "type_vocab_size", 2))  # type: ignore[call-overload]
    embeddings = _Part(other=(arch.vocab_size + context + type_vocab) * h) + _norm(h, "layer")
    blocks = [_block("bert.embeddings", "embedding", embeddings)]
    layer = _sum(
        _linear(h, h, True),
        _linear(h, h, True),
        _linear(h, h, True),
        _linear(h, h, True),
        _norm(h, "layer"),
        _linear(h, _ffn_width(arch, "bert"), True),
        _linear(_ffn_width(arch, "bert"), h, True),
        _norm(h, "layer"),
    )
    blocks += [_block(f"bert.encoder.layer.{i}", "layer", layer) for i in range(arch.num_layers)]
    # Masked-LM head: transform (dense + LayerNorm), decoder tied to the word embeddings, own output bias.
    head = _linear(h, h, True) + _norm(h, "layer") + _Part(other=arch.vocab_size)
    blocks.append(_block("cls", "head", head, tied_to="bert.embeddings"))
    return blocks


def layout(card: ModelCard) -> Layout:
    """The model's blocks as transformers builds them for its task (causal LM, or masked LM for fill-mask)."""
    if card.measured_layout is not None:
        measured = card.measured_layout
        return Layout(tuple(Block(**b.model_dump()) for b in measured.blocks), measured.no_split_class)
    arch, model_type = card.architecture, card.model_type
    fam = FAMILIES.get(model_type)
    if fam is None:
        raise UnsupportedArchitectureError(model_type, supported_model_types())
    if model_type == "bert":
        return Layout(tuple(_bert_blocks(arch, card.context_length)), fam.no_split)

    h = arch.hidden_size
    root = fam.root
    embed_name = f"{root}.{fam.embed}"
    blocks = [_block(embed_name, "embedding", _Part(other=arch.vocab_size * h))]
    if fam.learned_positions:
        positions = int(_extra(arch, "n_positions", card.context_length))  # type: ignore[call-overload]
        blocks.append(_block(f"{root}.{fam.learned_positions}", "embedding", _Part(other=positions * h)))
    # Layers differ only in whether they route to experts and whether they are linear attention: size each
    # kind once.
    shapes = [
        (is_moe_layer(arch, model_type, i), layer_kind(arch, i) == "linear") for i in range(arch.num_layers)
    ]
    kinds = {shape: _layer(arch, model_type, fam, *shape) for shape in set(shapes)}
    blocks += [_block(f"{root}.{fam.layers}.{i}", "layer", kinds[shape]) for i, shape in enumerate(shapes)]
    if fam.final_norm:
        blocks.append(_block(f"{root}.{fam.final_norm}", "norm", _norm(h, fam.norm)))
    head_bias = _Part(other=arch.vocab_size if fam.head_bias else 0)
    if arch.tie_word_embeddings:
        blocks.append(_block("lm_head", "head", head_bias, tied_to=embed_name))
    else:
        # The output layer is an nn.Linear that bitsandbytes leaves in 16-bit: count it as "other".
        blocks.append(_block("lm_head", "head", _Part(other=arch.vocab_size * h) + head_bias))
    return Layout(tuple(blocks), fam.no_split)


def count_params(card: ModelCard) -> int:
    """Total parameters transformers builds for this card, tied weights once."""
    return layout(card).total


def count_active_params(card: ModelCard) -> int:
    """Parameters one token passes through (MoE: shared parts plus experts_per_token experts)."""
    return layout(card).active
