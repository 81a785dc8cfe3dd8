"""What the Browse table shows, as plain values: filters, columns, sort orders and cell texts (no textual).

The verdicts themselves come from `launcher.plan.rows.plan_all`, the same rows `berth list` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from launcher import display
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.report import verdict
from launcher.plan.request import Plan, PlanRequest
from launcher.plan.rows import FIT_ORDER, Row, matches, precision_text, sort_rows
from registry.schema import ModelCard

#: Badge text and colour name for each verdict (colour names are Rich's).
BADGES: dict[str, tuple[str, str]] = {
    "fits on GPU": ("GPU", "green"),
    "sharded": ("sharded", "cyan"),
    "quantized": ("quantized", "chartreuse3"),
    "offloaded": ("offload", "yellow"),
    "CPU": ("CPU", "dodger_blue1"),
    "disk offload": ("disk", "dark_orange"),
    "does not fit": ("no fit", "red"),
}


def badge(result: Plan | DoesNotFitError) -> tuple[str, str]:
    """Short text and colour for a verdict: ('GPU', 'green') … ('no fit', 'red')."""
    return BADGES[verdict(result)]


@dataclass(frozen=True)
class Column:
    """A Browse table column: its key, header, and whether it is right-aligned."""

    key: str
    label: str
    right: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("fit", "fit"),
    Column("model", "model"),
    Column("task", "task"),
    Column("params", "params", right=True),
    Column("memory", "needs / free", right=True),
    Column("precision", "dtype"),
    Column("speed", "tok/s", right=True),
)
#: Below this many columns of terminal the table drops the task column, the organisation part of model
#: ids and the free figure (the header shows what is free), so that it fits 80 columns.
NARROW_BELOW = 110
COLUMNS_NARROW: tuple[Column, ...] = (
    Column("fit", "fit"),
    Column("model", "model"),
    Column("params", "params", right=True),
    Column("memory", "needs", right=True),
    Column("precision", "dtype"),
    Column("speed", "tok/s", right=True),
)


def columns_for(width: int) -> tuple[Column, ...]:
    """The columns that fit a terminal `width` cells wide."""
    return COLUMNS_NARROW if width < NARROW_BELOW else COLUMNS


@dataclass(frozen=True)
class BrowseFilter:
    """What narrows the table: search text, fits only, and exact task / family / licence (None: any)."""

    search: str = ""
    fits_only: bool = False
    task: str | None = None
    family: str | None = None
    license: str | None = None

    def keep(self, row: Row) -> bool:
        """Whether a row passes every filter."""
        card = row.card
        if self.fits_only and not row.fits:
            return False
        if self.task and card.task != self.task:
            return False
        if self.family and card.family != self.family:
            return False
        if self.license and card.license != self.license:
            return False
        return not self.search.strip() or matches(card, self.search.strip())

    @property
    def active(self) -> bool:
        """Whether anything is filtered out."""
        return bool(self.search.strip() or self.fits_only or self.task or self.family or self.license)


SpeedLookup = Callable[[str], float | None]
"""Measured decode tokens/s for a model id on the current host, if any."""


def free_bytes(result: Plan | DoesNotFitError) -> int:
    """Memory free on the devices a plan uses before loading (disk excluded); usable memory if it does not fit."""
    if isinstance(result, DoesNotFitError):
        return result.available_bytes
    return sum(p.budget_bytes for p in result.placements if p.device != "disk")


def speed_of(row: Row, measured: SpeedLookup) -> tuple[float | None, bool]:
    """Tokens/s to show and whether it was measured (True) or estimated (False); none for an encoder such as
    BERT, which fills in masks in one pass and never decodes token by token."""
    if row.card.task == "fill-mask":
        return None, False
    found = measured(row.card.id)
    if found is not None and row.fits:
        return found, True
    return row.tokens_per_s, False


def sort_by(rows: Sequence[Row], column: str, reverse: bool, measured: SpeedLookup) -> list[Row]:
    """Rows ordered by a column key; fit/model/params reuse `berth list`'s orders."""
    base = {"fit": "fit", "model": "name", "params": "size"}
    if column in base:
        ordered = sort_rows(list(rows), base[column])
    elif column == "speed":
        ordered = sorted(rows, key=lambda r: -(speed_of(r, measured)[0] or -1.0))
    elif column == "memory":
        ordered = sorted(rows, key=lambda r: r.needed_bytes)
    elif column == "task":
        ordered = sorted(rows, key=lambda r: (r.card.task, r.card.id.lower()))
    elif column == "precision":
        ordered = sorted(
            rows,
            key=lambda r: (
                r.result.precision.label if isinstance(r.result, Plan) else "~",
                r.card.id.lower(),
            ),
        )
    else:
        raise KeyError(column)
    return ordered[::-1] if reverse else ordered


