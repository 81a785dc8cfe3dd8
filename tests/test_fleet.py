"""The fleet planner: shapes, replica counts by Little's law, placement, shortfalls and alternatives."""

from __future__ import annotations

from collections import Counter
from math import ceil

import pytest

from launcher.fleet.planner import MIN_USEFUL_SEQUENCES, concurrency_needed, plan_fleet
from launcher.fleet.sizing import Load, model_weights, size_replica
from launcher.fleet.types import FleetPlan, Shape
from tests.fleet_support import nodes_yaml, plan_from, request_from


def models_yaml(*entries: str) -> str:
    """A `models:` section from 'key: value, key: value' lines."""
    out = ["models:"]
    for entry in entries:
        pairs = [p.split(":", 1) for p in entry.split(",")]
        out.append(f"  - {pairs[0][0].strip()}: {pairs[0][1].strip()}")
        out += [f"    {k.strip()}: {v.strip()}" for k, v in pairs[1:]]
    return "\n".join(out) + "\n"


def check_placement(plan: FleetPlan) -> None:
    """Every GPU is used at most once, TP groups stay in one node, and counts add up."""
    stages: Counter[tuple[str, int]] = Counter()
    for node in plan.nodes:
        used = [g for s in node.stages for g in s.gpu_indices]
        assert len(used) == len(set(used)) and all(0 <= g < node.gpus for g in used)
        for s in node.stages:
            model = plan.model(s.model)
            assert model.replica is not None
            assert len(s.gpu_indices) == model.replica.shape.tp
            stages[(s.model, s.replica)] += 1
    for model in plan.models:
        placed = [k for k in stages if k[0] == model.name]
        assert len(placed) == model.replicas_placed
        if model.replica:
            assert all(stages[k] == model.replica.shape.pp for k in placed)
    assert plan.used_gpus == sum(m.replicas_placed * m.replica.shape.gpus for m in plan.models if m.replica)


def test_70b_takes_four_h100s_with_nvlink_and_a_pipeline_without():
    text = nodes_yaml("h100 h100 8 1") + models_yaml("model: llama-70b, context: 8192, concurrency: 8")
    plan = plan_from(text)
    # TP2 leaves no room (65.7 GiB of weights per GPU), TP3 does not divide 64 heads: TP4.
    assert plan.models[0].replica.shape.label == "TP4×PP1"
    pcie = plan_from(
        nodes_yaml("l40s l40s 4 2 pcie") + models_yaml("model: llama-70b, context: 8192, concurrency: 4")
    )
    assert pcie.models[0].replica.shape.label == "TP1×PP4"  # no NVLink: of equal GPUs, pipeline first
    # At 8 sequences TP1×PP4 holds 6 per replica (the first stage keeps the whole embedding) and would need
    # 2 replicas = 8 GPUs; TP2×PP2 holds 8 on 4 GPUs: fewest GPUs wins over the pipeline preference.
    pcie8 = plan_from(
        nodes_yaml("l40s l40s 4 2 pcie") + models_yaml("model: llama-70b, context: 8192, concurrency: 8")
    )
    assert pcie8.models[0].replica.shape.label == "TP2×PP2" and pcie8.models[0].replicas_needed == 1
    runner_up = pcie8.models[0].runner_up
    assert runner_up is not None and "TP4×PP1" in runner_up and "PCIe" in runner_up
    linked = plan_from(
        nodes_yaml("l40s l40s 4 2 nvlink") + models_yaml("model: llama-70b, context: 8192, concurrency: 8")
    )
    assert linked.models[0].replica.shape.label == "TP4×PP1"
    for p in (plan, pcie, linked):
        check_placement(p)


def test_a_model_larger_than_a_node_pipelines_across_nodes():
    plan = plan_from(
        nodes_yaml("h100 h100 8 4") + models_yaml("model: deepseek-v3, context: 16384, concurrency: 4")
    )
    model = plan.models[0]
    # 1.34 TB of bf16 weights: TP8 fills a node, three stages cross three nodes.
    assert model.replica.shape.label == "TP8×PP3"
    assert model.status == "ok"
    holders = [n for n in plan.nodes if n.stages]
    assert len(holders) == 3 and all(n.used_gpus == 8 for n in holders)
    assert sorted(s.stage for n in holders for s in n.stages) == [0, 1, 2]
    check_placement(plan)


