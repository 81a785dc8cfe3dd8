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
TEXT_MODEL_TYPES: dict[str, str] = {"gemma3": "gemma3_text", "llama4": "llama4_text"}

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


def is_multimodal(config: dict[str, Any]) -> bool:
    """Whether a config.json mapping is a multimodal repo Berth plans as its language model."""
    return config.get("model_type") in TEXT_MODEL_TYPES and isinstance(config.get("text_config"), dict)


def text_model_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """The language model's config.json mapping of a multimodal one (its model_type filled in, the top level's
    tie_word_embeddings where the text config is silent); None for any other config."""
    if not is_multimodal(config):
        return None
    text = dict(config["text_config"])
    text["model_type"] = TEXT_MODEL_TYPES[config["model_type"]]
    if "tie_word_embeddings" not in text and "tie_word_embeddings" in config:
        text["tie_word_embeddings"] = config["tie_word_embeddings"]
    for key in ("architectures", "license"):
        if key in config:
            text.setdefault(key, config[key])
    return text


def is_text_weight(key: str) -> bool:
    """Whether a checkpoint tensor of a multimodal repo belongs to the language model."""
    return key.startswith(TEXT_WEIGHT_PREFIXES)


def multimodal_note(model_type: str, extra: int) -> str:
    """The card's stored_extra_note for a multimodal repo whose other values number `extra`."""
    return (
        f"The repo is multimodal ({model_type}): {extra:,} values of the vision tower and projector are stored "
        "beside the language model Berth plans and loads; they are not loaded"
    )


def plans_text_of_multimodal(card: ModelCard) -> bool:
    """Whether a card plans the language model of a multimodal repo: a text type Berth reads out of a multimodal
    config, with stored extras (the vision tower). Text-only repos of these types (gemma-3-1b-it) store none."""
    return card.model_type in TEXT_MODEL_TYPES.values() and card.stored_extra_params > 0
