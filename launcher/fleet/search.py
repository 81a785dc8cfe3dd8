"""The shape search: every replica shape of a workload on one node group, scored by GPUs, nodes, headroom.

Pure; imports launcher.display, launcher.plan.speed and the fleet's types, sizing and capacity. Shapes are
walked from the fewest GPUs up; TP sizes divide the attention heads and stay inside a node, pipeline stages
split the layers. A shape is kept when it holds the weights with a useful KV cache, meets the speed and
time-to-first-token targets; its replica count is the larger of the decode and prefill needs. The walk stops
once a replica alone takes more GPUs than the best shape found needs for the whole workload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from math import ceil

from launcher.display import gib
from launcher.fleet.capacity import capacity, concurrency_needed, headroom
from launcher.fleet.sizing import (
    Load,
    ModelWeights,
    ShapeDoesNotFitError,
    Sizing,
    activation_peak_bytes,
    default_batched_tokens,
    default_max_num_seqs,
    gpu_budget_bytes,
    non_torch_bytes,
    sequence_kv_bytes,
    size_replica,
    valid_tensor_sizes,
)
from launcher.fleet.types import Capacity, EngineSettings, NodeGroup, Shape, Workload
from launcher.plan.speed import VLLM_BATCHED, effective_bandwidth

#: A replica whose cache holds fewer full-context sequences than this (or than the workload needs, if
#: fewer) spends its memory on weights: the search skips it.
MIN_USEFUL_SEQUENCES = 4
#: Largest replica considered, in nodes of its group: longer pipelines are impractical to run.
MAX_REPLICA_NODES = 16


@dataclass(frozen=True)
class Option:
    """One way to serve a workload: a replica shape on a node group, and how many replicas."""

    group: NodeGroup
    sizing: Sizing
    capacity: Capacity
    headroom: float
    """How many times over the replicas carry the load in the tighter phase."""

    @property
    def shape(self) -> Shape:
        return self.sizing.estimate.shape

    @property
    def replicas(self) -> int:
        return self.capacity.replicas

    @property
    def gpus(self) -> int:
        """GPUs all replicas take."""
        return self.replicas * self.shape.gpus

    @property
    def nodes(self) -> int:
        """Nodes the replicas take when packed alone."""
        return nodes_for(self.shape, self.replicas, self.group.gpus_per_node)

    @property
    def reserved_bytes(self) -> int:
        """GPU memory all replicas hold (compares groups of different accelerators)."""
        return self.gpus * self.group.accelerator.total_bytes

    def describe(self) -> str:
        """'3 × TP4×PP1 on h100 (h100-sxm) = 12 GPUs on 2 nodes, headroom 1.2×'."""
        return (
            f"{self.replicas} × {self.shape.label} on {self.group.name} ({self.group.accelerator.id}) = "
            f"{self.gpus} GPUs on {self.nodes} node{'s' if self.nodes != 1 else ''}, "
            f"headroom {self.headroom:.2f}×"
        )


def nodes_for(shape: Shape, replicas: int, gpus_per_node: int) -> int:
    """Nodes `replicas` replicas of this shape fill when packed alone."""
    if shape.gpus <= gpus_per_node:
        return -(-replicas // (gpus_per_node // shape.gpus))
    return replicas * -(-shape.pp // (gpus_per_node // shape.tp))


def option_key(option: Option) -> tuple[int, int, int, int, float]:
    """Sort key, best first: least GPU memory held (GPUs on one group), fewest GPUs, fewest nodes, then (without
    NVLink, where decode's all-reduces cross PCIe, which the speed model leaves out) the fewest TP ranks, then
    the most headroom."""
    pcie_tp = 0 if option.group.nvlink else option.shape.tp
    return (option.reserved_bytes, option.gpus, option.nodes, pcie_tp, -option.headroom)


def why_lost(winner: Option, loser: Option) -> str:
    """Why `loser` ranks below `winner`, in words."""
    if (
        winner.group.accelerator.id != loser.group.accelerator.id
        and winner.reserved_bytes < loser.reserved_bytes
    ):
        return f"holds {gib(loser.reserved_bytes)} of GPU memory against {gib(winner.reserved_bytes)}"
    if loser.gpus != winner.gpus:
        return f"needs {loser.gpus} GPUs against {winner.gpus}"
    if loser.nodes != winner.nodes:
        return f"takes {loser.nodes} nodes against {winner.nodes}"
    if not loser.group.nvlink and loser.shape.tp > winner.shape.tp:
        return f"the same GPUs and nodes with TP{loser.shape.tp} all-reduces over PCIe (no NVLink)"
    return (
        f"the same GPUs and nodes with less headroom ({loser.headroom:.2f}× against {winner.headroom:.2f}×)"
    )


def shapes(tps: tuple[int, ...], group: NodeGroup, layers: int, start: int) -> Iterable[Shape]:
    """Shapes from `start` GPUs up. With NVLink, tensor parallelism first and a pipeline only once TP is as
    large as the node allows (so stages cross nodes); without NVLink, pipelines first."""
    widest = max(tps)
    ordered = sorted(tps, reverse=group.nvlink)
    for gpus in range(start, group.gpus_per_node * MAX_REPLICA_NODES + 1):
        for tp in ordered:
            pp = gpus // tp
            if gpus % tp or pp > layers or (group.nvlink and pp > 1 and tp != widest):
                continue
            yield Shape(tp=tp, pp=pp)


def _active_bytes(weights: ModelWeights) -> int:
    """Bytes one token reads at batch 1 (MoE: the routed experts it uses)."""
    arch = weights.card.architecture
    routed = sum(weights.routed_bytes)
    if arch.num_experts and arch.experts_per_token:
        unused = routed * (arch.num_experts - arch.experts_per_token) // arch.num_experts
        return weights.total_bytes - unused
    return weights.total_bytes


@dataclass(frozen=True)
class _Bound:
    """A lower bound on the GPUs any shape of `gpus` GPUs needs for the whole workload: its replicas hold at
    most (gpus × room − weights) / sequence-KV sequences, and at most vLLM's batch cap."""

    concurrency: int
    cap: int
    room: int
    weights: int
    sequence_kv: int

    def gpus(self, gpus: int) -> int:
        held = (gpus * self.room - self.weights) // max(1, self.sequence_kv)
        batch = max(1, min(self.cap, held))
        return gpus * max(1, -(-self.concurrency // batch))


def _bound(
    workload: Workload, group: NodeGroup, engine: EngineSettings, weights: ModelWeights, load: Load
) -> _Bound | None:
    """The bound for a workload with a given concurrency (None for arrival rates: its need depends on speed)."""
    if workload.concurrency is None:
        return None
    batched = engine.max_num_batched_tokens or default_batched_tokens(group)
    return _Bound(
        concurrency=workload.concurrency,
        cap=min(engine.max_num_seqs or default_max_num_seqs(group), batched),
        room=gpu_budget_bytes(group, engine)
        - non_torch_bytes(1),  # activations left out: a bound, never too low
        weights=weights.total_bytes,
        sequence_kv=sequence_kv_bytes(workload.card, load.context, weights.dtype, engine.block_size),
    )


def _precheck(
    workload: Workload, group: NodeGroup, engine: EngineSettings, weights: ModelWeights, load: Load
) -> tuple[int, str]:
    """(GPUs the smallest shape needs, '') or (0, why no shape on this group can work)."""
    arch = workload.card.architecture
    tps = valid_tensor_sizes(arch, group.gpus_per_node)
    if not tps:
        return (
            0,
            f"no TP size up to {group.gpus_per_node} divides the {arch.num_attention_heads} attention heads",
        )
    acc = group.accelerator
    budget = gpu_budget_bytes(group, engine)
    batched = engine.max_num_batched_tokens or default_batched_tokens(group)
    room = budget - activation_peak_bytes(batched) - non_torch_bytes(1)
    largest = group.gpus_per_node * MAX_REPLICA_NODES
    if room <= 0 or weights.total_bytes > room * largest:
        return 0, (
            f"{gib(weights.total_bytes)} of weights do not fit even {largest} GPUs "
            f"({MAX_REPLICA_NODES} nodes) at {gib(max(room, 0))} each"
        )
    target = load.tokens_per_s_per_user
    if target is not None:
        bandwidth = effective_bandwidth(acc.bandwidth_bytes_per_s, VLLM_BATCHED.gpu_decode)
        best = bandwidth * max(tps) / max(1, _active_bytes(weights))
        if best < target:
            return 0, (
                f"at most {best:.1f} tokens/s per user even with TP{max(tps)} (the model reads "
                f"{gib(_active_bytes(weights))} per token), below the {target:g} target"
            )
    # The walk starts where the weights alone fill the budget (activations left out, so no shape is skipped).
    return max(1, -(-weights.total_bytes // (budget - non_torch_bytes(1)))), ""


class SizingCache:
    """size_replica results (or the reason a shape fails) by workload shape, so that workloads of the same
    model and load, and the alternatives, size each shape once. The card is keyed by identity (the weights
    that hold it outlive the cache entry's use), so two cards that share an id never share a sizing."""

    def __init__(self) -> None:
        self._cache: dict[tuple[object, ...], Sizing | str] = {}

    def get(
        self,
        weights: ModelWeights,
        shape: Shape,
        group: NodeGroup,
        load: Load,
        engine: EngineSettings,
        network: int | None,
    ) -> Sizing | str:
        key = (id(weights.card), weights.dtype, weights.quant, shape, group.name, load, network)
        found = self._cache.get(key)
        if found is None:
            try:
                found = size_replica(weights, shape, group, load, engine, network)
            except ShapeDoesNotFitError as reason:
                found = str(reason)
            self._cache[key] = found
        return found


def _rejection(workload: Workload, sizing: Sizing, load: Load) -> str | None:
    """Why a shape that holds the model is still not worth running (too few sequences, too slow a first
    token); None when it is."""
    estimate = sizing.estimate
    if workload.ttft_s is not None and estimate.ttft_s > workload.ttft_s:
        return (
            f"{estimate.shape.label}: first token after {estimate.ttft_s:.2f} s for a "
            f"{estimate.ttft_prompt_tokens:,}-token prompt, above the {workload.ttft_s:g} s target"
        )
    useful = MIN_USEFUL_SEQUENCES
    if workload.concurrency is not None or workload.requests_per_s is not None:
        useful = min(useful, max(1, ceil(concurrency_needed(workload, sizing, 1))))
    if estimate.max_concurrent_sequences < useful:
        return (
            f"{estimate.shape.label}: the KV cache holds only {estimate.max_concurrent_sequences} "
            f"{load.context:,}-token sequences (a useful replica holds {useful})"
        )
    return None


def group_options(
    workload: Workload,
    group: NodeGroup,
    engine: EngineSettings,
    weights: ModelWeights,
    load: Load,
    network: int | None,
    cache: SizingCache,
) -> list[Option] | str:
    """Every useful shape of the workload on this group with its replica count, best first; or why none."""
    start, why = _precheck(workload, group, engine, weights, load)
    if not start:
        return why
    arch = workload.card.architecture
    bound = _bound(workload, group, engine, weights, load)
    found: list[Option] = []
    best = None
    last = "no shape tried"
    for shape in shapes(valid_tensor_sizes(arch, group.gpus_per_node), group, arch.num_layers, start):
        if best is not None and shape.gpus > best:
            break  # one replica alone takes more GPUs than the best shape's whole workload
        if best is not None and bound is not None and bound.gpus(shape.gpus) > best:
            continue  # cannot beat the best, whatever its KV cache and speed
        sizing = cache.get(weights, shape, group, load, engine, network)
        reason = sizing if isinstance(sizing, str) else _rejection(workload, sizing, load)
        if reason is not None or isinstance(sizing, str):
            last = reason or last
            continue
        cap = capacity(workload, sizing)
        option = Option(group=group, sizing=sizing, capacity=cap, headroom=headroom(cap, sizing))
        found.append(option)
        best = option.gpus if best is None else min(best, option.gpus)
    if not found:
        return last
    found.sort(key=option_key)
    return found