def test_tensor_size_must_divide_the_heads():
    plan = plan_from(
        nodes_yaml("h100 h100 8 1") + models_yaml("model: falcon-7b, context: 2048, concurrency: 8")
    )
    assert plan.models[0].replica.shape.tp == 1  # 71 heads


def test_replicas_from_littles_law():
    text = (
        nodes_yaml("h100 h100 8 2")
        + "engine:\n  max_num_seqs: 32\n"  # batches smaller than the load: Little's law at the full batch
        + models_yaml(
            "model: llama-8b, context: 8192, requests_per_s: 20, prompt_tokens: 2000, output_tokens: 500, "
            "tokens_per_s_per_user: 40"
        )
    )
    plan = plan_from(text)
    model = plan.models[0]
    r = model.replica
    seconds = r.ttft_s + 500 / r.decode_tokens_per_s_per_user
    assert model.concurrency_needed == pytest.approx(20 * seconds)
    assert model.replicas_needed == ceil(model.concurrency_needed / r.batch)
    assert r.decode_tokens_per_s_per_user >= 40
    check_placement(plan)


def test_concurrency_target_sets_replicas():
    plan = plan_from(
        nodes_yaml("h100 h100 8 2") + models_yaml("model: llama-8b, context: 32768, concurrency: 100")
    )
    model = plan.models[0]
    assert model.replicas_needed == ceil(100 / model.replica.batch)
    assert model.replica.batch == model.replica.max_concurrent_sequences  # no speed target: the cache decides


def test_useful_cache_picks_the_next_shape():
    # Llama-8B on one L4: 3.7 GiB of cache, 3 sequences of 8,192 tokens (fewer than MIN_USEFUL_SEQUENCES).
    request = request_from(
        nodes_yaml("l4 l4 4 1") + models_yaml("model: llama-8b, context: 8192, concurrency: 16")
    )
    group, workload = request.groups[0], request.workloads[0]
    weights = model_weights(workload.card, "bfloat16", None)
    one = size_replica(weights, Shape(1, 1), group, Load(8192), request.engine)
    assert one.estimate.max_concurrent_sequences < MIN_USEFUL_SEQUENCES
    plan = plan_fleet(request)
    assert plan.models[0].replica.shape.gpus == 2
    assert plan.models[0].replica.max_concurrent_sequences >= MIN_USEFUL_SEQUENCES


def test_small_model_goes_to_the_group_that_spends_least_memory():
    text = nodes_yaml("h100 h100 8 1", "l4 l4 4 1") + models_yaml(
        "model: falcon-7b, context: 2048, concurrency: 32"
    )
    plan = plan_from(text)
    assert plan.models[0].replica.group == "l4"
    pinned = plan_from(
        nodes_yaml("h100 h100 8 1", "l4 l4 4 1")
        + models_yaml("model: falcon-7b, context: 2048, concurrency: 32, accelerator: h100")
    )
    assert pinned.models[0].replica.group == "h100"


def test_a_full_group_sends_the_model_to_another_with_room():
    engine = "engine:\n  max_num_seqs: 64\n"
    text = (
        nodes_yaml("l4 l4 4 1", "h100 h100 8 1")
        + engine
        + models_yaml("model: falcon-7b, name: small, context: 2048, concurrency: 300")
    )
    plan = plan_from(text)
    small = plan.model("small")
    # 64 sequences per replica: 5 replicas. Five L4s would spend less memory than five H100s, but the
    # L4 group has four GPUs; the H100 node has room for all five.
    assert small.replicas_needed == 5
    assert small.status == "ok"
    assert small.replica.group == "h100"
    fewer = plan_from(text.replace("concurrency: 300", "concurrency: 250"))
    assert fewer.model("small").replica.group == "l4"
    check_placement(plan)


def test_short_fleet_says_what_to_add_and_that_is_enough():
    base = "model: llama-70b, context: 8192, concurrency: {c}"
    text = nodes_yaml("h100 h100 8 1") + models_yaml(base.format(c=200))
    plan = plan_from(text)
    model = plan.models[0]
    assert model.status == "short" and not plan.complete
    assert model.replica is not None
    placed = model.replicas_placed * model.replica.shape.gpus
    assert placed <= 8  # the fewest GPUs in all may leave the one node's GPUs unused until nodes are added
    (addition,) = plan.additions
    assert addition.group == "h100" and addition.gpus_per_node == 8
    assert addition.nodes == ceil((model.replicas_missing * model.replica.shape.gpus - (8 - placed)) / 8)
    assert plan.missing_gpus == model.replicas_missing * model.replica.shape.gpus
    grown = plan_from(nodes_yaml(f"h100 h100 8 {1 + addition.nodes}") + models_yaml(base.format(c=200)))
    assert grown.complete
    smaller = plan_from(nodes_yaml(f"h100 h100 8 {addition.nodes}") + models_yaml(base.format(c=200)))
    assert not smaller.complete  # the suggestion is the least that works


