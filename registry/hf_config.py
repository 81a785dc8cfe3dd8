"""Map catalog architecture fields to and from transformers config.json keys, per model_type (pure)."""

from __future__ import annotations

from typing import Any

from registry.layers import layer_kind
from registry.schema import Architecture, ModelCard

#: Catalog field -> config.json key, where a family names it differently from Llama.
_RENAMES: dict[str, dict[str, str]] = {
    "gpt2": {
        "num_layers": "n_layer",
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "intermediate_size": "n_inner",
        "context_length": "n_positions",
    },
    "gptj": {
        "num_layers": "n_layer",
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "intermediate_size": "n_inner",
        "context_length": "n_positions",
    },
    "mpt": {
        "num_layers": "n_layers",
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "context_length": "max_seq_len",
    },
    "falcon": {"num_key_value_heads": "num_kv_heads", "intermediate_size": "ffn_hidden_size"},
    "mixtral": {"num_experts": "num_local_experts", "experts_per_token": "num_experts_per_tok"},
    "qwen3_moe": {"experts_per_token": "num_experts_per_tok"},
    "llama4_text": {"num_experts": "num_local_experts", "experts_per_token": "num_experts_per_tok"},
    "glm4_moe": {"num_experts": "n_routed_experts"},
    "stablelm": {"attention_bias": "use_qkv_bias"},
    "gpt_oss": {"num_experts": "num_local_experts", "experts_per_token": "num_experts_per_tok"},
    "deepseek_v3": {
        "num_experts": "n_routed_experts",
        "experts_per_token": "num_experts_per_tok",
        "num_shared_experts": "n_shared_experts",
        "first_dense_layers": "first_k_dense_replace",
    },
}

#: Llama-style names for every catalog field that has a config.json counterpart.
_DEFAULT_KEYS: dict[str, str] = {
    "num_layers": "num_hidden_layers",
    "hidden_size": "hidden_size",
    "intermediate_size": "intermediate_size",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "vocab_size": "vocab_size",
    "tie_word_embeddings": "tie_word_embeddings",
    "attention_bias": "attention_bias",
    "mlp_bias": "mlp_bias",
    "sliding_window": "sliding_window",
    "num_experts": "num_experts",
    "experts_per_token": "num_experts_per_tok",
    "moe_intermediate_size": "moe_intermediate_size",
    "num_shared_experts": "n_shared_experts",
    "first_dense_layers": "first_k_dense_replace",
    "q_lora_rank": "q_lora_rank",
    "kv_lora_rank": "kv_lora_rank",
    "qk_nope_head_dim": "qk_nope_head_dim",
    "qk_rope_head_dim": "qk_rope_head_dim",
    "v_head_dim": "v_head_dim",
    "context_length": "max_position_embeddings",
    "attention_chunk_size": "attention_chunk_size",
    "full_attention_interval": "full_attention_interval",
    "linear_num_key_heads": "linear_num_key_heads",
    "linear_num_value_heads": "linear_num_value_heads",
    "linear_key_head_dim": "linear_key_head_dim",
    "linear_value_head_dim": "linear_value_head_dim",
    "linear_conv_kernel_dim": "linear_conv_kernel_dim",
}

#: Fields a family's config does not have (passing them would be ignored or misread).
_NOT_IN_CONFIG: dict[str, frozenset[str]] = {
    "gpt2": frozenset({"num_key_value_heads", "head_dim", "attention_bias", "mlp_bias", "sliding_window"}),
    "gptj": frozenset({"num_key_value_heads", "head_dim", "attention_bias", "mlp_bias", "sliding_window"}),
    "mpt": frozenset({"num_key_value_heads", "head_dim", "intermediate_size", "attention_bias", "mlp_bias"}),
    "bert": frozenset({"num_key_value_heads", "head_dim", "attention_bias", "mlp_bias", "sliding_window"}),
    "falcon": frozenset({"head_dim", "attention_bias", "mlp_bias", "sliding_window"}),
}

#: Config keys where transformers' own default differs from what an absent catalog value means.
_FORCED: dict[str, dict[str, Any]] = {
    "deepseek_v3": {"n_group": 1, "topk_group": 1},
}


def config_key(model_type: str, field: str) -> str:
    """The config.json key that holds a catalog field for this model_type."""
    return _RENAMES.get(model_type, {}).get(field) or _DEFAULT_KEYS[field]


def config_kwargs(card: ModelCard) -> dict[str, Any]:
    """transformers config keyword arguments that rebuild this card's architecture exactly."""
    arch: Architecture = card.architecture
    model_type = card.model_type
    skipped = _NOT_IN_CONFIG.get(model_type, frozenset())
    values: dict[str, Any] = {"context_length": card.context_length}
    for field in _DEFAULT_KEYS:
        if field == "context_length" or field in skipped:
            continue
        value = getattr(arch, field)
        if value is not None:
            values[field] = value
    kwargs = {config_key(model_type, field): value for field, value in values.items()}
    if arch.global_attention_every and arch.sliding_window:
        every = arch.global_attention_every
        kwargs["layer_types"] = [
            "full_attention" if (i + 1) % every == 0 else "sliding_attention" for i in range(arch.num_layers)
        ]
    kwargs.update(_pattern_layer_types(arch))
    kwargs.update(_FORCED.get(model_type, {}))
    kwargs.update(arch.config_extras)
    return kwargs


def _pattern_layer_types(arch: Architecture) -> dict[str, Any]:
    """layer_types for chunked-attention (Llama 4) and hybrid linear-attention (Qwen3-Next) patterns."""
    kinds = {"chunked": "chunked_attention", "linear": "linear_attention", "full": "full_attention"}
    if not (arch.attention_chunk_size or arch.full_attention_interval):
        return {}
    return {"layer_types": [kinds[layer_kind(arch, i)] for i in range(arch.num_layers)]}


def architecture_fields(model_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """Catalog architecture fields read back from a config.json dict (the importer's half of the mapping)."""
    fields: dict[str, Any] = {}
    skipped = _NOT_IN_CONFIG.get(model_type, frozenset())
    for field in _DEFAULT_KEYS:
        if field == "context_length" or field in skipped:
            continue
        key = config_key(model_type, field)
        if config.get(key) is not None:
            fields[field] = config[key]
    return fields


def context_length_of(model_type: str, config: dict[str, Any]) -> int | None:
    """The context length a config.json declares, if any."""
    value = config.get(config_key(model_type, "context_length"))
    return int(value) if isinstance(value, int) else None
