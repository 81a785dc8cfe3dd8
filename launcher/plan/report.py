"""Plans and does-not-fit verdicts as JSON-ready dicts and as text for people."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from launcher import display
from launcher.plan.errors import DoesNotFitError
from launcher.plan.measured import Measurement
from launcher.plan.request import Plan

#: Verdict words for each strategy, as `berth list` shows them.
FIT_LABELS = {
    "gpu": "fits on GPU",
    "sharded": "sharded",
    "quantized": "quantized",
    "offload": "offloaded",
    "cpu": "CPU",
    "disk": "disk offload",
}


def verdict(result: Plan | DoesNotFitError) -> str:
    """One or two words: fits on GPU, sharded, quantized, offloaded, CPU, disk offload, does not fit."""
    if isinstance(result, DoesNotFitError):
        return "does not fit"
    return FIT_LABELS[result.strategy]


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Everything in a plan, bytes as ints."""
    return {
        "model": plan.model_id,
        "fits": True,
        "verdict": verdict(plan),
        "strategy": plan.strategy,
        "dtype": plan.precision.dtype,
        "quantization": plan.precision.quant,
        "context": plan.context,
        "batch": plan.batch,
        "host": plan.host_label,
        "required_bytes": plan.required_bytes,
        "devices": [
            {
                "device": p.device,
                "label": p.label,
                "layers": list(p.layers) if p.layers else None,
                "blocks": list(p.blocks),
                "weights_bytes": p.weights_bytes,
                "kv_cache_bytes": p.kv_cache_bytes,
                "overhead_bytes": p.overhead_bytes,
                "budget_bytes": p.budget_bytes,
                "free_after_bytes": p.free_after_bytes,
            }
            for p in plan.placements
        ],
        "device_map": plan.device_map,
        "max_memory": {str(k): v for k, v in plan.max_memory.items()},
        "speed": {
            "decode_tokens_per_s": round(plan.speed.decode_tokens_per_s, 3),
            "time_to_first_token_s": round(plan.speed.time_to_first_token_s, 3),
            "prompt_tokens": plan.speed.prompt_tokens,
            "load_seconds": round(plan.speed.load_seconds, 1),
            "bottleneck": plan.speed.bottleneck,
            "basis": plan.speed.basis,
        },
        "reasons": list(plan.reasons),
        "warnings": list(plan.warnings),
        "runtime": plan.runtime,
        "llama_cpp": asdict(plan.llama_cpp) if plan.llama_cpp else None,
    }


def does_not_fit_to_dict(error: DoesNotFitError) -> dict[str, Any]:
    """A does-not-fit verdict, bytes as ints."""
    return {
        "model": error.model_id,
        "fits": False,
        "verdict": "does not fit",
        "required_bytes": error.required_bytes,
        "available_bytes": error.available_bytes,
        "suggestions": error.suggestions,
        "detail": error.detail,
        "reason": error.reason or None,
    }


def _layers(layers: tuple[int, int] | None, blocks: tuple[str, ...]) -> str:
    if layers is None:
        return ", ".join(blocks) if blocks else "-"
    first, last = layers
    extra = [b.rsplit(".", 1)[-1] for b in blocks if not b.rsplit(".", 1)[-1].isdigit()]
    text = f"layers {first}–{last}" if first != last else f"layer {first}"
    return text + (f" + {', '.join(extra)}" if extra else "")


def render_plan(plan: Plan) -> str:
    """The plan as a short report: verdict, per-device table, speed, reasons, warnings."""
    speed = plan.speed
    lines = [
        f"{plan.model_id} on {plan.host_label}",
        f"  {verdict(plan)}: {plan.summary}",
        f"  context {plan.context:,} tokens, batch {plan.batch}",
        *_runtime_line(plan),
        "",
    ]
    rows = [
        [
            p.label,
            _layers(p.layers, p.blocks),
            display.gib(p.weights_bytes),
            display.gib(p.kv_cache_bytes),
            display.gib(p.overhead_bytes),
            display.gib(p.budget_bytes),
            display.gib(p.free_after_bytes),
        ]
        for p in plan.placements
    ]
    lines.append(
        display.table(
            ["device", "holds", "weights", "KV cache", "overhead", "free now", "free after"],
            rows,
            right=(2, 3, 4, 5, 6),
        )
    )
    lines += [
        "",
        f"  speed: {display.rate(speed.decode_tokens_per_s)} tokens/s decode, "
        f"{display.seconds(speed.time_to_first_token_s)} to first token ({speed.prompt_tokens}-token prompt), "
        f"load about {display.seconds(speed.load_seconds)}",
        f"         limited by {speed.bottleneck}; {speed.basis}",
        "",
        "Why:",
        *[f"  {reason}" for reason in plan.reasons],
    ]
    if plan.warnings:
        lines += ["", "Warnings:", *[f"  ! {w}" for w in plan.warnings]]
    return "\n".join(lines)


def _runtime_line(plan: Plan) -> list[str]:
    """llama.cpp's settings, for a plan that runs a GGUF file with it (transformers plans say nothing)."""
    settings = plan.llama_cpp
    if settings is None:
        return []
    return [
        f"  runtime: llama.cpp, {settings.file_name} ({settings.quantization}), n_gpu_layers={settings.n_gpu_layers}, "
        f"KV cache {settings.kv_cache_type}{', flash attention' if settings.flash_attn else ''}, "
        f"{settings.n_threads} threads"
    ]


def render_does_not_fit(error: DoesNotFitError, host_label: str) -> str:
    """Why it does not fit, and the nearest ways out."""
    lines = [
        f"{error.model_id} does not fit on {host_label}: {error.reason}."
        if error.reason
        else f"{error.model_id} does not fit on {host_label}: it needs at least "
        f"{display.gib(error.required_bytes)}, {display.gib(error.available_bytes)} is usable.",
    ]
    if error.detail:
        lines.append(f"  tried: {error.detail}")
    if error.suggestions:
        lines.append("Ways out:")
        lines += [f"  - {s}" for s in error.suggestions]
    return "\n".join(lines)


def measured_to_dict(m: Measurement | None) -> dict[str, Any] | None:
    """A launch's measured figures on this machine, bytes as ints (None when never launched here)."""
    if m is None:
        return None
    return {
        "precision": m.precision,
        "strategy": m.strategy,
        "context": m.context,
        "tokens_used": m.tokens_used,
        "peak_bytes": m.peak_bytes,
        "estimated_bytes": m.estimated_bytes,
        "devices": dict(m.devices),
        "load_seconds": m.load_seconds,
        "time_to_first_token_s": m.time_to_first_token_s,
        "tokens_per_s": m.tokens_per_s,
        "measured_at": m.created_at,
    }


def render_measured(m: Measurement) -> str:
    """One line: what the last launch in this precision really used here, beside its estimate."""
    speed = f", {display.rate(m.tokens_per_s)} tokens/s" if m.tokens_per_s is not None else ""
    first = (
        f", {display.seconds(m.time_to_first_token_s)} to first token"
        if m.time_to_first_token_s is not None
        else ""
    )
    return (
        f"  measured on this machine ({m.created_at[:10]}, {m.precision}): {display.gib(m.peak_bytes, 2)} at "
        f"{m.tokens_used:,} tokens (estimated {display.gib(m.estimated_bytes, 2)}){speed}{first}"
    )
