"""`berth list --hub QUERY`: Hub repositories matching QUERY (text generation, most downloaded first, one
bounded page), each read without weights and planned for this machine as it arrives; click only."""

from __future__ import annotations

from typing import Any

import click

from launcher import display
from launcher.cli.context import echo_json
from launcher.cli.hub_out import say_progress
from launcher.machine.host import HostSnapshot
from launcher.plan.hub_rows import plan_hit
from launcher.plan.report import verdict
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import Row
from registry.catalog import Catalog
from registry.hub_fetch import HubHit, search_hub

#: Column widths of the streamed table (rows print one by one, so widths cannot follow the content).
_COLUMNS = (("model", 44), ("params", 8), ("fit", 14), ("precision", 10), ("needs", 10), ("tok/s", 8))


def list_hub(
    query: str,
    limit: int,
    catalog: Catalog,
    host: HostSnapshot,
    request: PlanRequest,
    as_json: bool,
    fits_only: bool,
) -> None:
    """Search, then read and plan each repository in download order, printing each row as it is planned."""
    say_progress(f"Searching the Hub for '{query}' (text generation, most downloaded first, up to {limit})")
    hits = search_hub(query, limit)
    say_progress(f"{len(hits)} repositories found; reading and planning each (no weights are downloaded)")
    if not as_json:
        click.echo(f"Fit on {host.label}:")
        click.echo(_line([name for name, _ in _COLUMNS]))
    results: list[dict[str, Any]] = []
    for number, hit in enumerate(hits, 1):
        say_progress(f"[{number}/{len(hits)}] {hit.repo_id}")
        planned = plan_hit(hit, catalog, host, request)
        row, problem = planned.row, planned.problem
        if fits_only and not planned.fits:
            continue
        results.append(_as_dict(hit, row, problem) | {"verified": planned.verified})
        if not as_json:
            click.echo(_line(_cells(hit, row, problem)))
    if as_json:
        echo_json({"host": host.label, "query": query, "models": results})
        return
    fitting = sum(1 for r in results if r["fits"])
    unread = sum(1 for r in results if r["problem"])
    click.echo(
        f"\n{fitting} of {len(results)} repositories fit"
        + (f"; {unread} could not be planned (reason in the fit column)" if unread else "")
        + ". Entries read from the Hub are derived by Berth, not verified by hand. Details: berth plan OWNER/NAME."
    )
    if len(hits) >= limit:
        click.echo(
            f"These are the {limit} most downloaded matches; see more with --limit {min(limit * 2, 200)}."
        )


def _cells(hit: HubHit, row: Row | None, problem: str | None) -> list[str]:
    if row is None:
        return [hit.repo_id, "-", problem or "?", "-", "-", "-"]
    plan = row.result if isinstance(row.result, Plan) else None
    return [
        hit.repo_id,
        display.params(row.card.params),
        verdict(row.result),
        plan.precision.label if plan else "-",
        display.gib(row.needed_bytes),
        display.rate(row.tokens_per_s),
    ]


def _line(cells: list[str]) -> str:
    return "  ".join(
        cell.ljust(width) if i == 0 or i == 2 else cell.rjust(width)
        for i, (cell, (_, width)) in enumerate(zip(cells, _COLUMNS, strict=True))
    ).rstrip()


def _as_dict(hit: HubHit, row: Row | None, problem: str | None) -> dict[str, Any]:
    base = {"id": hit.repo_id, "downloads": hit.downloads, "hub_gated": hit.gated, "problem": problem}
    if row is None:
        return base | {"fits": False, "verdict": None}
    return row.as_dict() | base | {"revision": row.card.revision}
