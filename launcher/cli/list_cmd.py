"""`berth list`: every catalog model with a fit verdict for this machine (or named hardware) and its speed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from launcher import display
from launcher.cli.context import echo_json, get_catalog
from launcher.cli.json_text import EncodedObject, members_text, object_text
from launcher.cli.options import PlanOptions, plan_options, resolve_host_for
from launcher.machine.host import HostSnapshot
from launcher.plan.gguf import GgufWeights
from launcher.plan.measured import Measurement, machine_key
from launcher.plan.report import verdict
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import (
    SORT_KEYS,
    Row,
    gguf_only,
    host_line,
    matches,
    measured_rate,
    plan_all,
    precision_text,
    sort_rows,
)
from launcher.plan.speed import CORPUS_MEDIAN_ERROR_PCT
from launcher.plan.unified import wired_limit_note
from launcher.run.figures_cache import kept_figures
from registry.catalog import Catalog
from registry.gc_pause import collector_paused


@click.command("list")
@plan_options
@click.option("--fits", "fits_only", is_flag=True, help="Only models that fit.")
@click.option(
    "--search", default=None, metavar="TEXT", help="Only models whose id, alias, family or task has TEXT."
)
@click.option("--sort", "sort_key", type=click.Choice(SORT_KEYS), default="fit", show_default=True)
@click.option(
    "--hub",
    "hub_query",
    default=None,
    metavar="QUERY",
    help="Instead of the catalog: Hub repositories matching QUERY (text generation, most downloaded first).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 200),
    default=20,
    show_default=True,
    help="How many Hub repositories (--hub).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_command(
    ctx: click.Context,
    options: PlanOptions,
    fits_only: bool = False,
    search: str | None = None,
    sort_key: str = "fit",
    hub_query: str | None = None,
    limit: int = 20,
    as_json: bool = False,
) -> None:
    """Every catalog model: does it fit here, how (GPU, sharded, quantized, offloaded, CPU), and how fast.
    With --hub QUERY, Hub repositories instead, each read without weights and planned as it arrives."""
    catalog = get_catalog(ctx)
    request = options.request()
    host = resolve_host_for(ctx, options.hardware)
    if hub_query is not None:
        from launcher.cli.hub_list import list_hub

        list_hub(hub_query, limit, catalog, host, request, as_json, fits_only)
        return
    if search:
        catalog = Catalog(tuple(c for c in catalog.models if matches(c, search)), catalog.accelerators)
    with collector_paused():  # a row and a plan per model, all kept until printed
        _list_catalog(catalog, host, request, fits_only, sort_key, as_json)


def _list_catalog(
    catalog: Catalog, host: HostSnapshot, request: PlanRequest, fits_only: bool, sort_key: str, as_json: bool
) -> None:
    with kept_figures():
        planned = plan_all(catalog, host, request, gguf=_gguf_files(catalog))
    rows = sort_rows(planned, sort_key)
    if fits_only:
        rows = [r for r in rows if r.fits]
    measured = _measured_here(host)

    def rate(row: Row) -> float | None:
        return measured_rate(row, measured)

    if as_json:
        _echo_rows_json(rows, host, rate)
        return
    click.echo(host_line(host))
    for warning in host.warnings:
        click.echo(f"  ! {warning}")
    click.echo()
    click.echo(_table(rows, rate))
    fitting = sum(1 for r in rows if r.fits)
    note = " (* measured here by berth launch)" if any(rate(r) is not None for r in rows) else ""
    click.echo(
        f"\n{fitting} of {len(rows)} models fit. Details: berth plan MODEL. Speeds are estimates "
        f"(typically ±{CORPUS_MEDIAN_ERROR_PCT}%){note}."
    )
    _unified_notes(rows, host)


#: Depth of a row in the --json document ({"models": [row, ...]}).
ROW_LEVEL = 2


def _echo_rows_json(rows: list[Row], host: HostSnapshot, rate: Callable[[Row], float | None]) -> None:
    """The rows as JSON: each row's card fields, plan fields and what was measured here. Rows of one plan_group
    share their plan fields, computed and encoded once (thousands of catalog entries share a few plans)."""
    gguf = {row.card.id: f"{fit.quant} via llama.cpp Metal" for row, fit in gguf_only(rows, host)}
    plans: dict[int, tuple[dict[str, Any], str]] = {}
    nothing_measured: dict[str, Any] = {"measured_tokens_per_s": None, "gguf_only": None}
    nothing_text = members_text(nothing_measured, ROW_LEVEL)

    def plan_part(row: Row) -> tuple[dict[str, Any], str]:
        found = plans.get(row.plan_group) if row.plan_group is not None else None
        if found is None:
            fields = row.plan_fields()
            found = (fields, members_text(fields, ROW_LEVEL))
            if row.plan_group is not None:
                plans[row.plan_group] = found
        return found

    models = []
    for row in rows:
        card = row.card_fields()
        plan, plan_text = plan_part(row)
        measured, only = rate(row), gguf.get(row.card.id)
        extra = nothing_measured
        extra_text = nothing_text
        if measured is not None or only is not None:
            extra = {"measured_tokens_per_s": measured, "gguf_only": only}
            extra_text = members_text(extra, ROW_LEVEL)
        text = object_text([members_text(card, ROW_LEVEL), plan_text, extra_text], ROW_LEVEL)
        models.append(EncodedObject(text, ROW_LEVEL, (card, plan, extra)))
    echo_json({"host": host.label, "host_warnings": list(host.warnings), "models": models})


def _gguf_files(catalog: Catalog) -> dict[str, GgufWeights]:
    """The tensor tables of the local GGUF files entries run from (`berth catalog add FILE.gguf`), so their rows
    show the llama.cpp plan that `berth plan` and a launch use; the runtime module is imported only for them."""
    if not any(card.weight_format == "gguf" for card in catalog.models):
        return {}
    from launcher.run.runtime import gguf_entries

    return gguf_entries(catalog.models)


def _measured_here(host: HostSnapshot) -> dict[tuple[str, str], Measurement]:
    """Speeds `berth launch` measured on this machine (none for named hardware: its store is not read)."""
    if host.source != "probe":
        return {}
    from launcher.run.store import latest_measurements

    return latest_measurements(machine_key(host))


def _unified_notes(rows: list[Row], host: HostSnapshot) -> None:
    """On a Mac: the GPU's share of memory, and the models that run only as GGUF quants with llama.cpp Metal."""
    limit = wired_limit_note(host)
    if limit is None:
        return
    click.echo(f"Runtime: torch on mps (fp16/bf16, no bitsandbytes); {limit}.")
    only = gguf_only(rows, host)
    if only:
        click.echo("Not on the GPU as they are; as a GGUF quant through llama.cpp with Metal:")
        for row, fit in only:
            speed = f", about {display.rate(fit.tokens_per_s)} tok/s" if fit.tokens_per_s else ""
            click.echo(f"  {row.card.id}: {fit.quant} ≈ {display.gib(fit.weight_bytes)}{speed}")


def _table(rows: list[Row], rate: Callable[[Row], float | None]) -> str:
    """The list as a text table; a speed measured here (`rate`) wins over the estimate and is starred."""
    table_rows = []
    for r in rows:
        plan = r.planned if isinstance(r.planned, Plan) else None
        measured = rate(r)
        table_rows.append(
            [
                r.card.id,
                r.card.task,
                display.params(r.card.params),
                verdict(r.planned),
                precision_text(plan) if plan else "-",
                display.gib(r.needed_bytes),
                f"{display.rate(measured)}*" if measured is not None else display.rate(r.tokens_per_s),
            ]
        )
    return display.table(
        ["model", "task", "params", "fit", "precision", "needs", "tok/s"], table_rows, right=(2, 5, 6)
    )
