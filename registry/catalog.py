"""Load catalog.yaml and the user overlay, report errors by file:line:field, and look models up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from registry.bounded_read import read_text_capped
from registry.compiled import key_for as compiled_key
from registry.compiled import load as load_compiled
from registry.compiled import save as save_compiled
from registry.errors import (
    BerthError,
    CatalogError,
    UnknownAcceleratorError,
    UnknownModelError,
    short_repr,
    short_text,
)
from registry.gc_pause import collector_paused
from registry.params import supported_model_types
from registry.paths import expand_user_path
from registry.schema import Accelerator, Architecture, CatalogFile, ModelCard
from registry.suggest import MAX_SUGGEST_CHARS, close_matches
from registry.userdirs import overlay_path

if TYPE_CHECKING:
    from registry.yaml_lines import YamlLines

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
        close = close_matches(q, list(ids), n=limit * 3, cutoff=0.6)
        if not close:
            close = [k for k in ids if q and q in k]
        seen: list[str] = []
        for key in close:
            if ids[key] not in seen:
                seen.append(ids[key])
        return seen[:limit]

    def accelerator(self, query: str) -> Accelerator:
        """The accelerator for a spec name (a100-80gb), an alias or an NVML name; else UnknownAcceleratorError."""
        if len(query) > MAX_SUGGEST_CHARS:  # no accelerator has such a name: skip normalising it
            raise UnknownAcceleratorError(query, [])
        acc = self._accelerator_index.get(_norm_gpu(query))
        if acc is not None:
            return acc
        names = [a.id for a in self.accelerators]
        close = close_matches(query.lower(), names, n=3, cutoff=0.4)
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
    """Load the catalog, merged with the user overlay (True: the default overlay if present; False: none);
    CatalogError for the first problem found."""
    catalog, problems = _load(path, overlay)
    if problems:
        raise problems[0]
    return catalog


def check_catalog(
    path: Path | str | None = None,
    overlay: Path | str | bool | None = True,
) -> list[CatalogError]:
    """Every problem `load_catalog` with the same arguments meets (the list `berth catalog validate` prints):
    one code path, so what validates loads and what loads validates."""
    return _load(path, overlay)[1]


def check_catalog_file(path: Path | str) -> list[CatalogError]:
    """Every problem in one catalog file read on its own, as `--catalog FILE --no-overlay` loads it."""
    return check_catalog(path, overlay=False)


def _load(path: Path | str | None, overlay: Path | str | bool | None) -> tuple[Catalog, list[CatalogError]]:
    with collector_paused():  # parsing and validating build many objects and free few
        return _load_files(path, overlay)


def _load_files(
    path: Path | str | None, overlay: Path | str | bool | None
) -> tuple[Catalog, list[CatalogError]]:
    problems: list[CatalogError] = []
    _LINES.clear()  # line numbers come from the text read by this load only
    base_path = _user_path(path, problems) if path is not None else default_catalog_path()
    overlay_file = _overlay_file(overlay, problems)
    sources = tuple(p for p in (base_path, overlay_file) if p is not None)
    texts = [(p, _read_text(p, problems)) for p in sources]
    if base_path is None or problems:
        for source, text in texts:
            _read_yaml(source, text, problems)  # the other file's own problems are reported too
        return Catalog(models=(), accelerators=(), sources=sources), problems
    key = compiled_key([(p, t) for p, t in texts if t is not None])
    hit = load_compiled(key)
    if hit is not None:
        return Catalog(models=hit[0], accelerators=hit[1], sources=sources), problems
    raw = _read_yaml(base_path, texts[0][1], problems)
    overlay_raw = _read_yaml(overlay_file, texts[1][1], problems) if overlay_file is not None else None
    if raw is None or problems:
        return Catalog(models=(), accelerators=(), sources=sources), problems
    models = tuple(_validated_models(raw, base_path, overlay_raw, overlay_file, problems))
    accelerators = tuple(_validated_accelerators(raw, base_path, overlay_raw, overlay_file, problems))
    if not problems:
        save_compiled(key, (models, accelerators))
    return Catalog(models=models, accelerators=accelerators, sources=sources), problems


def _read_text(path: Path, problems: list[CatalogError]) -> str | None:
    """The file's text; None, with the problem noted, when it cannot be read."""
    try:
        return read_text_capped(path)
    except BerthError as err:
        problems.append(CatalogError(getattr(err, "problem", err.message), path, hint=err.hint))
        return None


