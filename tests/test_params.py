"""Every catalog entry's analytic parameter count equals what transformers builds on the meta device."""

from __future__ import annotations

import pytest

from registry.catalog import load_catalog
from registry.params import layout
from registry.schema import ModelCard
from registry.verify import meta_counts

CARDS = load_catalog(overlay=False).models

#: A published total may differ from the built model by at most this fraction once known extras are added.
PUBLISHED_TOLERANCE = 0.005


#: Built on the meta device in every run (a dense, a GQA, a parallel-attention and an MoE/MLA family); the
#: rest of the catalog only when slow tests run (about a second each).
QUICK = {"openai-community/gpt2", "mistralai/Mistral-7B-v0.1", "tiiuae/falcon-40b", "deepseek-ai/DeepSeek-V3"}
BUILT = [pytest.param(c, id=c.id, marks=() if c.id in QUICK else pytest.mark.slow) for c in CARDS]


@pytest.mark.parametrize("card", BUILT)
def test_analytic_count_equals_meta_model(card):
    lay = layout(card)
    built = meta_counts(card, [b.name for b in lay.blocks])
    assert lay.total == built.total
    assert sum(b.linear for b in lay.blocks) == built.quantizable_linear
    for block in lay.blocks:
        if block.tied_to is None:
            assert block.total == built.module_params[block.name], block.name


@pytest.mark.parametrize("card", CARDS, ids=[c.id for c in CARDS])
def test_published_count_agrees(card):
    computed = layout(card).total + card.stored_extra_params
    assert abs(card.params - computed) <= PUBLISHED_TOLERANCE * card.params, (
        f"{card.id}: catalog says {card.params:,}, transformers builds {layout(card).total:,}"
        f" + {card.stored_extra_params:,} stored extras"
    )
    if card.params_source == "computed":
        assert card.params == layout(card).total


def _tiny(model_type: str, **arch: object) -> ModelCard:
    base = dict(
        num_layers=8,
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=131072,  # above SmolLM3's default pad_token_id (128004)
        tie_word_embeddings=False,
    )
    return ModelCard.model_validate(
        dict(
            id=f"test/{model_type}",
            family="test",
            model_type=model_type,
            task="chat",
            license="apache-2.0",
            native_dtype="bfloat16",
            context_length=4096,
            params=1,
            architecture=base | arch,
        )
    )


_MOE = dict(num_experts=8, experts_per_token=2, moe_intermediate_size=32)
_LINEAR = dict(
    full_attention_interval=4,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=8,
    linear_value_head_dim=16,
    linear_conv_kernel_dim=4,
)
#: Small random configs of the layouts issue 13's families add, each built on the meta device.
TINY = {
    "stablelm-qkv-bias": _tiny("stablelm", attention_bias=True),
    "smollm3": _tiny("smollm3", tie_word_embeddings=True),
    "glm4_moe-qk-norm-bias": _tiny(
        "glm4_moe",
        attention_bias=True,
        num_shared_experts=1,
        first_dense_layers=1,
        config_extras={"use_qk_norm": True, "partial_rotary_factor": 0.5},
        **_MOE,
    ),
    "glm4_moe-3-dense": _tiny("glm4_moe", num_shared_experts=1, first_dense_layers=3, **_MOE),
    "llama4-all-moe": _tiny(
        "llama4_text",
        num_experts=4,
        experts_per_token=1,
        attention_chunk_size=16,
        global_attention_every=4,
        config_extras={"intermediate_size_mlp": 160, "interleave_moe_layer_step": 1},
    ),
    "llama4-interleaved": _tiny(
        "llama4_text",
        num_experts=4,
        experts_per_token=1,
        attention_chunk_size=16,
        global_attention_every=4,
        config_extras={"intermediate_size_mlp": 160, "interleave_moe_layer_step": 2},
    ),
    "qwen3_next": _tiny(
        "qwen3_next", config_extras={"shared_expert_intermediate_size": 48}, **_MOE, **_LINEAR
    ),
}


@pytest.mark.parametrize("card", list(TINY.values()), ids=list(TINY))
def test_new_family_layouts_equal_the_meta_model(card):
    lay = layout(card)
    built = meta_counts(card, [b.name for b in lay.blocks])
    assert lay.total == built.total
    assert sum(b.linear for b in lay.blocks) == built.quantizable_linear
    assert {b.name: b.total for b in lay.blocks if b.tied_to is None} == {
        b.name: built.module_params[b.name] for b in lay.blocks if b.tied_to is None
    }


