"""Capacity planning for a fleet: replica shapes, replica counts, placement on nodes, and what is missing.

Pure: takes a FleetRequest (machines, workloads, engine settings) and returns a FleetPlan. No I/O, no clock,
no environment. The serving itself is left to Ray Serve LLM with vLLM (see `launcher.fleet.export`).

For each workload and each node group it may use, the planner walks replica shapes from the fewest GPUs up
and takes the first that holds the weights with room for a useful KV cache and meets the speed target.
TP sizes divide the attention heads and stay inside a node; pipeline stages go across nodes; for the same
GPU count, larger TP comes first where the node has NVLink and longer pipelines first where it has not.
The group that needs the least GPU memory for the whole workload wins, unless it has no room and another
has. Replicas needed come from Little's law; placement packs the largest replicas first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from math import ceil

from launcher.display import gib
from launcher.fleet.placement import GroupAllocator
from launcher.fleet.sizing import (
    FP8_MIN_CAPABILITY,
    Load,
    ModelWeights,
    ShapeDoesNotFitError,
    Sizing,
    activation_peak_bytes,
    capability,
    default_batched_tokens,
    default_max_num_seqs,
    gpu_budget_bytes,
    model_weights,
    non_torch_bytes,
    size_replica,
    valid_tensor_sizes,
)
from launcher.fleet.types import (
    Addition,
    Alternative,
    EngineSettings,
    FleetPlan,
    FleetQuant,
    FleetRequest,
    ModelPlan,
    NodeGroup,
    NodePlan,
    Shape,
    Workload,
)
from launcher.plan.speed import VLLM_BATCHED, effective_bandwidth
from registry.schema import Dtype

#: A replica whose cache holds fewer full-context sequences than this (or than the workload needs, if
#: fewer) spends its memory on weights: the planner takes the next larger shape instead.
MIN_USEFUL_SEQUENCES = 4
#: Largest replica considered, in nodes of its group: longer pipelines are impractical to run.
MAX_REPLICA_NODES = 16
#: Shortest context the "shorter context" alternatives go down to when the workload gives no lengths.
MIN_ALTERNATIVE_CONTEXT = 2048
#: Alternatives listed per model that is short or does not fit.
MAX_ALTERNATIVES = 3


@dataclass(frozen=True)
class _Candidate:
    """A workload sized on one group: the replica and how many of them."""

    group: NodeGroup
    sizing: Sizing
    concurrency: float
    replicas: int

    @property
    def gpus(self) -> int:
        return self.replicas * self.sizing.estimate.shape.gpus

    @property
    def reserved_bytes(self) -> int:
        return self.gpus * self.group.accelerator.total_bytes


class _Weights:
    """model_weights, computed once per (model, dtype, quantization)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str | None], ModelWeights] = {}

    def get(self, workload: Workload, dtype: Dtype, quant: FleetQuant | None) -> ModelWeights:
        key = (workload.card.id, dtype, quant)
        if key not in self._cache:
            self._cache[key] = model_weights(workload.card, dtype, quant)
        return self._cache[key]


def _dtype_for(workload: Workload, group: NodeGroup) -> tuple[Dtype | None, str]:
    """The dtype to run in on this group, or None and why the group cannot."""
    acc = group.accelerator
    if workload.dtype is None:
        return ("bfloat16" if acc.supports_bf16 else "float16"), ""
    if workload.dtype == "bfloat16" and not acc.supports_bf16:
        return None, f"{acc.id} has no bf16 (compute capability {acc.compute_capability}); use dtype float16"
    return workload.dtype, ""


def _load(workload: Workload, context: int | None = None) -> Load:
    return Load(
        context=context or workload.context,
        prompt_tokens=workload.prompt_tokens,
        output_tokens=workload.output_tokens,
        tokens_per_s_per_user=workload.tokens_per_s_per_user,
    )


def concurrency_needed(workload: Workload, sizing: Sizing, batch: int | None = None) -> float:
    """Sequences in flight the workload needs: given, or arrival rate × time in the system (Little's law),
    time in the system being the time to first token plus the output at the replica's decode speed."""
    if workload.concurrency is not None:
        return float(workload.concurrency)
    assert workload.requests_per_s is not None and workload.output_tokens is not None
    estimate = sizing.estimate
    run_batch = estimate.batch if batch is None else batch
    seconds = estimate.ttft_s + workload.output_tokens / sizing.rate_at(run_batch)
    return workload.requests_per_s * seconds


