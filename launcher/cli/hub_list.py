"""`berth list --hub QUERY`: Hub repositories matching QUERY (text generation, most downloaded first, one
bounded page), each read without weights and planned for this machine as it arrives; click only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import click

from launcher import display
from launcher.cli.context import echo_json
from launcher.cli.hub_out import say_progress
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import PlanRequestError
from launcher.plan.ladder import make_plan
from launcher.plan.report import verdict
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import Row
from registry.catalog import Catalog
from registry.errors import BerthError
from registry.hub_fetch import HubHit, hub_entry, search_hub

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
        row, problem = _plan_hit(hit, catalog, host, request)
        in_catalog = row is not None and _in_catalog(catalog, hit.repo_id)
        if fits_only and (row is None or not row.fits):
            continue
        results.append(_as_dict(hit, row, problem) | {"verified": in_catalog})
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


def _plan_hit(
    hit: HubHit, catalog: Catalog, host: HostSnapshot, request: PlanRequest
) -> tuple[Row | None, str | None]:
    """The row for one repository (the catalog's verified entry where it has one), or why there is none."""
    try:
        try:
            card = catalog.get(hit.repo_id)
        except BerthError:
            card = hub_entry(hit.repo_id).card
        context = min(request.context, card.context_length) if request.context else None
        return Row(card, make_plan(card, host, replace(request, context=context), catalog.accelerators)), None
    except PlanRequestError as error:
        return None, error.message
    except BerthError as error:
        return None, _short_reason(error)


def _in_catalog(catalog: Catalog, repo_id: str) -> bool:
    """Whether the catalog (or the user's overlay) has the repository: its entry is the one listed."""
    try:
        catalog.get(repo_id)
    except BerthError:
        return False
    return True


def _short_reason(error: BerthError) -> str:
    name = type(error).__name__
    reasons = {
        "GatedRepoError": "gated: log in",
        "RemoteCodeRequiredError": "needs remote code",
        "UnsupportedArchitectureError": "architecture unknown",
        "HubUnreachableError": "Hub did not answer",
    }
    return reasons.get(name) or "cannot plan: " + error.message[:60]


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
