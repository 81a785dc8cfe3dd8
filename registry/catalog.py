"""Load catalog.yaml and the user overlay, report errors by file:line:field, and look models up."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from registry.errors import CatalogError, UnknownAcceleratorError, UnknownModelError
from registry.schema import Accelerator, CatalogFile, ModelCard
from registry.userdirs import overlay_path
from registry.yaml_lines import YamlLines

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Sizes above these are typos, not models (checked after the schema).
MAX_PARAMS = 10**13


def default_catalog_path() -> Path:
    """The catalog shipped with Berth: beside the package in a wheel, at the repository root otherwise."""
    here = Path(__file__).resolve().parent
    packaged = here / "catalog.yaml"
    return packaged if packaged.exists() else here.parent / "catalog.yaml"


@dataclass(frozen=True)
class Catalog:
    """Models and accelerators, with lookup by id, alias or near miss."""

    models: tuple[ModelCard, ...]
    accelerators: tuple[Accelerator, ...]
    sources: tuple[Path, ...] = field(default_factory=tuple)

    @cached_property
    def _model_index(self) -> dict[str, ModelCard]:
        index: dict[str, ModelCard] = {}
        for card in self.models:
            for key in _model_keys(card):
                index.setdefault(key.lower(), card)
        return index

    @cached_property
    def _accelerator_index(self) -> dict[str, Accelerator]:
        index: dict[str, Accelerator] = {}
        for acc in self.accelerators:
            for key in (acc.id, acc.name, *acc.aliases):
                index.setdefault(_norm_gpu(key), acc)
        return index

    def get(self, query: str) -> ModelCard:
        """The card for an id, an alias or the repo name alone, case-insensitively; else UnknownModelError."""
        card = self._model_index.get(query.strip().lower())
        if card is not None:
            return card
        raise UnknownModelError(query, self.suggest(query))

    def suggest(self, query: str, limit: int = 3) -> list[str]:
        """Ids that look like a mistyped query."""
        q = query.strip().lower()
        ids: dict[str, str] = {}
        for card in self.models:
            for key in _model_keys(card):
                ids.setdefault(key.lower(), card.id)
        close = difflib.get_close_matches(q, list(ids), n=limit * 3, cutoff=0.6)
        if not close:
            close = [k for k in ids if q and q in k]
        seen: list[str] = []
        for key in close:
            if ids[key] not in seen:
                seen.append(ids[key])
        return seen[:limit]

    def accelerator(self, query: str) -> Accelerator:
        """The accelerator for a spec name (a100-80gb), an alias or an NVML name; else UnknownAcceleratorError."""
        acc = self._accelerator_index.get(_norm_gpu(query))
        if acc is not None:
            return acc
        names = [a.id for a in self.accelerators]
        close = difflib.get_close_matches(query.lower(), names, n=3, cutoff=0.4)
        raise UnknownAcceleratorError(query, close)

    def match_gpu_name(self, nvml_name: str) -> Accelerator | None:
        """The accelerator an NVML device name refers to, if any (used to look up bandwidth and FLOPs)."""
        key = _norm_gpu(nvml_name)
        if key in self._accelerator_index:
            return self._accelerator_index[key]
        best: Accelerator | None = None
        best_len = 0
        for name, acc in self._accelerator_index.items():
            if name and name in key and len(name) > best_len:
                best, best_len = acc, len(name)
        return best


def _model_keys(card: ModelCard) -> Iterable[str]:
    yield card.id
    yield card.id.split("/", 1)[1]
    yield from card.aliases


def _norm_gpu(name: str) -> str:
    cleaned = name.lower().replace("nvidia", "").replace("geforce", "")
    return "".join(ch for ch in cleaned if ch.isalnum())


# --------------------------------------------------------------------------- loading


def load_catalog(
    path: Path | str | None = None,
    overlay: Path | str | bool | None = True,
) -> Catalog:
    """Load the catalog, merged with the user overlay (True: the default overlay if present; False: none)."""
    base_path = Path(path) if path is not None else default_catalog_path()
    raw = _read_yaml(base_path)
    sources = [base_path]
    overlay_raw: dict[str, Any] | None = None
    overlay_file: Path | None = None
    if overlay is True:
        candidate = overlay_path()
        overlay_file = candidate if candidate.exists() else None
    elif overlay:
        overlay_file = Path(overlay)
    if overlay_file is not None:
        overlay_raw = _read_yaml(overlay_file)
        sources.append(overlay_file)
    models = _validated_models(raw, base_path, overlay_raw, overlay_file)
    accelerators = _validated_accelerators(raw, base_path, overlay_raw, overlay_file)
    return Catalog(models=tuple(models), accelerators=tuple(accelerators), sources=tuple(sources))


def check_catalog_file(path: Path | str) -> list[CatalogError]:
    """Every problem in one catalog file (the whole list, for `berth catalog validate`)."""
    path = Path(path)
    try:
        raw = _read_yaml(path)
    except CatalogError as err:
        return [err]
    problems: list[CatalogError] = []
    top_unknown = set(raw) - set(CatalogFile.model_fields)
    for key in sorted(top_unknown):
        problems.append(_unknown_key_error(path, (key,), CatalogFile))
    for section, model in (("models", ModelCard), ("accelerators", Accelerator)):
        items = raw.get(section, [])
        if not isinstance(items, list):
            problems.append(CatalogError("must be a list", path, _line_of(path, (section,)), section))
            continue
        for index, item in enumerate(items):
            try:
                _validate_item(model, item, path, (section, index))
            except CatalogError as err:
                problems.append(err)
    if not problems:
        try:
            load_catalog(path, overlay=False)
        except CatalogError as err:
            problems.append(err)
    return problems


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError("file not found", path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CatalogError(f"cannot read the file ({err})", path) from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CatalogError(f"invalid YAML: {problem}", path, line) from None
    except (ValueError, TypeError, RecursionError, OverflowError) as err:
        raise CatalogError(f"invalid YAML: {err}", path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CatalogError(
            f"the top level must be a mapping with 'models' and 'accelerators', not a {type(data).__name__}",
            path,
            1,
        )
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _section(raw: dict[str, Any], name: str, path: Path) -> list[Any]:
    unknown = set(raw) - set(CatalogFile.model_fields)
    if unknown:
        raise _unknown_key_error(path, (sorted(unknown)[0],), CatalogFile)
    version = raw.get("schema_version", 1)
    if version != 1:
        raise CatalogError(
            f"schema_version {version!r} is not supported (this Berth reads 1)",
            path,
            _line_of(path, ("schema_version",)),
        )
    items = raw.get(name) or []
    if not isinstance(items, list):
        raise CatalogError("must be a list of entries", path, _line_of(path, (name,)), name)
    return items


_Entry = tuple[Any, Path, tuple[Any, ...]]
"""A raw entry, the file it (last) came from, and its place there (section, index)."""


def _merged_entries(
    raw: dict[str, Any], path: Path, overlay: dict[str, Any] | None, overlay_path_: Path | None, section: str
) -> list[_Entry]:
    """The section's entries with the overlay's applied: same id merges field by field, new ids append."""
    entries: list[_Entry] = [
        (item, path, (section, i)) for i, item in enumerate(_section(raw, section, path))
    ]
    if overlay is None or overlay_path_ is None:
        return entries
    by_id = {item.get("id"): n for n, (item, _, _) in enumerate(entries) if isinstance(item, dict)}
    for i, item in enumerate(_section(overlay, section, overlay_path_)):
        loc = (section, i)
        if isinstance(item, dict) and item.get("id") in by_id:
            n = by_id[item["id"]]
            entries[n] = (_merge(entries[n][0], item), overlay_path_, loc)
        else:
            entries.append((item, overlay_path_, loc))
    return entries


def _validated_models(
    raw: dict[str, Any], path: Path, overlay: dict[str, Any] | None, overlay_path_: Path | None
) -> list[ModelCard]:
    entries = _merged_entries(raw, path, overlay, overlay_path_, "models")
    cards: list[ModelCard] = []
    owners: dict[str, tuple[str, Path, tuple[Any, ...]]] = {}
    ids: set[str] = set()
    for item, where, loc in entries:
        card = _validate_item(ModelCard, item, where, loc)
        assert isinstance(card, ModelCard)
        if card.id.lower() in ids:
            raise CatalogError(
                f"duplicate id '{card.id}': each model appears once (override entries in your overlay instead)",
                where,
                _line_of(where, (*loc, "id")),
                "id",
            )
        ids.add(card.id.lower())
        for key in _model_keys(card):
            k = key.lower()
            if k in owners and owners[k][0] != card.id:
                other = owners[k][0]
                what = "id" if k == card.id.lower() else "alias"
                raise CatalogError(
                    f"duplicate {what} '{key}': already used by '{other}'",
                    where,
                    _line_of(where, (*loc, "id")),
                    "id" if what == "id" else "aliases",
                )
            owners[k] = (card.id, where, loc)
        cards.append(card)
    return cards


def _validated_accelerators(
    raw: dict[str, Any], path: Path, overlay: dict[str, Any] | None, overlay_path_: Path | None
) -> list[Accelerator]:
    items = _merged_entries(raw, path, overlay, overlay_path_, "accelerators")
    result: list[Accelerator] = []
    seen: dict[str, str] = {}
    for item, where, loc in items:
        acc = _validate_item(Accelerator, item, where, loc)
        assert isinstance(acc, Accelerator)
        for key in (acc.id, *acc.aliases):
            norm = _norm_gpu(key)
            if norm in seen and seen[norm] != acc.id:
                raise CatalogError(
                    f"duplicate accelerator name '{key}': already used by '{seen[norm]}'",
                    where,
                    _line_of(where, (*loc, "id")),
                    "id",
                )
            seen[norm] = acc.id
        result.append(acc)
    return result


def _validate_item(model: type[BaseModel], item: Any, path: Path, loc: tuple[Any, ...]) -> BaseModel:
    if not isinstance(item, dict):
        raise CatalogError(
            f"each entry must be a mapping of fields, not {type(item).__name__}",
            path,
            _line_of(path, loc),
            ".".join(str(p) for p in loc),
        )
    try:
        return model.model_validate(item)
    except ValidationError as err:
        raise _from_validation_error(err, model, item, path, loc) from None
    except (ValueError, TypeError, RecursionError) as err:  # pragma: no cover - pydantic wraps these
        raise CatalogError(str(err), path, _line_of(path, loc)) from None


def _from_validation_error(
    err: ValidationError, model: type[BaseModel], item: dict[str, Any], path: Path, loc: tuple[Any, ...]
) -> CatalogError:
    first = err.errors(include_url=False)[0]
    field_loc = tuple(first["loc"])
    entry_name = item.get("id") if isinstance(item.get("id"), str) else f"{loc[0]}[{loc[1]}]"
    dotted = ".".join(str(p) for p in field_loc)
    if first["type"] == "extra_forbidden":
        return _unknown_key_error(path, field_loc, model, loc, entry_name)
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "missing":
        message = "required field is missing"
    elif "input" in first and first["type"] not in ("value_error", "assertion_error"):
        message = f"{message} (got {_short(first['input'])})"
    more = err.error_count() - 1
    if more:
        message += f"; {more} more problem{'s' if more > 1 else ''} in this entry"
    line = _line_of(path, (*loc, *field_loc))
    return CatalogError(f"{message} [in {entry_name}]", path, line, dotted or None)


def _unknown_key_error(
    path: Path,
    field_loc: tuple[Any, ...],
    model: type[BaseModel],
    loc: tuple[Any, ...] = (),
    entry_name: Any = None,
) -> CatalogError:
    key = str(field_loc[-1])
    owner: type[BaseModel] = model
    for part in field_loc[:-1]:
        annotation = owner.model_fields.get(str(part))
        nested = getattr(annotation, "annotation", None) if annotation else None
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            owner = nested
    suggestion = difflib.get_close_matches(key, list(owner.model_fields), n=1, cutoff=0.6)
    where = f" [in {entry_name}]" if entry_name else ""
    return CatalogError(
        f"unknown key '{key}'{where}",
        path,
        _line_of(path, (*loc, *field_loc)),
        ".".join(str(p) for p in field_loc),
        suggestion[0] if suggestion else None,
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _line_of(path: Path, loc: Sequence[Any]) -> int | None:
    """1-based line of the node at loc (keys and list indexes), found by composing the YAML again."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return YamlLines(text).line(loc)
