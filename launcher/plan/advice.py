"""When nothing fits: how much is needed against what is free, and the nearest ways out (shorter context,
a quantization, offload, the smallest named hardware that holds it). Pure: no I/O.

To ask "would this fit?" the advice re-plans through the planning function it is handed (`find_plan`): the
ladder passes its own, so this module never imports the ladder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from launcher.display import gib
from launcher.machine.host import HostSnapshot
from launcher.machine.hwspec import node_gpus
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.placement import Attempt, describe
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.speed import SpeedEstimate
from launcher.plan.unified import gguf_fit, mps_attempts, raised_limit_fits, unified_gpu, wired_limit_note
from registry.schema import Accelerator, ModelCard

#: Plans a model on a host as asked, without advice: the Plan, or None when nothing fits.
PlanFinder = Callable[[ModelCard, HostSnapshot, PlanRequest], Plan | None]


def bare_does_not_fit(card: ModelCard, attempts: Sequence[Attempt]) -> DoesNotFitError:
    """Needed against usable for the rung that came closest without disk (disk space is not memory)."""
    memory_rungs = [a for a in attempts if not a.rung.disk] or list(attempts)
    smallest = min(memory_rungs, key=lambda a: a.needed - a.available, default=None)
    required = smallest.needed if smallest else 0
    available = smallest.available if smallest else 0
    return DoesNotFitError(card.id, required, max(available, 0))


def does_not_fit(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest,
    context: int,
    attempts: Sequence[Attempt],
    accelerators: Sequence[Accelerator],
    too_slow: Sequence[tuple[Attempt, SpeedEstimate]],
    find_plan: PlanFinder,
) -> DoesNotFitError:
    """Needed against usable, with the nearest ways out; `find_plan` re-plans to test them."""
    bare = bare_does_not_fit(card, attempts)
    suggestions: list[str] = []
    if context > 512:
        shorter = _largest_fitting_context(card, host, request, context, find_plan)
        if shorter:
            suggestions.append(f"a shorter context fits: --context {shorter}")
    suggestions += _relaxed_options(request)
    for attempt, speed in too_slow[:1]:
        suggestions.append(
            f"{describe(attempt)} fits but runs at about {speed.decode_tokens_per_s:.2g} tokens/s "
            f"(accept that with --allow-slow)"
        )
    suggestions += _unified_memory_ways(card, host, attempts)
    suggestions += _other_hardware(card, request, context, accelerators, find_plan)
    detail = "; ".join(
        f"{describe(a)} needs {gib(a.needed)}, {gib(max(a.available, 0))} usable"
        for a in attempts
        if a.rung.strategy in ("gpu", "quantized", "cpu") and len(a.rung.gpus) <= 1
    )
    return DoesNotFitError(card.id, bare.required_bytes, bare.available_bytes, suggestions, detail)


def _unified_memory_ways(card: ModelCard, host: HostSnapshot, attempts: Sequence[Attempt]) -> list[str]:
    """On Apple silicon: raise the GPU's share of memory when that is enough, else a llama.cpp GGUF quant."""
    if unified_gpu(host) is None:
        return []
    ways = []
    if any(raised_limit_fits(a.needed, a.available, host) for a in mps_attempts(attempts)):
        ways.append(wired_limit_note(host) or "")
    found = gguf_fit(card, host)
    if found is not None:
        ways.append(f"on this Mac it runs only as a {found.describe()}")
    return ways


def _relaxed_options(request: PlanRequest) -> list[str]:
    """The options the user gave that rule out a way to fit, each with how to drop it."""
    return [
        suggestion
        for ruled_out, suggestion in (
            (request.quant == "none", "allow quantization (drop --quant none)"),
            (not request.allow_offload, "allow CPU/disk offload (drop --no-offload)"),
            (request.dtype == "float32", "drop --dtype float32: bf16 halves the weights"),
        )
        if ruled_out
    ]


def _other_hardware(
    card: ModelCard,
    request: PlanRequest,
    context: int,
    accelerators: Sequence[Accelerator],
    find_plan: PlanFinder,
) -> list[str]:
    """The smallest catalog machine it fits on (and unquantized, when that took quantization), or the fleet."""
    anywhere = replace(request, gpus=None, device="auto")
    named = smallest_fitting_hardware(card, anywhere, accelerators, context, find_plan)
    if not named:
        if not accelerators:
            return []
        return [
            "no single machine of up to 8 catalog GPUs holds it: plan several machines with `berth fleet plan`"
        ]
    spec, how = named
    suggestions = [f"it fits on {spec} ({how}; see `berth plan {card.id} --hardware {spec}`)"]
    if how.split(" on ")[0] in ("int8", "nf4") and request.quant is None:
        unquantized = replace(request, quant="none")
        native = smallest_fitting_hardware(card, unquantized, accelerators, context, find_plan)
        if native:
            suggestions.append(f"without quantization it fits on {native[0]} ({native[1]})")
    return suggestions


def _found(find_plan: PlanFinder, card: ModelCard, host: HostSnapshot, request: PlanRequest) -> Plan | None:
    """The plan `find_plan` finds, or None when nothing fits or the request cannot be planned there."""
    try:
        return find_plan(card, host, request)
    except PlanRequestError:
        return None


def _largest_fitting_context(
    card: ModelCard, host: HostSnapshot, request: PlanRequest, context: int, find_plan: PlanFinder
) -> int | None:
    low, high = 256, context - 1
    if _found(find_plan, card, host, replace(request, context=low)) is None:
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if _found(find_plan, card, host, replace(request, context=mid)) is not None:
            low = mid
        else:
            high = mid - 1
    return (low // 256) * 256 or low


#: GPU counts tried when looking for the smallest named hardware that fits.
NAMED_GPU_COUNTS = (1, 2, 4, 8)


def named_host(acc: Accelerator, count: int, ram_bytes: int | None = None) -> HostSnapshot:
    """A HostSnapshot for `count` GPUs of a catalog accelerator on one machine, entirely free."""
    gpus = tuple(node_gpus([acc] * count, 0, 0))
    ram = ram_bytes or max(2 * acc.total_bytes * count, 16 * 10**9)
    spec = f"{count}x{acc.id}" if count > 1 else acc.id
    return HostSnapshot(label=spec, gpus=gpus, ram_total_bytes=ram, ram_available_bytes=ram, source="spec")


def smallest_fitting_hardware(
    card: ModelCard,
    request: PlanRequest,
    accelerators: Sequence[Accelerator],
    context: int,
    find_plan: PlanFinder,
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
    gpu_only = replace(
        request,
        context=context,
        allow_offload=False,
        device="gpu",
        quant=request.quant,
        max_memory=None,
        exclude=(),
    )
    for _, count, acc in options:
        host = named_host(acc, count)
        plan = _found(find_plan, card, host, gpu_only)
        if plan is not None:
            return host.label, plan.summary
    return None
