"""One replica's memory and speed, against figures worked out by hand and vLLM's own measurements."""

from __future__ import annotations

import pytest

from launcher.fleet.sizing import (
    NON_TORCH_BYTES_DISTRIBUTED,
    NON_TORCH_BYTES_SINGLE,
    Load,
    ShapeDoesNotFitError,
    activation_peak_bytes,
    model_weights,
    sampler_peak_bytes,
    size_replica,
    stage_layer_counts,
    valid_tensor_sizes,
)
from launcher.fleet.types import EngineSettings, NodeGroup, Shape
from launcher.plan.speed import VLLM_BATCHED
from registry.memory import CacheLayout, kv_bytes_per_token_per_layer
from tests.fleet_support import GIB, fleet_catalog

ENGINE = EngineSettings()


def group(acc: str = "h100-sxm", gpus: int = 8, nvlink: bool | None = None) -> NodeGroup:
    accelerator = fleet_catalog().accelerator(acc)
    link = accelerator.interconnect == "nvlink" if nvlink is None else nvlink
    return NodeGroup("g", accelerator, gpus, 1, 10**12, 64, link)


def card(name: str):
    return fleet_catalog().get(name)


def test_llama_8b_on_h100_matches_vllm_accounting():
    """vLLM on an H100 (79.18 GiB) at 0.9: 71.26 GiB − 14.99 weights − 4.76 activations − 0.13 non-torch
    = 51.38 GiB of KV cache for Llama-3.1-8B (llm-d's empirical vLLM memory results)."""
    weights = model_weights(card("llama-8b"), "bfloat16", None)
    assert weights.total_bytes == 8_030_261_248 * 2
    sizing = size_replica(weights, Shape(1, 1), group(), Load(context=16000), ENGINE)
    est = sizing.estimate
    budget = int(79.18 * GIB * 0.9)
    assert est.weights_bytes_per_rank == 8_030_261_248 * 2
    activation = activation_peak_bytes(8192, card("llama-8b"), 1024)
    assert est.activation_bytes_per_rank == activation
    assert abs(activation - 4.76 * GIB) < 0.05 * GIB  # the profile run's measured torch peak
    assert est.kv_cache_bytes_per_rank == budget - 8_030_261_248 * 2 - activation - NON_TORCH_BYTES_SINGLE
    assert abs(est.kv_cache_bytes_per_rank - 51.38 * GIB) < 0.1 * GIB
    # 32 layers × K and V × 8 heads × 128 × 2 bytes = 128 KiB per token; blocks of 16 tokens.
    per_token = 32 * 2 * 8 * 128 * 2
    assert est.kv_cache_tokens == est.kv_cache_bytes_per_rank // (per_token * 16) * 16
    assert est.max_concurrent_sequences == est.kv_cache_bytes_per_rank // (1000 * 16 * per_token)


def test_tensor_parallel_splits_kv_heads_and_replicates_when_ranks_exceed_them():
    arch = card("llama-70b").architecture  # 8 KV heads of 128
    assert kv_bytes_per_token_per_layer(arch, "bfloat16", CacheLayout(tensor_parallel=1)) == 2 * 8 * 128 * 2
    assert kv_bytes_per_token_per_layer(arch, "bfloat16", CacheLayout(tensor_parallel=4)) == 2 * 2 * 128 * 2
    assert (
        kv_bytes_per_token_per_layer(arch, "bfloat16", CacheLayout(tensor_parallel=16)) == 2 * 1 * 128 * 2
    )  # one head each
    mla = card("deepseek-v3").architecture
    # MLA's latent (512) and rope key (64) are cached whole on every rank.
    assert kv_bytes_per_token_per_layer(mla, "bfloat16", CacheLayout(tensor_parallel=8)) == (512 + 64) * 2