def _replicas(workload: Workload, sizing: Sizing) -> tuple[float, int]:
    """(concurrency needed, replicas): at a full batch, refined once if a single replica runs lighter."""
    batch = sizing.estimate.batch
    need = concurrency_needed(workload, sizing)
    if workload.concurrency is None and need < batch:
        need = concurrency_needed(workload, sizing, max(1, ceil(need)))
    return need, max(1, ceil(need / batch - 1e-9))


def _shapes(tps: tuple[int, ...], group: NodeGroup, layers: int, start: int) -> Iterable[Shape]:
    """Shapes from `start` GPUs up. With NVLink, tensor parallelism first: a pipeline only once TP is as
    large as the node allows (so stages cross nodes). Without NVLink, pipeline first."""
    widest = max(tps)
    ordered = sorted(tps, reverse=group.nvlink)
    for gpus in range(start, group.gpus_per_node * MAX_REPLICA_NODES + 1):
        for tp in ordered:
            pp = gpus // tp
            if gpus % tp or pp > layers or (group.nvlink and pp > 1 and tp != widest):
                continue
            yield Shape(tp=tp, pp=pp)


def choose_shape(
    workload: Workload,
    group: NodeGroup,
    engine: EngineSettings,
    weights: ModelWeights,
    context: int | None = None,
    network_bytes_per_s: int | None = None,
) -> Sizing | str:
    """The smallest replica shape on this group that holds the weights with a useful KV cache and meets
    the speed target; otherwise the reason, in words."""
    arch = workload.card.architecture
    tps = valid_tensor_sizes(arch, group.gpus_per_node)
    if not tps:
        heads = arch.num_attention_heads
        return f"no TP size up to {group.gpus_per_node} divides the {heads} attention heads"
    load = _load(workload, context)
    acc = group.accelerator
    budget = gpu_budget_bytes(group, engine)
    batched = engine.max_num_batched_tokens or default_batched_tokens(group)
    seqs = engine.max_num_seqs or default_max_num_seqs(group)
    room = budget - activation_peak_bytes(batched, workload.card, seqs, weights.dtype) - non_torch_bytes(1)
    largest = group.gpus_per_node * MAX_REPLICA_NODES
    if room <= 0 or weights.total_bytes > room * largest:
        return (
            f"{gib(weights.total_bytes)} of weights do not fit even {largest} GPUs "
            f"({MAX_REPLICA_NODES} nodes) at {gib(max(room, 0))} each"
        )
    target = load.tokens_per_s_per_user
    if target is not None:
        bandwidth = effective_bandwidth(acc.bandwidth_bytes_per_s, VLLM_BATCHED.gpu_decode)
        best = bandwidth * max(tps) / max(1, _active_bytes(weights))
        if best < target:
            return (
                f"at most {best:.1f} tokens/s per user even with TP{max(tps)} (the model reads "
                f"{gib(_active_bytes(weights))} per token), below the {target:g} target"
            )
    start = max(1, -(-weights.total_bytes // room))
    last = "no shape tried"
    for shape in _shapes(tps, group, arch.num_layers, start):
        try:
            sizing = size_replica(weights, shape, group, load, engine, network_bytes_per_s)
        except ShapeDoesNotFitError as reason:
            last = str(reason)
            continue
        useful = MIN_USEFUL_SEQUENCES
        if workload.concurrency is not None or workload.requests_per_s is not None:
            useful = min(useful, max(1, ceil(concurrency_needed(workload, sizing, 1))))
        if sizing.estimate.max_concurrent_sequences >= useful:
            return sizing
        last = (
            f"{shape.label}: the KV cache holds only {sizing.estimate.max_concurrent_sequences} "
            f"{load.context:,}-token sequences (a useful replica holds {useful})"
        )
    return last


def _active_bytes(weights: ModelWeights) -> int:
    """Bytes one token reads at batch 1 (MoE: the routed experts it uses)."""
    arch = weights.card.architecture
    routed = sum(weights.routed_bytes)
    if arch.num_experts and arch.experts_per_token:
        unused = routed * (arch.num_experts - arch.experts_per_token) // arch.num_experts
        return weights.total_bytes - unused
    return weights.total_bytes


def _candidates(
    workload: Workload,
    groups: tuple[NodeGroup, ...],
    request: FleetRequest,
    cache: _Weights,
    quant: FleetQuant | None,
    context: int | None = None,
) -> tuple[list[_Candidate], list[str]]:
    """The workload sized on every group it may use, best first; and why the others were ruled out."""
    found: list[_Candidate] = []
    reasons: list[str] = []
    for group in groups:
        where = f"{group.name} ({group.accelerator.id})"
        if workload.accelerators and group.accelerator.id not in workload.accelerators:
            continue
        dtype, why = _dtype_for(workload, group)
        if dtype is None:
            reasons.append(f"{where}: {why}")
            continue
        if quant == "fp8" and capability(group) < FP8_MIN_CAPABILITY:
            reasons.append(f"{where}: fp8 needs compute capability 7.5 or newer")
            continue
        weights = cache.get(workload, dtype, quant)
        result = choose_shape(workload, group, request.engine, weights, context, request.network_bytes_per_s)
        if isinstance(result, str):
            reasons.append(f"{where}: {result}")
            continue
        need, replicas = _replicas(workload, result)
        found.append(_Candidate(group=group, sizing=result, concurrency=need, replicas=replicas))
    found.sort(key=lambda c: (c.reserved_bytes, c.gpus, groups.index(c.group)))
    return found, reasons


def _place_all(alloc: GroupAllocator, name: str, candidate: _Candidate, limit: int | None = None) -> int:
    """Place up to `limit` (default: all) replicas of the candidate; returns how many found room."""
    shape = candidate.sizing.estimate.shape
    placed = 0
    for index in range(candidate.replicas if limit is None else limit):
        if not alloc.place(name, index, shape):
            break
        placed += 1
    return placed


def _alternatives(
    workload: Workload,
    request: FleetRequest,
    cache: _Weights,
    allocators: dict[str, GroupAllocator],
) -> tuple[Alternative, ...]:
    """Cheaper ways to run the workload: 8-bit weights (fp8), a half or a quarter of the context."""
    floor = MIN_ALTERNATIVE_CONTEXT
    if workload.prompt_tokens is not None and workload.output_tokens is not None:
        floor = workload.prompt_tokens + workload.output_tokens
    contexts = [c for c in (workload.context // 2, workload.context // 4) if c >= floor]
    variants: list[tuple[str, FleetQuant | None, int]] = []
    if workload.quantization is None:
        variants.append(("fp8 weights", "fp8", workload.context))
    for context in contexts:
        variants.append((f"context {context:,}", workload.quantization, context))
        if workload.quantization is None:
            variants.append((f"fp8 weights, context {context:,}", "fp8", context))
    found: list[Alternative] = []
    for label, quant, context in variants:
        changed = replace(workload, quantization=quant, context=context)
        candidates, _ = _candidates(changed, request.groups, request, cache, quant, context)
        if not candidates:
            continue
        fitting = None
        for candidate in candidates:
            trial = allocators[candidate.group.name].copy()
            trial.release(workload.name)
            if _place_all(trial, workload.name, candidate) == candidate.replicas:
                fitting = candidate
                break
        chosen = fitting or candidates[0]
        found.append(
            Alternative(
                label=label,
                quantization=quant,
                context=context,
                replica=chosen.sizing.estimate,
                replicas=chosen.replicas,
                gpus=chosen.gpus,
                fits=fitting is not None,
            )
        )
    found.sort(key=lambda a: (not a.fits, a.gpus, a.label))
    return tuple(found[:MAX_ALTERNATIVES])


def _additions(
    missing: dict[str, list[tuple[str, Shape]]],
    groups: dict[str, NodeGroup],
    allocators: dict[str, GroupAllocator],
) -> tuple[Addition, ...]:
    """For each group short of room: the fewest extra nodes that host its missing replicas."""
    additions = []
    for name, replicas in missing.items():
        group = groups[name]
        trial = allocators[name].copy()
        start = trial.node_count
        trial.add_empty_nodes(sum(-(-shape.gpus // group.gpus_per_node) for _, shape in replicas))
        ordered = sorted(replicas, key=lambda item: -item[1].gpus)
        for index, (model, shape) in enumerate(ordered):
            trial.place(f"{model}#extra{index}", index, shape)
        additions.append(
            Addition(
                group=name,
                nodes=trial.used_nodes(start),
                accelerator=group.accelerator.id,
                gpus_per_node=group.gpus_per_node,
                models=tuple(dict.fromkeys(model for model, _ in replicas)),
            )
        )
    return tuple(additions)


_Sized = dict[str, tuple[list[_Candidate], list[str]]]
"""Each workload's candidates, best first, and why other groups were ruled out, by workload name."""


def _place_workloads(
    request: FleetRequest, sized: _Sized, allocators: dict[str, GroupAllocator]
) -> dict[str, tuple[_Candidate, int]]:
    """Place the largest workloads first, each on the first candidate group that holds all its replicas, else
    as many as fit on its best group: the candidate chosen and the replicas placed, by workload name."""

    def footprint(workload: Workload) -> tuple[int, int]:
        candidates = sized[workload.name][0]
        if not candidates:
            return (0, 0)
        return (-candidates[0].sizing.estimate.shape.gpus, -candidates[0].replicas)

    chosen: dict[str, tuple[_Candidate, int]] = {}
    for workload in sorted(request.workloads, key=footprint):
        candidates = sized[workload.name][0]
        if not candidates:
            continue
        for candidate in candidates:
            alloc = allocators[candidate.group.name]
            if _place_all(alloc, workload.name, candidate) == candidate.replicas:
                chosen[workload.name] = (candidate, candidate.replicas)
                break
            alloc.release(workload.name)
        else:
            best = candidates[0]
            chosen[workload.name] = (best, _place_all(allocators[best.group.name], workload.name, best))
    return chosen


def _model_plan(
    workload: Workload,
    request: FleetRequest,
    cache: _Weights,
    allocators: dict[str, GroupAllocator],
    sized: _Sized,
    chosen: tuple[_Candidate, int] | None,
) -> ModelPlan:
    """One workload's outcome: placed, short of room (with cheaper alternatives), or not fitting anywhere."""
    reasons = tuple(sized[workload.name][1])
    if chosen is None:
        return ModelPlan(
            workload=workload,
            status="does-not-fit",
            replica=None,
            concurrency_needed=float(workload.concurrency or 0),
            replicas_needed=0,
            replicas_placed=0,
            reasons=reasons or ("no node group in the fleet may run it",),
            alternatives=_alternatives(workload, request, cache, allocators),
        )
    candidate, placed = chosen
    short = placed < candidate.replicas
    return ModelPlan(
        workload=workload,
        status="short" if short else "ok",
        replica=candidate.sizing.estimate,
        concurrency_needed=candidate.concurrency,
        replicas_needed=candidate.replicas,
        replicas_placed=placed,
        reasons=reasons,
        alternatives=_alternatives(workload, request, cache, allocators) if short else (),
    )


def plan_fleet(request: FleetRequest) -> FleetPlan:
    """Shapes, replica counts and placement for every workload on the fleet, and what to add if short."""
    cache = _Weights()
    allocators = {g.name: GroupAllocator(g) for g in request.groups}
    groups = {g.name: g for g in request.groups}
    sized: _Sized = {
        w.name: _candidates(w, request.groups, request, cache, w.quantization) for w in request.workloads
    }
    chosen = _place_workloads(request, sized, allocators)
    plans: list[ModelPlan] = []
    missing: dict[str, list[tuple[str, Shape]]] = {}
    for workload in request.workloads:
        plan = _model_plan(workload, request, cache, allocators, sized, chosen.get(workload.name))
        plans.append(plan)
        if plan.replica is not None and plan.replicas_placed < plan.replicas_needed:
            short_group = chosen[workload.name][0].group.name
            missing.setdefault(short_group, []).extend(
                [(workload.name, plan.replica.shape)] * (plan.replicas_needed - plan.replicas_placed)
            )
    nodes: list[NodePlan] = []
    for group in request.groups:
        nodes.extend(allocators[group.name].node_plans())
    return FleetPlan(
        models=tuple(plans),
        nodes=tuple(nodes),
        additions=_additions(missing, groups, allocators),
        engine=request.engine,
        groups=request.groups,
        network_bytes_per_s=request.network_bytes_per_s,
    )