def _user_path(text: Path | str, problems: list[CatalogError]) -> Path | None:
    try:
        return expand_user_path(text)
    except BerthError as err:
        problems.append(CatalogError(err.message[:1].lower() + err.message[1:], hint=err.hint))
        return None


def _overlay_file(overlay: Path | str | bool | None, problems: list[CatalogError]) -> Path | None:
    if overlay is True:
        try:
            candidate = overlay_path()
        except BerthError as err:
            problems.append(CatalogError(f"cannot find the overlay: {err.message}", hint=err.hint))
            return None
        return candidate if candidate.exists() else None
    if overlay:
        return _user_path(overlay, problems)
    return None


_UNREAD = object()


def _read_yaml(path: Path, text: str | None, problems: list[CatalogError]) -> dict[str, Any] | None:
    """The text's top-level mapping ({} for an empty file); None, with the problem noted, when it has none."""
    if text is None:
        return None
    # Imported here: a catalog served from the compiled cache is never parsed (`berth list` starts sooner).
    import yaml

    from registry.fast_yaml import Unsupported as FastYamlUnsupported
    from registry.safe_yaml import load_yaml_bounded_with_node
    from registry.yaml_halves import load_large

    try:
        data, node = load_large(text), None
    except (FastYamlUnsupported, RecursionError):
        data, node = _UNREAD, None  # outside the subset it reads: PyYAML reads it, and reports its errors
    try:
        if data is _UNREAD:
            data, node = load_yaml_bounded_with_node(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        problems.append(CatalogError(f"invalid YAML: {short_text(problem, 200)}", path, line))
        return None
    except (ValueError, TypeError, RecursionError, OverflowError) as err:
        problems.append(CatalogError(f"invalid YAML: {short_text(str(err), 200)}", path))
        return None
    if node is not None:
        _remember_lines(path, node)  # else composed again only if an error needs a line number
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(
            CatalogError(
                "the top level must be a mapping with 'models' and 'accelerators', "
                f"not a {type(data).__name__}",
                path,
                1,
            )
        )
        return None
    return data


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _section(raw: dict[str, Any], name: str, path: Path, problems: list[CatalogError]) -> list[Any]:
    """The file's list of `name` entries; [] with the problem noted when the file's top level is wrong."""
    unknown = sorted(set(raw) - set(CatalogFile.model_fields), key=str)
    if unknown:
        if name == "models":  # noted once per file, not once per section
            problems.extend(_unknown_key_error(path, (key,), CatalogFile) for key in unknown)
        return []
    version = raw.get("schema_version", 1)
    if version != 1 or isinstance(version, bool):
        if name == "models":
            problems.append(
                CatalogError(
                    f"schema_version {short_repr(version)} is not supported (this Berth reads 1)",
                    path,
                    _line_of(path, ("schema_version",)),
                )
            )
        return []
    items = raw.get(name) or []
    if not isinstance(items, list):
        problems.append(CatalogError("must be a list of entries", path, _line_of(path, (name,)), name))
        return []
    return items


_Entry = tuple[Any, Path, tuple[Any, ...]]
"""A raw entry, the file it (last) came from, and its place there (section, index)."""


def _entry_id(item: Any) -> str | None:
    """The entry's id where it is a string (an id of any other type is left for the schema to reject)."""
    value = item.get("id") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _merged_entries(
    raw: dict[str, Any],
    path: Path,
    overlay: dict[str, Any] | None,
    overlay_path_: Path | None,
    section: str,
    problems: list[CatalogError],
) -> list[_Entry]:
    """The section's entries with the overlay's applied: same id merges field by field, new ids append."""
    entries: list[_Entry] = [
        (item, path, (section, i)) for i, item in enumerate(_section(raw, section, path, problems))
    ]
    if overlay is None or overlay_path_ is None:
        return entries
    by_id: dict[str, int] = {}
    for n, (item, _, _) in enumerate(entries):
        key = _entry_id(item)
        if key is not None:
            by_id.setdefault(key, n)
    for i, item in enumerate(_section(overlay, section, overlay_path_, problems)):
        loc = (section, i)
        key = _entry_id(item)
        if key is not None and key in by_id:
            n = by_id[key]
            entries[n] = (_merge(entries[n][0], item), overlay_path_, loc)
        else:
            entries.append((item, overlay_path_, loc))
    return entries


def _validated_models(
    raw: dict[str, Any],
    path: Path,
    overlay: dict[str, Any] | None,
    overlay_path_: Path | None,
    problems: list[CatalogError],
) -> list[ModelCard]:
    entries = _merged_entries(raw, path, overlay, overlay_path_, "models", problems)
    valid: list[tuple[ModelCard, Path, tuple[Any, ...]]] = []
    architectures: dict[str, Architecture | None] = {}
    for item, where, loc in entries:
        card = _validate_item(ModelCard, _with_architecture(item, architectures), where, loc, problems)
        if isinstance(card, ModelCard):
            valid.append((card, where, loc))
    owners: dict[str, str] = {}
    supported = supported_model_types()
    rejected: set[int] = set()
    for n in _base_first([where for _, where, _ in valid], path):
        card, where, loc = valid[n]
        problem = _model_type_problem(card, supported) or _key_clash(card, owners)
        if problem is not None:
            message, field_name = problem
            line = _line_of(where, (*loc, field_name))
            problems.append(CatalogError(f"{message} [in {card.id}]", where, line, field_name))
            rejected.add(n)
            continue
        for key in _model_keys(card):
            owners.setdefault(key.lower(), card.id)
    return [card for n, (card, _, _) in enumerate(valid) if n not in rejected]


def _with_architecture(item: Any, seen: dict[str, Architecture | None]) -> Any:
    """The entry with its `architecture` mapping validated once per distinct mapping (a large catalog repeats a
    few architectures): ModelCard keeps an Architecture instance as it is, and cards with equal mappings
    share one object. An entry whose architecture does not validate is returned as it is, so its errors are
    reported exactly as before."""
    raw = item.get("architecture") if isinstance(item, dict) else None
    if not isinstance(raw, dict):
        return item
    key = repr(raw)  # by type and order as well as value: 1, 1.0 and true stay apart
    if key not in seen:
        try:
            seen[key] = Architecture.model_validate(raw)
        except (ValidationError, ValueError, TypeError, RecursionError):
            seen[key] = None
    found = seen[key]
    return item if found is None else {**item, "architecture": found}


def _base_first(sources: Sequence[Path], base: Path) -> list[int]:
    """Entry indexes, those last touched by the base catalog first: a clash with the overlay is the overlay's."""
    return sorted(range(len(sources)), key=lambda n: sources[n] != base)


def _model_type_problem(card: ModelCard, supported: Sequence[str]) -> tuple[str, str] | None:
    if card.model_type in supported:
        return None
    return (
        f"'{card.model_type}' is not a model_type Berth can size; supported: {', '.join(supported)}",
        "model_type",
    )


def _key_clash(card: ModelCard, owners: dict[str, str]) -> tuple[str, str] | None:
    """A name of the card that an earlier card already uses: (message, field), or None."""
    if card.id.lower() in owners and owners[card.id.lower()] == card.id:
        return (
            f"duplicate id '{card.id}': each model appears once (override entries in your overlay instead)",
            "id",
        )
    for key in _model_keys(card):
        other = owners.get(key.lower())
        if other is not None and other != card.id:
            what = "id" if key.lower() == card.id.lower() else "alias"
            return f"duplicate {what} '{key}': already used by '{other}'", "id" if what == "id" else "aliases"
    return None


def _validated_accelerators(
    raw: dict[str, Any],
    path: Path,
    overlay: dict[str, Any] | None,
    overlay_path_: Path | None,
    problems: list[CatalogError],
) -> list[Accelerator]:
    entries = _merged_entries(raw, path, overlay, overlay_path_, "accelerators", problems)
    valid: list[tuple[Accelerator, Path, tuple[Any, ...]]] = []
    for item, where, loc in entries:
        acc = _validate_item(Accelerator, item, where, loc, problems)
        if isinstance(acc, Accelerator):
            valid.append((acc, where, loc))
    seen: dict[str, str] = {}
    rejected: set[int] = set()
    for n in _base_first([where for _, where, _ in valid], path):
        acc, where, loc = valid[n]
        names = (acc.id, *acc.aliases)
        clash = next((k for k in names if seen.get(_norm_gpu(k), acc.id) != acc.id), None)
        if clash is not None:
            message = f"duplicate accelerator name '{clash}': already used by '{seen[_norm_gpu(clash)]}'"
            problems.append(CatalogError(message, where, _line_of(where, (*loc, "id")), "id"))
            rejected.add(n)
            continue
        seen.update((_norm_gpu(k), acc.id) for k in names)
    return [acc for n, (acc, _, _) in enumerate(valid) if n not in rejected]


def _validate_item(
    model: type[BaseModel], item: Any, path: Path, loc: tuple[Any, ...], problems: list[CatalogError]
) -> BaseModel | None:
    """The entry as `model`, or None with its first problem noted."""
    if not isinstance(item, dict):
        problems.append(
            CatalogError(
                f"each entry must be a mapping of fields, not {type(item).__name__}",
                path,
                _line_of(path, loc),
                ".".join(str(p) for p in loc),
            )
        )
        return None
    try:
        return model.model_validate(item)
    except ValidationError as err:
        problems.append(_from_validation_error(err, model, item, path, loc))
    except (ValueError, TypeError, RecursionError) as err:  # pragma: no cover - pydantic wraps these
        problems.append(CatalogError(short_text(str(err), 200), path, _line_of(path, loc)))
    return None


def _from_validation_error(
    err: ValidationError, model: type[BaseModel], item: dict[str, Any], path: Path, loc: tuple[Any, ...]
) -> CatalogError:
    first = err.errors(include_url=False)[0]
    field_loc = tuple(first["loc"])
    entry_id = _entry_id(item)
    entry_name = short_text(entry_id) if entry_id is not None else f"{loc[0]}[{loc[1]}]"
    dotted = short_text(".".join(str(p) for p in field_loc), 120)
    if first["type"] == "extra_forbidden":
        return _unknown_key_error(path, field_loc, model, loc, entry_name)
    message = short_text(first["msg"], 300)
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if first["type"] == "missing":
        message = "required field is missing"
    elif "input" in first and first["type"] not in ("value_error", "assertion_error"):
        message = f"{message} (got {short_repr(first['input'], 60)})"
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
    key = short_text(str(field_loc[-1]), 80)
    owner: type[BaseModel] = model
    for part in field_loc[:-1]:
        annotation = owner.model_fields.get(str(part))
        nested = getattr(annotation, "annotation", None) if annotation else None
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            owner = nested
    suggestion = close_matches(key, list(owner.model_fields), n=1, cutoff=0.6)
    where = f" [in {entry_name}]" if entry_name else ""
    return CatalogError(
        f"unknown key '{key}'{where}",
        path,
        _line_of(path, (*loc, *field_loc)),
        short_text(".".join(str(p) for p in field_loc), 120),
        suggestion[0] if suggestion else None,
    )


def _line_of(path: Path, loc: Sequence[Any]) -> int | None:
    """1-based line of the node at loc (keys and list indexes), from the file's composed YAML: kept from the
    load, or composed again once per file version, so thousands of errors in one file cost one parse."""
    key = _file_key(path)
    if key is None:
        return None
    lines = _LINES.get(key)
    if lines is None:
        try:
            text = read_text_capped(path)
        except BerthError:
            return None
        from registry.yaml_lines import YamlLines

        lines = YamlLines(text)
        _keep_lines(key, lines)
    return lines.line(loc)


#: Composed YAML of the files the current load read, by (path, mtime, size, inode), for `_line_of`.
_LINES: dict[tuple[str, int, int, int], YamlLines] = {}
_LINES_KEPT = 4


def _file_key(path: Path) -> tuple[str, int, int, int] | None:
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return None
    return (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _keep_lines(key: tuple[str, int, int, int], lines: YamlLines) -> None:
    while len(_LINES) >= _LINES_KEPT:
        _LINES.pop(next(iter(_LINES)))
    _LINES[key] = lines


def _remember_lines(path: Path, node: Any) -> None:
    """Keep the node just composed from `path` for line numbers of the errors that follow."""
    key = _file_key(path)
    if key is not None and node is not None:
        from registry.yaml_lines import YamlLines

        _keep_lines(key, YamlLines(None, node))
