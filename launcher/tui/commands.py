"""Command palette providers: type a model's name to open its plan from anywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import Hit, Hits, Provider

if TYPE_CHECKING:
    from launcher.tui.berth_app import BerthAppApi


def words_score(words: Iterable[str], name: str, match: Callable[[str, str], float]) -> float:
    """How well every word of a query matches `name` (0 when one does not): the mean of each word's fuzzy score.

    The words may come in any order and be separated by spaces where the name has '-', '/' or nothing:
    'falcon 180' finds 'tiiuae/falcon-180B'."""
    scores = [match(word, name) for word in words]
    if not scores or min(scores) <= 0:
        return 0.0
    return sum(scores) / len(scores)


class ModelCommands(Provider):
    """'Plan: <model id>' for every catalog model whose id or alias matches every word typed."""

    async def search(self, query: str) -> Hits:
        """Models matching the query, best first."""
        app = cast("BerthAppApi", self.app)
        words = query.split()
        matchers = {word: self.matcher(word) for word in words}
        whole = self.matcher("".join(words))

        def match(word: str, name: str) -> float:
            return matchers[word].match(name)

        for card in app.catalog.models:
            names = [card.id, *card.aliases]
            score = max(words_score(words, f"Plan: {name}", match) for name in names)
            if score > 0:
                title = f"Plan: {card.id}"
                yield Hit(
                    score,
                    whole.highlight(title),
                    partial(app.open_plan, card),
                    text=title,
                    help=f"{card.family} · {card.task} · {card.license}",
                )