def test_replicated_kv_heads_add_weights_per_rank():
    weights = model_weights(card("llama-70b"), "bfloat16", None)
    wide = group(gpus=16)
    tp8 = size_replica(weights, Shape(8, 1), wide, Load(context=4096), ENGINE).estimate
    tp16 = size_replica(weights, Shape(16, 1), wide, Load(context=4096), ENGINE).estimate
    # At TP16 each rank holds one full KV head (k and v: 8192 × 128 each) instead of half of one.
    extra = 80 * int(2 * 8192 * 128 * 2 - 2 * 8192 * 8 * 128 * 2 / 16)
    assert tp16.weights_bytes_per_rank == -(-weights.total_bytes // 16) + extra
    assert tp8.weights_bytes_per_rank == -(-weights.total_bytes // 8)


@pytest.mark.parametrize(
    ("model", "limit", "sizes"),
    [
        ("falcon-7b", 8, (1,)),  # 71 query heads, one KV head: only TP1 divides 71
        ("llama-8b", 8, (1, 2, 4, 8)),
        ("llama-70b", 16, (1, 2, 4, 8, 16)),
        ("falcon-180b", 8, (1, 2, 4, 8)),  # 232 heads
        ("deepseek-v3", 8, (1, 2, 4, 8)),
    ],
)
def test_valid_tensor_sizes_divide_the_heads(model, limit, sizes):
    assert valid_tensor_sizes(card(model).architecture, limit) == sizes


def test_pipeline_layers_split_like_vllm():
    # The remainder goes to the stages before the last, counting backwards (vLLM's get_pp_indices).
    assert stage_layer_counts(80, 3) == (27, 27, 26)
    assert stage_layer_counts(61, 4) == (15, 15, 16, 15)
    assert stage_layer_counts(32, 1) == (32,)
    assert sum(stage_layer_counts(61, 7)) == 61


def test_pipeline_stages_hold_embeddings_first_and_head_last():
    llama = model_weights(card("llama-8b"), "bfloat16", None)
    embed = 128256 * 4096 * 2
    first, _ = llama.stage_bytes(0, 16, True, False, 2)
    last, _ = llama.stage_bytes(16, 32, False, True, 2)
    assert first + last == llama.total_bytes
    assert first - embed == sum(llama.layer_bytes[:16])
    # Gemma 2 ties its head to the embedding: with a pipeline the last stage needs its own copy.
    gemma = model_weights(card("gemma-2-9b-it"), "bfloat16", None)
    alone, _ = gemma.stage_bytes(21, 42, False, True, 1)
    piped, _ = gemma.stage_bytes(21, 42, False, True, 2)
    assert piped - alone == 256000 * 3584 * 2


def test_fp8_halves_linear_and_expert_weights():
    mixtral = card("mixtral-8x7b-instruct")
    bf16 = model_weights(mixtral, "bfloat16", None)
    fp8 = model_weights(mixtral, "bfloat16", "fp8")
    # Everything but the embedding, the output layer and the norms/routers becomes one byte.
    embeddings = 2 * 32000 * 4096
    assert fp8.total_bytes < bf16.total_bytes * 0.52
    assert fp8.total_bytes > (bf16.total_bytes - 2 * embeddings) / 2 + 2 * embeddings * 0.99
    assert sum(fp8.routed_bytes) * 2 == sum(bf16.routed_bytes)


def test_decode_is_bandwidth_bound_at_batch_one():
    weights = model_weights(card("llama-8b"), "bfloat16", None)
    h100 = group()
    load = Load(context=4096, prompt_tokens=1000, output_tokens=200)
    sizing = size_replica(weights, Shape(1, 1), h100, load, ENGINE)
    # A step reads all weights and one sequence's cache at its live length (1,000 + 100 tokens).
    read = weights.total_bytes + 1100 * 32 * 2 * 8 * 128 * 2
    assert sizing.rate_at(1) == pytest.approx(VLLM_BATCHED.gpu_decode * 3.35e12 / read)
    tp2 = size_replica(weights, Shape(2, 1), h100, load, ENGINE)
    pp2 = size_replica(weights, Shape(1, 2), h100, load, ENGINE)
    assert tp2.rate_at(1) > 1.9 * sizing.rate_at(1)  # two GPUs read half each
    assert pp2.rate_at(1) == pytest.approx(sizing.rate_at(1), rel=0.05)  # stages take turns
    # …but a pipeline runs two micro-batches at once: double the batch, about the same speed each.
    assert pp2.rate_at(64) == pytest.approx(sizing.rate_at(32), rel=0.05)


def test_moe_reads_only_the_experts_a_batch_touches():
    weights = model_weights(card("mixtral-8x7b-instruct"), "bfloat16", None)
    sizing = size_replica(weights, Shape(2, 1), group(), Load(context=4096), ENGINE)
    dense_rate = VLLM_BATCHED.gpu_decode * 3.35e12 * 2 / weights.total_bytes
    # One token uses 2 of 8 experts: much faster than reading every expert …
    assert sizing.rate_at(1) > 2.5 * dense_rate
    # … while 64 tokens touch nearly all of them (1 − (6/8)^64 ≈ 1).
    assert sizing.rate_at(64) < 1.05 * dense_rate


def test_batch_is_the_largest_that_meets_the_speed_target():
    weights = model_weights(card("llama-8b"), "bfloat16", None)
    load = Load(context=8192, tokens_per_s_per_user=60)
    sizing = size_replica(weights, Shape(1, 1), group(), load, ENGINE)
    batch = sizing.estimate.batch
    assert 1 < batch < sizing.estimate.max_concurrent_sequences
    assert sizing.rate_at(batch) >= 60 > sizing.rate_at(batch + 1)
    assert sizing.estimate.decode_tokens_per_s == pytest.approx(batch * sizing.rate_at(batch))


def test_speed_target_out_of_reach_is_a_reason():
    weights = model_weights(card("llama-70b"), "bfloat16", None)
    with pytest.raises(ShapeDoesNotFitError, match="below the 200 target"):
        size_replica(weights, Shape(4, 1), group(), Load(context=4096, tokens_per_s_per_user=200), ENGINE)


def test_too_large_for_the_shape_says_why():
    weights = model_weights(card("llama-70b"), "bfloat16", None)
    # 131 GiB over two H100s: 65.7 GiB each + 4.7 GiB activations + 0.55 GiB leave 0.26 GiB of the 71.3
    # GiB: no room for one 4,096-token sequence (1.25 GiB).
    with pytest.raises(ShapeDoesNotFitError, match=r"holds no 4,096-token sequence"):
        size_replica(weights, Shape(2, 1), group(), Load(context=4096), ENGINE)
    # Profiling 65,536 batched tokens, the forward pass alone takes the rest, and the reason says so.
    with pytest.raises(ShapeDoesNotFitError, match=r"exceed the 71\.3 GiB"):
        size_replica(
            weights, Shape(2, 1), group(), Load(context=4096), EngineSettings(max_num_batched_tokens=65536)
        )


def test_time_to_first_token_is_compute_bound_and_pays_for_pcie():
    weights = model_weights(card("llama-70b"), "bfloat16", None)
    load = Load(context=8192, prompt_tokens=2000, output_tokens=100)
    nvlink = size_replica(weights, Shape(4, 1), group(), load, ENGINE).estimate
    matmul = 2 * 70_553_706_496 * 2000 / (4 * 989e12 * VLLM_BATCHED.gpu_prefill)
    assert matmul < nvlink.ttft_s < 1.15 * matmul
    pcie = size_replica(weights, Shape(4, 1), group(nvlink=False), load, ENGINE).estimate
    assert pcie.ttft_s > nvlink.ttft_s + 0.1  # 160 all-reduces of 32 MB over 25 GB/s PCIe
    assert nvlink.non_torch_bytes_per_rank == NON_TORCH_BYTES_DISTRIBUTED


def test_smaller_gpus_profile_fewer_batched_tokens():
    l4 = group("l4", 4, nvlink=False)
    weights = model_weights(card("llama-8b"), "bfloat16", None)
    est = size_replica(weights, Shape(1, 2), l4, Load(context=4096), ENGINE).estimate
    assert est.max_num_batched_tokens == 2048
    # 256 sequences of 128,256 float32 logits in the sampler warm-up, a quarter of the H100 figure.
    assert est.activation_bytes_per_rank == sampler_peak_bytes(card("llama-8b"), 256)
    assert est.activation_bytes_per_rank == activation_peak_bytes(8192, card("llama-8b"), 1024) // 4


def test_batch_is_capped_by_vllms_default_max_num_seqs():
    weights = model_weights(card("falcon-7b"), "bfloat16", None)  # one KV head: a tiny cache per token
    l40s = group("l40s", 4, nvlink=False)
    est = size_replica(weights, Shape(1, 1), l40s, Load(context=2048), ENGINE).estimate
    # 0.9 × (48 GB − 480 MiB driver reserve) − 13.84 GB weights − 1.25 GB sampler warm-up (256 × 65,024
    # logits) − 0.13 GiB = 28.1 GB of cache; a 2,048-token sequence takes 2,048 × 32 layers × 2 × 64 × 2
    # bytes = 16.8 MB: 1,675 of them.
    assert est.max_concurrent_sequences == (
        int((48e9 - 480 * 2**20) * 0.9)
        - 2 * 6_921_720_704
        - activation_peak_bytes(2048, card("falcon-7b"), 256)
        - NON_TORCH_BYTES_SINGLE
    ) // (2048 * 32 * 2 * 64 * 2)
    assert est.max_concurrent_sequences == 1675
    assert est.batch == 256  # vLLM's default on GPUs under 70 GiB
    wide = EngineSettings(max_num_seqs=5000)
    lifted = size_replica(weights, Shape(1, 1), l40s, Load(context=2048), wide).estimate
    # The cap lifted, the cache decides; profiling 2,048 sequences' logits leaves less room than 256's.
    assert lifted.batch == lifted.max_concurrent_sequences == 1406
    assert lifted.activation_bytes_per_rank == sampler_peak_bytes(card("falcon-7b"), 2048)
    # Each running sequence needs a token of the step's budget: max_num_batched_tokens caps the batch too.
    narrow = EngineSettings(max_num_seqs=5000, max_num_batched_tokens=1024)
    assert size_replica(weights, Shape(1, 1), l40s, Load(context=2048), narrow).estimate.batch == 1024
