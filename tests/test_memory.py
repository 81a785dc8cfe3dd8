"""Memory model against figures computed by hand from the models' config.json values."""

from __future__ import annotations

import pytest

from registry.memory import (
    CUDA_RUNTIME_BYTES,
    CacheLayout,
    Precision,
    block_weight_bytes,
    estimate_memory,
    kv_bytes_per_token,
    kv_cache_bytes,
    kv_cache_bytes_per_layer,
    weight_bytes,
)
from registry.params import Block, layout

BF16 = Precision("bfloat16")


def test_falcon_180b_bf16_weights_and_total(catalog):
    card = catalog.get("tiiuae/falcon-180B")
    weights = weight_bytes(card, BF16)
    # 80 layers × (qkv 14848×(232+16)×64 + dense 14848² + mlp 2×14848×59392 + 2 LayerNorms) + embeddings,
    # output tied: 178,557,088,768 parameters × 2 bytes.
    assert weights == 178_557_088_768 * 2
    assert abs(weights - 359e9) / 359e9 < 0.01  # the published "≈ 359 GB" (its files store lm_head twice)
    total = estimate_memory(card, BF16, context=2048, batch=1).total
    assert 359e9 < total < 400e9  # the seed: "about 400 GB is needed to run it"


def test_mistral_7b(catalog):
    card = catalog.get("mistralai/Mistral-7B-v0.1")
    assert weight_bytes(card, BF16) == 7_241_732_096 * 2
    # 32 layers × K and V × 8 kv heads × 128 head_dim × 2 bytes = 131,072 bytes per token.
    assert kv_bytes_per_token(card) == 32 * 2 * 8 * 128 * 2 == 131_072
    assert kv_cache_bytes(card, 1000) == 131_072_000
    # v0.1 slides a 4,096-token window on every layer: the cache stops growing there (transformers keeps the
    # last 4,095 tokens; the token being computed completes the window).
    assert kv_cache_bytes(card, 32_000) == kv_cache_bytes(card, 4096) == 4095 * 131_072


def test_gemma_2_9b_head_dim_and_alternating_window(catalog):
    card = catalog.get("google/gemma-2-9b-it")
    per_layer = 2 * 8 * 256 * 2  # head_dim 256, not 3584 / 16 = 224
    assert kv_bytes_per_token(card) == 42 * per_layer
    # 21 sliding layers keep 4,095 tokens in transformers' cache, 21 global layers keep all 8,192.
    assert kv_cache_bytes(card, 8192) == (21 * 4095 + 21 * 8192) * per_layer == 2_113_757_184


def test_paged_tensor_parallel_cache_layout(catalog):
    """vLLM's layout: each rank holds its share of KV heads, and every layer's tokens round up to whole
    blocks; the sliding window caps a layer before the rounding."""
    card = catalog.get("google/gemma-2-9b-it")  # 8 KV heads of 256, sliding layers keep 4,096 tokens
    paged = CacheLayout(tensor_parallel=2, block_tokens=16, runtime="vllm")
    per_layer = 2 * 4 * 256 * 2
    layers = kv_cache_bytes_per_layer(card, 5000, cache=paged)
    assert layers[0] == 4096 * per_layer  # a sliding layer: the window, already whole blocks
    assert layers[1] == 5008 * per_layer  # a global layer: 5,000 tokens in 313 blocks of 16
    assert kv_cache_bytes(card, 5000, cache=paged) == 21 * (4096 + 5008) * per_layer
    assert (
        kv_cache_bytes(card, 5000) == 21 * (4095 + 5000) * 2 * per_layer
    )  # transformers: one rank, by token, the window less the token being computed


def test_falcon_7b_multi_query_cache(catalog):
    card = catalog.get("tiiuae/falcon-7b")
    # One key/value head of 64: 32 layers × 2 × 64 × 2 bytes.
    assert kv_bytes_per_token(card) == 8192
    assert kv_cache_bytes(card, 2048, batch=4) == 2048 * 4 * 8192


def test_deepseek_v3_mla_latent_cache(catalog):
    card = catalog.get("deepseek-ai/DeepSeek-V3")
    # MLA caches the 512-wide latent plus the 64-wide rope key once per token and layer.
    assert kv_bytes_per_token(card) == 61 * (512 + 64) * 2 == 70_272
    # Per-head K/V would be 61 × 2 × 128 × 128 × 2 = 4 MB per token: the latent is 57× smaller.
    assert kv_bytes_per_token(card) * 50 < 61 * 2 * 128 * 128 * 2


def test_quantization_shrinks_linear_weights_only():
    block = Block(
        "model.layers.0", "layer", linear=1_000_000, linear_rows=1000, other=10_000, active=1_010_000
    )
    assert block_weight_bytes(block, BF16) == 2_020_000
    assert block_weight_bytes(block, Precision("float32")) == 4_040_000
    # int8: one byte per weight, a float32 scale per output row, the rest stays 16-bit.
    assert block_weight_bytes(block, Precision("bfloat16", "int8")) == 1_000_000 + 4000 + 20_000
    # nf4 with double quantization: half a byte per weight, 1 byte absmax per 64, fp32 per 256 absmax.
    absmax = -(-1_000_000 // 64)
    assert (
        block_weight_bytes(block, Precision("bfloat16", "nf4"))
        == 500_000 + absmax + (-(-absmax // 256)) * 4 + 20_000
    )


def test_moe_experts_stay_16_bit_under_bitsandbytes(catalog):
    card = catalog.get("mistralai/Mixtral-8x7B-Instruct-v0.1")
    int8 = weight_bytes(card, Precision("bfloat16", "int8"))
    bf16 = weight_bytes(card, BF16)
    # transformers 5 stores experts as fused 3D tensors, which bitsandbytes does not replace.
    assert int8 > 0.9 * bf16
    lay = layout(card)
    assert lay.active < lay.total / 3


def test_fill_mask_has_no_cache(catalog):
    card = catalog.get("google-bert/bert-base-uncased")
    assert kv_cache_bytes(card, 512) == 0


def test_estimate_parts_add_up(catalog):
    card = catalog.get("h2oai/h2o-danube-1.8b-chat")
    est = estimate_memory(card, BF16, context=2048, device="cuda")
    assert est.total == est.weights + est.kv_cache + est.activations + est.overhead
    assert est.overhead >= CUDA_RUNTIME_BYTES
    longer = estimate_memory(card, BF16, context=4096, device="cuda")
    # 4,096 tokens reach the 4,096-token sliding window, of which transformers caches 4,095.
    assert longer.kv_cache == est.kv_cache * 4095 // 2048 and longer.activations > est.activations
    beyond_window = estimate_memory(card, BF16, context=8192, device="cuda")
    assert beyond_window.kv_cache == longer.kv_cache  # a 4,096-token sliding window on every layer
    assert all(isinstance(v, int) for v in (est.weights, est.kv_cache, est.activations, est.overhead))


@pytest.mark.parametrize("quant", [None, "int8", "nf4"])
def test_every_catalog_entry_has_positive_integer_needs(catalog, quant):
    for card in catalog.models:
        est = estimate_memory(card, Precision("bfloat16", quant), context=min(2048, card.context_length))
        assert isinstance(est.total, int) and est.total > 0
