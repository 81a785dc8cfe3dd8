"""Multimodal repositories Berth plans as their language model alone: which config types wrap which text model,
and how the text weights are named in their checkpoints. Imports registry.schema only.

Gemma 3 (gemma3, Gemma3ForConditionalGeneration) and Llama 4 (llama4, Llama4ForConditionalGeneration) publish a
vision tower and a projector beside the language model. The chat is text only, so Berth plans, downloads what it
must and loads only the language model (Gemma3ForCausalLM / Llama4ForCausalLM built from `text_config`); the
other values are the card's `stored_extra_params`.
"""

from __future__ import annotations

from typing import Any

from registry.schema import ModelCard

#: config.json model_type of a multimodal repo -> model_type of the language model Berth plans.
TEXT_MODEL_TYPES: dict[str, str] = {"gemma3": "gemma3_text", "llama4": "llama4_text", "mistral3": "mistral"}

#: Checkpoint key prefixes of the language model -> the text model's own names (regular expressions, the form
#: transformers' from_pretrained(key_mapping=...) takes). The Hub's files (and transformers' save_pretrained,
#: which writes the original names) use `language_model.model.*` / `language_model.lm_head`; transformers 5's
#: in-memory Gemma3ForConditionalGeneration names them `model.language_model.*`, which a file saved with
#: save_original_format=False keeps.
TEXT_WEIGHT_RENAMES: dict[str, str] = {
    r"^language_model\.model\.": "model.",
    r"^language_model\.lm_head\.": "lm_head.",
    r"^model\.language_model\.": "model.",
}

#: Checkpoint key prefixes that hold language-model weights (the keys TEXT_WEIGHT_RENAMES turns into the text
#: model's); every other key of a multimodal repo (vision tower, projector) is not loaded.
TEXT_WEIGHT_PREFIXES: tuple[str, ...] = ("language_model.", "model.language_model.", "lm_head.")

#: Checkpoint keys of a multimodal repo's vision tower and projector (regular expressions): the values the text
#: model leaves unread, so loading does not report them as unexpected.
STORED_EXTRA_PATTERNS: tuple[str, ...] = (r"^(model\.)?(vision_tower|vision_model|multi_modal_projector)\.",)

#: transformers' defaults for the text-config keys a published multimodal config.json may leave out (older
#: transformers wrote `text_config` as a difference from these: google/gemma-3-4b-it's gives only hidden_size,
#: intermediate_size, num_hidden_layers, rope_scaling and sliding_window). Read from transformers 5.24:
#: models/gemma3/configuration_gemma3.py, Gemma3TextConfig ("vocab_size: int = 262_208", "num_attention_heads:
#: int = 8", "num_key_value_heads: int = 4", "head_dim: int = 256", "max_position_embeddings: int = 131_072",
#: "sliding_window: int | None = 4096", `kwargs.get("sliding_window_pattern", 6)`), and
#: models/llama4/configuration_llama4.py, Llama4TextConfig ("vocab_size: int = 202048", "num_attention_heads:
#: int = 40", "num_key_value_heads: int = 8", "head_dim: int = 128", "num_local_experts: int = 16",
#: "no_rope_layer_interval: int = 4", "attention_chunk_size: int | None = 8192").
TEXT_CONFIG_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {
        "vocab_size": 262_208,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 131_072,
        "tie_word_embeddings": True,
        "attention_bias": False,
        "query_pre_attn_scalar": 256,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
    },
    "llama4_text": {
        "vocab_size": 202_048,
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 131_072,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "num_local_experts": 16,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "no_rope_layer_interval": 4,
        "attention_chunk_size": 8192,
    },
}


def is_multimodal(config: dict[str, Any]) -> bool:
    """Whether a config.json mapping is a multimodal repo Berth plans as its language model."""
    return config.get("model_type") in TEXT_MODEL_TYPES and isinstance(config.get("text_config"), dict)


#: Wrapper keys that describe the whole checkpoint, and so also its language model where text_config is silent.
INHERITED_KEYS = (
    "torch_dtype",
    "dtype",
    "tie_word_embeddings",
    "license",
    "quantization_config",
    "architectures",
)


def merged_text_config(config: dict[str, Any], model_type: str) -> dict[str, Any]:
    """The language model's config.json mapping of a wrapper config: transformers' defaults for `model_type`,
    then the wrapper's checkpoint-wide keys, then text_config's own values, with model_type set."""
    return {
        **TEXT_CONFIG_DEFAULTS.get(model_type, {}),
        **{key: config[key] for key in INHERITED_KEYS if key in config},
        **config["text_config"],
        "model_type": model_type,
    }


def text_model_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """The language model's config.json mapping of a multimodal one (merged_text_config); None for any other
    config."""
    if not is_multimodal(config):
        return None
    return merged_text_config(config, TEXT_MODEL_TYPES[config["model_type"]])


def is_text_weight(key: str) -> bool:
    """Whether a checkpoint tensor of a multimodal repo belongs to the language model."""
    return key.startswith(TEXT_WEIGHT_PREFIXES)


def multimodal_note(model_type: str, extra: int) -> str:
    """The card's stored_extra_note for a multimodal repo whose other values number `extra`."""
    return (
        f"The repo is multimodal ({model_type}): {extra:,} values of the vision tower and projector are stored "
        "beside the language model Berth plans; berth launch builds only the language model, so they are not loaded"
    )


def plans_text_of_multimodal(card: ModelCard) -> bool:
    """Whether a card plans the language model of a multimodal repo: a text type Berth reads out of a multimodal
    config, with stored extras (the vision tower). Text-only repos of these types (gemma-3-1b-it) store none."""
    return card.model_type in TEXT_MODEL_TYPES.values() and card.stored_extra_params > 0


def global_attention_every(text: dict[str, Any]) -> int | None:
    """Every how many layers (1-based) a Gemma 3 / Llama 4 text model attends globally, the others sliding or
    chunked: from `layer_types` when given, else Gemma 3's sliding_window_pattern or Llama 4's NoPE layers
    (no_rope_layers, else every no_rope_layer_interval-th). None when no layer is global or the pattern is not
    periodic."""
    kinds = text.get("layer_types")
    if isinstance(kinds, list):
        full = [kind == "full_attention" for kind in kinds]
    elif isinstance(text.get("no_rope_layers"), list) and text["no_rope_layers"]:
        full = [not use_rope for use_rope in text["no_rope_layers"]]
    else:
        every = text.get("sliding_window_pattern") or text.get("_sliding_window_pattern")
        every = every or text.get("no_rope_layer_interval")
        if not isinstance(every, int) or isinstance(every, bool) or every <= 0:
            return None
        return every  # the declared period, even where a model has fewer layers than one period
    if not any(full):
        return None
    first = full.index(True) + 1
    periodic = all(is_full == ((i + 1) % first == 0) for i, is_full in enumerate(full))
    return first if periodic else None
