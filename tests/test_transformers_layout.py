"""transformers' own cache layouts and eager-attention peaks, measured on tiny random models of each family
built on this CPU, against registry.memory's figures."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from registry.hf_config import config_kwargs
from registry.memory import (
    EAGER_SCORE_BYTES,
    CacheLayout,
    activation_bytes,
    eager_attention_bytes,
    kv_bytes_per_token_per_layer,
    kv_cache_bytes,
)
from registry.schema import ModelCard

HEAD = 16


def tiny(card: ModelCard, heads: int = 8, layers: int = 2) -> ModelCard:
    """The card's family and attention layout (GQA ratio, MLA, windows, Falcon's new decoder) at toy size."""
    data = card.model_dump()
    arch: dict[str, Any] = data["architecture"]
    kv = arch.get("num_key_value_heads")
    ratio = arch["num_attention_heads"] // (kv or arch["num_attention_heads"])
    arch.update(num_layers=layers, num_attention_heads=heads, hidden_size=heads * HEAD, vocab_size=512)
    if kv:
        arch["num_key_value_heads"] = 1 if kv == 1 else max(1, heads // ratio)
    for key, value in (("head_dim", HEAD), ("intermediate_size", 64), ("sliding_window", 8)):
        if arch.get(key):
            arch[key] = value
    if arch.get("kv_lora_rank"):
        arch.update(kv_lora_rank=32, q_lora_rank=48, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)
        arch.update(moe_intermediate_size=32, num_experts=4, experts_per_token=2, first_dense_layers=1)
    data.update(id=card.id + "-tiny", aliases=[], params=1, params_source="computed")
    data.update(stored_extra_params=0, stored_extra_note=None)
    return ModelCard(**data)


def build(card: ModelCard) -> Any:
    config = AutoConfig.for_model(card.model_type, **config_kwargs(card))
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).eval()


def cache_bytes(cache: Any) -> int:
    """Bytes of every key and value tensor the returned cache holds."""
    total = 0
    for layer in cache.layers:
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


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


def _forward_peak(model: Any, tokens: int) -> int:
    """Peak of bytes allocated during one prefill (torch's CPU allocator, through the profiler)."""
    ids = torch.randint(0, 500, (1, tokens))
    with torch.no_grad(), torch.profiler.profile(profile_memory=True) as prof:
        model(ids, use_cache=True, logits_to_keep=1)
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
    )
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("model", ["mosaicml/mpt-7b", "google/gemma-2-2b-it"])
def test_eager_attention_peak_grows_with_the_score_matrix(catalog, model):
    """MPT and Gemma-2 run eager attention: the peak grows with heads × T² at the per-element cost Berth uses
    (within 10%), while an SDPA family's does not."""
    card = tiny(catalog.get(model))
    assert card.model_type in EAGER_SCORE_BYTES
    net = build(card)
    small, large = 384, 768
    growth = _forward_peak(net, large) - _forward_peak(net, small)
    predicted = eager_attention_bytes(card, large) - eager_attention_bytes(card, small)
    assert abs(growth / predicted - 1) < 0.10
    sdpa = tiny(catalog.get("meta-llama/Llama-3.1-8B-Instruct"))
    assert eager_attention_bytes(sdpa, large) == 0
    sdpa_growth = _forward_peak(build(sdpa), large) - _forward_peak(build(sdpa), small)
    assert sdpa_growth < 0.1 * growth


def test_mpt_7b_plan_counts_its_score_matrix(catalog):
    """At 2,048 tokens MPT-7B's eager softmax needs about 1.6 GB more than the SDPA estimate would."""
    card = catalog.get("mosaicml/mpt-7b")
    extra = eager_attention_bytes(card, 2048)
    assert 1.5e9 < extra < 1.8e9
    assert activation_bytes(card, 2048) > extra
