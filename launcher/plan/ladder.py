"""The planner (pure): for a model on a host, choose dtype, GPU split, quantization or offload, or say why not.

The ladder, in order of expected speed and quality (the first rung that fits wins; among the offload rungs,
the fastest that fits):

    1. one GPU in its best dtype (bf16 from compute capability 8.0, else fp16)
    2. layers split across the GPUs of this machine (balanced, KV cache and overhead reserved per GPU)
    3. bitsandbytes int8, then nf4, on one GPU, then split (everything stays on the GPU)
    4. GPU plus CPU offload        5. CPU only (bf16 where the CPU has native bf16, else fp32)
    6. disk offload (behind the GPUs and/or CPU)

Every rung places whole blocks (decoder layers, embeddings, head) on devices the way accelerate does, so the
plan's device map can be handed to `from_pretrained` unchanged. How blocks are placed and timed lives in
`launcher/plan/placement.py`; what to suggest when nothing fits, in `launcher/plan/advice.py`, which re-plans
through the function the ladder hands it (it never imports the ladder).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from launcher.display import gib
from launcher.machine.host import GpuInfo, HostSnapshot
from launcher.plan.advice import bare_does_not_fit, does_not_fit
from launcher.plan.cpu_dtype import cpu_dtype_basis, cpu_dtype_order
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.figures import figures_for
from launcher.plan.llamacpp import plan_llamacpp, use_llamacpp
from launcher.plan.placement import (
    RAM_HEADROOM_BYTES,
    Attempt,
    Rung,
    attempt_speed,
    describe,
    try_rung,
)
from launcher.plan.request import DEFAULT_CONTEXT, MIN_USABLE_TOKENS_PER_S, Plan, PlanRequest
from launcher.plan.speed import SpeedEstimate
from launcher.plan.unified import gguf_fit, mps_attempts, raised_limit_fits, wired_limit_note
from registry.memory import Precision, Quant, native_precision, runs_native
from registry.params import LINEAR_SUBCLASS_FAMILIES
from registry.schema import Accelerator, Dtype, ModelCard

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


def _cpu_dtypes(host: HostSnapshot, request: PlanRequest) -> list[Dtype]:
    if request.dtype is not None:
        return [request.dtype]
    return cpu_dtype_order(host.cpu)


def _quant_forced(request: PlanRequest) -> bool:
    return request.quant not in (None, "none")


def native_on(card: ModelCard, gpus: Sequence[GpuInfo]) -> bool:
    """Whether transformers keeps the card's published low-precision format on all these GPUs (FP8 from compute
    capability 8.9, MXFP4 from 9.0); elsewhere it dequantizes the checkpoint to bf16 while loading."""
    fmt = card.native_quant
    if fmt is None or not gpus:
        return False
    return all(
        g.compute_capability is not None and runs_native(fmt, g.compute_capability, g.vendor) for g in gpus
    )


def native_note(card: ModelCard, gpus: Sequence[GpuInfo]) -> str | None:
    """One line on how the card's native format loads on these GPUs, None for an ordinary checkpoint."""
    fmt = card.native_quant
    if fmt is None:
        return None
    name = fmt.upper()
    if native_on(card, gpus):
        return f"{name} checkpoint: kept in {name} as published (runs natively on these GPUs)"
    need = {"fp8": "8.9 (Ada, Hopper)", "mxfp4": "9.0 (Hopper)"}[fmt]
    where = "the CPU" if not gpus else "these GPUs"
    return f"{name} checkpoint: transformers dequantizes it to bf16 on {where} (native {name} needs compute capability {need})"


#: The last host's rungs: `berth list` climbs the same ladder for every model of the catalog.
_last_rungs: list[tuple[HostSnapshot, tuple[object, ...], tuple[Rung, ...]]] = []


def _rungs(card: ModelCard, host: HostSnapshot, request: PlanRequest) -> tuple[Rung, ...]:
    """The ladder for this host and request (the same for every model but for its native format: kept for
    the last host asked)."""
    key = (
        card.native_quant,
        card.native_quant_block,
        request.device,
        request.gpus,
        request.dtype,
        request.quant,
        request.allow_offload,
        request.allow_disk,
    )
    last = next(iter(_last_rungs), None)  # read once: another thread (the TUI's) may replace it
    if last is not None and last[0] is host and last[1] == key:
        return last[2]
    rungs = tuple(_ladder(card, host, request))
    _last_rungs[:] = [(host, key, rungs)]
    return rungs


def _ladder(card: ModelCard, host: HostSnapshot, request: PlanRequest) -> list[Rung]:
    gpus = _chosen_gpus(host, request) if request.device != "cpu" else ()
    _check_devices(host, request, gpus)
    rungs = _gpu_rungs(card, gpus, request) if gpus else []
    if request.device != "gpu" and not _quant_forced(request):
        rungs += _cpu_rungs(host, request)
    return rungs