def test_stablelm_qkv_bias_is_on_q_k_v_only():
    """use_qkv_bias adds one bias per q/k/v output row; StableLmAttention's o_proj never has a bias."""
    with_bias, without = layout(TINY["stablelm-qkv-bias"]), layout(_tiny("stablelm"))
    assert with_bias.total - without.total == 8 * (4 * 16 + 2 * 2 * 16)


def test_interleaved_moe_layers_alternate_with_wide_dense_layers():
    """Llama 4 Maverick: every 2nd layer routes (interleave_moe_layer_step 2); the others are dense MLPs of
    intermediate_size_mlp."""
    layers = layout(TINY["llama4-interleaved"]).layers
    assert layers[0].total == layers[2].total != layers[1].total == layers[3].total
    assert layers[0].active == layers[0].total and layers[1].active < layers[1].total


#: Published vision_config values of the multimodal repos whose language model the catalog plans (config.json).
_GEMMA3_VISION = dict(
    hidden_size=1152,
    image_size=896,
    intermediate_size=4304,
    num_attention_heads=16,
    num_hidden_layers=27,
    patch_size=14,
    vision_use_head=False,
)
_LLAMA4_VISION = dict(
    hidden_size=1408,
    image_size=336,
    intermediate_size=5632,
    num_attention_heads=16,
    num_hidden_layers=34,
    patch_size=14,
    vision_output_dim=4096,
    projector_input_dim=4096,
    projector_output_dim=4096,
    pixel_shuffle_ratio=0.5,
)
MULTIMODAL = {
    "google/gemma-3-4b-it": ("gemma3", _GEMMA3_VISION),
    "google/gemma-3-12b-it": ("gemma3", _GEMMA3_VISION),
    "google/gemma-3-27b-it": ("gemma3", _GEMMA3_VISION),
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": ("llama4", _LLAMA4_VISION),
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": ("llama4", _LLAMA4_VISION),
}


@pytest.mark.slow
@pytest.mark.parametrize("model_id", list(MULTIMODAL))
def test_multimodal_extras_are_the_vision_tower(model_id):
    """The full image-text model transformers builds from the card's text config and the published vision
    config holds exactly the Hub total; what it adds to the planned language model is the stored extras."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from registry.hf_config import config_kwargs
    from registry.verify import quiet_transformers

    card = next(c for c in CARDS if c.id == model_id)
    model_type, vision = MULTIMODAL[model_id]
    text = dict(config_kwargs(card), model_type=card.model_type)
    with quiet_transformers():
        config = AutoConfig.for_model(model_type, text_config=text, vision_config=vision)
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    assert total == card.params
    assert total - layout(card).total == card.stored_extra_params


#: New entries whose stored extras were worked out tensor by tensor: the Hub total is the build plus them, exactly.
EXACT_EXTRAS = [
    "Qwen/Qwen3-Next-80B-A3B-Instruct",
    "zai-org/GLM-4.5",
    "zai-org/GLM-4.5-Air",
    "moonshotai/Kimi-K2-Instruct",
    "HuggingFaceTB/SmolLM3-3B",
]


@pytest.mark.parametrize("model_id", EXACT_EXTRAS)
def test_published_total_is_the_build_plus_the_stored_extras(model_id):
    card = next(c for c in CARDS if c.id == model_id)
    assert card.params == layout(card).total + card.stored_extra_params


NEW_FAMILIES = {"smollm3", "glm4_moe", "llama4_text", "qwen3_next"}


@pytest.mark.parametrize("card", [c for c in CARDS if c.model_type in NEW_FAMILIES], ids=lambda c: c.id)
def test_config_keys_read_back_into_the_same_fields(card):
    """The config.json keys Berth writes for a new family (n_routed_experts, num_local_experts, linear_* …) are
    the ones the Hub importer reads back (Llama 4's global layers from no_rope_layer_interval included)."""
    from registry.hf_config import architecture_fields, config_kwargs

    fields = architecture_fields(card.model_type, config_kwargs(card))
    expected = card.architecture.model_dump(exclude_none=True, exclude={"config_extras"})
    assert fields == expected
