"""transformers' KV cache and eager-attention peaks on tiny random models of each catalog family, measured on
this CPU against registry.memory's figures (the same builders tests/test_transformers_layout.py asserts with).

Run: .venv/bin/python -m bench.cache_layout
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM

from registry.catalog import load_catalog
from registry.memory import eager_attention_bytes, kv_cache_bytes
from registry.schema import ModelCard
from registry.verify import build_config

FAMILIES = (
    "tiiuae/falcon-180B",
    "tiiuae/falcon-40b",
    "tiiuae/falcon-7b",
    "mosaicml/mpt-7b",
    "mistralai/Mistral-7B-v0.1",
    "google/gemma-2-2b-it",
    "google/gemma-3-1b-it",
    "bigcode/starcoder2-3b",
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen3-30B-A3B",
    "mistralai/Mixtral-8x7B-v0.1",
    "deepseek-ai/DeepSeek-V3",
    "openai-community/gpt2",
    "EleutherAI/gpt-neox-20b",
    "microsoft/phi-2",
    "allenai/OLMo-2-1124-7B-Instruct",
)
TOKENS = 24


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
    config = build_config(card)
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


def forward_peak(model: Any, tokens: int) -> int:
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


def main() -> None:
    catalog = load_catalog(overlay=False)
    print(
        f"transformers cache after a {TOKENS}-token prefill, tiny random models (2 layers, 8 heads of 16), bf16"
    )
    print(f"{'family of':34} {'model_type':12} {'measured':>9} {'Berth':>9}")
    for model in FAMILIES:
        card = tiny(catalog.get(model))
        with torch.no_grad():
            out = build(card)(torch.randint(0, 500, (1, TOKENS)), use_cache=True)
        measured = cache_bytes(out.past_key_values)
        print(f"{model:34} {card.model_type:12} {measured:9,} {kv_cache_bytes(card, TOKENS):9,}")
    print("eager attention: growth of the prefill's peak allocation from 384 to 768 tokens")
    for model in ("mosaicml/mpt-7b", "google/gemma-2-2b-it", "meta-llama/Llama-3.1-8B-Instruct"):
        card = tiny(catalog.get(model))
        net = build(card)
        growth = forward_peak(net, 768) - forward_peak(net, 384)
        predicted = eager_attention_bytes(card, 768) - eager_attention_bytes(card, 384)
        print(f"{model:34} {card.model_type:12} {growth:12,} {predicted:12,}")


if __name__ == "__main__":
    main()