def _check_devices(host: HostSnapshot, request: PlanRequest, gpus: Sequence[GpuInfo]) -> None:
    """Refuse --quant without a GPU bitsandbytes runs on (NVIDIA, or AMD under ROCm) and --device gpu without
    a GPU."""
    if _quant_forced(request) and not _bnb_gpus(gpus):
        on_mac = any(g.vendor == "apple" for g in gpus)
        raise PlanRequestError(
            f"--quant {request.quant} needs an NVIDIA GPU or an AMD GPU under ROCm: bitsandbytes' 8/4-bit "
            f"kernels run on CUDA and ROCm, and {host.label} has "
            + (
                "an Apple GPU (torch MPS runs fp16/bf16 only; a GGUF quant through llama.cpp with Metal is "
                "the way to 8/4-bit on a Mac)"
                if on_mac
                else "no GPU"
                if not gpus
                else "neither"
            ),
            hint="drop --quant to let Berth choose, or plan for named hardware with --hardware rtx-4090",
        )
    if request.device == "gpu" and not gpus:
        raise PlanRequestError(f"--device gpu asked, but {host.label} has no GPU", hint="drop --device gpu")


def _bnb_gpus(gpus: Sequence[GpuInfo]) -> tuple[GpuInfo, ...]:
    """GPUs bitsandbytes quantizes on: NVIDIA (CUDA) and AMD (ROCm; its installation guide lists AMD GPUs among
    the supported platforms), not Apple's MPS."""
    return tuple(g for g in gpus if g.vendor in ("nvidia", "amd"))


def _quants(card: ModelCard, request: PlanRequest, cuda: Sequence[GpuInfo]) -> list[Quant]:
    """The quantizations to try: the one asked for, else int8 then nf4 when there is CUDA and it is allowed
    (not for checkpoints already published in a low-precision format)."""
    if _quant_forced(request):
        return [request.quant]  # type: ignore[list-item]
    if request.quant is None and cuda and card.native_quant is None:
        return ["int8", "nf4"]
    return []


def _gpu_rungs(card: ModelCard, gpus: tuple[GpuInfo, ...], request: PlanRequest) -> list[Rung]:
    """One GPU at a time (fastest first), all of them, quantized, then offloaded from them. A checkpoint
    published in FP8/MXFP4 stays so on GPUs that run the format, and is dequantized to bf16 elsewhere."""
    quant_forced = _quant_forced(request)
    cuda = _bnb_gpus(gpus)
    dtype = _gpu_dtype(gpus, request)
    by_speed = _distinct(sorted(gpus, key=lambda g: (-(g.bandwidth_bytes_per_s or 0), -g.usable_bytes)))
    rungs: list[Rung] = []
    if not quant_forced:

        def best(on: Sequence[GpuInfo]) -> Precision:
            return native_precision(card, dtype) if native_on(card, on) else Precision(dtype)

        rungs += [Rung("gpu", best((g,)), (g,), False, False) for g in by_speed]
        if len(gpus) > 1:
            rungs.append(Rung("sharded", best(gpus), gpus, False, False))
    for quant in _quants(card, request, cuda):
        rungs += [
            Rung("quantized", Precision(dtype, quant), (g,), False, False) for g in by_speed if g in cuda
        ]
        if len(cuda) > 1:
            rungs.append(Rung("quantized", Precision(dtype, quant), cuda, False, False))
    # On unified memory the RAM behind the GPU is the same memory: offloading to it gains nothing.
    # Offload plans in dtype: streaming FP8 blocks through accelerate's hooks is not supported.
    unified = any(g.unified_memory for g in gpus)
    if request.allow_offload and not quant_forced and request.device != "gpu" and not unified:
        rungs.append(Rung("offload", Precision(dtype), gpus, True, False))
        if request.allow_disk:
            rungs.append(Rung("disk", Precision(dtype), gpus, True, True))
    return rungs


def _cpu_rungs(host: HostSnapshot, request: PlanRequest) -> list[Rung]:
    """In memory on the CPU, then (offload and disk allowed) read from disk."""
    rungs = [Rung("cpu", Precision(dtype), (), True, False) for dtype in _cpu_dtypes(host, request)]
    if request.allow_offload and request.allow_disk:
        # Disk offload is bound by reads: try both dtypes, the fastest that fits wins.
        rungs += [Rung("disk", Precision(d), (), True, True) for d in _cpu_dtypes(host, request)]
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


