"""The shape search: fewest GPUs, then nodes, then headroom; replicas from decode and prefill; the runner-up."""

from __future__ import annotations

from math import ceil
from pathlib import Path

from launcher.fleet.load import load_fleet
from launcher.fleet.planner import plan_fleet
from launcher.fleet.report import plan_to_dict
from tests.fleet_support import fleet_catalog, nodes_yaml, plan_from

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fleet.yaml"


def test_example_mixtral_takes_8_gpus_not_12():
    plan = plan_fleet(load_fleet(EXAMPLE, fleet_catalog()))
    mixtral = plan.model("mixtral")
    assert mixtral.replica is not None and mixtral.status == "ok"
    assert mixtral.replicas_needed * mixtral.replica.shape.gpus == 8  # not TP2 × 6 = 12
    assert mixtral.runner_up is not None and "8 GPUs" in mixtral.runner_up  # the tie, lost on headroom
    data = plan_to_dict(plan)["models"][0]
    assert data["runner_up"] == mixtral.runner_up and data["capacity"]["replicas"] == mixtral.replicas_needed


def test_mixtral_on_a100_40gb_nodes_takes_a_pipeline_of_two_nodes():
    text = nodes_yaml("a100-40 a100-40gb 4 4") + (
        "models:\n  - model: mixtral-8x7b-instruct\n    context: 32768\n    concurrency: 32\n"
    )
    model = plan_from(text).models[0]
    assert model.replica is not None
    assert (model.replica.shape.label, model.replicas_needed) == ("TP4×PP2", 1)
    assert model.runner_up is not None and "16 GPUs against 8" in model.runner_up


def test_prefill_sets_the_replicas_for_long_prompts():
    text = nodes_yaml("h100 h100 8 8") + (
        "models:\n  - model: llama-8b\n    context: 32768\n    requests_per_s: 20\n"
        "    prompt_tokens: 30000\n    output_tokens: 500\n"
    )
    model = plan_from(text).models[0]
    r, cap = model.replica, model.capacity
    assert r is not None and cap is not None
    # Berth's own figure: one replica prefills prompt / TTFT tokens per second (TP1, no pipeline).
    assert (
        r.prefill_tokens_per_s == r.ttft_prompt_tokens / r.ttft_s
        or abs(r.prefill_tokens_per_s - r.ttft_prompt_tokens / r.ttft_s) < 1e-6 * r.prefill_tokens_per_s
    )
    assert cap.prefill_tokens_per_s_needed == 20 * 30000
    assert cap.prefill_replicas == ceil(600_000 / r.prefill_tokens_per_s)
    assert model.replicas_needed == max(cap.prefill_replicas, cap.decode_replicas) >= 29


def test_ttft_target_adds_replicas_and_rules_out_slow_shapes():
    base = (
        "models:\n  - model: llama-8b\n    context: 32768\n    requests_per_s: 20\n"
        "    prompt_tokens: 30000\n    output_tokens: 500\n"
    )
    loose = plan_from(nodes_yaml("h100 h100 8 16") + base).models[0]
    tight = plan_from(nodes_yaml("h100 h100 8 16") + base + "    ttft_s: 2\n").models[0]
    assert tight.capacity is not None and loose.capacity is not None
    assert tight.capacity.prefill_utilisation < 1
    assert tight.replicas_needed * tight.replica.shape.gpus > loose.replicas_needed * loose.replica.shape.gpus
    impossible = plan_from(nodes_yaml("h100 h100 8 16") + base + "    ttft_s: 0.01\n").models[0]
    assert impossible.status == "does-not-fit"
    assert any("above the 0.01 s target" in reason for reason in impossible.reasons)


def test_does_not_fit_rate_workload_reports_the_concurrency_it_needs():
    text = nodes_yaml("l4 l4 1 1") + (
        "models:\n  - model: llama-70b\n    context: 8192\n    requests_per_s: 10\n"
        "    prompt_tokens: 1000\n    output_tokens: 500\n    tokens_per_s_per_user: 20\n"
    )
    model = plan_from(text).models[0]
    assert model.status == "does-not-fit"
    assert model.concurrency_needed == 10 * 500 / 20


def test_a_shape_without_rivals_says_why_none_came_close():
    text = (
        nodes_yaml("h100 h100 8 2")
        + "models:\n  - model: llama-70b\n    context: 8192\n    concurrency: 50\n"
    )
    model = plan_from(text).models[0]
    assert model.replica is not None and (model.replica.shape.label, model.replicas_needed) == ("TP4×PP1", 1)
    assert model.runner_up is not None and model.runner_up.startswith("none: smaller replicas than TP4×PP1")
