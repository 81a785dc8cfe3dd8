"""Placing a model's blocks on devices for one rung of the planner's ladder, and what that costs in time.

`try_rung` sizes every block (weights in the rung's precision, plus its layer's KV cache) and fills devices in
forward order as accelerate's infer_auto_device_map does: GPUs (balanced when several share the work), then
RAM, then disk, a tied output layer joining its embedding. Offloaded blocks are streamed to the main device to
run, so it keeps room for the largest of them and for their KV cache. `attempt_speed` turns the placement
into roofline stages for `launcher.plan.speed`. Pure: no I/O.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from launcher.machine.host import CpuInfo, GpuInfo, HostSnapshot
from launcher.plan.cpu_dtype import cpu_dtype_slowdown
from launcher.plan.figures import BlockSums, ModelFigures, Sized, Totals
from launcher.plan.speed import TRANSFORMERS_BATCH1, SpeedEstimate, Stage, estimate_speed
from registry.memory import (
    ALLOCATOR_SLACK,
    DTYPE_BYTES,
    DeviceKind,
    Precision,
    activation_bytes,
    runtime_bytes,
)
from registry.params import Layout
from registry.schema import CUDA_DRIVER_RESERVE_BYTES, Dtype, ModelCard

Strategy = Literal["gpu", "sharded", "quantized", "offload", "cpu", "disk"]
DeviceName = str  # "cuda:0", "cpu", "disk"

#: Share of each GPU's total memory left unused for other processes and allocator spikes.
GPU_HEADROOM_FRACTION = 0.02
#: RAM left to the operating system and other programs when weights live in RAM.
RAM_HEADROOM_BYTES = 1 * 2**30
#: Disk space left free when offloading weights there.
DISK_HEADROOM_BYTES = 1 * 2**30
#: Figures for a GPU the catalog does not know (a mid-range card).
UNKNOWN_GPU_BANDWIDTH = 400 * 10**9
UNKNOWN_GPU_TFLOPS = 50.0
#: leaves its last GPU light).
BALANCE_BUFFER_BLOCKS = 0.5


@dataclass(frozen=True)
class Placement:
    """What one device holds: blocks, their bytes, and what is left free."""

    device: DeviceName
    label: str
    """'GPU 0 (NVIDIA GeForce RTX 4090)', 'CPU RAM', 'disk'."""
    blocks: tuple[str, ...]
    layers: tuple[int, int] | None
    """First and last decoder layer index held here (inclusive), if any."""
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    """Runtime floor, activation peak, streamed-layer buffer and allocator slack."""
    budget_bytes: int
    """Memory free on the device before loading."""
    weights_budget_bytes: int = 0
    """What the plan allowed this device's weights (from_pretrained's max_memory for the same split)."""

    @property
    def used_bytes(self) -> int:
        """Everything the plan puts on this device."""
        return self.weights_bytes + self.kv_cache_bytes + self.overhead_bytes

    @property
    def free_after_bytes(self) -> int:
        """Memory left once loaded and generating at the planned context."""
        return self.budget_bytes - self.used_bytes


# --------------------------------------------------------------------------- sizing


# --------------------------------------------------------------------------- placing blocks


@dataclass
class _Bin:
    device: DeviceName
    budget: int
    """Bytes available for resident blocks (weights + their KV) after reserves."""
    used: int = 0
    items: list[Sized] = field(default_factory=list)
    whole: Totals | None = None
    """Set when the screen put every block here (its sums are the model's, known without adding up)."""
    span: tuple[int, int] | None = None
    """Set by the prefix fill: items[: end - start] are blocks start … end - 1 of `source` (then tied ones)."""
    source: Totals | None = None


def _fill(sized: Sequence[Sized], bins: Sequence[_Bin], charge_kv: Sequence[bool]) -> bool:
    """Greedy, in forward order, as accelerate's infer_auto_device_map: a tied head joins its embedding."""
    index = 0
    owner: dict[str, int] = {}
    for item in sized:
        tied = item.block.tied_to
        if tied is not None and tied in owner:
            b = owner[tied]
            bins[b].items.append(item)
            bins[b].used += item.weights
            owner[item.block.name] = b
            continue
        while index < len(bins):
            cost = item.weights + (item.kv if charge_kv[index] else 0)
            if bins[index].used + cost <= bins[index].budget:
                bins[index].items.append(item)
                bins[index].used += cost
                owner[item.block.name] = index
                break
            index += 1
        else:
            return False
    return True


def gpu_reserve(
    card: ModelCard, gpu: GpuInfo, context: int, batch: int, dtype: Dtype, headroom: bool = True
) -> int:
    """Memory a GPU that runs layers needs besides weights and KV: runtime floor, activations (and the
    headroom Berth leaves free, which is kept out of the budget but is not 'used'). On NVIDIA GPUs the driver
    also keeps CUDA_DRIVER_RESERVE_BYTES below NVML's total that no CUDA context can allocate."""
    kept_free = int(gpu.total_bytes * GPU_HEADROOM_FRACTION) if headroom else 0
    reserve = CUDA_DRIVER_RESERVE_BYTES if gpu.vendor == "nvidia" else 0
    return (
        runtime_bytes(device_kind(gpu)) + reserve + activation_bytes(card, context, batch, dtype) + kept_free
    )


def device_kind(gpu: GpuInfo) -> DeviceKind:
    """The torch backend a GPU runs under: CUDA, ROCm (AMD, still named cuda in torch) or MPS (Apple)."""
    return {"apple": "mps", "amd": "rocm"}.get(gpu.vendor, "cuda")  # type: ignore[return-value]


def gpu_device(gpu: GpuInfo) -> DeviceName:
    """The torch device of a GPU: 'mps' on Apple silicon (one GPU), 'cuda:N' under CUDA and ROCm alike."""
    return "mps" if gpu.vendor == "apple" else f"cuda:{gpu.index}"


def _map_key(gpu: GpuInfo) -> int | str:
    """A GPU as from_pretrained's device_map names it: 'mps', or the CUDA/ROCm device index."""
    return "mps" if gpu.vendor == "apple" else gpu.index


def _balanced_budgets(total: int, capacities: Sequence[int], largest: int) -> list[int]:
    """Per-GPU budgets proportional to capacity plus a buffer, the last GPU keeping all of its capacity."""
    whole = sum(capacities)
    buffer = int(BALANCE_BUFFER_BLOCKS * largest)
    budgets = [min(cap, total * cap // max(whole, 1) + buffer) for cap in capacities]
    budgets[-1] = capacities[-1]
    return budgets


# --------------------------------------------------------------------------- rungs


@dataclass(frozen=True)
class Rung:
    strategy: Strategy
    precision: Precision
    gpus: tuple[GpuInfo, ...]
    cpu: bool
    disk: bool


@dataclass(frozen=True)
class Attempt:
    rung: Rung
    placements: tuple[Placement, ...] | None
    needed: int
    available: int
    device_map: dict[str, int | str]


def gpu_label(gpu: GpuInfo) -> str:
    if gpu.vendor == "apple":
        return f"mps ({gpu.name}, unified memory)"
    return f"GPU {gpu.index} ({gpu.name})"


def gpus_label(gpus: Sequence[GpuInfo]) -> str:
    names = sorted({g.name for g in gpus})
    indexes = [g.index for g in gpus]
    span = (
        f"{indexes[0]}–{indexes[-1]}"
        if indexes == list(range(indexes[0], indexes[-1] + 1))
        else ",".join(map(str, indexes))
    )
    return f"{len(gpus)} GPUs {span} ({' + '.join(names)})"


@dataclass(frozen=True)
class _Room:
    """What each device of a rung offers resident blocks before the main device's streaming reserve."""

    gpus: tuple[int, ...]
    ram: int
    disk: int


def _room(card: ModelCard, host: HostSnapshot, rung: Rung, context: int, batch: int) -> _Room:
    """Each GPU's free memory less its runtime, activations and headroom; RAM less the process floor (and the
    CPU's activations when it computes); disk less its headroom."""
    dtype = rung.precision.dtype
    gpus = tuple(g.usable_bytes - gpu_reserve(card, g, context, batch, dtype) for g in rung.gpus)
    headroom = 0 if host.ram_capped else RAM_HEADROOM_BYTES
    ram = host.ram_available_bytes - (runtime_bytes("cpu") + headroom)
    if not rung.gpus:
        ram -= activation_bytes(card, context, batch, dtype, "cpu")
    disk = (host.disk_free_bytes or 0) - DISK_HEADROOM_BYTES
    return _Room(gpus, ram, disk)


@dataclass(frozen=True)
class Shortfall:
    """A device of a rung that cannot hold even what it needs besides blocks (runtime, activations, headroom)."""

    label: str
    overhead_bytes: int
    budget_bytes: int


def overhead_shortfalls(
    card: ModelCard, host: HostSnapshot, rung: Rung, context: int, batch: int
) -> list[Shortfall]:
    """The devices of a rung whose own overheads exceed their memory (the `_room` below zero), so that the rung
    cannot run however its blocks are spread: every GPU computes, and so does RAM when there is no GPU."""
    dtype = rung.precision.dtype
    short = [
        Shortfall(gpu_label(g), gpu_reserve(card, g, context, batch, dtype), g.usable_bytes)
        for g in rung.gpus
        if gpu_reserve(card, g, context, batch, dtype) > g.usable_bytes
    ]
    if rung.cpu:
        floor = runtime_bytes("cpu") + (0 if host.ram_capped else RAM_HEADROOM_BYTES)
        if not rung.gpus:
            floor += activation_bytes(card, context, batch, dtype, "cpu")
        if floor > host.ram_available_bytes:
            short.append(Shortfall("CPU RAM", floor, host.ram_available_bytes))
    return short


def _offloading(rung: Rung) -> bool:
    """Whether some blocks of this rung are streamed to the main device to run (RAM behind GPUs, disk)."""
    return (rung.cpu and bool(rung.gpus)) or rung.disk


def _bins(rung: Rung, room: _Room, totals: Totals, main_reserve: int) -> tuple[list[_Bin], list[bool]]:
    """One bin per device in fill order, and whether each is charged its blocks' KV cache (devices that
    compute their own blocks are; RAM behind a GPU and disk are not)."""
    bins: list[_Bin] = []
    charge: list[bool] = []
    for i, gpu in enumerate(rung.gpus):
        cap = room.gpus[i] - (main_reserve if i == 0 else 0)
        bins.append(_Bin(gpu_device(gpu), int(cap / (1 + ALLOCATOR_SLACK))))
        charge.append(True)
    if len(rung.gpus) > 1 and not _offloading(rung):
        budgets = _balanced_budgets(totals.resident, [b.budget for b in bins], totals.largest_layer)
        for b, budget in zip(bins, budgets, strict=True):
            b.budget = budget
    if rung.cpu:
        cap = room.ram - (main_reserve if not rung.gpus else 0)
        bins.append(_Bin("cpu", int(cap / (1 + ALLOCATOR_SLACK))))
        charge.append(not rung.gpus)
    if rung.disk:
        bins.append(_Bin("disk", max(room.disk, 0)))
        charge.append(False)
    return bins, charge


def _screen(totals: Totals, bins: list[_Bin], charge: list[bool]) -> bool | None:
    """The fill's outcome in closed form where the sums decide it: True when every block fits the first device
    together (the greedy fill then puts them all there; done here), False when even the cheapest cost of every
    block exceeds all devices together (the fill must fail), None when only placing block by block can tell."""
    cost = totals.weights + totals.untied_kv  # a tied block joins its owner's device, paying no KV of its own
    if charge[0] and cost <= bins[0].budget:
        bins[0].used, bins[0].whole = cost, totals  # items stay unbuilt: _sums reads the totals
        return True
    cheapest = totals.weights + (totals.untied_kv if all(charge) else 0)
    return False if cheapest > sum(max(b.budget, 0) for b in bins) else None


def _prefix_fill(totals: Totals, bins: Sequence[_Bin], charge: Sequence[bool]) -> bool | None:
    """_fill by prefix sums: the greedy fill gives each device the longest run of the next blocks that fits
    it, which a bisection over cumulative costs finds; tied blocks then join their owner's device. None when
    tied blocks do not all come last (then _fill decides)."""
    head = totals.untied_head
    if head is None:
        return None
    start = 0
    owner: dict[str, int] = {}
    for i, b in enumerate(bins):
        if start == head:
            break
        cum = totals.cum_resident if charge[i] else totals.cum_weights
        end = bisect_right(cum, cum[start] + b.budget, start, head + 1) - 1
        if end > start:
            b.items, b.used, b.span = list(totals.sized[start:end]), cum[end] - cum[start], (start, end)
            b.source = totals
            owner.update(dict.fromkeys(totals.names[start:end], i))
            start = end
    if start < head:
        return False
    for item in totals.sized[head:]:
        b = bins[owner[item.block.tied_to]]  # type: ignore[index]
        b.items.append(item)
        b.used += item.weights
    return True


def _streamed_want(totals: Totals, bins: Sequence[_Bin], charge: Sequence[bool]) -> int:
    """What the main device must keep for streamed blocks: the largest one's weights and all their KV cache."""
    largest, kv = 0, 0
    for i, b in enumerate(bins):
        if charge[i] or not b.items:
            continue
        if b.span is not None and len(b.items) == b.span[1] - b.span[0]:
            start, end = b.span
            largest = max(largest, max(totals.block_weights[start:end]))
            kv += totals.cum_kv[end] - totals.cum_kv[start]
        else:
            largest = max(largest, max(s.weights for s in b.items))
            kv += sum(s.kv for s in b.items)
    return largest + kv


def _settled_fill(
    rung: Rung, room: _Room, totals: Totals, screen: bool = True
) -> tuple[list[_Bin], list[bool], int] | None:
    """Fill the bins; when offloading, again until the main device's reserve settles. Streaming offloaded
    layers needs room for the largest one on the main device, and the KV cache of offloaded layers lives there
    too (they execute on the main device). Returns (bins, charged, reserve), or None when the blocks do not fit.
    `screen` decides what the sums decide without placing block by block (the same result, faster)."""
    main_reserve = 0
    for _ in range(6):
        bins, charge = _bins(rung, room, totals, main_reserve)
        # A device that computes or streams (every GPU, and RAM) must hold its own overheads even when it
        # holds no blocks: negative room there means this rung cannot run, whatever goes to disk.
        if any(b.budget < 0 for b in bins if b.device != "disk"):
            return None
        fitted = _screen(totals, bins, charge) if screen else None
        if fitted is None and screen:
            fitted = _prefix_fill(totals, bins, charge)
        if fitted is None:
            fitted = _fill(totals.sized, bins, charge)
        if not fitted:
            return None
        if not _offloading(rung):
            return bins, charge, main_reserve
        if screen:
            want = _streamed_want(totals, bins, charge)
        else:
            streamed = [s for i, b in enumerate(bins) if not charge[i] for s in b.items]
            want = max((s.weights for s in streamed), default=0) + sum(s.kv for s in streamed)
        if want <= main_reserve:
            return bins, charge, main_reserve
        main_reserve = want
    return None  # pragma: no cover - the reserve grows monotonically and settles well within six rounds


def _span_sums(
    b: _Bin, span: tuple[int, int], totals: Totals
) -> tuple[int, int, tuple[int, int] | None, tuple[str, ...]]:
    """_sums of a bin the prefix fill filled: its run of blocks from the cumulative sums, then its tied
    blocks one by one."""
    start, end = span
    extra = b.items[end - start :]
    weights = totals.cum_weights[end] - totals.cum_weights[start] + sum(s.weights for s in extra)
    kv = totals.cum_kv[end] - totals.cum_kv[start] + sum(s.kv for s in extra)
    first, after = totals.cum_layers[start], totals.cum_layers[end]
    # Layers are numbered in block order, so a run holds layers first … after - 1.
    found = [s.layer for s in extra if s.layer is not None] + ([first, after - 1] if after > first else [])
    layers = (min(found), max(found)) if found else None
    return weights, kv, layers, totals.names[start:end] + tuple(s.block.name for s in extra)


def _sums(b: _Bin) -> tuple[int, int, tuple[int, int] | None, tuple[str, ...]]:
    """A filled bin's weights, KV cache, first and last layer, and block names."""
    if b.whole is not None:
        return b.whole.weights, b.whole.kv, b.whole.layers, b.whole.names
    if b.span is not None and b.source is not None:
        return _span_sums(b, b.span, b.source)
    layers = [s.layer for s in b.items if s.layer is not None]
    return (
        sum(s.weights for s in b.items),
        sum(s.kv for s in b.items),
        (min(layers), max(layers)) if layers else None,
        tuple(s.block.name for s in b.items),
    )


def _placement(
    card: ModelCard,
    host: HostSnapshot,
    rung: Rung,
    where: tuple[int, _Bin, bool],
    context: int,
    batch: int,
    main_reserve: int,
) -> tuple[Placement, int | str]:
    """What one filled bin holds as a Placement, with its overheads, and its key in the device map."""
    index, b, charged = where
    dtype = rung.precision.dtype
    weights, items_kv, layers, names = _sums(b)
    kv = items_kv if charged else 0
    slack = int((weights + kv) * ALLOCATOR_SLACK)
    key: int | str
    if index < len(rung.gpus):
        gpu = rung.gpus[index]
        overhead = gpu_reserve(card, gpu, context, batch, dtype, headroom=False) + slack
        if index == 0 and _offloading(rung):
            overhead += main_reserve
        label, budget, key = gpu_label(gpu), gpu.usable_bytes, _map_key(gpu)
    elif b.device == "cpu":
        overhead = runtime_bytes("cpu") + slack
        if not rung.gpus:
            overhead += activation_bytes(card, context, batch, dtype, "cpu")
            overhead += main_reserve if rung.disk else 0
        label, budget, key = "CPU RAM", host.ram_available_bytes, "cpu"
    else:
        overhead, label, budget, key = 0, "disk", host.disk_free_bytes or 0, "disk"
    placement = Placement(
        device=b.device,
        label=label,
        blocks=names,
        layers=layers,
        weights_bytes=weights,
        kv_cache_bytes=kv,
        overhead_bytes=overhead,
        budget_bytes=budget,
        weights_budget_bytes=b.budget - kv,
    )
    return placement, key


def try_rung(
    card: ModelCard,
    lay: Layout,
    host: HostSnapshot,
    rung: Rung,
    context: int,
    batch: int,
    figures: ModelFigures | None = None,
    screen: bool = True,
) -> Attempt:
    """Place every block for one rung; report what it needs and what is there either way.

    `figures` (for this card, layout, context and batch) carries the sized blocks from rung to rung;
    `screen=False` places block by block even where the sums already decide (for tests of the screen)."""
    figures = figures or ModelFigures(card, lay, context, batch)
    totals = figures.totals(rung.precision)
    resident = totals.resident
    needed = resident + int(resident * ALLOCATOR_SLACK)
    room = _room(card, host, rung, context, batch)
    available = sum(max(c, 0) for c in room.gpus) + (max(room.ram, 0) if rung.cpu else 0)
    available += max(room.disk, 0) if rung.disk else 0
    filled = _settled_fill(rung, room, totals, screen)
    if filled is None:
        return Attempt(rung, None, needed, available, {})
    bins, charge, main_reserve = filled
    placements = []
    device_map: dict[str, int | str] = {}
    for i, b in enumerate(bins):
        if (
            not (b.items or b.whole)
            and b.device not in ("cuda:0", "mps")
            and not (b.device == "cpu" and not rung.gpus)
        ):
            continue
        placement, key = _placement(card, host, rung, (i, b, charge[i]), context, batch, main_reserve)
        placements.append(placement)
        device_map.update(dict.fromkeys(placement.blocks, key))
    return Attempt(rung, tuple(placements), needed, available, device_map)


def _compute_stage(
    placement: Placement, sums: BlockSums, precision: Precision, gpus: dict[str, GpuInfo], cpu: CpuInfo
) -> Stage | None:
    """The stage of a device that computes its own blocks (a GPU, or the CPU when there is no GPU); None for
    a device whose blocks are streamed to another (RAM behind a GPU, disk)."""
    active, active_params, layers = sums.active_bytes, sums.active_params, sums.layers
    if placement.device in gpus:
        gpu = gpus[placement.device]
        return Stage(
            "gpu",
            bytes_per_token=active,
            bandwidth_bytes_per_s=gpu.bandwidth_bytes_per_s or UNKNOWN_GPU_BANDWIDTH,
            flops=(gpu.bf16_tflops or UNKNOWN_GPU_TFLOPS) * 1e12,
            active_params=active_params,
            kv_bytes_per_token=placement.kv_cache_bytes,
            layers=layers,
        )
    if placement.device == "cpu" and not gpus:
        return Stage(
            "cpu",
            bytes_per_token=active,
            bandwidth_bytes_per_s=cpu.memory_bandwidth_bytes_per_s,
            flops=float(cpu.flops),
            active_params=active_params,
            slowdown=cpu_dtype_slowdown(cpu, precision.dtype),
            kv_bytes_per_token=placement.kv_cache_bytes,
            layers=layers,
        )
    return None


def attempt_speed(
    card: ModelCard,
    lay: Layout,
    host: HostSnapshot,
    attempt: Attempt,
    batch: int,
    prompt_tokens: int,
    figures: ModelFigures | None = None,
) -> SpeedEstimate:
    """The roofline stages of a placement, timed by `estimate_speed` for transformers at this batch
    (`figures`, when the ladder has them for this card and layout, keeps the model's sums between rungs)."""
    assert attempt.placements is not None
    precision = attempt.rung.precision
    figures = figures or ModelFigures(card, lay, 0, batch)
    gpus = {gpu_device(g): g for g in attempt.rung.gpus}
    stages: list[Stage] = []
    streamed_params = 0
    streamed_layers = 0
    pcie_bytes = 0
    for p in attempt.placements:
        sums = figures.block_sums(precision, p.blocks)
        stage = _compute_stage(p, sums, precision, gpus, host.cpu)
        if stage is not None:
            stages.append(stage)
            continue
        # accelerate copies each offloaded block to the main device for every forward pass, all experts included.
        full = sums.full_bytes
        if p.device == "disk":
            stages.append(Stage("disk", full, host.disk_bandwidth_bytes_per_s, prefill_bytes=full))
        if p.device == "cpu" or gpus:
            pcie_bytes += full
        streamed_params += sums.active_params
        streamed_layers += sums.layers
    if pcie_bytes:
        first_gpu = attempt.rung.gpus[0]
        stages.append(
            Stage("pcie", pcie_bytes, first_gpu.pcie_bandwidth_bytes_per_s, prefill_bytes=pcie_bytes)
        )
    if streamed_params:
        # Streamed blocks are computed on the main device.
        main = next(i for i, s in enumerate(stages) if s.kind in ("gpu", "cpu"))
        stages[main] = replace(
            stages[main],
            active_params=stages[main].active_params + streamed_params,
            layers=stages[main].layers + streamed_layers,
        )
    return estimate_speed(
        stages,
        precision.quant,
        file_bytes=card.params * DTYPE_BYTES[card.native_dtype],
        disk_bandwidth_bytes_per_s=host.disk_bandwidth_bytes_per_s,
        batch=batch,
        prompt_tokens=prompt_tokens,
        engine=TRANSFORMERS_BATCH1,
    )


def describe(attempt: Attempt) -> str:
    rung = attempt.rung
    where = {
        "gpu": lambda: gpu_label(rung.gpus[0]),
        "sharded": lambda: gpus_label(rung.gpus),
        "quantized": lambda: gpu_label(rung.gpus[0]) if len(rung.gpus) == 1 else gpus_label(rung.gpus),
        "offload": lambda: "GPU + CPU RAM",
        "cpu": lambda: "CPU RAM",
        "disk": lambda: "GPU + RAM + disk" if rung.gpus else "RAM + disk",
    }[rung.strategy]()
    return f"{rung.precision.label} on {where}"