@dataclass
class _Climb:
    """What walking the ladder found: the rung chosen (if one was), the offload rungs that fit, the ones too
    slow to offer, every attempt made, and the reasons to show."""

    chosen: tuple[Attempt, SpeedEstimate] | None = None
    fitting_offload: list[tuple[Attempt, SpeedEstimate]] = field(default_factory=list)
    too_slow: list[tuple[Attempt, SpeedEstimate]] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def note(self, described: str, reason: str) -> None:
        """Add one reason per rung description (rungs on identical GPUs say the same thing)."""
        if not any(r.startswith(described) for r in self.reasons):
            self.reasons.append(f"{described}: {reason}")


def _climb(
    card: ModelCard, host: HostSnapshot, request: PlanRequest, context: int, screen: bool = True
) -> _Climb:
    """Try the rungs in order until one that is not an offload fits, keeping every offload rung that fits.
    The model's sized blocks are computed once for all rungs; `screen` lets the sums decide a rung's fit
    where they can (see placement.try_rung)."""
    batch = max(request.batch, 1)
    prompt_tokens = min(request.prompt_tokens or 512, context)
    lay, figures = figures_for(card, context, batch)
    climb = _Climb()
    note = native_note(card, _chosen_gpus(host, request) if request.device != "cpu" else ())
    if note:
        climb.reasons.append(note)
    for rung in _rungs(card, host, request):
        if (rung.strategy, rung.precision.label) in request.exclude:
            climb.note(
                describe(Attempt(rung, None, 0, 0, {})),
                "ran out of memory when loaded on this machine → skipped",
            )
            continue
        if screen and _repeats_in_ram(rung, climb):
            continue
        attempt = try_rung(card, lay, host, rung, context, batch, figures, screen)
        climb.attempts.append(attempt)
        if attempt.placements is None:
            climb.note(
                describe(attempt),
                f"weights + KV cache need {gib(attempt.needed)}, "
                f"{gib(max(attempt.available, 0))} usable after runtime and activations → no",
            )
            continue
        if _duplicate(attempt):
            continue
        speed = attempt_speed(card, lay, host, attempt, batch, prompt_tokens, figures)
        if rung.strategy not in _OFFLOAD_STRATEGIES:
            climb.chosen = (attempt, speed)
            break
        if speed.decode_tokens_per_s < MIN_USABLE_TOKENS_PER_S and not request.allow_slow:
            climb.reasons.append(
                f"{describe(attempt)}: fits, but about {speed.decode_tokens_per_s:.3f} tokens/s is too slow "
                f"to offer (--allow-slow to accept)"
            )
            climb.too_slow.append((attempt, speed))
            continue
        climb.fitting_offload.append((attempt, speed))
    return climb


def _repeats_in_ram(rung: Rung, climb: _Climb) -> bool:
    """A disk rung without GPUs in a precision that already fit in RAM alone (and was offered): its fill puts
    every block in RAM as that rung's did, so it would be dropped as a duplicate. A plan is then sure to be
    chosen, where no rung's attempt is read but the Apple GPU's (the screen skips it; screen=False tries it)."""
    return (
        rung.strategy == "disk"
        and not rung.gpus
        and any(
            a.rung.strategy == "cpu" and a.rung.precision == rung.precision for a, _ in climb.fitting_offload
        )
    )


def _choose_offload(climb: _Climb) -> None:
    """When no rung on the GPUs alone fits, the fastest offload rung that fits wins."""
    if climb.chosen is not None or not climb.fitting_offload:
        return
    climb.chosen = max(climb.fitting_offload, key=lambda pair: pair[1].decode_tokens_per_s)
    if len(climb.fitting_offload) > 1:
        others = ", ".join(
            f"{describe(a)} ≈ {s.decode_tokens_per_s:.2g} tok/s"
            for a, s in climb.fitting_offload
            if a is not climb.chosen[0]
        )
        climb.reasons.append(f"fastest option that fits (also fits: {others})")


def _plan(card: ModelCard, host: HostSnapshot, request: PlanRequest, context: int, climb: _Climb) -> Plan:
    """The Plan of the chosen rung."""
    assert climb.chosen is not None
    attempt, speed = climb.chosen
    assert attempt.placements is not None
    climb.reasons.append(f"→ {describe(attempt)}: {_fit_line(attempt)}")
    return Plan(
        model_id=card.id,
        strategy=attempt.rung.strategy,
        precision=attempt.rung.precision,
        context=context,
        batch=max(request.batch, 1),
        placements=attempt.placements,
        speed=speed,
        reasons=tuple(climb.reasons),
        warnings=tuple(
            _warnings(card, host, attempt) + _unified_warnings(card, host, attempt, climb.attempts)
        ),
        host_label=host.label,
        device_map=_compact_device_map(attempt),
    )


def _plan_quietly(card: ModelCard, host: HostSnapshot, request: PlanRequest) -> Plan | None:
    """The plan, or None when nothing fits (no advice): how the advice asks 'would this fit?'."""
    result = make_plan(card, host, request, explain=False)
    return result if isinstance(result, Plan) else None


