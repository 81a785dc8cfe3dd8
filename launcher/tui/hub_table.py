"""What the Hub source of Browse shows, as plain values: its columns, each hit's cell texts, the paging of a
search and the status line (no textual). The hits are planned by launcher.plan.hub_rows, as `berth list --hub`."""

from __future__ import annotations

from dataclasses import dataclass

from launcher import display
from launcher.plan.hub_rows import HubRow
from launcher.plan.request import Plan
from launcher.tui.rows import Column, badge
from registry.hub_fetch import MAX_SEARCH_RESULTS

#: Repositories one page of a Hub search lists (`m` asks for the next page).
HUB_PAGE = 20

#: What the note column says for an entry derived from the Hub, and for the catalog's verified one.
FROM_HUB = "Hub, unverified"
IN_CATALOG = "catalog ✓"
#: The one line every Hub table carries.
PROVENANCE = "Hub entries are derived from each repository's files, not verified by hand"

HUB_COLUMNS: tuple[Column, ...] = (
    Column("fit", "fit"),
    Column("model", "model"),
    Column("downloads", "downloads", right=True),
    Column("params", "params", right=True),
    Column("memory", "needs", right=True),
    Column("precision", "dtype"),
    Column("speed", "tok/s", right=True),
    Column("note", "source / problem"),
)
#: Below this many columns of terminal the downloads, dtype and speed columns go, model ids lose their owner
#: and long texts are cut, so that 80 columns hold the rest (the fit, the size and where the entry came from).
HUB_NARROW_BELOW = 110
HUB_COLUMNS_NARROW: tuple[Column, ...] = tuple(
    c for c in HUB_COLUMNS if c.key not in ("downloads", "precision", "speed")
)
#: Longest model and note texts in the table (wide, narrow); longer ones end in "…" (the note in full is
#: shown under the table when the row is highlighted).
MODEL_CHARS = (44, 22)
NOTE_CHARS = (40, 17)
#: Badge of a repository that could not be planned (text, Rich colour).
UNREAD_BADGE = ("unread", "grey50")


def hub_columns_for(width: int) -> tuple[Column, ...]:
    """The Hub table's columns for a terminal `width` cells wide."""
    return HUB_COLUMNS_NARROW if width < HUB_NARROW_BELOW else HUB_COLUMNS


def count_text(count: int) -> str:
    """Downloads as people read them: 950, 9.5k, 812k, 4.1M, 12M."""
    for scale, unit in ((1_000_000, "M"), (1000, "k")):
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(count)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hub_badge(hub_row: HubRow) -> tuple[str, str]:
    """The fit badge (text, colour) of a hit; grey 'unread' where it could not be planned."""
    return badge(hub_row.row.result) if hub_row.row is not None else UNREAD_BADGE


def hub_cells(hub_row: HubRow, narrow: bool = False) -> dict[str, str]:
    """Plain texts of a hit's cells by column key."""
    model = hub_row.hit.repo_id.split("/", 1)[-1] if narrow else hub_row.hit.repo_id
    texts = {
        "fit": hub_badge(hub_row)[0],
        "model": _cut(model, MODEL_CHARS[narrow]),
        "downloads": count_text(hub_row.hit.downloads),
        "params": "-",
        "memory": "-",
        "precision": "-",
        "speed": "-",
        "note": _cut(hub_row.problem or (IN_CATALOG if hub_row.verified else FROM_HUB), NOTE_CHARS[narrow]),
    }
    row = hub_row.row
    if row is None:
        return texts
    plan = row.result if isinstance(row.result, Plan) else None
    speed = row.tokens_per_s if row.card.task != "fill-mask" else None
    texts |= {
        "params": display.params(row.card.params),
        "memory": display.gib(row.needed_bytes),
        "precision": plan.precision.label if plan else "-",
        "speed": "-" if speed is None else f"~{display.rate(speed)}",
    }
    return texts


@dataclass(frozen=True)
class HubPage:
    """Which hits of a search to plan next: the search asks for the first `wanted` matches (the Hub lists
    most downloaded first and pages by cursor, so a further page is a longer list) and skips those shown."""

    query: str
    wanted: int
    already: int = 0

    @property
    def can_grow(self) -> bool:
        """Whether a further page may be asked for (the Hub search lists at most MAX_SEARCH_RESULTS)."""
        return self.wanted < MAX_SEARCH_RESULTS

    def following(self) -> HubPage:
        """The next page, after every hit of this one."""
        return HubPage(self.query, min(self.wanted + HUB_PAGE, MAX_SEARCH_RESULTS), self.wanted)


def first_page(query: str) -> HubPage:
    """The first page of a search."""
    return HubPage(query.strip(), min(HUB_PAGE, MAX_SEARCH_RESULTS))


def status_text(rows: list[HubRow], shown: int, query: str, more: bool) -> str:
    """'3/5 fit · 5 shown · 'qwen' · m: 20 more · …' after a search has finished."""
    fitting = sum(1 for r in rows if r.fits)
    unread = sum(1 for r in rows if r.row is None)
    parts = [f"Hub '{query}'" if query else "Hub (most downloaded)", f"{fitting}/{len(rows)} fit"]
    if shown != len(rows):
        parts.append(f"{shown} shown")
    if unread:
        parts.append(f"{unread} unread (enter: why)")
    parts.append(f"m: {HUB_PAGE} more" if more else "no more matches")
    parts.append("/: search · u: catalog")
    return " · ".join(parts)
