"""Capacity planning for a fleet: replica shapes, replica counts, placement on nodes, and what is missing.

Pure: takes a FleetRequest (machines, workloads, engine settings) and returns a FleetPlan. No I/O, no clock,
no environment. The serving itself is left to Ray Serve LLM with vLLM (see `launcher.fleet.export`).

For each workload and each node group it may use, `launcher.fleet.search` sizes every replica shape and counts
the replicas both phases need (decode batches, prefill throughput); the options are ranked by GPU memory held
(GPUs, within one group), then nodes and headroom. Placement takes the workloads with the largest replicas
first; each goes to the first group whose best option the free GPUs hold whole (counted before anything is
placed), else to the group where the most of its best option fits. Within a group the plan keeps to the best
option even when short (and says what to add), so more nodes never make it need more GPUs. Each model's plan
says why the runner-up lost. Alternatives and additions are counted on free-GPU profiles, never on copies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import fields as fields_of

from launcher.display import gib
from launcher.fleet.capacity import concurrency_needed
from launcher.fleet.placement import GroupAllocator, fit, nodes_to_add
from launcher.fleet.search import (
    MAX_REPLICA_NODES,
    MIN_USEFUL_SEQUENCES,
    Option,
    SizingCache,
    group_options,
    nodes_for,
    option_key,
    why_lost,
)
from launcher.fleet.sizing import (
    FP8_MIN_CAPABILITY,
    Load,
    ModelWeights,
    capability,
    model_weights,
)
from launcher.fleet.types import (
    Addition,
    Alternative,
    FleetPlan,
    FleetQuant,
    FleetRequest,
    ModelPlan,
    NodeGroup,
    Workload,
)
from launcher.plan.speed import VLLM_BATCHED, effective_bandwidth
from registry.params import layout
from registry.schema import Dtype

__all__ = ["MAX_REPLICA_NODES", "MIN_USEFUL_SEQUENCES", "concurrency_needed", "plan_fleet"]

#: Shortest context the "shorter context" alternatives go down to when the workload gives no lengths.
MIN_ALTERNATIVE_CONTEXT = 2048
#: Alternatives listed per model that is short or does not fit.
MAX_ALTERNATIVES = 3
#: Options kept per node group (the best places; the others name the runner-up).
OPTIONS_PER_GROUP = 4


class _Weights:
    """model_weights, computed once per (card, dtype, quantization). Cards are told apart by identity, not
    by id: two workloads may carry different cards under one name (an edited copy), and the cached weights
    keep their card alive, so its identity is not reused while the cache lives."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str, str | None], ModelWeights] = {}

    def get(self, workload: Workload, dtype: Dtype, quant: FleetQuant | None) -> ModelWeights:
        key = (id(workload.card), dtype, quant)
        if key not in self._cache:
            self._cache[key] = model_weights(workload.card, dtype, quant)
        return self._cache[key]


@dataclass
class _Caches:
    weights: _Weights
    sizing: SizingCache
    options: dict[tuple[object, ...], tuple[list[Option], list[str]]]
    """_candidates by everything but the served name: workloads of the same model and load share them."""


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


def _candidates(
    workload: Workload,
    request: FleetRequest,
    caches: _Caches,
    quant: FleetQuant | None,
    context: int | None = None,
) -> tuple[list[Option], list[str]]:
    """The workload's options on every group it may use, best first; and why the other groups were ruled out."""
    fields = tuple(getattr(workload, f.name) for f in fields_of(workload) if f.name not in ("name", "card"))
    key = (id(workload.card), fields, quant, context)
    if key not in caches.options:
        caches.options[key] = _size_everywhere(workload, request, caches, quant, context)
    found, reasons = caches.options[key]
    return list(found), list(reasons)


def _size_everywhere(
    workload: Workload,
    request: FleetRequest,
    caches: _Caches,
    quant: FleetQuant | None,
    context: int | None,
) -> tuple[list[Option], list[str]]:
    found: list[Option] = []
    reasons: list[str] = []
    order = {g.name: i for i, g in enumerate(request.groups)}
    for group in request.groups:
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
        weights = caches.weights.get(workload, dtype, quant)
        result = group_options(
            workload, group, request.engine, weights, _load(workload, context), request.network_bytes_per_s,
            caches.sizing,
        )  # fmt: skip
        if isinstance(result, str):
            reasons.append(f"{where}: {result}")
            continue
        holdable = [o for o in result if _holdable(o)]
        if not holdable:
            reasons.append(
                f"{where}: one replica of {result[0].shape.label} needs more than its {group.count} nodes"
            )
        found.extend(result[:OPTIONS_PER_GROUP])
    found.sort(key=lambda o: (*option_key(o), order[o.group.name]))
    return found, reasons