def make_plan(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest | None = None,
    accelerators: Sequence[Accelerator] = (),
    explain: bool = True,
    screen: bool = True,
) -> Plan | DoesNotFitError:
    """The best plan for this model on this host, or a DoesNotFitError value saying what would fit.

    `explain=False` skips the search for ways out when nothing fits (shorter context, named hardware),
    which `berth list` does not show. `screen=False` places every rung block by block even where the sums
    already decide it (the same plan, slower: tests compare the two). Raises PlanRequestError for requests that
    cannot be planned as asked.
    """
    request = request or PlanRequest()
    host = cap_host(host, request.max_memory)
    context = resolve_context(card, request)
    if use_llamacpp(request):  # the runtime is chosen like a dtype: GGUF weights run quantized in llama.cpp
        return plan_llamacpp(card, host, request, context)
    climb = _climb(card, host, request, context, screen)
    _choose_offload(climb)
    if climb.chosen is not None:
        return _plan(card, host, request, context, climb)
    if not explain:
        return bare_does_not_fit(card, climb.attempts, (host, context, max(request.batch, 1)))
    return does_not_fit(
        card, host, request, context, climb.attempts, accelerators, climb.too_slow, find_plan=_plan_quietly
    )


def cap_host(host: HostSnapshot, max_memory: Mapping[int | str, int] | None) -> HostSnapshot:
    """The host with each device's free memory lowered to the cap given for it (GPU index, 'cpu', 'disk')."""
    if not max_memory:
        return host
    caps = {str(key): value for key, value in max_memory.items()}
    gpus = tuple(
        replace(g, free_bytes=min(g.usable_bytes, caps[str(g.index)])) if str(g.index) in caps else g
        for g in host.gpus
    )
    ram, capped = host.ram_available_bytes, host.ram_capped
    if "cpu" in caps and caps["cpu"] < ram - RAM_HEADROOM_BYTES:
        ram, capped = caps["cpu"], True  # the process's own cap: the OS keeps its headroom besides it
    disk = host.disk_free_bytes
    if "disk" in caps:
        disk = min(disk, caps["disk"]) if disk is not None else caps["disk"]
    return replace(host, gpus=gpus, ram_available_bytes=ram, ram_capped=capped, disk_free_bytes=disk)


def _duplicate(attempt: Attempt) -> bool:
    """An offload rung that ended up offloading nothing repeats an earlier rung."""
    assert attempt.placements is not None
    devices = {p.device for p in attempt.placements if p.blocks}
    if attempt.rung.strategy == "disk":
        return "disk" not in devices
    if attempt.rung.strategy == "offload":
        return "cpu" not in devices
    return False


def _fit_line(attempt: Attempt) -> str:
    assert attempt.placements is not None
    parts = [f"{p.label} {gib(p.used_bytes)} of {gib(p.budget_bytes)}" for p in attempt.placements]
    return "; ".join(parts)


def _compact_device_map(attempt: Attempt) -> dict[str, int | str]:
    devices = set(attempt.device_map.values())
    if len(devices) == 1:
        return {"": next(iter(devices))}
    return dict(attempt.device_map)


def _warnings(card: ModelCard, host: HostSnapshot, attempt: Attempt) -> list[str]:
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
    if rung.strategy == "cpu" and rung.precision.dtype != cpu_dtype_order(host.cpu)[0]:
        notes.append(
            f"{rung.precision.label} is not the fastest dtype on this CPU ({cpu_dtype_basis(host.cpu)}); "
            "chosen to fit or as asked"
        )
    if rung.gpus and any(g.free_bytes is None for g in rung.gpus):
        notes.append("free GPU memory could not be read; planned with the total")
    if host.nodes > 1:
        notes.append("this plan uses one machine of the spec; `berth fleet plan` plans across machines")
    return notes


def _unified_warnings(
    card: ModelCard, host: HostSnapshot, attempt: Attempt, attempts: Sequence[Attempt]
) -> list[str]:
    """On Apple silicon: the GPU's share of the memory, how to raise it, and what MPS runs; on the CPU of a Mac,
    whether raising that share would move the model to the GPU, or a GGUF quant would run there."""
    note = wired_limit_note(host)
    if note is None:
        return []
    if any(g.unified_memory for g in attempt.rung.gpus):
        return [f"{note}; torch MPS runs fp16/bf16 only (no bitsandbytes)"]
    if any(raised_limit_fits(a.needed, a.available, host) for a in mps_attempts(attempts)):
        return [f"runs on the CPU because the GPU's share of memory is too small; {note}, enough for mps"]
    found = gguf_fit(card, host)
    return [f"on this Mac's GPU it runs as a {found.describe()}"] if found else []


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
