"""Properties of the fleet planner (hypothesis): more nodes or a smaller model never need more GPUs, and the
Ray Serve export asks for exactly the GPUs the plan placed."""

from __future__ import annotations

from dataclasses import replace

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher.fleet.export import node_resources, serve_config
from launcher.fleet.placement import GroupAllocator, fit
from launcher.fleet.planner import plan_fleet
from launcher.fleet.types import FleetPlan, FleetRequest, NodeGroup, Shape
from tests.fleet_support import nodes_yaml, request_from

#: (accelerator, GPUs per node, link) of the node groups drawn from.
GROUPS = [("h100", 8, "nvlink"), ("a100-40gb", 4, "nvlink"), ("l40s", 4, "pcie"), ("l4", 8, "pcie")]
#: (model, context) of the workloads drawn from.
MODELS = [("llama-8b", 8192), ("llama-70b", 8192), ("mixtral-8x7b-instruct", 16384), ("gemma-2-9b-it", 4096)]

MINIMAL_MODELS = "models:\n  - model: llama-8b\n    concurrency: 1\n"
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def fleets(draw: st.DrawFn) -> FleetRequest:
    """One node group and one to three workloads."""
    acc, gpus, link = draw(st.sampled_from(GROUPS))
    count = draw(st.integers(1, 4))
    entries = []
    for i in range(draw(st.integers(1, 3))):
        model, context = draw(st.sampled_from(MODELS))
        concurrency = draw(st.integers(1, 400))
        entries.append(
            f"  - model: {model}\n    name: m{i}\n    context: {context}\n    concurrency: {concurrency}\n"
        )
    return request_from(nodes_yaml(f"g {acc} {gpus} {count} {link}") + "models:\n" + "".join(entries))


def gpus_needed(plan: FleetPlan) -> int:
    """GPUs every replica the workloads need would take, placed or not."""
    return sum(m.replicas_needed * m.replica.shape.gpus for m in plan.models if m.replica is not None)


def _grown(request: FleetRequest, nodes: int) -> FleetRequest:
    (group,) = request.groups
    bigger: NodeGroup = replace(group, count=group.count + nodes)
    return replace(request, groups=(bigger,))


@PROPERTY
@given(fleets(), st.integers(1, 3))
def test_adding_nodes_never_raises_the_gpus_needed(request, extra):
    before = plan_fleet(request)
    after = plan_fleet(_grown(request, extra))
    assert gpus_needed(after) <= gpus_needed(before)
    served_before = {m.name for m in before.models if m.replica is not None}
    assert served_before <= {m.name for m in after.models if m.replica is not None}


@PROPERTY
@given(fleets(), st.data())
def test_shrinking_a_model_never_raises_the_gpus_needed(request, data):
    """A model with fewer layers (less weights, less cache per token, faster) or a lighter load."""
    index = data.draw(st.integers(0, len(request.workloads) - 1))
    workload = request.workloads[index]
    arch = workload.card.architecture
    layers = data.draw(st.integers(max(1, arch.num_layers // 4), arch.num_layers))
    card = workload.card.model_copy(update={"architecture": arch.model_copy(update={"num_layers": layers})})
    lighter = max(1, (workload.concurrency or 1) // data.draw(st.integers(1, 4)))
    smaller = replace(workload, card=card, concurrency=lighter)
    shrunk = replace(
        request, workloads=(*request.workloads[:index], smaller, *request.workloads[index + 1 :])
    )
    before, after = plan_fleet(request).models[index], plan_fleet(shrunk).models[index]
    if before.replica is not None:
        assert after.replica is not None
        assert (
            after.replicas_needed * after.replica.shape.gpus
            <= before.replicas_needed * before.replica.shape.gpus
        )


@PROPERTY
@given(fleets())
def test_the_export_asks_for_exactly_the_gpus_the_plan_placed(request):
    plan = plan_fleet(request)
    if not any(m.replicas_placed for m in plan.models):
        return
    (app,) = serve_config(plan, allow_partial=True)["applications"]
    asked = 0
    for config in app["args"]["llm_configs"]:
        kwargs = config["engine_kwargs"]
        asked += (
            config["deployment_config"]["num_replicas"]
            * kwargs["tensor_parallel_size"]
            * kwargs["pipeline_parallel_size"]
        )
    assert asked == plan.used_gpus
    assert sum(sum(r.values()) for r in node_resources(plan).values()) == plan.used_gpus
    yaml.safe_dump(app)  # plain data all the way down


@PROPERTY
@given(
    st.sampled_from([4, 8]),
    st.integers(1, 6),
    st.lists(
        st.tuples(
            st.sampled_from([(1, 1), (2, 1), (4, 1), (1, 2), (4, 2), (8, 1), (8, 2)]), st.integers(1, 5)
        ),
        max_size=5,
    ),
    st.sampled_from([(1, 1), (2, 1), (4, 1), (1, 4), (4, 2), (8, 1), (8, 3)]),
    st.integers(1, 12),
)
def test_counted_fit_predicts_what_placement_places(gpus_per_node, nodes, before, shape, replicas):
    """`fit` on a free-GPU profile says how many replicas the allocator then places, without placing them."""
    group = request_from(nodes_yaml(f"g h100 {gpus_per_node} {nodes}") + MINIMAL_MODELS).groups[0]
    alloc = GroupAllocator(group)
    for index, ((tp, pp), count) in enumerate(before):
        if tp <= gpus_per_node:
            alloc.place_many(f"m{index}", Shape(tp, pp), count)
    tp, pp = shape
    if tp > gpus_per_node:
        return
    predicted = fit(alloc.profile(), Shape(tp, pp), replicas)
    assert alloc.place_many("new", Shape(tp, pp), replicas) == predicted


@PROPERTY
@given(fleets())
def test_adding_the_suggested_nodes_carries_the_workload(request):
    plan = plan_fleet(request)
    if not plan.additions:
        return
    (addition,) = plan.additions
    grown = plan_fleet(_grown(request, addition.nodes))
    assert grown.complete
    assert gpus_needed(grown) <= gpus_needed(plan)