def _holdable(option: Option) -> bool:
    """Whether one replica fits in the group's nodes at all."""
    group = option.group
    return nodes_for(option.shape, 1, group.gpus_per_node) <= group.count


def _group_bests(options: list[Option]) -> list[Option]:
    """Each group's best option, best first. Within a group the plan keeps to the shape that needs the fewest
    GPUs even when the free GPUs hold only part of it (then it says what to add), so that more nodes never
    make a plan need more GPUs; across groups it takes the best whose replicas all fit."""
    seen: set[str] = set()
    bests = []
    for option in options:
        if option.group.name not in seen:
            seen.add(option.group.name)
            bests.append(option)
    return bests


def _first_fitting(
    options: list[Option], allocators: dict[str, GroupAllocator], release: str
) -> Option | None:
    """The best group's best option whose replicas all fit the free GPUs (what `release` holds counted free)."""
    for option in _group_bests(options):
        levels = allocators[option.group.name].profile(release)
        if fit(levels, option.shape, option.replicas) == option.replicas:
            return option
    return None


def _most_placed(options: list[Option], allocators: dict[str, GroupAllocator]) -> Option:
    """When no option fits whole: the one whose placeable replicas carry the largest share of the load."""

    def share(option: Option) -> float:
        levels = allocators[option.group.name].profile()
        return fit(levels, option.shape, option.replicas) / option.replicas

    return max(options, key=share)  # max keeps the first (best ranked) of equal shares


def _alternatives(
    workload: Workload,
    request: FleetRequest,
    caches: _Caches,
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
        options, _ = _candidates(changed, request, caches, quant, context)
        if not options:
            continue
        fitting = _first_fitting(options, allocators, workload.name)
        chosen = fitting or options[0]
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
    chosen: dict[str, tuple[Option, int]], short: dict[str, list[str]], groups: dict[str, NodeGroup]
) -> tuple[Addition, ...]:
    """For each group short of room: the fewest extra nodes on which a fresh plan places every replica of the
    workloads that group runs, in the order the planner places them (counted)."""
    additions = []
    for name, models in short.items():
        group = groups[name]
        demands = [(o.shape, o.replicas) for o, _ in chosen.values() if o.group.name == name]
        additions.append(
            Addition(
                group=name,
                nodes=max(1, nodes_to_add(group.count, group.gpus_per_node, demands)),
                accelerator=group.accelerator.id,
                gpus_per_node=group.gpus_per_node,
                models=tuple(models),
            )
        )
    return tuple(additions)


_Sized = dict[str, tuple[list[Option], list[str]]]
"""Each workload's options, best first, and why other groups were ruled out, by workload name."""


def _place_workloads(
    request: FleetRequest, sized: _Sized, allocators: dict[str, GroupAllocator]
) -> dict[str, tuple[Option, int]]:
    """Place the workloads with the largest replicas first, each on its best option that the free GPUs hold
    (counted first), else as many as fit of its best option: the option chosen and the replicas placed."""

    def footprint(workload: Workload) -> tuple[int, int]:
        options = sized[workload.name][0]
        if not options:
            return (0, 0)
        return (-options[0].shape.gpus, -options[0].replicas)

    chosen: dict[str, tuple[Option, int]] = {}
    for workload in sorted(request.workloads, key=footprint):
        options = sized[workload.name][0]
        if not options:
            continue
        option = _first_fitting(options, allocators, workload.name) or _most_placed(
            _group_bests(options), allocators
        )
        alloc = allocators[option.group.name]
        chosen[workload.name] = (option, alloc.place_many(workload.name, option.shape, option.replicas))
    return chosen


