"""A FleetPlan for people (tables: per model, per node, totals) and as JSON (int bytes, plain fields)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from launcher import display
from launcher.fleet.types import Alternative, Capacity, FleetPlan, ModelPlan, NodePlan, ReplicaEstimate

_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def _replica_dict(replica: ReplicaEstimate) -> dict[str, Any]:
    return {
        "group": replica.group,
        "accelerator": replica.accelerator,
        "tensor_parallel_size": replica.shape.tp,
        "pipeline_parallel_size": replica.shape.pp,
        "gpus": replica.shape.gpus,
        "dtype": replica.dtype,
        "quantization": replica.quantization,
        "context": replica.context,
        "weights_bytes_per_gpu": replica.weights_bytes_per_rank,
        "activation_bytes_per_gpu": replica.activation_bytes_per_rank,
        "non_torch_bytes_per_gpu": replica.non_torch_bytes_per_rank,
        "kv_cache_bytes_per_gpu": replica.kv_cache_bytes_per_rank,
        "kv_cache_tokens": replica.kv_cache_tokens,
        "max_concurrent_sequences": replica.max_concurrent_sequences,
        "batch": replica.batch,
        "decode_tokens_per_s_per_user": round(replica.decode_tokens_per_s_per_user, 3),
        "decode_tokens_per_s": round(replica.decode_tokens_per_s, 3),
        "ttft_s": round(replica.ttft_s, 4),
        "ttft_prompt_tokens": replica.ttft_prompt_tokens,
        "max_num_batched_tokens": replica.max_num_batched_tokens,
        "prefill_tokens_per_s": round(replica.prefill_tokens_per_s, 3),
    }


def _capacity_dict(cap: Capacity | None) -> dict[str, Any] | None:
    if cap is None:
        return None
    return {
        "concurrency": round(cap.concurrency, 3),
        "decode_replicas": cap.decode_replicas,
        "requests_per_s": None if cap.arrival_per_s is None else round(cap.arrival_per_s, 4),
        "prefill_tokens_per_s_needed": round(cap.prefill_tokens_per_s_needed, 3),
        "prefill_utilisation": round(cap.prefill_utilisation, 4),
        "prefill_replicas": cap.prefill_replicas,
        "replicas": cap.replicas,
        "limited_by": cap.limit,
    }


def _alternative_dict(alt: Alternative) -> dict[str, Any]:
    return {
        "label": alt.label,
        "quantization": alt.quantization,
        "context": alt.context,
        "replicas": alt.replicas,
        "gpus": alt.gpus,
        "fits": alt.fits,
        "replica": _replica_dict(alt.replica),
    }


def _model_dict(model: ModelPlan) -> dict[str, Any]:
    w = model.workload
    return {
        "name": model.name,
        "model": w.card.id,
        "status": model.status,
        "workload": {
            "context": w.context,
            "concurrency": w.concurrency,
            "requests_per_s": w.requests_per_s,
            "prompt_tokens": w.prompt_tokens,
            "output_tokens": w.output_tokens,
            "tokens_per_s_per_user": w.tokens_per_s_per_user,
            "ttft_s": w.ttft_s,
        },
        "replica": _replica_dict(model.replica) if model.replica else None,
        "concurrency_needed": round(model.concurrency_needed, 3),
        "replicas_needed": model.replicas_needed,
        "replicas_placed": model.replicas_placed,
        "replicas_missing": model.replicas_missing,
        "capacity": _capacity_dict(model.capacity),
        "runner_up": model.runner_up,
        "reasons": list(model.reasons),
        "alternatives": [_alternative_dict(a) for a in model.alternatives],
    }


def _node_dict(node: NodePlan) -> dict[str, Any]:
    return {
        "name": node.name,
        "group": node.group,
        "accelerator": node.accelerator,
        "gpus": node.gpus,
        "used_gpus": node.used_gpus,
        "free_gpus": node.free_gpus,
        "stages": [
            {"model": s.model, "replica": s.replica, "stage": s.stage, "gpu_indices": list(s.gpu_indices)}
            for s in node.stages
        ],
    }


def plan_to_dict(plan: FleetPlan) -> dict[str, Any]:
    """The plan as JSON-ready data (bytes as ints)."""
    return {
        "complete": plan.complete,
        "totals": {
            "nodes": len(plan.nodes),
            "nodes_used": sum(1 for n in plan.nodes if n.stages),
            "gpus": plan.total_gpus,
            "gpus_used": plan.used_gpus,
            "gpus_free": plan.free_gpus,
            "gpus_missing": plan.missing_gpus,
        },
        "engine": {
            "gpu_memory_utilization": plan.engine.gpu_memory_utilization,
            "block_size": plan.engine.block_size,
            "max_num_seqs": plan.engine.max_num_seqs,
            "max_num_batched_tokens": plan.engine.max_num_batched_tokens,
        },
        "models": [_model_dict(m) for m in plan.models],
        "nodes": [_node_dict(n) for n in plan.nodes],
        "additions": [
            {
                "group": a.group,
                "nodes": a.nodes,
                "accelerator": a.accelerator,
                "gpus_per_node": a.gpus_per_node,
                "models": list(a.models),
            }
            for a in plan.additions
        ],
    }


# --------------------------------------------------------------------------- text


def _precision(replica: ReplicaEstimate) -> str:
    return replica.quantization or _DTYPE[replica.dtype]


def _model_rows(plan: FleetPlan) -> list[list[str]]:
    rows = []
    for m in plan.models:
        r = m.replica
        if r is None:
            rows.append([m.name, "does not fit", *["-"] * 11, "0"])
            continue
        rows.append(
            [
                m.name,
                m.status,
                f"{r.group} ({r.accelerator})",
                r.shape.label,
                _precision(r),
                f"{r.context:,}",
                display.gib(r.kv_cache_bytes_per_rank),
                f"{r.kv_cache_tokens:,}",
                f"{r.max_concurrent_sequences:,}",
                f"{r.batch:,}",
                display.rate(r.decode_tokens_per_s_per_user),
                display.rate(r.decode_tokens_per_s),
                display.seconds(r.ttft_s),
                f"{m.replicas_placed}/{m.replicas_needed}",
            ]
        )
    return rows


def _signature(node: NodePlan) -> tuple[str, tuple[tuple[str, int], ...]]:
    return node.group, tuple((s.model, len(s.gpu_indices)) for s in node.stages)


def _node_cell(node: NodePlan) -> str:
    if not node.stages:
        return "(free)"
    parts = []
    for s in node.stages:
        gpus = s.gpu_indices
        span = f"{gpus[0]}" if len(gpus) == 1 else f"{gpus[0]}-{gpus[-1]}"
        stage = f" stage {s.stage}" if s.stage or _spans(node, s.model, s.replica) else ""
        parts.append(f"{s.model}#{s.replica}{stage} [{span}]")
    return ", ".join(parts)


def _spans(node: NodePlan, model: str, replica: int) -> bool:
    return sum(1 for s in node.stages if s.model == model and s.replica == replica) > 1


def _node_rows(nodes: Sequence[NodePlan]) -> list[list[str]]:
    """One row per node; runs of nodes holding the same thing collapse into one row."""
    rows: list[list[str]] = []
    i = 0
    while i < len(nodes):
        j = i
        while j + 1 < len(nodes) and _signature(nodes[j + 1]) == _signature(nodes[i]):
            j += 1
        node = nodes[i]
        if j == i:
            rows.append([node.name, node.accelerator, f"{node.used_gpus}/{node.gpus}", _node_cell(node)])
        else:
            last = nodes[j]
            what = (
                "(free)"
                if not node.stages
                else "each: "
                + ", ".join(
                    f"{s.model} [{len(s.gpu_indices)} GPU{'s' if len(s.gpu_indices) > 1 else ''}]"
                    for s in node.stages
                )
            )
            rows.append(
                [
                    f"{node.name} … {last.name} ({j - i + 1})",
                    node.accelerator,
                    f"{node.used_gpus}/{node.gpus}",
                    what,
                ]
            )
        i = j + 1
    return rows


_MODEL_COLUMNS = [
    "model",
    "status",
    "on",
    "shape",
    "prec",
    "context",
    "KV/GPU",
    "KV tokens",
    "max seqs",
    "batch",
    "tok/s/user",
    "tok/s/replica",
    "TTFT",
    "replicas",
]


def plan_text(plan: FleetPlan) -> str:
    """Per-model table, per-node placement, totals, what is missing and what to add."""
    by_acc: dict[str, int] = {}
    for group in plan.groups:
        by_acc[group.accelerator.id] = by_acc.get(group.accelerator.id, 0) + group.count * group.gpus_per_node
    fleet = ", ".join(f"{count} {acc}" for acc, count in by_acc.items())
    out = [
        f"Fleet: {len(plan.groups)} node group(s), {len(plan.nodes)} nodes, {plan.total_gpus} GPUs "
        f"({fleet}); vLLM may use {plan.engine.gpu_memory_utilization:g} of each GPU's memory.",
        "",
        "Models (KV cache per GPU in GiB; speeds are decode tokens/s at the planned batch):",
        display.table(_MODEL_COLUMNS, _model_rows(plan), right=(5, 6, 7, 8, 9, 10, 11, 12, 13)),
        "",
        "Placement (GPUs used/total; model#replica [GPU indices]):",
        display.table(["node", "accelerator", "used", "replicas"], _node_rows(plan.nodes), right=(2,)),
        "",
        f"Totals: {plan.total_gpus} GPUs, {plan.used_gpus} used, {plan.free_gpus} free"
        + (f"; {plan.missing_gpus} more needed." if plan.missing_gpus else "."),
    ]
    out += _shortfall_lines(plan)
    out += _advice_lines(plan)
    return "\n".join(out)


def _shortfall_lines(plan: FleetPlan) -> list[str]:
    """One line per model that is short of replicas or fits nowhere."""
    out = []
    for m in plan.models:
        if m.status == "short":
            out.append(
                f"  {m.name}: {m.replicas_missing} of {m.replicas_needed} replicas have no room "
                f"({m.replicas_missing * m.replica.shape.gpus if m.replica else 0} GPUs)."
            )
        elif m.status == "does-not-fit":
            out.append(f"  {m.name}: does not fit any node group of the fleet.")
    return out


def _advice_lines(plan: FleetPlan) -> list[str]:
    """What to add, the node groups ruled out and why, and the cheaper alternatives (sections only when any)."""
    out: list[str] = []
    if plan.additions:
        out += ["", "To carry the whole workload, add:"]
        for add in plan.additions:
            out.append(
                f"  {add.nodes} node(s) to {add.group} ({add.gpus_per_node}× {add.accelerator} each) "
                f"for {', '.join(add.models)}"
            )
    sizing = [(m.name, m) for m in plan.models if m.capacity is not None]
    if sizing:
        out += ["", "Why these shapes and counts:"]
        for name, m in sizing:
            out += _why_lines(name, m)
    ruled_out = [(m.name, r) for m in plan.models for r in m.reasons]
    if ruled_out:
        out += ["", "Node groups ruled out:"]
        out += [f"  {name}: {reason}" for name, reason in ruled_out]
    alternatives = [(m.name, a) for m in plan.models for a in m.alternatives]
    if alternatives:
        out += ["", "Cheaper alternatives:"]
        for name, a in alternatives:
            verdict = "fits the fleet now" if a.fits else "still needs more nodes"
            out.append(
                f"  {name}: {a.label} → {a.replicas} × {a.replica.shape.label} on {a.replica.group} "
                f"({a.gpus} GPUs, {a.replica.max_concurrent_sequences} sequences per replica), {verdict}"
            )
    return out


def _why_lines(name: str, model: ModelPlan) -> list[str]:
    """The replica count from both phases and the runner-up shape, for one model."""
    cap, replica = model.capacity, model.replica
    assert cap is not None and replica is not None
    line = (
        f"  {name}: decode needs {cap.decode_replicas} ({cap.concurrency:,.1f} sequences in flight / "
        f"{replica.batch} per replica)"
    )
    if cap.prefill_tokens_per_s_needed > 0:
        share = (
            f" at most {cap.prefill_utilisation:.0%} busy for the TTFT target"
            if cap.prefill_utilisation < 1
            else ""
        )
        line += (
            f", prefill needs {cap.prefill_replicas} ({display.rate(cap.prefill_tokens_per_s_needed)} prompt "
            f"tokens/s / {display.rate(replica.prefill_tokens_per_s)} per replica{share})"
        )
    plural = "replica" if cap.replicas == 1 else "replicas"
    out = [line + f": {cap.replicas} {plural} ({cap.limit} sets the count)."]
    if model.runner_up:
        out.append(f"    runner-up: {model.runner_up}")
    return out
