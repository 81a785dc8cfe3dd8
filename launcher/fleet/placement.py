"""Bin-packing replicas onto one node group's machines: each tensor-parallel group stays inside one node.

A replica whose GPUs fit in one node goes whole onto one node (Ray's STRICT_PACK); a larger one places each
pipeline stage's TP group on a node of its own choosing (Ray's PACK). Nodes are chosen best-fit (the one
with the fewest free GPUs that still has room), which keeps whole nodes free for large replicas; buckets of
nodes by free count make each choice O(GPUs per node + log nodes), so thousands of nodes stay fast.

The counting side (`fit`, `nodes_to_add`) answers "how many replicas would fit" and "how many nodes to add"
from a free-GPU profile (nodes per free count) without placing anything, with the same best-fit rule.
"""

from __future__ import annotations

import heapq

from launcher.fleet.types import NodeGroup, NodePlan, Shape, StagePlacement


class GroupAllocator:
    """Free GPUs of a node group and what was placed where (mutable; ask `profile` and `fit` before placing)."""

    def __init__(self, group: NodeGroup, nodes: int | None = None) -> None:
        self.group = group
        count = group.count if nodes is None else nodes
        self._free: list[list[int]] = [list(range(group.gpus_per_node)) for _ in range(count)]
        self._buckets: dict[int, list[int]] = {group.gpus_per_node: list(range(count))}
        self._placed: list[list[StagePlacement]] = [[] for _ in range(count)]
        self._by_model: dict[str, list[tuple[int, StagePlacement]]] = {}
        self._levels = [0] * (group.gpus_per_node + 1)
        """Nodes per free-GPU count."""
        self._levels[group.gpus_per_node] = count

    def profile(self, release: str | None = None) -> list[int]:
        """Nodes per free-GPU count, counting what `release` holds as free (a model's own GPUs when asking
        whether another way of running it would fit): O(GPUs per node + that model's placements)."""
        levels = list(self._levels)
        if release is None or release not in self._by_model:
            return levels
        held: dict[int, int] = {}
        for node, placement in self._by_model[release]:
            held[node] = held.get(node, 0) + len(placement.gpu_indices)
        for node, gpus in held.items():
            free = len(self._free[node])
            levels[free] -= 1
            levels[free + gpus] += 1
        return levels

    def _best_node(self, need: int) -> int | None:
        """The lowest-numbered node among those with the fewest free GPUs ≥ need."""
        for free in range(need, self.group.gpus_per_node + 1):
            bucket = self._buckets.get(free)
            while bucket:
                node = bucket[0]
                if len(self._free[node]) == free:
                    return node
                heapq.heappop(bucket)  # stale: the node's free count changed since it was filed here
        return None

    def _take(self, node: int, count: int, model: str, replica: int, stage: int) -> StagePlacement:
        free = self._free[node]
        taken, self._free[node] = tuple(free[:count]), free[count:]
        self._levels[len(free)] -= 1
        self._levels[len(free) - count] += 1
        heapq.heappush(self._buckets.setdefault(len(self._free[node]), []), node)
        placement = StagePlacement(model=model, replica=replica, stage=stage, gpu_indices=taken)
        self._placed[node].append(placement)
        self._by_model.setdefault(model, []).append((node, placement))
        return placement

    def place(self, model: str, replica: int, shape: Shape) -> bool:
        """Place one replica; all or nothing."""
        if shape.tp > self.group.gpus_per_node:
            return False
        if shape.gpus <= self.group.gpus_per_node:
            node = self._best_node(shape.gpus)
            if node is None:
                return False
            for stage in range(shape.pp):
                self._take(node, shape.tp, model, replica, stage)
            return True
        done: list[tuple[int, StagePlacement]] = []
        for stage in range(shape.pp):
            node = self._best_node(shape.tp)
            if node is None:
                for where, placement in done:
                    self._give_back(where, placement)
                return False
            done.append((node, self._take(node, shape.tp, model, replica, stage)))
        return True

    def place_many(self, model: str, shape: Shape, count: int, first: int = 0) -> int:
        """Place up to `count` replicas numbered from `first`, filling each chosen node with as many as it
        holds before moving on (what placing them one by one best-fit does); returns how many found room."""
        if shape.gpus > self.group.gpus_per_node:
            placed = 0
            while placed < count and self.place(model, first + placed, shape):
                placed += 1
            return placed
        placed = 0
        while placed < count:
            node = self._best_node(shape.gpus)
            if node is None:
                break
            fits = min(count - placed, len(self._free[node]) // shape.gpus)
            for _ in range(fits):
                for stage in range(shape.pp):
                    self._take(node, shape.tp, model, first + placed, stage)
                placed += 1
        return placed

    def _give_back(self, node: int, placement: StagePlacement) -> None:
        self._placed[node].remove(placement)
        self._by_model[placement.model].remove((node, placement))
        before = len(self._free[node])
        self._free[node] = sorted(self._free[node] + list(placement.gpu_indices))
        self._levels[before] -= 1
        self._levels[len(self._free[node])] += 1
        heapq.heappush(self._buckets.setdefault(len(self._free[node]), []), node)

    def node_plans(self) -> list[NodePlan]:
        """Each node's placements, in node order."""
        group = self.group
        return [
            NodePlan(
                name=group.node_name(index),
                group=group.name,
                accelerator=group.accelerator.id,
                gpus=group.gpus_per_node,
                stages=tuple(placed),
            )
            for index, placed in enumerate(self._placed)
        ]


def fit(levels: list[int], shape: Shape, replicas: int) -> int:
    """How many of `replicas` replicas of this shape best-fit placement puts on nodes with this free-GPU
    profile (nodes per free count); updates `levels` to what is left."""
    gpn = len(levels) - 1
    if shape.tp > gpn:
        return 0
    if shape.gpus > gpn:
        slots = sum(count * (free // shape.tp) for free, count in enumerate(levels))
        placed = min(replicas, slots // shape.pp)
        _take_slots(levels, shape.tp, placed * shape.pp)
        return placed
    return _take_slots(levels, shape.gpus, replicas)


def _take_slots(levels: list[int], size: int, wanted: int) -> int:
    """Take `wanted` slots of `size` GPUs, best fit (fullest nodes first), each node filled before the next;
    returns how many were taken."""
    taken = 0
    for free in range(size, len(levels)):
        if taken == wanted:
            break
        per_node = free // size
        nodes = levels[free]
        if not nodes:
            continue
        full = min(nodes, (wanted - taken) // per_node)
        levels[free] -= full
        levels[free - per_node * size] += full
        taken += full * per_node
        if taken < wanted and levels[free]:
            rest = wanted - taken
            levels[free] -= 1
            levels[free - rest * size] += 1
            taken += rest
    return taken


def nodes_to_add(nodes: int, gpus_per_node: int, demands: list[tuple[Shape, int]]) -> int:
    """Empty nodes to add to a group of `nodes` nodes so that a fresh plan on the grown group places every one
    of these replicas, placed in this order (the planner's: largest replicas first), counted without placing.

    Counting a fresh placement, not filling the gaps of today's, matters: a plan on more nodes places its
    workloads in its own order and may fragment the nodes differently. Best-fit placement on more empty nodes
    never places fewer replicas, so the count is found by doubling and then halving."""

    def fits(extra: int) -> bool:
        levels = [0] * (gpus_per_node + 1)
        levels[gpus_per_node] = nodes + extra
        return all(fit(levels, shape, replicas) == replicas for shape, replicas in demands)

    demands = [(shape, replicas) for shape, replicas in demands if shape.tp <= gpus_per_node]
    if fits(0):
        return 0
    # Every replica on nodes of its own always fits: the search never passes this bound.
    bound = sum(replicas * -(-shape.pp // (gpus_per_node // shape.tp)) for shape, replicas in demands)
    low, high = 0, 1  # `low` is known not to fit
    while high < bound and not fits(high):
        low, high = high, high * 2
    high = min(high, bound)
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid
    return high
