"""The planner (pure): for a model on a host, choose dtype, GPU split, quantization or offload, or say why not.

The ladder, in order of expected speed and quality (the first rung that fits wins; among the offload rungs,
the fastest that fits):

    1. one GPU in its best dtype (bf16 from compute capability 8.0, else fp16)
    2. layers split across the GPUs of this machine (balanced, KV cache and overhead reserved per GPU)
    3. bitsandbytes int8, then nf4, on one GPU, then split (everything stays on the GPU)
    4. GPU plus CPU offload        5. CPU only (bf16 where the CPU has native bf16, else fp32)
    6. disk offload (behind the GPUs and/or CPU)

Every rung places whole blocks (decoder layers, embeddings, head) on devices the way accelerate does, so the
plan's device map can be handed to `from_pretrained` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from launcher.display import gib
from launcher.host import CpuInfo, GpuInfo, HostSnapshot
from launcher.plan_errors import DoesNotFitError, PlanRequestError
from launcher.speed import CPU_BF16_EMULATION_FACTOR, SpeedEstimate, Stage, estimate_speed
from registry.memory import (
    ALLOCATOR_SLACK,
    DTYPE_BYTES,
    Precision,
    Quant,
    activation_bytes,
    block_weight_bytes,
    kv_cache_bytes,
    runtime_bytes,
)
from registry.params import LINEAR_SUBCLASS_FAMILIES, Block, Layout, layout
from registry.schema import Accelerator, Architecture, Dtype, ModelCard

Strategy = Literal["gpu", "sharded", "quantized", "offload", "cpu", "disk"]
DeviceName = str  # "cuda:0", "cpu", "disk"

#: Context used when the request gives none (capped at the model's maximum).
DEFAULT_CONTEXT = 4096
#: Share of each GPU's total memory left unused for other processes and allocator spikes.
GPU_HEADROOM_FRACTION = 0.02
#: RAM left to the operating system and other programs when weights live in RAM.
RAM_HEADROOM_BYTES = 1 * 2**30
#: Disk space left free when offloading weights there.
DISK_HEADROOM_BYTES = 1 * 2**30
#: Below this decode speed (one token every 10 s) an offload plan is not offered unless asked for.
MIN_USABLE_TOKENS_PER_S = 0.1
#: Figures for a GPU the catalog does not know (a mid-range card).
UNKNOWN_GPU_BANDWIDTH = 400 * 10**9
UNKNOWN_GPU_TFLOPS = 50.0
#: Buffer added to balanced per-GPU budgets, in largest blocks: every GPU takes its proportional share rounded
#: to whole blocks and the last takes the rest (accelerate's get_balanced_memory adds 1.25 blocks, which
#: leaves its last GPU light).
BALANCE_BUFFER_BLOCKS = 0.5


@dataclass(frozen=True)
class PlanRequest:
    """What the user asks for; None means 'choose for me'."""

    context: int | None = None
    batch: int = 1
    dtype: Dtype | None = None
    quant: Quant | Literal["none"] | None = None
    """Force a bitsandbytes quantization, or 'none' to rule quantization out."""
    gpus: tuple[int, ...] | None = None
    """Use only these GPU indexes (node 0)."""
    device: Literal["auto", "gpu", "cpu"] = "auto"
    allow_offload: bool = True
    """Whether layers may live in RAM or on disk behind the GPUs."""
    allow_disk: bool = True
    allow_slow: bool = False
    """Offer offload plans slower than MIN_USABLE_TOKENS_PER_S."""
    prompt_tokens: int | None = None
    """Prompt length behind the time-to-first-token estimate."""


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


@dataclass(frozen=True)
class Plan:
    """How to run one model on one host."""

    model_id: str
    strategy: Strategy
    precision: Precision
    context: int
    batch: int
    placements: tuple[Placement, ...]
    speed: SpeedEstimate
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    host_label: str
    device_map: dict[str, int | str] = field(default_factory=dict)
    """accelerate device map: block name -> GPU index, 'cpu' or 'disk'."""

    @property
    def required_bytes(self) -> int:
        """Memory the plan uses over all devices."""
        return sum(p.used_bytes for p in self.placements)

    @property
    def max_memory(self) -> dict[int | str, int]:
        """Per-device weight budgets matching the device map (for from_pretrained's max_memory)."""
        budgets: dict[int | str, int] = {}
        for p in self.placements:
            key: int | str = int(p.device.split(":")[1]) if p.device.startswith("cuda:") else p.device
            budgets[key] = max(p.weights_budget_bytes, p.weights_bytes)
        return budgets

    @property
    def uses_gpu(self) -> bool:
        """Whether any block runs on a GPU."""
        return any(p.device.startswith("cuda:") for p in self.placements)

    @property
    def offloaded(self) -> bool:
        """Whether some weights live in RAM or on disk behind a GPU, or on disk behind the CPU."""
        devices = {p.device for p in self.placements}
        return "disk" in devices or (self.uses_gpu and "cpu" in devices)

    @property
    def summary(self) -> str:
        """One line: strategy, precision, devices."""
        gpus = [p.device.split(":")[1] for p in self.placements if p.device.startswith("cuda:")]
        parts = []
        if len(gpus) == 1:
            parts.append(f"GPU {gpus[0]}")
        elif gpus:
            parts.append(f"GPUs {gpus[0]}–{gpus[-1]}" if len(gpus) > 2 else f"GPUs {', '.join(gpus)}")
        parts += [p.label for p in self.placements if not p.device.startswith("cuda:")]
        return f"{self.precision.label} on {' + '.join(parts)}"


# --------------------------------------------------------------------------- sizing


@dataclass(frozen=True)
class _Sized:
    block: Block
    weights: int
    kv: int
    layer: int | None

    @property
    def resident(self) -> int:
        return self.weights + self.kv


def _sized_blocks(
    card: ModelCard, lay: Layout, precision: Precision, context: int, batch: int
) -> list[_Sized]:
    per_layer_kv = _per_layer_kv(card, context, batch, precision.dtype)
    sized = []
    layer_index = 0
    for block in lay.blocks:
        weights = block_weight_bytes(block, precision)
        if block.role == "layer":
            sized.append(_Sized(block, weights, per_layer_kv[layer_index], layer_index))
            layer_index += 1
        else:
            sized.append(_Sized(block, weights, 0, None))
    return sized


def _per_layer_kv(card: ModelCard, context: int, batch: int, dtype: Dtype) -> list[int]:
    arch = card.architecture
    if card.task == "fill-mask":
        return [0] * arch.num_layers
    full = kv_cache_bytes(card.model_copy(update={"architecture": _no_window(card)}), context, batch, dtype)
    per_full_layer = full // arch.num_layers
    result = []
    for i in range(arch.num_layers):
        sliding = arch.sliding_window is not None and (
            arch.global_attention_every is None or (i + 1) % arch.global_attention_every != 0
        )
        kept = min(context, arch.sliding_window) if sliding and arch.sliding_window else context
        result.append(per_full_layer * kept // context)
    return result


def _no_window(card: ModelCard) -> Architecture:
    return card.architecture.model_copy(update={"sliding_window": None, "global_attention_every": None})


# --------------------------------------------------------------------------- placing blocks


@dataclass
class _Bin:
    device: DeviceName
    budget: int
    """Bytes available for resident blocks (weights + their KV) after reserves."""
    used: int = 0
    items: list[_Sized] = field(default_factory=list)


def _fill(sized: Sequence[_Sized], bins: Sequence[_Bin], charge_kv: Sequence[bool]) -> bool:
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


def _gpu_reserve(
    card: ModelCard, gpu: GpuInfo, context: int, batch: int, dtype: Dtype, headroom: bool = True
) -> int:
    """Memory a GPU that runs layers needs besides weights and KV: runtime floor, activations (and the
    headroom Berth leaves free, which is kept out of the budget but is not 'used')."""
    kept_free = int(gpu.total_bytes * GPU_HEADROOM_FRACTION) if headroom else 0
    return runtime_bytes("cuda") + activation_bytes(card, context, batch, dtype) + kept_free


def _balanced_budgets(total: int, capacities: Sequence[int], largest: int) -> list[int]:
    """Per-GPU budgets proportional to capacity plus a buffer, the last GPU keeping all of its capacity."""
    whole = sum(capacities)
    buffer = int(BALANCE_BUFFER_BLOCKS * largest)
    budgets = [min(cap, total * cap // max(whole, 1) + buffer) for cap in capacities]
    budgets[-1] = capacities[-1]
    return budgets


# --------------------------------------------------------------------------- rungs


@dataclass(frozen=True)
class _Rung:
    strategy: Strategy
    precision: Precision
    gpus: tuple[GpuInfo, ...]
    cpu: bool
    disk: bool


@dataclass(frozen=True)
class _Attempt:
    rung: _Rung
    placements: tuple[Placement, ...] | None
    needed: int
    available: int
    device_map: dict[str, int | str]


def _gpu_label(gpu: GpuInfo) -> str:
    return f"GPU {gpu.index} ({gpu.name})"


def _gpus_label(gpus: Sequence[GpuInfo]) -> str:
    names = sorted({g.name for g in gpus})
    indexes = [g.index for g in gpus]
    span = (
        f"{indexes[0]}–{indexes[-1]}"
        if indexes == list(range(indexes[0], indexes[-1] + 1))
        else ",".join(map(str, indexes))
    )
    return f"{len(gpus)} GPUs {span} ({' + '.join(names)})"


def _try(card: ModelCard, lay: Layout, host: HostSnapshot, rung: _Rung, context: int, batch: int) -> _Attempt:
    """Place every block for one rung; report what it needs and what is there either way."""
    precision = rung.precision
    sized = _sized_blocks(card, lay, precision, context, batch)
    weights_total = sum(s.weights for s in sized)
    kv_total = sum(s.kv for s in sized)
    largest = max((s.weights for s in sized if s.block.role == "layer"), default=0)
    slack = lambda n: int(n * ALLOCATOR_SLACK)  # noqa: E731

    gpu_caps = [g.usable_bytes - _gpu_reserve(card, g, context, batch, precision.dtype) for g in rung.gpus]
    ram_floor = runtime_bytes("cpu") + RAM_HEADROOM_BYTES
    ram_cap = host.ram_available_bytes - ram_floor
    if not rung.gpus:
        ram_cap -= activation_bytes(card, context, batch, precision.dtype)
    disk_cap = (host.disk_free_bytes or 0) - DISK_HEADROOM_BYTES

    offloading = (rung.cpu and bool(rung.gpus)) or rung.disk
    needed = weights_total + kv_total + slack(weights_total + kv_total)
    available = sum(max(c, 0) for c in gpu_caps) + (max(ram_cap, 0) if rung.cpu else 0)
    available += max(disk_cap, 0) if rung.disk else 0

    # Streaming offloaded layers needs room for the largest one on the main device, and the KV cache of
    # offloaded layers lives there too (they execute on the main device). Iterate until that reserve settles.
    main_reserve = 0
    for _ in range(6):
        bins: list[_Bin] = []
        charge: list[bool] = []
        for i, gpu in enumerate(rung.gpus):
            cap = gpu_caps[i] - (main_reserve if i == 0 else 0)
            bins.append(_Bin(f"cuda:{gpu.index}", int(cap / (1 + ALLOCATOR_SLACK))))
            charge.append(True)
        if len(rung.gpus) > 1 and not offloading:
            caps = [b.budget for b in bins]
            resident = sum(s.resident for s in sized)
            for b, budget in zip(bins, _balanced_budgets(resident, caps, largest), strict=True):
                b.budget = budget
        if rung.cpu:
            cap = ram_cap - (main_reserve if not rung.gpus else 0)
            bins.append(_Bin("cpu", int(cap / (1 + ALLOCATOR_SLACK))))
            charge.append(not rung.gpus)
        if rung.disk:
            bins.append(_Bin("disk", max(disk_cap, 0)))
            charge.append(False)
        if any(b.budget < 0 for b in bins[: len(rung.gpus)]):
            return _Attempt(rung, None, needed, available, {})
        if not _fill(sized, bins, charge):
            return _Attempt(rung, None, needed, available, {})
        if not offloading:
            break
        # Blocks on uncharged bins (RAM behind a GPU, disk) are streamed to the main device to run there.
        streamed = [s for i, b in enumerate(bins) if not charge[i] for s in b.items]
        want = max((s.weights for s in streamed), default=0) + sum(s.kv for s in streamed)
        if want <= main_reserve:
            break
        main_reserve = want
    else:  # pragma: no cover - the reserve grows monotonically and settles well within six rounds
        return _Attempt(rung, None, needed, available, {})

    placements = []
    device_map: dict[str, int | str] = {}
    for i, b in enumerate(bins):
        if not b.items and b.device != "cuda:0" and not (b.device == "cpu" and not rung.gpus):
            continue
        weights = sum(s.weights for s in b.items)
        kv = sum(s.kv for s in b.items) if charge[i] else 0
        layers = [s.layer for s in b.items if s.layer is not None]
        if b.device.startswith("cuda:"):
            gpu = rung.gpus[i]
            overhead = _gpu_reserve(card, gpu, context, batch, precision.dtype, headroom=False)
            overhead += slack(weights + kv)
            if i == 0 and offloading:
                overhead += main_reserve
            label, budget = _gpu_label(gpu), gpu.usable_bytes
            key: int | str = gpu.index
        elif b.device == "cpu":
            overhead = runtime_bytes("cpu") + slack(weights + kv)
            if not rung.gpus:
                overhead += activation_bytes(card, context, batch, precision.dtype)
                overhead += main_reserve if rung.disk else 0
            label, budget, key = "CPU RAM", host.ram_available_bytes, "cpu"
        else:
            overhead, label, budget, key = 0, "disk", host.disk_free_bytes or 0, "disk"
        placements.append(
            Placement(
                device=b.device,
                label=label,
                blocks=tuple(s.block.name for s in b.items),
                layers=(min(layers), max(layers)) if layers else None,
                weights_bytes=weights,
                kv_cache_bytes=kv,
                overhead_bytes=overhead,
                budget_bytes=budget,
                weights_budget_bytes=b.budget - (sum(s.kv for s in b.items) if charge[i] else 0),
            )
        )
        for s in b.items:
            device_map[s.block.name] = key
    return _Attempt(rung, tuple(placements), needed, available, device_map)


def _speed(
    card: ModelCard,
    lay: Layout,
    host: HostSnapshot,
    attempt: _Attempt,
    context: int,
    batch: int,
    prompt_tokens: int,
) -> SpeedEstimate:
    assert attempt.placements is not None
    precision = attempt.rung.precision
    by_name = {b.name: b for b in lay.blocks}
    gpus = {f"cuda:{g.index}": g for g in attempt.rung.gpus}
    stages: list[Stage] = []
    streamed_params = 0
    pcie_bytes = 0
    for p in attempt.placements:
        blocks = [by_name[n] for n in p.blocks]
        full = sum(block_weight_bytes(b, precision) for b in blocks)
        active = sum(block_weight_bytes(b, precision) * b.active // max(b.total, 1) for b in blocks)
        active_params = sum(b.active for b in blocks)
        if p.device in gpus:
            gpu = gpus[p.device]
            stages.append(
                Stage(
                    "gpu",
                    bytes_per_token=active + p.kv_cache_bytes,
                    bandwidth_bytes_per_s=gpu.bandwidth_bytes_per_s or UNKNOWN_GPU_BANDWIDTH,
                    flops=(gpu.bf16_tflops or UNKNOWN_GPU_TFLOPS) * 1e12,
                    active_params=active_params,
                )
            )
        elif p.device == "cpu" and not gpus:
            cpu: CpuInfo = host.cpu
            stages.append(
                Stage(
                    "cpu",
                    bytes_per_token=active + p.kv_cache_bytes,
                    bandwidth_bytes_per_s=cpu.memory_bandwidth_bytes_per_s,
                    flops=float(cpu.flops),
                    active_params=active_params,
                    slowdown=1.0
                    if precision.dtype != "bfloat16" or cpu.fast_bf16
                    else CPU_BF16_EMULATION_FACTOR,
                )
            )
        elif p.device == "cpu":
            # accelerate copies each CPU-offloaded block to the GPU for every forward pass, all experts included.
            pcie_bytes += full
            streamed_params += active_params
        else:  # disk
            stages.append(Stage("disk", full, host.disk_bandwidth_bytes_per_s, prefill_bytes=full))
            if gpus:
                pcie_bytes += full
            streamed_params += active_params
    if pcie_bytes:
        first_gpu = attempt.rung.gpus[0]
        stages.append(
            Stage("pcie", pcie_bytes, first_gpu.pcie_bandwidth_bytes_per_s, prefill_bytes=pcie_bytes)
        )
    if streamed_params:
        # Streamed blocks are computed on the main device.
        main = next(i for i, s in enumerate(stages) if s.kind in ("gpu", "cpu"))
        stages[main] = replace(stages[main], active_params=stages[main].active_params + streamed_params)
    file_bytes = card.params * DTYPE_BYTES[card.native_dtype]
    return estimate_speed(
        stages,
        precision.quant,
        file_bytes=file_bytes,
        disk_bandwidth_bytes_per_s=host.disk_bandwidth_bytes_per_s,
        batch=batch,
        prompt_tokens=prompt_tokens,
    )


# --------------------------------------------------------------------------- the ladder


def resolve_context(card: ModelCard, request: PlanRequest) -> int:
    """The context to plan for: the request's, else DEFAULT_CONTEXT capped at the model's maximum."""
    if request.context is None:
        return min(DEFAULT_CONTEXT, card.context_length)
    if request.context > card.context_length:
        raise PlanRequestError(
            f"{card.id} supports at most {card.context_length:,} tokens of context; {request.context:,} was asked",
            hint=f"use --context {card.context_length} or less",
        )
    if request.context < 1:
        raise PlanRequestError("the context must be at least one token")
    return request.context


def _chosen_gpus(host: HostSnapshot, request: PlanRequest) -> tuple[GpuInfo, ...]:
    node = host.node_gpus(0)
    if request.gpus is None:
        return node
    known = {g.index: g for g in node}
    missing = [i for i in request.gpus if i not in known]
    if missing:
        raise PlanRequestError(
            f"GPU {', '.join(map(str, missing))} does not exist on {host.label}",
            hint=f"this machine has GPU indexes {', '.join(map(str, known)) or 'none'}",
        )
    return tuple(known[i] for i in request.gpus)


def _gpu_dtype(gpus: Sequence[GpuInfo], request: PlanRequest) -> Dtype:
    if request.dtype is not None:
        return request.dtype
    return "bfloat16" if all(g.supports_bf16 for g in gpus) else "float16"


def _cpu_dtypes(card: ModelCard, host: HostSnapshot, request: PlanRequest) -> list[Dtype]:
    if request.dtype is not None:
        return [request.dtype]
    return ["bfloat16", "float32"] if host.cpu.fast_bf16 else ["float32", "bfloat16"]


def _rungs(card: ModelCard, host: HostSnapshot, request: PlanRequest) -> list[_Rung]:
    gpus = _chosen_gpus(host, request) if request.device != "cpu" else ()
    gpus = tuple(g for g in gpus if g.vendor in ("nvidia", "amd") or g.unified_memory is False) or gpus
    quant_forced = request.quant not in (None, "none")
    cuda = tuple(g for g in gpus if g.vendor == "nvidia")
    if quant_forced and not cuda:
        raise PlanRequestError(
            f"--quant {request.quant} needs an NVIDIA GPU: bitsandbytes' 8/4-bit kernels run on CUDA, and "
            f"{host.label} has {'no GPU' if not gpus else 'no NVIDIA GPU'}",
            hint="drop --quant to let Berth choose, or plan for named hardware with --hardware rtx-4090",
        )
    if request.device == "gpu" and not gpus:
        raise PlanRequestError(f"--device gpu asked, but {host.label} has no GPU", hint="drop --device gpu")
    rungs: list[_Rung] = []
    if gpus:
        dtype = _gpu_dtype(gpus, request)
        by_speed = _distinct(sorted(gpus, key=lambda g: (-(g.bandwidth_bytes_per_s or 0), -g.usable_bytes)))
        quants: list[Quant] = []
        if quant_forced:
            quants = [request.quant]  # type: ignore[list-item]
        elif request.quant is None and cuda:
            quants = ["int8", "nf4"]
        if not quant_forced:
            rungs += [_Rung("gpu", Precision(dtype), (g,), False, False) for g in by_speed]
            if len(gpus) > 1:
                rungs.append(_Rung("sharded", Precision(dtype), gpus, False, False))
        for quant in quants:
            rungs += [
                _Rung("quantized", Precision(dtype, quant), (g,), False, False) for g in by_speed if g in cuda
            ]
            if len(cuda) > 1:
                rungs.append(_Rung("quantized", Precision(dtype, quant), cuda, False, False))
        if request.allow_offload and not quant_forced and request.device != "gpu":
            rungs.append(_Rung("offload", Precision(dtype), gpus, True, False))
            if request.allow_disk:
                rungs.append(_Rung("disk", Precision(dtype), gpus, True, True))
    if request.device != "gpu" and not quant_forced:
        for dtype in _cpu_dtypes(card, host, request):
            rungs.append(_Rung("cpu", Precision(dtype), (), True, False))
        if request.allow_offload and request.allow_disk:
            # Disk offload is bound by reads: try both dtypes, the fastest that fits wins.
            rungs += [_Rung("disk", Precision(d), (), True, True) for d in _cpu_dtypes(card, host, request)]
    return rungs


_OFFLOAD_STRATEGIES = ("offload", "cpu", "disk")


def _distinct(gpus: Sequence[GpuInfo]) -> list[GpuInfo]:
    """One GPU of each (name, free memory): trying identical GPUs one by one tells nothing new."""
    seen: set[tuple[str, int]] = set()
    result = []
    for gpu in gpus:
        key = (gpu.name, gpu.usable_bytes)
        if key not in seen:
            seen.add(key)
            result.append(gpu)
    return result


def _describe(attempt: _Attempt) -> str:
    rung = attempt.rung
    where = {
        "gpu": lambda: _gpu_label(rung.gpus[0]),
        "sharded": lambda: _gpus_label(rung.gpus),
        "quantized": lambda: _gpu_label(rung.gpus[0]) if len(rung.gpus) == 1 else _gpus_label(rung.gpus),
        "offload": lambda: "GPU + CPU RAM",
        "cpu": lambda: "CPU RAM",
        "disk": lambda: "GPU + RAM + disk" if rung.gpus else "RAM + disk",
    }[rung.strategy]()
    return f"{rung.precision.label} on {where}"


def make_plan(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest | None = None,
    accelerators: Sequence[Accelerator] = (),
    explain: bool = True,
) -> Plan | DoesNotFitError:
    """The best plan for this model on this host, or a DoesNotFitError value saying what would fit.

    `explain=False` skips the search for ways out when nothing fits (shorter context, named hardware),
    which `berth list` does not show. Raises PlanRequestError for requests that cannot be planned as asked.
    """
    request = request or PlanRequest()
    context = resolve_context(card, request)
    batch = max(request.batch, 1)
    prompt_tokens = min(request.prompt_tokens or 512, context)
    lay = layout(card)
    reasons: list[str] = []
    fitting_offload: list[tuple[_Attempt, SpeedEstimate]] = []
    too_slow: list[tuple[_Attempt, SpeedEstimate]] = []
    chosen: tuple[_Attempt, SpeedEstimate] | None = None
    attempts: list[_Attempt] = []
    for rung in _rungs(card, host, request):
        attempt = _try(card, lay, host, rung, context, batch)
        attempts.append(attempt)
        if attempt.placements is None:
            if not any(r.startswith(_describe(attempt)) for r in reasons):
                reasons.append(
                    f"{_describe(attempt)}: weights + KV cache need {gib(attempt.needed)}, "
                    f"{gib(max(attempt.available, 0))} usable after runtime and activations → no"
                )
            continue
        if _duplicate(attempt):
            continue
        speed = _speed(card, lay, host, attempt, context, batch, prompt_tokens)
        if rung.strategy in _OFFLOAD_STRATEGIES:
            if speed.decode_tokens_per_s < MIN_USABLE_TOKENS_PER_S and not request.allow_slow:
                reasons.append(
                    f"{_describe(attempt)}: fits, but about {speed.decode_tokens_per_s:.3f} tokens/s is too slow "
                    f"to offer (--allow-slow to accept)"
                )
                too_slow.append((attempt, speed))
                continue
            fitting_offload.append((attempt, speed))
            continue
        chosen = (attempt, speed)
        break
    if chosen is None and fitting_offload:
        chosen = max(fitting_offload, key=lambda pair: pair[1].decode_tokens_per_s)
        if len(fitting_offload) > 1:
            others = ", ".join(
                f"{_describe(a)} ≈ {s.decode_tokens_per_s:.2g} tok/s"
                for a, s in fitting_offload
                if a is not chosen[0]
            )
            reasons.append(f"fastest option that fits (also fits: {others})")
    if chosen is None:
        if not explain:
            return _bare_does_not_fit(card, attempts)
        return _does_not_fit(card, host, request, context, attempts, accelerators, too_slow)
    attempt, speed = chosen
    assert attempt.placements is not None
    reasons.append(f"→ {_describe(attempt)}: {_fit_line(attempt)}")
    return Plan(
        model_id=card.id,
        strategy=attempt.rung.strategy,
        precision=attempt.rung.precision,
        context=context,
        batch=batch,
        placements=attempt.placements,
        speed=speed,
        reasons=tuple(reasons),
        warnings=tuple(_warnings(card, host, attempt)),
        host_label=host.label,
        device_map=_compact_device_map(attempt),
    )


def _duplicate(attempt: _Attempt) -> bool:
    """An offload rung that ended up offloading nothing repeats an earlier rung."""
    assert attempt.placements is not None
    devices = {p.device for p in attempt.placements if p.blocks}
    if attempt.rung.strategy == "disk":
        return "disk" not in devices
    if attempt.rung.strategy == "offload":
        return "cpu" not in devices
    return False


def _fit_line(attempt: _Attempt) -> str:
    assert attempt.placements is not None
    parts = [f"{p.label} {gib(p.used_bytes)} of {gib(p.budget_bytes)}" for p in attempt.placements]
    return "; ".join(parts)


def _compact_device_map(attempt: _Attempt) -> dict[str, int | str]:
    devices = set(attempt.device_map.values())
    if len(devices) == 1:
        return {"": next(iter(devices))}
    return dict(attempt.device_map)


def _warnings(card: ModelCard, host: HostSnapshot, attempt: _Attempt) -> list[str]:
    notes: list[str] = []
    rung = attempt.rung
    if card.remote_code:
        notes.append(
            "needs remote code: it runs only with --trust-remote-code, after you have read that code"
        )
    if card.weight_format == "pickle":
        notes.append(
            "weights are pickle files only (.bin): loading them can run code; Berth asks for --allow-pickle"
        )
    if card.gated:
        notes.append(f"gated on the Hub: accept the licence ({card.license}) on its page and log in first")
    if card.unconfirmed:
        notes.append(f"catalog fields not confirmed against config.json: {', '.join(card.unconfirmed)}")
    if rung.precision.quant and card.architecture.is_moe:
        notes.append(
            "bitsandbytes quantizes nn.Linear layers only: transformers stores experts as fused tensors, "
            "which stay 16-bit"
        )
    if rung.precision.quant and card.model_type in LINEAR_SUBCLASS_FAMILIES:
        notes.append(
            "transformers builds this family with an nn.Linear subclass; Berth's loader swaps it so "
            "bitsandbytes can quantize it"
        )
    if rung.strategy == "cpu" and rung.precision.dtype == "bfloat16" and not host.cpu.fast_bf16:
        notes.append("bf16 on a CPU without native bf16 (avx512_bf16/AMX) is slower than fp32; chosen to fit")
    if rung.gpus and any(g.free_bytes is None for g in rung.gpus):
        notes.append("free GPU memory could not be read; planned with the total")
    if host.nodes > 1:
        notes.append("this plan uses one machine of the spec; `berth fleet plan` plans across machines")
    return notes


# --------------------------------------------------------------------------- when nothing fits


def _bare_does_not_fit(card: ModelCard, attempts: Sequence[_Attempt]) -> DoesNotFitError:
    """Needed against usable for the rung that came closest without disk (disk space is not memory)."""
    memory_rungs = [a for a in attempts if not a.rung.disk] or list(attempts)
    smallest = min(memory_rungs, key=lambda a: a.needed - a.available, default=None)
    required = smallest.needed if smallest else 0
    available = smallest.available if smallest else 0
    return DoesNotFitError(card.id, required, max(available, 0))


def _does_not_fit(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest,
    context: int,
    attempts: Sequence[_Attempt],
    accelerators: Sequence[Accelerator],
    too_slow: Sequence[tuple[_Attempt, SpeedEstimate]] = (),
) -> DoesNotFitError:
    bare = _bare_does_not_fit(card, attempts)
    suggestions: list[str] = []
    if context > 512:
        shorter = _largest_fitting_context(card, host, request, context)
        if shorter:
            suggestions.append(f"a shorter context fits: --context {shorter}")
    if request.quant == "none":
        suggestions.append("allow quantization (drop --quant none)")
    if not request.allow_offload:
        suggestions.append("allow CPU/disk offload (drop --no-offload)")
    if request.dtype == "float32":
        suggestions.append("drop --dtype float32: bf16 halves the weights")
    for attempt, speed in too_slow[:1]:
        suggestions.append(
            f"{_describe(attempt)} fits but runs at about {speed.decode_tokens_per_s:.2g} tokens/s "
            f"(accept that with --allow-slow)"
        )
    named = smallest_fitting_hardware(card, replace(request, gpus=None, device="auto"), accelerators, context)
    if named:
        spec, how = named
        suggestions.append(f"it fits on {spec} ({how}; see `berth plan {card.id} --hardware {spec}`)")
        if how.split(" on ")[0] in ("int8", "nf4") and request.quant is None:
            native = smallest_fitting_hardware(card, replace(request, quant="none"), accelerators, context)
            if native:
                suggestions.append(f"without quantization it fits on {native[0]} ({native[1]})")
    elif accelerators:
        suggestions.append(
            "no single machine of up to 8 catalog GPUs holds it: plan several machines with `berth fleet plan`"
        )
    detail = "; ".join(
        f"{_describe(a)} needs {gib(a.needed)}, {gib(max(a.available, 0))} usable"
        for a in attempts
        if a.rung.strategy in ("gpu", "quantized", "cpu") and len(a.rung.gpus) <= 1
    )
    return DoesNotFitError(card.id, bare.required_bytes, bare.available_bytes, suggestions, detail)


def _fits(card: ModelCard, host: HostSnapshot, request: PlanRequest) -> bool:
    try:
        return isinstance(make_plan(card, host, request, explain=False), Plan)
    except PlanRequestError:
        return False


def _largest_fitting_context(
    card: ModelCard, host: HostSnapshot, request: PlanRequest, context: int
) -> int | None:
    low, high = 256, context - 1
    if not _fits(card, host, replace(request, context=low)):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if _fits(card, host, replace(request, context=mid)):
            low = mid
        else:
            high = mid - 1
    return (low // 256) * 256 or low


#: GPU counts tried when looking for the smallest named hardware that fits.
NAMED_GPU_COUNTS = (1, 2, 4, 8)


def named_host(acc: Accelerator, count: int, ram_bytes: int | None = None) -> HostSnapshot:
    """A HostSnapshot for `count` GPUs of a catalog accelerator on one machine, entirely free."""
    cc = tuple(int(x) for x in acc.compute_capability.split("."))
    peers = tuple(range(count)) if acc.interconnect == "nvlink" else ()
    gpus = tuple(
        GpuInfo(
            index=i,
            name=acc.name,
            total_bytes=acc.total_bytes,
            free_bytes=acc.total_bytes,
            compute_capability=(cc[0], cc[1]),
            vendor=acc.vendor,
            accelerator_id=acc.id,
            bandwidth_bytes_per_s=acc.bandwidth_bytes_per_s,
            bf16_tflops=acc.bf16_tflops,
            nvlink_peers=tuple(p for p in peers if p != i),
        )
        for i in range(count)
    )
    ram = ram_bytes or max(2 * acc.total_bytes * count, 16 * 10**9)
    spec = f"{count}x{acc.id}" if count > 1 else acc.id
    return HostSnapshot(label=spec, gpus=gpus, ram_total_bytes=ram, ram_available_bytes=ram, source="spec")


def smallest_fitting_hardware(
    card: ModelCard, request: PlanRequest, accelerators: Sequence[Accelerator], context: int
) -> tuple[str, str] | None:
    """The named hardware with the least GPU memory on which the model runs entirely on GPUs, and how
    (spec, 'nf4 on 2 GPUs …')."""
    options = sorted(
        (
            (acc.total_bytes * n, n, acc)
            for acc in accelerators
            for n in NAMED_GPU_COUNTS
            if acc.vendor == "nvidia"
        ),
        key=lambda t: (t[0], t[1]),
    )
    gpu_only = replace(request, context=context, allow_offload=False, device="gpu", quant=request.quant)
    for _, count, acc in options:
        host = named_host(acc, count)
        try:
            plan = make_plan(card, host, gpu_only, explain=False)
        except PlanRequestError:
            continue
        if isinstance(plan, Plan):
            return host.label, plan.summary
    return None


def plan_or_raise(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest | None = None,
    accelerators: Sequence[Accelerator] = (),
) -> Plan:
    """make_plan, raising DoesNotFitError instead of returning it."""
    result = make_plan(card, host, request, accelerators)
    if isinstance(result, DoesNotFitError):
        raise result
    return result
