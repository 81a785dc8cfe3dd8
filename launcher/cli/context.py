"""What every command needs from the group: the catalog, loaded once per invocation."""

from __future__ import annotations

from typing import Any

import click

from launcher.cli.json_text import dumps as json_dumps
from registry.catalog import Catalog, load_catalog


def get_catalog(ctx: click.Context) -> Catalog:
    """The catalog for this invocation (shipped or --catalog, plus the overlay unless --no-overlay)."""
    root = ctx.find_root()
    root.ensure_object(dict)
    obj = root.obj
    if "catalog" not in obj:
        obj["catalog"] = load_catalog(obj.get("catalog_path"), overlay=obj.get("overlay", True))
    catalog: Catalog = obj["catalog"]
    return catalog


def echo_json(value: Any) -> None:
    """Print a JSON document on stdout (json.dumps(value, indent=2)'s text, see launcher.cli.json_text)."""
    click.echo(json_dumps(value))
