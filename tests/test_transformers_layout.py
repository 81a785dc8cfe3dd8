"""transformers' own cache layouts and eager-attention peaks, measured on tiny random models of each family
built on this CPU, against registry.memory's figures."""

from __future__ import annotations

import pytest
import torch

from bench.cache_layout import build, cache_bytes, forward_peak, tiny
from registry.memory import (
    EAGER_SCORE_BYTES,
    CacheLayout,
    activation_bytes,
    eager_attention_bytes,
    kv_bytes_per_token_per_layer,
    kv_cache_bytes,
)


@pytest.mark.parametrize(
    "model",
    [
        "tiiuae/falcon-180B",  # new decoder architecture: K/V repeated to every query head
        "tiiuae/falcon-40b",
        "tiiuae/falcon-7b",  # multi-query, not repeated
        "mosaicml/mpt-7b",
        "mistralai/Mistral-7B-v0.1",  # sliding window on every layer
        "google/gemma-2-2b-it",  # sliding and global layers alternate
        "meta-llama/Llama-3.1-8B-Instruct",
        "deepseek-ai/DeepSeek-V3",  # MLA: the compressed latent
    ],
)
def test_cache_bytes_match_what_transformers_holds(catalog, model):
    card = tiny(catalog.get(model))
    tokens = 24
    with torch.no_grad():
        out = build(card)(torch.randint(0, 500, (1, tokens)), use_cache=True)
    assert cache_bytes(out.past_key_values) == kv_cache_bytes(card, tokens, dtype="bfloat16")


def test_falcon_180b_caches_every_query_head_in_transformers_but_not_in_vllm(catalog):
    arch = catalog.get("tiiuae/falcon-180B").architecture
    assert kv_bytes_per_token_per_layer(arch, "bfloat16") == 2 * 232 * 64 * 2 == 59_392
    assert kv_bytes_per_token_per_layer(arch, "bfloat16", CacheLayout(runtime="vllm")) == 2 * 8 * 64 * 2


@pytest.mark.parametrize("model", ["mosaicml/mpt-7b", "google/gemma-2-2b-it"])
def test_eager_attention_peak_grows_with_the_score_matrix(catalog, model):
    """MPT and Gemma-2 run eager attention: the peak grows with heads × T² at the per-element cost Berth uses
    (within 10%), while an SDPA family's does not."""
    card = tiny(catalog.get(model))
    assert card.model_type in EAGER_SCORE_BYTES
    net = build(card)
    small, large = 384, 768
    growth = forward_peak(net, large) - forward_peak(net, small)
    predicted = eager_attention_bytes(card, large) - eager_attention_bytes(card, small)
    assert abs(growth / predicted - 1) < 0.10
    sdpa = tiny(catalog.get("meta-llama/Llama-3.1-8B-Instruct"))
    assert eager_attention_bytes(sdpa, large) == 0
    sdpa_growth = forward_peak(build(sdpa), large) - forward_peak(build(sdpa), small)
    assert sdpa_growth < 0.1 * growth


def test_mpt_7b_plan_counts_its_score_matrix(catalog):
    """At 2,048 tokens MPT-7B's eager softmax needs about 1.6 GB more than the SDPA estimate would."""
    card = catalog.get("mosaicml/mpt-7b")
    extra = eager_attention_bytes(card, 2048)
    assert 1.5e9 < extra < 1.8e9
    assert activation_bytes(card, 2048) > extra