#: Longest model name the narrow table shows; longer ones end in "…" so 80 columns still hold every column.
NARROW_NAME_CHARS = 30


def _short_name(model_id: str) -> str:
    """The repository name without its organisation, cut to NARROW_NAME_CHARS with an ellipsis."""
    name = model_id.split("/", 1)[-1]
    return name if len(name) <= NARROW_NAME_CHARS else name[: NARROW_NAME_CHARS - 1] + "…"


def cells(row: Row, measured: SpeedLookup, narrow: bool = False) -> dict[str, str]:
    """Plain texts of a row's cells by column key (the fit cell is the badge text); `narrow` drops the
    organisation from the model id, the free figure from the memory cell and "llama.cpp" from the precision
    cell of a GGUF file's plan (Q4_1 llama.cpp)."""
    plan = row.result if isinstance(row.result, Plan) else None
    speed, was_measured = speed_of(row, measured)
    speed_text = (
        "-" if speed is None else (display.rate(speed) if was_measured else f"~{display.rate(speed)}")
    )
    memory = display.gib(row.needed_bytes)
    return {
        "fit": badge(row.result)[0],
        "model": _short_name(row.card.id) if narrow else row.card.id,
        "task": row.card.task,
        "params": display.params(row.card.params),
        "memory": memory if narrow else f"{memory} / {display.gib(free_bytes(row.result))}",
        "precision": "-" if plan is None else plan.precision.label if narrow else precision_text(plan),
        "speed": speed_text,
    }


def choices(values: Iterable[str]) -> list[str]:
    """Distinct values, sorted, for a filter's drop-down."""
    return sorted(set(values))


def fit_rank(row: Row) -> int:
    """0 for 'fits on GPU' … 6 for 'does not fit'."""
    return FIT_ORDER.index(verdict(row.result))


@dataclass(frozen=True)
class HardwarePreset:
    """A named machine offered by the hardware switcher."""

    spec: str
    """Text for the hardware resolver; '' means this machine."""
    label: str


def hardware_presets(accelerator_ids: Iterable[str]) -> list[HardwarePreset]:
    """This machine, a few CPU-only boxes, one of each catalog GPU, and common multi-GPU servers."""
    ids = list(accelerator_ids)
    presets = [
        HardwarePreset("", "this machine"),
        HardwarePreset("cpu,ram=16GB", "CPU only, 16 GB RAM"),
        HardwarePreset("cpu,ram=64GB", "CPU only, 64 GB RAM"),
    ]
    presets += [HardwarePreset(acc, f"1 × {acc}") for acc in ids]
    for count, acc in ((2, "rtx-4090"), (2, "a100-80gb"), (4, "a100-80gb"), (8, "h100-sxm")):
        if acc in ids:
            presets.append(HardwarePreset(f"{count}x{acc}", f"{count} × {acc}"))
    return presets


#: Precisions the Plan panel compares: (label, dtype, quant).
ALTERNATIVES: tuple[tuple[str, str | None, str | None], ...] = (
    ("bf16", "bfloat16", "none"),
    ("fp16", "float16", "none"),
    ("fp32", "float32", "none"),
    ("int8", None, "int8"),
    ("nf4", None, "nf4"),
)


@dataclass(frozen=True)
class Alternative:
    """The plan for one forced precision, or why that precision cannot be asked for on this host."""

    label: str
    request: PlanRequest
    result: Plan | DoesNotFitError | None
    problem: str = ""
    """Set when the request itself is impossible here (int8 without an NVIDIA GPU …)."""


def alternatives(
    card: ModelCard,
    host: HostSnapshot,
    request: PlanRequest,
    planner: Callable[..., Plan | DoesNotFitError],
) -> list[Alternative]:
    """The same model forced to each precision in ALTERNATIVES (fit and speed for each)."""
    out = []
    for label, dtype, quant in ALTERNATIVES:
        forced = replace(request, dtype=dtype, quant=quant)  # type: ignore[arg-type]
        try:
            result = planner(card, host, forced, explain=False)
        except PlanRequestError as error:
            out.append(Alternative(label, forced, None, error.message))
            continue
        out.append(Alternative(label, forced, result))
    return out


def card_warnings(card: ModelCard) -> list[str]:
    """What to know before downloading, from the catalog alone (gated, remote code, pickle weights)."""
    notes = []
    if card.gated:
        notes.append(f"gated on the Hub: accept the licence ({card.license}) on its page and log in first")
    if card.remote_code:
        notes.append("needs remote code: it runs only with trust_remote_code, after you have read that code")
    if card.weight_format == "pickle":
        notes.append("weights are pickle files only (.bin): loading them can run code")
    return notes