def test_short_model_gets_cheaper_alternatives():
    text = nodes_yaml("h100 h100 8 1") + models_yaml("model: llama-70b, context: 32768, concurrency: 80")
    plan = plan_from(text)
    model = plan.models[0]
    assert model.status == "short"
    labels = [a.label for a in model.alternatives]
    assert "fp8 weights" in labels or any(label.startswith("fp8") for label in labels)
    fp8 = next(a for a in model.alternatives if a.quantization == "fp8")
    assert fp8.gpus < model.replicas_needed * model.replica.shape.gpus
    if fp8.fits:
        ok = plan_from(
            nodes_yaml("h100 h100 8 1")
            + models_yaml(f"model: llama-70b, context: {fp8.context}, concurrency: 80, quantization: fp8")
        )
        assert ok.complete


def test_model_that_fits_nowhere():
    plan = plan_from(
        nodes_yaml("l4 l4 4 3") + models_yaml("model: deepseek-v3, context: 16384, concurrency: 4")
    )
    model = plan.models[0]
    assert model.status == "does-not-fit" and model.replica is None
    assert "do not fit even 64 GPUs" in model.reasons[0]
    assert not plan.additions  # more nodes of this kind would not help
    assert any(a.quantization == "fp8" for a in model.alternatives)


def test_speed_target_out_of_reach_rules_out_the_group():
    plan = plan_from(
        nodes_yaml("l4 l4 8 2")
        + models_yaml("model: llama-70b, context: 8192, concurrency: 4, tokens_per_s_per_user: 30")
    )
    model = plan.models[0]
    assert model.status == "does-not-fit"
    assert "below the 30 target" in model.reasons[0]


def test_bf16_needs_ampere():
    plan = plan_from(
        nodes_yaml("v100 v100 8 1") + models_yaml("model: llama-8b, context: 4096, concurrency: 4")
    )
    assert plan.models[0].replica.dtype == "float16"
    forced = plan_from(
        nodes_yaml("v100 v100 8 1")
        + models_yaml("model: llama-8b, context: 4096, concurrency: 4, dtype: bfloat16")
    )
    assert forced.models[0].status == "does-not-fit"
    assert "no bf16" in forced.models[0].reasons[0]


def test_largest_replicas_are_packed_first_and_nodes_fill_before_new_ones():
    text = nodes_yaml("h100 h100 8 3") + models_yaml(
        "model: llama-8b, name: a, context: 8192, concurrency: 40",
        "model: llama-70b, name: b, context: 8192, concurrency: 40",
        "model: mixtral-8x7b-instruct, name: c, context: 8192, concurrency: 20",
    )
    plan = plan_from(text)
    assert plan.complete
    check_placement(plan)
    used = [n.used_gpus for n in plan.nodes]
    # Best fit: at most one node is partly used.
    assert sum(1 for u in used if 0 < u < 8) <= 1


def test_plan_is_deterministic():
    text = nodes_yaml("h100 h100 8 2", "l4 l4 4 2") + models_yaml(
        "model: llama-8b, context: 8192, concurrency: 50",
        "model: mixtral-8x7b-instruct, context: 8192, concurrency: 9",
    )
    request = request_from(text)
    assert plan_fleet(request) == plan_fleet(request)


def test_concurrency_needed_uses_the_given_figure():
    request = request_from(
        nodes_yaml("h100 h100 8 1") + models_yaml("model: llama-8b, context: 4096, concurrency: 7")
    )
    plan = plan_fleet(request)
    assert plan.models[0].concurrency_needed == 7.0
    assert concurrency_needed(request.workloads[0], _sizing(request)) == 7.0


def _sizing(request):
    group, workload = request.groups[0], request.workloads[0]
    weights = model_weights(workload.card, "bfloat16", None)
    return size_replica(weights, Shape(1, 1), group, Load(workload.context), request.engine)
