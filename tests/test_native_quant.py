"""Checkpoints published in FP8 or MXFP4: sized by their real bytes, kept so where the GPU runs the format,
dequantized to bf16 elsewhere, in the planner, `berth show` and the fleet."""

from __future__ import annotations

import json

from click.testing import CliRunner

from launcher.entry import cli
from launcher.fleet.export import engine_kwargs
from launcher.fleet.load import load_fleet_text
from launcher.fleet.planner import plan_fleet
from launcher.plan.advice import named_host
from launcher.plan.ladder import make_plan
from launcher.plan.request import Plan
from registry.memory import (
    FP8_SCALE_BYTES,
    Precision,
    native_precision,
    routed_expert_params,
    runs_native,
    weight_bytes,
)
from registry.params import layout
from registry.schema import ModelCard

GIB = 2**30


def fp8_card(catalog, base: str = "Qwen/Qwen3-8B") -> ModelCard:
    """A real architecture published in FP8 with 128x128 block scales (as Qwen/Qwen3-8B-FP8 is)."""
    data = catalog.get(base).model_dump()
    data.update(id=base + "-FP8", aliases=[], native_quant="fp8", native_quant_block=128)
    return ModelCard(**data)


def test_deepseek_v3_fp8_is_sized_by_its_real_bytes(catalog):
    card = catalog.get("deepseek-v3")
    assert card.native_quant == "fp8" and card.native_quant_block == 128
    lay = layout(card)
    fp8 = weight_bytes(card, native_precision(card, "bfloat16"), lay)
    bf16 = weight_bytes(card, Precision("bfloat16"), lay)
    # Every decoder-layer Linear and routed expert in one byte, a float32 scale per 128x128 tile, the rest bf16.
    quantized = unquantized = 0
    for block in lay.blocks:
        if block.role == "layer":
            q = block.linear + routed_expert_params(block, card.architecture)
            quantized += q
            unquantized += block.total - q
        else:
            unquantized += block.total
    scales = sum(
        -(-(b.linear + routed_expert_params(b, card.architecture)) // (128 * 128))
        for b in lay.blocks
        if b.role == "layer"
    )
    assert fp8 == quantized + scales * FP8_SCALE_BYTES + 2 * unquantized
    assert quantized > 0.98 * lay.total  # almost everything is FP8
    # What transformers builds (671B) in FP8 plus the multi-token-prediction layer the repository also stores
    # (13.5B values, FP8): about 689 GB, the size of the published checkpoint, not the 1,342 GB of bf16.
    published = fp8 + card.stored_extra_params
    assert 680e9 < published < 695e9
    assert 0.50 < fp8 / bf16 < 0.52


def test_fp8_stays_fp8_on_hopper_and_is_dequantized_on_ampere_and_the_cpu(catalog):
    card = fp8_card(catalog)
    h100 = make_plan(card, named_host(catalog.accelerator("h100-sxm"), 1))
    a100 = make_plan(card, named_host(catalog.accelerator("a100-80gb"), 1))
    assert isinstance(h100, Plan) and isinstance(a100, Plan)
    assert h100.precision.native == "fp8" and h100.precision.label == "fp8"
    assert a100.precision.native is None and a100.precision.label == "bf16"
    assert any("kept in FP8" in r for r in h100.reasons)
    assert any("dequantizes it to bf16" in r and "8.9" in r for r in a100.reasons)
    held_h100 = sum(p.weights_bytes for p in h100.placements)
    held_a100 = sum(p.weights_bytes for p in a100.placements)
    assert held_h100 == weight_bytes(card, native_precision(card, "bfloat16"))
    assert held_a100 == weight_bytes(card, Precision("bfloat16"))
    # FP8 Linears; the untied 151,936-row embeddings and head stay bf16 (15% of Qwen3-8B).
    assert 0.55 < held_h100 / held_a100 < 0.6
    assert runs_native("fp8", (8, 9)) and not runs_native("fp8", (8, 6))
    assert runs_native("mxfp4", (9, 0)) and not runs_native("mxfp4", (8, 9))
    assert runs_native("fp8", (9, 4), "amd") and not runs_native("mxfp4", (9, 4), "amd")


def test_no_bitsandbytes_rungs_on_a_checkpoint_already_in_fp8(catalog):
    card = fp8_card(catalog, "Qwen/Qwen2.5-72B-Instruct")
    result = make_plan(
        card, named_host(catalog.accelerator("rtx-4090"), 1), accelerators=catalog.accelerators
    )
    # 72B does not fit a 24 GB card in any form; what matters is that nothing proposed stacks int8/nf4 on FP8.
    if isinstance(result, Plan):
        assert result.precision.quant is None


def test_mxfp4_experts_are_sized_at_4_25_bits(catalog):
    """gpt-oss-20b's shape (24 layers, 32 experts of 2,880, top 4, vocab 201,088) on a Mixtral-style layout:
    the experts in MXFP4, everything else bf16, against vLLM's 'Model loading took 13.47 GiB' on an H100
    (llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md)."""
    data = catalog.get("mistralai/Mixtral-8x7B-v0.1").model_dump()
    arch = data["architecture"]
    arch.update(
        num_layers=24,
        hidden_size=2880,
        intermediate_size=2880,
        num_attention_heads=64,
        num_key_value_heads=8,
        head_dim=64,
        num_experts=32,
        experts_per_token=4,
        vocab_size=201088,
        tie_word_embeddings=False,
        sliding_window=None,
    )
    data.update(id="openai/gpt-oss-20b-shape", aliases=[], native_quant="mxfp4", params=20_000_000_000)
    data["params_source"] = "computed"
    card = ModelCard(**data)
    mx = weight_bytes(card, native_precision(card, "bfloat16"))
    assert abs(mx / (13.47 * GIB) - 1) < 0.07
    assert mx < 0.35 * weight_bytes(card, Precision("bfloat16"))  # 20.9B parameters: 41.8 GB in bf16


def test_show_lists_the_published_format_first(catalog):
    result = CliRunner().invoke(cli, ["show", "deepseek-v3", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["memory"]
    assert rows[0]["precision"] == "fp8" and rows[0]["quantization"] == "fp8"
    assert all(r["precision"] not in ("int8", "nf4") for r in rows)
    assert (
        rows[0]["weights_bytes"] < 0.52 * next(r for r in rows if r["precision"] == "bf16")["weights_bytes"]
    )
    text = CliRunner().invoke(cli, ["show", "deepseek-v3"]).output
    assert "published in FP8" in text and "dequantizes to bf16" in text


def test_fleet_defaults_deepseek_v3_to_its_fp8_and_exports_it_so(catalog):
    text = """
nodes:
  - name: h200
    accelerator: h200
    gpus_per_node: 8
    count: 4
    ram: 2TB
    cpus: 192
models:
  - model: deepseek-v3
    context: 16384
    concurrency: 32
"""
    plan = plan_fleet(load_fleet_text(text, catalog))
    model = plan.models[0]
    assert model.replica is not None
    assert model.replica.quantization == "fp8"
    assert model.replica.shape.gpus * model.replicas_needed == 8  # one node of H200s, not 16 GPUs of bf16
    kwargs = engine_kwargs(model, plan)
    assert kwargs["quantization"] == "fp8" and kwargs["dtype"] == "auto"
