"""Command palette providers: type a model's name to open its plan from anywhere."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import Hit, Hits, Provider

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi


class ModelCommands(Provider):
    """'Plan: <model id>' for every catalog model whose id or alias matches what was typed."""

    async def search(self, query: str) -> Hits:
        """Models matching the query, best first."""
        app = cast("BerthAppApi", self.app)
        matcher = self.matcher(query)
        for card in app.catalog.models:
            names = [card.id, *card.aliases]
            score = max(matcher.match(f"Plan: {name}") for name in names)
            if score > 0:
                title = f"Plan: {card.id}"
                yield Hit(
                    score,
                    matcher.highlight(title),
                    partial(app.open_plan, card),
                    text=title,
                    help=f"{card.family} · {card.task} · {card.license}",
                )
