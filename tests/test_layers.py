"""Layer patterns and the cache each layer keeps: sliding windows (gpt-oss), chunked attention (Llama 4) and
linear-attention layers with a fixed recurrent state (Qwen3-Next), checked against what transformers builds."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from transformers import AutoConfig, AutoModelForCausalLM

from registry.hf_config import config_kwargs
from registry.layers import attention_layers, layer_kind, recurrent_state_bytes
from registry.memory import (
    TRANSFORMERS_WINDOW_TRIM,
    kv_bytes_per_token,
    kv_cache_bytes,
    kv_cache_bytes_per_layer,
)
from registry.schema import Architecture, ModelCard

TINY_NEXT = dict(
    num_layers=8,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    vocab_size=128,
    tie_word_embeddings=False,
    num_experts=4,
    experts_per_token=2,
    moe_intermediate_size=32,
    full_attention_interval=4,
    linear_num_key_heads=2,
    linear_num_value_heads=4,
    linear_key_head_dim=8,
    linear_value_head_dim=16,
    linear_conv_kernel_dim=4,
    config_extras={"shared_expert_intermediate_size": 32},
)


def _card(model_type: str, context: int = 4096, **arch: object) -> ModelCard:
    return ModelCard.model_validate(
        dict(
            id=f"test/{model_type}",
            family="test",
            model_type=model_type,
            task="chat",
            license="apache-2.0",
            native_dtype="bfloat16",
            context_length=context,
            params=1,
            architecture=arch,
        )
    )


def test_gpt_oss_alternates_128_token_windows_with_full_layers(catalog):
    card = catalog.get("openai/gpt-oss-20b")
    arch = card.architecture
    assert [layer_kind(arch, i) for i in range(4)] == ["sliding", "full", "sliding", "full"]
    per_token = 2 * 8 * 64 * 2
    # transformers' sliding cache keeps window - 1 tokens (TRANSFORMERS_WINDOW_TRIM, measured in test_memory)
    assert (
        kv_cache_bytes(card, 65536)
        == 12 * (128 - TRANSFORMERS_WINDOW_TRIM) * per_token + 12 * 65536 * per_token
    )
    assert kv_cache_bytes(card, 100) == 24 * 100 * per_token


def test_chunked_layers_keep_one_chunk_and_every_fourth_layer_everything():
    card = _card(
        "llama4_text",
        context=1_048_576,
        num_layers=48,
        hidden_size=5120,
        num_attention_heads=40,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=202048,
        tie_word_embeddings=False,
        attention_chunk_size=8192,
        global_attention_every=4,
    )
    kinds = [layer_kind(card.architecture, i) for i in range(48)]
    assert kinds.count("chunked") == 36 and kinds[3] == "full" and kinds[4] == "chunked"
    per_token = 2 * 8 * 128 * 2
    per_layer = kv_cache_bytes_per_layer(card, 100_000)
    assert per_layer[0] == 8192 * per_token and per_layer[3] == 100_000 * per_token
    assert kv_cache_bytes(card, 100_000) == 36 * 8192 * per_token + 12 * 100_000 * per_token


def test_chunked_layer_types_match_what_transformers_derives():
    card = _card(
        "llama4_text",
        num_layers=8,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=128,
        tie_word_embeddings=False,
        attention_chunk_size=16,
        global_attention_every=4,
    )
    ours = config_kwargs(card)["layer_types"]
    kwargs = {k: v for k, v in config_kwargs(card).items() if k != "layer_types"}
    theirs = AutoConfig.for_model("llama4_text", **kwargs).layer_types
    assert ours == theirs


def test_linear_layers_hold_a_fixed_state_that_matches_the_real_cache():
    """Run a tiny random Qwen3-Next in bfloat16 and weigh the cache transformers really keeps."""
    card = _card("qwen3_next", **TINY_NEXT)
    config = AutoConfig.for_model("qwen3_next", **config_kwargs(card))
    assert config.layer_types == [
        "linear_attention" if layer_kind(card.architecture, i) == "linear" else "full_attention"
        for i in range(8)
    ]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval().to(torch.bfloat16)
    tokens = 37
    with torch.no_grad():
        cache = model(torch.randint(0, 128, (1, tokens)), use_cache=True).past_key_values
    measured = []
    for i, layer in enumerate(cache.layers):
        if layer_kind(card.architecture, i) == "linear":
            states = (cache.get_conv_state(i), cache.get_recurrent_state(i))
        else:
            states = (layer.keys, layer.values)
        measured.append(sum(t.numel() * t.element_size() for t in states))
    assert kv_cache_bytes_per_layer(card, tokens, dtype="bfloat16") == measured


def test_linear_state_does_not_grow_with_context():
    card = _card("qwen3_next", **TINY_NEXT)
    short, long = kv_cache_bytes_per_layer(card, 10), kv_cache_bytes_per_layer(card, 100_000)
    linear = [i for i in range(8) if layer_kind(card.architecture, i) == "linear"]
    assert len(linear) == 6 and attention_layers(card.architecture) == 2
    assert all(short[i] == long[i] == recurrent_state_bytes(card.architecture, 2) for i in linear)
    assert kv_bytes_per_token(card) == 2 * (2 * 2 * 16 * 2)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"sliding_window": 128, "attention_chunk_size": 8192}, "not both"),
        ({"global_attention_every": 4}, "needs sliding_window or attention_chunk_size"),
        ({"full_attention_interval": 4, "linear_num_key_heads": 2}, "all together"),
        ({"linear_conv_kernel_dim": 4}, "all together"),
    ],
)
def test_inconsistent_layer_patterns_are_refused(fields, message):
    base = dict(
        num_layers=8, hidden_size=64, num_attention_heads=4, vocab_size=128, tie_word_embeddings=False
    )
    with pytest.raises(ValidationError, match=message):
        Architecture.model_validate(base | fields)


def test_catalog_hybrids_keep_caches_only_in_their_attention_layers(catalog):
    """Qwen3-Next: 12 of 48 layers keep a KV cache (2 heads of 256), the 36 others a fixed state; Llama 4 Scout:
    12 global layers keep every token, 36 chunked ones at most 8192 (8 KV heads of 128)."""
    nxt = catalog.get("Qwen/Qwen3-Next-80B-A3B-Instruct")
    assert attention_layers(nxt.architecture) == 12
    state = recurrent_state_bytes(nxt.architecture, 2)
    assert kv_cache_bytes(nxt, 262_144) == 12 * 262_144 * (2 * 2 * 256 * 2) + 36 * state
    scout = catalog.get("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    per_token = 2 * 8 * 128 * 2
    assert kv_cache_bytes(scout, 1_000_000) == 12 * 1_000_000 * per_token + 36 * 8192 * per_token
