"""`berth list`: every catalog model with a fit verdict for this machine (or named hardware) and its speed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import click

from launcher import display
from launcher.cli.context import echo_json, get_catalog
from launcher.cli.plan_cmd import build_request, plan_options, resolve_host_for
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.ladder import make_plan
from launcher.plan.report import verdict
from launcher.plan.request import Plan, PlanRequest
from launcher.run.store import latest_measurements, machine_key
from registry.catalog import Catalog
from registry.schema import ModelCard

SORT_KEYS = ("fit", "size", "speed", "name")

#: Verdicts from best to worst, for --sort fit.
FIT_ORDER = ("fits on GPU", "sharded", "quantized", "offloaded", "CPU", "disk offload", "does not fit")


@dataclass(frozen=True)
class Row:
    """One model's verdict on one host."""

    card: ModelCard
    result: Plan | DoesNotFitError

    @property
    def fits(self) -> bool:
        return isinstance(self.result, Plan)

    @property
    def needed_bytes(self) -> int:
        return self.result.required_bytes

    @property
    def tokens_per_s(self) -> float | None:
        return self.result.speed.decode_tokens_per_s if isinstance(self.result, Plan) else None

    def as_dict(self) -> dict[str, Any]:
        plan = self.result if isinstance(self.result, Plan) else None
        return {
            "id": self.card.id,
            "aliases": list(self.card.aliases),
            "family": self.card.family,
            "task": self.card.task,
            "license": self.card.license,
            "gated": self.card.gated,
            "params": self.card.params,
            "fits": self.fits,
            "verdict": verdict(self.result),
            "strategy": plan.strategy if plan else None,
            "dtype": plan.precision.dtype if plan else None,
            "quantization": plan.precision.quant if plan else None,
            "context": plan.context if plan else None,
            "needed_bytes": self.needed_bytes,
            "available_bytes": None if plan else self.result.available_bytes,  # type: ignore[union-attr]
            "decode_tokens_per_s": round(plan.speed.decode_tokens_per_s, 3) if plan else None,
            "speed_basis": plan.speed.basis if plan else None,
        }


def plan_all(
    catalog: Catalog,
    host: HostSnapshot,
    request: PlanRequest,
    planner: Callable[..., Plan | DoesNotFitError] = make_plan,
) -> list[Row]:
    """A verdict for every catalog model (contexts above a model's maximum are capped to it).

    `planner` has make_plan's signature (the TUI passes the one it was built with)."""
    rows = []
    for card in catalog.models:
        context = min(request.context, card.context_length) if request.context else None
        try:
            result = planner(card, host, replace(request, context=context), explain=False)
        except PlanRequestError:
            continue
        rows.append(Row(card, result))
    return rows


def sort_rows(rows: list[Row], key: str) -> list[Row]:
    """Order rows by fit (best first, then fastest), size, speed (fastest first) or name."""
    if key == "name":
        return sorted(rows, key=lambda r: r.card.id.lower())
    if key == "size":
        return sorted(rows, key=lambda r: r.card.params)
    if key == "speed":
        return sorted(rows, key=lambda r: -(r.tokens_per_s or -1.0))
    return sorted(rows, key=lambda r: (FIT_ORDER.index(verdict(r.result)), -(r.tokens_per_s or 0.0)))


def matches(card: ModelCard, text: str) -> bool:
    """Whether a search text appears in the id, an alias, the family or the task."""
    needle = text.lower()
    return any(needle in field.lower() for field in (card.id, card.family, card.task, *card.aliases))


def host_line(host: HostSnapshot) -> str:
    """The machine in one line: GPUs free/total, RAM, disk."""
    parts = [f"{host.label}:"]
    for gpu in host.gpus:
        parts.append(
            f"GPU {gpu.index} {gpu.name} {display.gib(gpu.usable_bytes)}/{display.gib(gpu.total_bytes)} free"
        )
    if not host.gpus:
        parts.append("no GPU")
    parts.append(f"RAM {display.gib(host.ram_available_bytes)}/{display.gib(host.ram_total_bytes)} free")
    if host.disk_free_bytes is not None:
        parts.append(f"disk {display.gib(host.disk_free_bytes)} free")
    return "  ".join(parts)


@click.command("list")
@plan_options
@click.option("--fits", "fits_only", is_flag=True, help="Only models that fit.")
@click.option(
    "--search", default=None, metavar="TEXT", help="Only models whose id, alias, family or task has TEXT."
)
@click.option("--sort", "sort_key", type=click.Choice(SORT_KEYS), default="fit", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_command(
    ctx: click.Context,
    context: int | None = None,
    batch: int = 1,
    dtype: str | None = None,
    quant: str | None = None,
    gpus: str | None = None,
    cpu_only: bool = False,
    no_offload: bool = False,
    allow_slow: bool = False,
    hardware: str | None = None,
    fits_only: bool = False,
    search: str | None = None,
    sort_key: str = "fit",
    as_json: bool = False,
) -> None:
    """Every catalog model: does it fit here, how (GPU, sharded, quantized, offloaded, CPU), and how fast."""
    catalog = get_catalog(ctx)
    request = build_request(context, batch, dtype, quant, gpus, cpu_only, no_offload, allow_slow)
    host = resolve_host_for(ctx, hardware)
    if search:
        catalog = Catalog(tuple(c for c in catalog.models if matches(c, search)), catalog.accelerators)
    rows = sort_rows(plan_all(catalog, host, request), sort_key)
    if fits_only:
        rows = [r for r in rows if r.fits]
    measured = latest_measurements(machine_key(host)) if host.source == "probe" else {}

    def measured_rate(row: Row) -> float | None:
        plan = row.result if isinstance(row.result, Plan) else None
        found = measured.get((row.card.id, plan.precision.label)) if plan else None
        return found.tokens_per_s if found else None

    if as_json:
        echo_json(
            {
                "host": host.label,
                "host_warnings": list(host.warnings),
                "models": [r.as_dict() | {"measured_tokens_per_s": measured_rate(r)} for r in rows],
            }
        )
        return
    click.echo(host_line(host))
    for warning in host.warnings:
        click.echo(f"  ! {warning}")
    click.echo()
    table_rows = []
    for r in rows:
        plan = r.result if isinstance(r.result, Plan) else None
        table_rows.append(
            [
                r.card.id,
                r.card.task,
                display.params(r.card.params),
                verdict(r.result),
                plan.precision.label if plan else "-",
                display.gib(r.needed_bytes),
                f"{display.rate(measured_rate(r))}*"
                if measured_rate(r) is not None
                else display.rate(r.tokens_per_s),
            ]
        )
    click.echo(
        display.table(
            ["model", "task", "params", "fit", "precision", "needs", "tok/s"],
            table_rows,
            right=(2, 5, 6),
        )
    )
    fitting = sum(1 for r in rows if r.fits)
    note = " (* measured here by berth launch)" if any(measured_rate(r) is not None for r in rows) else ""
    click.echo(
        f"\n{fitting} of {len(rows)} models fit. Details: berth plan MODEL. Speeds are estimates (±30%){note}."
    )
