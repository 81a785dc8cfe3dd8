"""One Hub search hit planned on a host, as both faces list it: its row (the catalog's verified entry where the
catalog has the repository, else the entry derived from the Hub) or the short reason it cannot be planned.

Imports registry (the Hub entry is read through registry.hub_fetch, which does the network I/O) and the plan layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.gguf_choice import choose_quant_file
from launcher.plan.ladder import make_plan
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import Row
from registry.catalog import Catalog
from registry.errors import BerthError, short_text
from registry.hub_card import HubEntry
from registry.hub_fetch import HubHit, hub_entry
from registry.schema import ModelCard

PlannerFn = Callable[..., Plan | DoesNotFitError]
EntryReader = Callable[[str], HubEntry]

#: The short reason shown in a table cell for each kind of Hub error (others: "cannot plan: " + the message).
SHORT_REASONS = {
    "GatedRepoError": "gated: log in",
    "RemoteCodeRequiredError": "needs remote code",
    "UnsupportedArchitectureError": "architecture unknown",
    "HubUnreachableError": "Hub did not answer",
}


@dataclass(frozen=True)
class HubRow:
    """One search hit: its row when it could be planned, else the short reason and the full paragraph why."""

    hit: HubHit
    row: Row | None
    problem: str | None = None
    """A few words for a table cell (None when planned)."""
    detail: str = ""
    """The whole message and what to do next, for people who ask."""
    verified: bool = False
    """The row is the catalog's verified entry (the repository is in the catalog)."""
    gguf_files: tuple[tuple[str, int], ...] = ()
    """The repository's GGUF files (name, bytes), from which a repository of GGUF files picks its quant file."""

    @property
    def fits(self) -> bool:
        return self.row is not None and self.row.fits


def short_reason(error: BerthError) -> str:
    """A few words saying why a repository could not be planned."""
    return SHORT_REASONS.get(type(error).__name__) or "cannot plan: " + error.message[:60]


def catalog_card(catalog: Catalog, repo_id: str) -> ModelCard | None:
    """The catalog's (or the user's overlay's) entry for the repository, if it has one."""
    try:
        return catalog.get(repo_id)
    except BerthError:
        return None


def plan_card(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest,
    catalog: Catalog,
    planner: PlannerFn = make_plan,
    gguf_files: Sequence[tuple[str, int]] = (),
) -> Row:
    """The row of one card, the context capped at the model's maximum (as `berth list` does); a repository of
    GGUF files (`gguf_files`, name and bytes) is planned for its best quant file with llama.cpp."""
    context = min(request.context, card.context_length) if request.context else None
    asked = replace(request, context=context)
    if gguf_files and card.weight_format == "gguf":
        picked = choose_quant_file(card, gguf_files, host, asked, catalog.accelerators, planner=planner)
        return Row(card, picked if isinstance(picked, DoesNotFitError) else picked[1])
    return Row(card, planner(card, host, asked, catalog.accelerators))


def plan_hit(
    hit: HubHit,
    catalog: Catalog,
    host: HostSnapshot,
    request: PlanRequest,
    planner: PlannerFn = make_plan,
    read_entry: EntryReader | None = None,
) -> HubRow:
    """The row for one repository (the catalog's verified entry where it has one), or why there is none.
    `read_entry` reads the derived entry (default: registry.hub_fetch.hub_entry, cached, no weights)."""
    known = catalog_card(catalog, hit.repo_id)
    try:
        files: tuple[tuple[str, int], ...] = ()
        if known is None:
            entry = (read_entry or hub_entry)(hit.repo_id)
            card, files = entry.card, tuple((f.name, f.size) for f in entry.gguf_files if f.size)
        else:
            card = known
        row = plan_card(card, host, request, catalog, planner, gguf_files=files)
        return HubRow(hit, row, verified=known is not None, gguf_files=files)
    except PlanRequestError as error:
        return HubRow(hit, None, error.message, error.message)
    except BerthError as error:
        return HubRow(hit, None, short_reason(error), paragraph(error))


def replan(
    hub_row: HubRow, catalog: Catalog, host: HostSnapshot, request: PlanRequest, planner: PlannerFn
) -> HubRow:
    """The same hit planned for another host or context from the card already read (no network); a hit that
    could not be read stays as it was."""
    if hub_row.row is None:
        return hub_row
    try:
        row = plan_card(hub_row.row.card, host, request, catalog, planner, gguf_files=hub_row.gguf_files)
        return replace(hub_row, row=row)
    except PlanRequestError as error:
        return replace(hub_row, row=None, problem=error.message, detail=error.message)


def paragraph(error: BerthError) -> str:
    """An error's message and hint as the one paragraph people read."""
    text = error.message.rstrip(".") + "."
    if error.hint:
        text += " " + error.hint.rstrip(".") + "."
    return short_text(text, 600)