def _runner_up(options: list[Option], chosen: Option, placed: int) -> str:
    """The next-best option and why it lost (or why the better one was not taken), in words."""
    if options and options[0] is not chosen:
        first = options[0]
        if not _holdable(first):
            return (
                f"{first.describe()}: would hold {gib(first.reserved_bytes)} of GPU memory against "
                f"{gib(chosen.reserved_bytes)}, but one replica needs more than the {first.group.count} nodes "
                f"of {first.group.name}"
            )
        return f"{first.describe()}: ranks first but the free GPUs do not hold it"
    for option in options:
        if option is not chosen and (option.group is not chosen.group or option.shape != chosen.shape):
            why = why_lost(chosen, option)
            if placed < chosen.replicas:
                why += "; it was not tried because the best option is short of room either way"
            return f"{option.describe()}: {why}"
    return (
        f"none: smaller replicas than {chosen.shape.label} do not hold the model with a useful KV cache at its "
        f"targets, and larger ones cannot carry the load on fewer than {chosen.gpus} GPUs"
    )


def _lower_bound_concurrency(workload: Workload, request: FleetRequest) -> float:
    """Sequences in flight a workload no group can run needs at least: given, or Little's law at the speed
    target (else at the fastest single-sequence speed the fleet's best GPUs could reach, weights only)."""
    if workload.concurrency is not None:
        return float(workload.concurrency)
    if workload.requests_per_s is None or workload.output_tokens is None:
        return 0.0
    speed = workload.tokens_per_s_per_user
    if speed is None:
        active = max(1, layout(workload.card).active)
        fastest = max(
            (effective_bandwidth(g.accelerator.bandwidth_bytes_per_s, VLLM_BATCHED.gpu_decode) * g.gpus_per_node
             for g in request.groups),
            default=0.0,
        )  # fmt: skip
        speed = fastest / (2 * active) if fastest else None
    if not speed:
        return 0.0
    return workload.requests_per_s * workload.output_tokens / speed


def _model_plan(
    workload: Workload,
    request: FleetRequest,
    caches: _Caches,
    allocators: dict[str, GroupAllocator],
    sized: _Sized,
    chosen: tuple[Option, int] | None,
) -> ModelPlan:
    """One workload's outcome: placed, short of room (with cheaper alternatives), or not fitting anywhere."""
    options, why = sized[workload.name]
    reasons = tuple(why)
    if chosen is None:
        return ModelPlan(
            workload=workload,
            status="does-not-fit",
            replica=None,
            concurrency_needed=_lower_bound_concurrency(workload, request),
            replicas_needed=0,
            replicas_placed=0,
            reasons=reasons or ("no node group in the fleet may run it",),
            alternatives=_alternatives(workload, request, caches, allocators),
        )
    option, placed = chosen
    short = placed < option.replicas
    return ModelPlan(
        workload=workload,
        status="short" if short else "ok",
        replica=option.sizing.estimate,
        concurrency_needed=option.capacity.concurrency,
        replicas_needed=option.replicas,
        replicas_placed=placed,
        reasons=reasons,
        alternatives=_alternatives(workload, request, caches, allocators) if short else (),
        capacity=option.capacity,
        runner_up=_runner_up(options, option, placed),
    )


def plan_fleet(request: FleetRequest) -> FleetPlan:
    """Shapes, replica counts and placement for every workload on the fleet, and what to add if short."""
    caches = _Caches(_Weights(), SizingCache(), {})
    allocators = {g.name: GroupAllocator(g) for g in request.groups}
    groups = {g.name: g for g in request.groups}
    sized: _Sized = {w.name: _candidates(w, request, caches, w.quantization) for w in request.workloads}
    chosen = _place_workloads(request, sized, allocators)
    plans: list[ModelPlan] = []
    short: dict[str, list[str]] = {}
    for workload in request.workloads:
        plan = _model_plan(workload, request, caches, allocators, sized, chosen.get(workload.name))
        plans.append(plan)
        if plan.replica is not None and plan.replicas_placed < plan.replicas_needed:
            short.setdefault(chosen[workload.name][0].group.name, []).append(workload.name)
    nodes = [node for group in request.groups for node in allocators[group.name].node_plans()]
    return FleetPlan(
        models=tuple(plans),
        nodes=tuple(nodes),
        additions=_additions(chosen, short, groups),
        engine=request.engine,
        groups=request.groups,
        network_bytes_per_s=request.network_bytes_per_s,
    )
