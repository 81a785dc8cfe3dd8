"""One device of a plan as a bar: weights, KV cache, overhead and what stays free, to scale."""

from __future__ import annotations

from rich.text import Text
from textual.geometry import Size
from textual.widget import Widget

from launcher import display
from launcher.plan.placement import Placement

#: Segment colours (Rich names), in bar order.
SEGMENTS = (
    ("weights", "dodger_blue1"),
    ("KV cache", "medium_purple1"),
    ("overhead", "grey62"),
)
FREE_STYLE = "grey30"
OVER_STYLE = "bold red"


def bar_cells(placement: Placement, width: int) -> list[tuple[int, str]]:
    """How many cells each part takes in a bar `width` cells wide: weights, KV, overhead, free (in order).

    The bar's full width is the device's free memory before loading (its budget); a plan that uses more
    than that (disk is never over) fills the bar. Every non-zero part gets at least one cell.
    """
    parts = [placement.weights_bytes, placement.kv_cache_bytes, placement.overhead_bytes]
    budget = max(placement.budget_bytes, 1)
    scale = max(budget, sum(parts))
    cells = [round(width * part / scale) if part else 0 for part in parts]
    cells = [max(c, 1) if part else 0 for c, part in zip(cells, parts, strict=True)]
    while sum(cells) > width:
        biggest = cells.index(max(cells))
        cells[biggest] -= 1
    free = width - sum(cells)
    styles = [style for _, style in SEGMENTS]
    return [(c, s) for c, s in zip(cells, styles, strict=True)] + [(free, FREE_STYLE)]


class DeviceBar(Widget):
    """A placement as two lines: '<device>  weights 3.1 GiB · KV 0.5 GiB · …' and a bar to scale."""

    def __init__(self, placement: Placement, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.placement = placement

    def render(self) -> Text:
        """Label, figures and the bar, sized to the widget."""
        label, figures, bar = self._parts(max(self.content_size.width, 10))
        return Text("\n").join([label, figures, bar])

    def get_content_height(self, _container: Size, _viewport: Size, width: int) -> int:
        """The label, the figures as wrapped at `width`, and the bar."""
        _, figures, _ = self._parts(max(width, 10))
        return 2 + len(figures.wrap(self.app.console, max(width, 10)))

    def _parts(self, width: int) -> tuple[Text, Text, Text]:
        p = self.placement
        label = Text(p.label, style="bold")
        figures = Text()
        for (name, style), value in zip(
            SEGMENTS, (p.weights_bytes, p.kv_cache_bytes, p.overhead_bytes), strict=True
        ):
            figures.append("■ ", style=style)
            figures.append(f"{name} {display.gib(value)}  ")
        free_after = p.free_after_bytes
        if p.device == "disk":
            figures.append(f"□ free after {display.gib(free_after)}", style="dim")
        elif free_after >= 0:
            figures.append("□ ", style=FREE_STYLE)
            figures.append(f"free after {display.gib(free_after)} of {display.gib(p.budget_bytes)}")
        else:
            figures.append(f"over by {display.gib(-free_after)}", style=OVER_STYLE)
        bar = Text()
        for count, style in bar_cells(p, width):
            if count:
                char = "█" if style != FREE_STYLE else "░"
                bar.append(char * count, style=style)
        return label, figures, bar
