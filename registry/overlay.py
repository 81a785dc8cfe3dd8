"""Add an entry to the user's catalog overlay without touching anything the user wrote there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from registry.bounded_read import read_text_capped
from registry.catalog import load_catalog
from registry.errors import BerthError, CatalogError
from registry.safe_yaml import load_yaml_bounded
from registry.schema import ModelCard

_HEADER = (
    "# Berth catalog overlay: entries here add to or override the shipped catalog.yaml.\n"
    "# An entry whose id is already in the catalog overrides only the fields it gives.\n"
    "models:\n"
)


def entry_yaml(card: ModelCard) -> str:
    """The card as one YAML list item, indented for a top-level `models:` list."""
    data = card.model_dump(mode="json", exclude_defaults=True)
    data = {"id": card.id, **{k: v for k, v in data.items() if k != "id"}}
    text = yaml.safe_dump([data], sort_keys=False, allow_unicode=True, width=110)
    return "".join(f"  {line}" if line.strip() else line for line in text.splitlines(keepends=True))


def add_to_overlay(card: ModelCard, path: Path) -> Path:
    """Append the card to the overlay file (created if missing) and check the result loads.

    The user's text is kept byte for byte: the entry is appended when `models:` is the file's last top-level
    key, and otherwise the file is left alone and an error says how to add it by hand. If the appended file
    does not load, the original is restored.
    """
    if path.exists():
        original, data = _read_overlay(path)
        if card.id in _ids(data.get("models")):
            raise CatalogError(
                f"'{card.id}' is already in the overlay; edit that entry, or pass --id to add it under another id",
                path,
            )
        keys = list(data)
        if keys and keys[-1] != "models":
            raise CatalogError(
                "'models:' is not the last section of the overlay, so Berth will not rewrite it; "
                "move the models list to the end, or paste this entry under it:\n" + entry_yaml(card),
                path,
            )
        text = original if original.endswith("\n") or not original else original + "\n"
        if "models" not in data:
            text += "models:\n"
        elif data.get("models") is None:
            pass
        text += entry_yaml(card)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        original = None
        text = _HEADER + entry_yaml(card)
    path.write_text(text, encoding="utf-8")
    try:
        load_catalog(overlay=path)
    except CatalogError:
        if original is None:
            path.unlink()
        else:
            path.write_text(original, encoding="utf-8")
        raise
    return path


def _read_overlay(path: Path) -> tuple[str, dict[str, Any]]:
    """The overlay's text and top-level mapping; CatalogError when it cannot be read or is not a mapping."""
    try:
        original = read_text_capped(path)
        data = load_yaml_bounded(original) or {}
    except BerthError as err:
        raise CatalogError(getattr(err, "problem", err.message), path, hint=err.hint) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or "cannot be parsed"
        raise CatalogError(
            f"invalid YAML: {problem}; fix it first", path, mark.line + 1 if mark else None
        ) from None
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise CatalogError("invalid YAML; fix it first", path) from None
    if not isinstance(data, dict):
        raise CatalogError("the overlay's top level is not a mapping; fix it first", path, 1)
    return original, data


def _ids(models: Any) -> set[str]:
    """The string ids of the overlay's model entries (anything else is left for loading to report)."""
    if not isinstance(models, list):
        return set()
    return {m["id"] for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)}
