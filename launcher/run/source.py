"""Where a launch takes its weights from: a catalog entry on the Hub, a local model folder, or a GGUF file.

Light (no torch): `berth launch --dry-run` resolves the source and prints the plan without loading anything.
A local folder or GGUF file that is not in the catalog gets a card built from its files by the importer; an
OWNER/NAME[@REVISION] that is neither gets one read from the Hugging Face Hub (registry.hub_fetch, no weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from registry.catalog import Catalog
from registry.errors import ImportModelError, UnknownModelError
from registry.hub_card import HubEntry, looks_like_repo_id
from registry.hub_errors import HubOfflineError, RepoNotFoundError
from registry.importer import card_from_dir, card_from_gguf, weight_files
from registry.paths import expand_user_path
from registry.schema import ModelCard

SourceKind = Literal["hub", "dir", "gguf"]


@dataclass(frozen=True)
class ModelSource:
    """A model card and where its weights come from."""

    card: ModelCard
    kind: SourceKind
    path: Path | None = None
    """The folder (dir) or file (gguf); None for the Hub until downloaded."""
    hub: HubEntry | None = None
    """Set when the card was derived from the Hub on demand (not a verified catalog entry)."""

    @property
    def label(self) -> str:
        """How to name the source to people."""
        if self.kind == "hub":
            return f"{self.card.id} (Hugging Face Hub" + (
                f", revision {self.card.revision})" if self.card.revision else ")"
            )
        return str(self.path)

    @property
    def provenance(self) -> str | None:
        """One sentence saying the entry came from the Hub and was not verified by hand (None for the catalog)."""
        if self.hub is None:
            return None
        return (
            f"Entry read from the Hugging Face Hub at revision {self.card.revision} and derived by Berth; "
            "it is not in the catalog and was not verified by hand."
        )

    @property
    def weight_format(self) -> str:
        """safetensors, pickle or gguf, from the files where they are local, else from the card."""
        if self.kind == "gguf":
            return "gguf"
        if self.kind == "dir" and self.path is not None:
            return weight_files(self.path).format or self.card.weight_format
        return self.card.weight_format


def resolve_source(
    model: str | None,
    catalog: Catalog,
    gguf: str | None = None,
    trust_remote_code: bool = False,
    progress: Callable[[str], None] | None = None,
) -> ModelSource:
    """A catalog id/alias, a local folder, a GGUF file (MODEL may be omitted with --gguf), or else a Hub
    repository OWNER/NAME[@REVISION] read on demand (`progress` hears what is being read).

    With --gguf and a MODEL that names a catalog entry, the entry's card is used with the file's weights.
    """
    if gguf is not None:
        path = expand_user_path(gguf)
        if not path.is_file():
            raise ImportModelError(f"--gguf {gguf}: no such file")
        card: ModelCard | None = None
        if model:
            try:
                card = catalog.get(model)
            except UnknownModelError:
                card = None
        return ModelSource(card or card_from_gguf(path), "gguf", path.resolve())
    if not model:
        raise ImportModelError("name a model (a catalog id or alias, a local folder) or give --gguf FILE")
    try:
        entry = catalog.get(model)
    except UnknownModelError:
        named = _local_source(model)
        if named is not None:
            return named
        if not looks_like_repo_id(model):
            raise
        return _hub_or_suggest(model, catalog, trust_remote_code, progress)
    local = local_files(entry)
    if local is not None:
        return ModelSource(entry, "gguf" if local.is_file() else "dir", local)
    return ModelSource(entry, "hub")


def _local_source(model: str) -> ModelSource | None:
    """A model folder or .gguf file named by a path; None when `model` does not look like a path."""
    path = expand_user_path(model)
    if path.is_dir():
        return ModelSource(card_from_dir(path), "dir", path.resolve())
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(card_from_gguf(path), "gguf", path.resolve())
    if model.startswith(("./", "../", "/", "~")):
        what = "a file but not a .gguf file" if path.exists() else "no such folder or file"
        raise ImportModelError(
            f"{model}: {what}. Give a local model folder (with config.json), a .gguf file, or a catalog id "
            "or alias (see `berth list`)."
        )
    return None


def local_files(card: ModelCard) -> Path | None:
    """The folder or GGUF file an entry added with `berth catalog add` points at, if it is still there."""
    if not card.source or "://" in card.source:
        return None
    try:
        path = Path(card.source).expanduser()
    except RuntimeError:  # '~someone' whose account is gone: as if the files were
        return None
    if path.is_dir() or (path.is_file() and path.suffix == ".gguf"):
        return path.resolve()
    return None


def _hub_or_suggest(
    model: str, catalog: Catalog, trust_remote_code: bool, progress: Callable[[str], None] | None
) -> ModelSource:
    """The Hub source; when the Hub has no such repository (or cannot be asked), catalog names close to it."""
    try:
        return hub_source(model, trust_remote_code, progress)
    except (RepoNotFoundError, HubOfflineError) as error:
        close = catalog.suggest(model)
        if close:
            error.hint = f"Did you mean {', '.join(close)} (in the catalog)? " + error.hint
        raise


def hub_source(
    model: str, trust_remote_code: bool = False, progress: Callable[[str], None] | None = None
) -> ModelSource:
    """A repository that is not in the catalog, read from the Hub (or Berth's cache of it) without weights."""
    from registry.hub_fetch import hub_entry

    entry = hub_entry(model, trust_remote_code=trust_remote_code, progress=progress)
    return ModelSource(entry.card, "hub", hub=entry)
