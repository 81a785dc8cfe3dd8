"""The rows both faces list: every catalog model's verdict on one host, its order, search and the host line.

Pure: imports registry, display, machine and the rest of the plan layer; measurements come in as values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from launcher import display
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.gguf import GgufWeights
from launcher.plan.ladder import make_plan
from launcher.plan.measured import Measurement
from launcher.plan.report import verdict
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.sharing import Signature, planning_signature, relabel, shareable
from launcher.plan.unified import GgufFit, gguf_fit, unified_gpu
from registry.catalog import Catalog
from registry.schema import ModelCard

SORT_KEYS = ("fit", "size", "speed", "name")

#: Verdicts from best to worst, for --sort fit.
FIT_ORDER = ("fits on GPU", "sharded", "quantized", "offloaded", "CPU", "disk offload", "does not fit")


@dataclass(frozen=True)
class Row:
    """One model's verdict on one host. Rows with the same `plan_group` hold one plan, made for the group's
    first card: `result` is that plan relabelled for this card (launcher.plan.sharing), on first use, so a
    listing that only prints rows never copies thousands of plans; their `plan_fields` are equal."""

    card: ModelCard
    planned: Plan | DoesNotFitError
    plan_group: int | None = None

    @cached_property
    def result(self) -> Plan | DoesNotFitError:
        return relabel(self.planned, self.card.id)

    @property
    def fits(self) -> bool:
        return isinstance(self.planned, Plan)

    @property
    def needed_bytes(self) -> int:
        return self.planned.required_bytes

    @property
    def tokens_per_s(self) -> float | None:
        return self.planned.speed.decode_tokens_per_s if isinstance(self.planned, Plan) else None

    def as_dict(self) -> dict[str, Any]:
        """The row as `berth list --json` writes it: the card's fields, then the plan's."""
        return self.card_fields() | self.plan_fields()

    def card_fields(self) -> dict[str, Any]:
        card = self.card
        return {
            "id": card.id,
            "aliases": list(card.aliases),
            "family": card.family,
            "task": card.task,
            "license": card.license,
            "gated": card.gated,
            "params": card.params,
        }

    def plan_fields(self) -> dict[str, Any]:
        """The verdict and plan (the same for every row of one plan_group)."""
        result = self.planned
        plan = result if isinstance(result, Plan) else None
        return {
            "fits": self.fits,
            "verdict": verdict(result),
            "strategy": plan.strategy if plan else None,
            "dtype": plan.precision.dtype if plan else None,
            "quantization": plan.precision.quant if plan else None,
            "precision": plan.precision.label if plan else None,
            "context": plan.context if plan else None,
            "needed_bytes": self.needed_bytes,
            "available_bytes": None if plan else result.available_bytes,  # type: ignore[union-attr]
            "decode_tokens_per_s": round(plan.speed.decode_tokens_per_s, 3) if plan else None,
            "speed_basis": plan.speed.basis if plan else None,
            "runtime": runtime(plan),
            "gguf_file": plan.llama_cpp.file_name if plan and plan.llama_cpp else None,
        }


def runtime(plan: Plan | None) -> str | None:
    """Which runtime runs the plan: llama.cpp (a GGUF file), else torch on CUDA, ROCm, MPS or the CPU
    (transformers)."""
    if plan is None:
        return None
    if plan.runtime == "llama.cpp":
        return "llama.cpp"
    devices = {p.device for p in plan.placements if p.blocks}
    if "mps" in devices:
        return "torch mps"
    gpus = [g for g in (p for p in plan.placements) if g.device.startswith("cuda:")]
    if gpus:
        return "torch cuda/rocm"
    return "torch cpu"


def precision_text(plan: Plan) -> str:
    """The precision column: bf16, nf4 … for transformers; the file's quantization and "llama.cpp" for a GGUF
    file run with llama.cpp (Q4_1 llama.cpp)."""
    label = plan.precision.label
    return f"{label} llama.cpp" if plan.runtime == "llama.cpp" else label


def gguf_only(rows: list[Row], host: HostSnapshot) -> list[tuple[Row, GgufFit]]:
    """On a Mac: the rows that do not run on its GPU as they are (they do not fit, or only on the CPU or from
    disk) but fit there as a llama.cpp GGUF quant with Metal."""
    if unified_gpu(host) is None:
        return []  # not a Mac: no row is a Metal GGUF candidate
    found = []
    for row in rows:
        on_gpu = isinstance(row.result, Plan) and row.result.uses_gpu
        fit = gguf_fit(row.card, host) if not on_gpu else None
        if fit is not None:
            found.append((row, fit))
    return found


def plan_all(
    catalog: Catalog,
    host: HostSnapshot,
    request: PlanRequest,
    planner: Callable[..., Plan | DoesNotFitError] = make_plan,
    share: bool = True,
    gguf: Mapping[str, GgufWeights] | None = None,
) -> list[Row]:
    """A verdict for every catalog model (contexts above a model's maximum are capped to it).

    `planner` has make_plan's signature (the TUI passes the one it was built with) and, like make_plan, plans
    from the card's planning fields alone: with `share`, cards of one planning signature (launcher.plan.sharing)
    are planned once and the others get that plan under their own id. `gguf` holds, by model id, the tensor
    table of the local GGUF file an entry runs from (launcher.run.runtime.gguf_entries): those entries are
    planned for llama.cpp, as `berth plan` and a launch plan them, and share only with the same weights."""
    rows = []
    done: dict[Signature, tuple[Plan | DoesNotFitError, int] | None] = {}
    arch_keys: dict[int, tuple[object, ...]] = {}
    files = gguf or {}
    for card in catalog.models:
        weights = files.get(card.id) if files else None
        key = _signature(card, arch_keys, weights) if share else None
        if key is not None and key in done:
            first = done[key]
            if first is not None:
                rows.append(Row(card, first[0], first[1]))
            continue
        asked = _request_for(card, request, weights)
        try:
            result = planner(card, host, asked, explain=False)
        except PlanRequestError:
            if key is not None:
                done[key] = None
            continue
        group = len(rows) if key is not None and shareable(result, card.id) else None
        rows.append(Row(card, result, group))
        if key is not None and group is not None:
            done[key] = (result, group)
    return rows


def _request_for(card: ModelCard, request: PlanRequest, weights: GgufWeights | None) -> PlanRequest:
    """The request for one card: its context capped at the model's maximum, and its GGUF file's weights."""
    context = min(request.context, card.context_length) if request.context else None
    asked = request if context == request.context else replace(request, context=context)
    return asked if weights is None or asked.gguf is not None else replace(asked, gguf=weights)


def _signature(
    card: ModelCard, arch_keys: dict[int, tuple[object, ...]], weights: GgufWeights | None = None
) -> Signature | None:
    """The card's planning signature (with its GGUF file's weights, which the llama.cpp plan reads), None when a
    field cannot be hashed (that card is planned on its own)."""
    key = planning_signature(card, arch_keys)
    if weights is not None:
        key = (*key, weights)
    try:
        hash(key)
    except TypeError:
        return None
    return key


def sort_rows(rows: list[Row], key: str) -> list[Row]:
    """Order rows by fit (best first, then fastest), size, speed (fastest first) or name."""
    if key == "name":
        return sorted(rows, key=lambda r: r.card.id.lower())
    if key == "size":
        return sorted(rows, key=lambda r: r.card.params)
    if key == "speed":
        return sorted(rows, key=lambda r: -(r.tokens_per_s or -1.0))
    by_group: dict[int, tuple[int, float]] = {}

    def fit_key(row: Row) -> tuple[int, float]:
        found = by_group.get(row.plan_group) if row.plan_group is not None else None
        if found is None:
            found = (FIT_ORDER.index(verdict(row.planned)), -(row.tokens_per_s or 0.0))
            if row.plan_group is not None:
                by_group[row.plan_group] = found
        return found

    return sorted(rows, key=fit_key)


def matches(card: ModelCard, text: str) -> bool:
    """Whether a search text appears in the id, an alias, the family or the task."""
    needle = text.lower()
    return any(needle in field.lower() for field in (card.id, card.family, card.task, *card.aliases))


def host_line(host: HostSnapshot) -> str:
    """The machine in one line: GPUs free/total, RAM, disk."""
    parts = [f"{host.label}:"]
    for gpu in host.gpus:
        where = "GPU (mps, unified memory)" if gpu.unified_memory else f"GPU {gpu.index}"
        parts.append(
            f"{where} {gpu.name} {display.gib(gpu.usable_bytes)}/{display.gib(gpu.total_bytes)} free"
        )
    if not host.gpus:
        parts.append("no GPU")
    parts.append(f"RAM {display.gib(host.ram_available_bytes)}/{display.gib(host.ram_total_bytes)} free")
    if host.disk_free_bytes is not None:
        parts.append(f"disk {display.gib(host.disk_free_bytes)} free")
    return "  ".join(parts)


def measured_rate(row: Row, measured: Mapping[tuple[str, str], Measurement]) -> float | None:
    """Decode tokens/s measured here for the row's model in its planned precision (None when never launched)."""
    plan = row.planned if isinstance(row.planned, Plan) else None
    found = measured.get((row.card.id, plan.precision.label)) if plan and measured else None
    return found.tokens_per_s if found else None
