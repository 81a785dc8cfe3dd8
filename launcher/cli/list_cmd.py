"""`berth list`: every catalog model with its size and memory needs (a fit verdict once the planner lands)."""

from __future__ import annotations

from typing import Any

import click

from launcher import display
from launcher.cli.catalog_cmds import default_context
from launcher.cli.context import echo_json, get_catalog
from registry.memory import Precision, estimate_memory, kv_cache_bytes
from registry.params import layout

SORT_KEYS = ("name", "size")


@click.command("list")
@click.option(
    "--context", type=click.IntRange(min=1), default=None, help="Context length (default 4096 or less)."
)
@click.option("--search", default=None, help="Only models whose id, alias or family contains TEXT.")
@click.option("--sort", "sort_key", type=click.Choice(SORT_KEYS), default="size", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_command(
    ctx: click.Context, context: int | None, search: str | None, sort_key: str, as_json: bool
) -> None:
    """Every catalog model with its size and memory needs."""
    catalog = get_catalog(ctx)
    cards = list(catalog.models)
    if search:
        needle = search.lower()
        cards = [
            c
            for c in cards
            if needle in c.id.lower() or needle in c.family.lower() or any(needle in a for a in c.aliases)
        ]
    if sort_key == "name":
        cards.sort(key=lambda c: c.id.lower())
    else:
        cards.sort(key=lambda c: c.params)
    rows: list[dict[str, Any]] = []
    for card in cards:
        ctx_len = min(context, card.context_length) if context else default_context(card)
        lay = layout(card)
        bf16 = estimate_memory(card, Precision("bfloat16"), ctx_len, lay=lay)
        nf4 = estimate_memory(card, Precision("bfloat16", "nf4"), ctx_len, lay=lay)
        rows.append(
            {
                "id": card.id,
                "family": card.family,
                "task": card.task,
                "params": card.params,
                "context": ctx_len,
                "bf16_total_bytes": bf16.total,
                "nf4_total_bytes": nf4.total,
                "kv_cache_per_1000_tokens_bytes": kv_cache_bytes(card, 1000),
            }
        )
    if as_json:
        echo_json({"models": rows})
        return
    click.echo(
        display.table(
            ["model", "task", "params", "context", "bf16 needs", "nf4 needs", "KV/1k tok"],
            [
                [
                    r["id"],
                    r["task"],
                    display.params(r["params"]),
                    f"{r['context']:,}",
                    display.gib(r["bf16_total_bytes"]),
                    display.gib(r["nf4_total_bytes"]),
                    display.gib(r["kv_cache_per_1000_tokens_bytes"]),
                ]
                for r in rows
            ],
            right=(2, 3, 4, 5, 6),
        )
    )
