"""What the commands print about an entry read from the Hub on demand: progress on stderr, the provenance
sentence, the repository's GGUF files, and the same as JSON; click only."""

from __future__ import annotations

from typing import Any

import click

from launcher import display
from launcher.run.source import ModelSource

trust_remote_code_option = click.option(
    "--trust-remote-code",
    is_flag=True,
    help="Allow a Hub repository whose model class is its own Python code (read it first).",
)


def say_progress(message: str) -> None:
    """One progress line on stderr (stdout stays clean for --json and pipes)."""
    click.echo(message, err=True)


def echo_provenance(source: ModelSource) -> None:
    """The provenance paragraph and GGUF file list of an entry read from the Hub (nothing for the catalog)."""
    if source.hub is None or source.provenance is None:
        return
    click.echo("")
    click.echo(source.provenance)
    for line in hub_lines(source):
        click.echo(line)


def hub_lines(source: ModelSource) -> list[str]:
    """Facts from the Hub that the card itself does not hold: gating, pipeline tag and GGUF files."""
    entry = source.hub
    if entry is None:
        return []
    lines = [entry.planned_as] if entry.planned_as else []
    if entry.card.gated:
        lines.append(f"Gated: accept the terms at https://huggingface.co/{entry.card.id} before downloading.")
    if entry.pipeline_tag:
        lines.append(f"Hub pipeline tag: {entry.pipeline_tag}.")
    if entry.gguf_files:
        lines.append("GGUF files in the repository:")
        lines.extend(
            f"  {f.name}  {display.gib(f.size) if f.size is not None else 'size unknown'}"
            for f in entry.gguf_files
        )
    return lines


def hub_json(source: ModelSource) -> dict[str, Any]:
    """`{"hub": {...}}` for an entry read from the Hub, `{}` for a catalog entry."""
    entry = source.hub
    if entry is None:
        return {}
    return {
        "hub": {
            "repo_id": entry.card.id,
            "revision": entry.card.revision,
            "requested_revision": entry.requested_revision,
            "verified": False,
            "note": entry.note,
            "planned_as": entry.planned_as,
            "gated": entry.card.gated,
            "pipeline_tag": entry.pipeline_tag,
            "gguf_files": [{"name": f.name, "size_bytes": f.size} for f in entry.gguf_files],
        }
    }
