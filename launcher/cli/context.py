"""What every command needs from the group: the catalog, loaded once per invocation."""

from __future__ import annotations

import json
from typing import Any

import click

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
    """Print a JSON document on stdout."""
    click.echo(json.dumps(value, indent=2, sort_keys=False))
