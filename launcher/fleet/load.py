"""Read fleet.yaml, check it against the schema and the catalog, and build the planner's FleetRequest.

Every problem is reported with file, line, field and, where one is close, a suggestion: first every schema
problem of the file at once, then (once the schema holds) every problem with the catalog and the load.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from launcher.fleet.errors import FleetFileError, FleetProblem
from launcher.fleet.schema import SECTIONS, FleetFile, WorkloadSpec
from launcher.fleet.sizing import native_fleet_quant
from launcher.fleet.types import EngineSettings, FleetRequest, NodeGroup, Workload
from registry.bounded_read import MAX_SPEC_BYTES, read_text_capped
from registry.catalog import Catalog
from registry.errors import (
    InputFileError,
    UnknownAcceleratorError,
    UnknownModelError,
    UnsupportedArchitectureError,
    short_text,
)
from registry.params import layout
from registry.paths import expand_user_path
from registry.schema import Accelerator, ModelCard
from registry.suggest import close_matches
from registry.yaml_lines import YamlLines

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice (YAML keeps only the last, silently)."""

    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(f"duplicate key '{key}'")
        self.key, self.first, self.second = key, first, second


class _Loader(_BaseLoader):
    """The safe loader, refusing duplicate keys with the lines of both."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise _DuplicateKeyError(key_node.value, seen[key_node.value], line)
                seen[key_node.value] = line
        return dict(super().construct_mapping(node, deep=deep))


def _duplicate(err: _DuplicateKeyError) -> FleetProblem:
    message = (
        f"duplicate key '{short_text(err.key)}' (lines {err.first} and {err.second}); YAML would keep only "
        "the second: merge them or remove one"
    )
    return FleetProblem(message, err.second)


#: How a value the schema rejects is quoted: a few items and characters, never the whole of a value
#: that YAML anchors expanded to millions of items.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxdict = 2, 4, 4
_QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlong = 50, 50, 40


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _owner(loc: Sequence[Any]) -> type[BaseModel]:
    """The schema class whose field `loc[-1]` is."""
    if len(loc) > 1 and str(loc[0]) in SECTIONS:
        return SECTIONS[str(loc[0])]
    return FleetFile


def _schema_problems(err: ValidationError, lines: YamlLines) -> list[FleetProblem]:
    problems = []
    for item in err.errors(include_url=False):
        loc = tuple(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        suggestion = None
        if item["type"] == "extra_forbidden":
            key = str(loc[-1])
            close = close_matches(key, list(_owner(loc).model_fields), n=1, cutoff=0.6)
            suggestion = close[0] if close else None
            message = f"unknown key '{key}'"
        elif item["type"] == "missing":
            message = "required field is missing"
        elif "input" in item and item["type"] not in ("value_error", "assertion_error"):
            text = _QUOTE.repr(item["input"])
            message = f"{message} (got {text if len(text) <= 60 else text[:57] + '...'})"
        problems.append(FleetProblem(message, lines.line(loc), _dotted(loc) or None, suggestion))
    return problems


def parse_fleet_text(text: str, path: Path | None = None) -> tuple[FleetFile, YamlLines]:
    """The file checked against the schema; FleetFileError lists every problem."""
    lines = YamlLines(text)
    try:
        data = yaml.load(text, Loader=_Loader)
    except _DuplicateKeyError as err:
        raise FleetFileError(path, [_duplicate(err)]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        line = mark.line + 1 if mark is not None else None
        raise FleetFileError(path, [FleetProblem(f"invalid YAML: {problem}", line)]) from None
    except (ValueError, RecursionError):  # a number of thousands of digits; nesting thousands deep
        problem = "not a fleet file (a number too long, or nesting too deep)"
        raise FleetFileError(path, [FleetProblem(problem, None)]) from None
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        message = f"the top level must be a mapping with 'nodes' and 'models', not {kind}"
        raise FleetFileError(path, [FleetProblem(message, 1)])
    try:
        return FleetFile.model_validate(data), lines
    except ValidationError as err:
        raise FleetFileError(path, _schema_problems(err, lines)) from None


def _accelerator(
    catalog: Catalog, query: str, loc: tuple[Any, ...], lines: YamlLines, problems: list[FleetProblem]
) -> Accelerator | None:
    try:
        return catalog.accelerator(query)
    except UnknownAcceleratorError as err:
        known = ", ".join(a.id for a in catalog.accelerators)
        problems.append(
            FleetProblem(
                f"unknown accelerator '{short_text(query)}' (the catalog knows {known}; "
                "add others to your catalog overlay)",
                lines.line(loc),
                _dotted(loc),
                err.suggestions[0] if err.suggestions else None,
            )
        )
        return None


def _check_load(
    spec: WorkloadSpec, card: ModelCard, context: int, loc: tuple[Any, ...], lines: YamlLines
) -> list[FleetProblem]:
    """Contradictory or incomplete load figures."""
    problems = []

    def add(message: str, field: str | None = None) -> None:
        where = (*loc, field) if field else loc
        problems.append(FleetProblem(message, lines.line(where), _dotted(where)))

    if spec.context is not None and spec.context > card.context_length:
        add(f"{card.id} supports at most {card.context_length:,} tokens of context", "context")
    if spec.concurrency is not None and spec.requests_per_s is not None:
        add(
            "give either concurrency or requests_per_s, not both: they state the same load two ways and "
            "may contradict each other",
            "requests_per_s",
        )
    elif spec.concurrency is None and spec.requests_per_s is None:
        add(
            "the load is missing: give concurrency (sequences in flight) or requests_per_s with "
            "prompt_tokens and output_tokens"
        )
    elif spec.requests_per_s is not None and (spec.prompt_tokens is None or spec.output_tokens is None):
        add(
            "requests_per_s needs prompt_tokens and output_tokens (time per request depends on them)",
            "requests_per_s",
        )
    prompt, output = spec.prompt_tokens or 0, spec.output_tokens or 0
    if prompt + output > context:
        field = "output_tokens" if spec.output_tokens is not None else "prompt_tokens"
        total = prompt + output
        add(f"prompt_tokens + output_tokens ({total:,}) exceed the context ({context:,} tokens)", field)
    return problems


def build_request(
    spec: FleetFile, catalog: Catalog, lines: YamlLines, path: Path | None = None
) -> FleetRequest:
    """Resolve accelerators and models against the catalog; FleetFileError lists every problem."""
    problems: list[FleetProblem] = []
    groups = _node_groups(spec, catalog, lines, problems)
    fleet_accelerators = {g.accelerator.id for g in groups}
    workloads: list[Workload] = []
    served: set[str] = set()
    for i, item in enumerate(spec.models):
        loc = ("models", i)
        card = _servable_card(item, catalog, loc, lines, problems)
        if card is None:
            continue
        name = item.name or card.id
        if name in served:
            field = "name" if item.name else "model"
            problems.append(
                _problem(f"'{name}' is served twice; give each entry its own `name`", loc, field, lines)
            )
        served.add(name)
        context = item.context or card.context_length
        problems.extend(_check_load(item, card, context, loc, lines))
        pinned = _pinned(item, catalog, fleet_accelerators, loc, lines, problems)
        workloads.append(_workload(item, name, card, context, pinned))
    if problems:
        raise FleetFileError(path, problems)
    return FleetRequest(
        groups=tuple(groups),
        workloads=tuple(workloads),
        engine=_engine(spec),
        network_bytes_per_s=spec.network.bandwidth_bytes_per_s if spec.network else None,
    )


def _problem(
    message: str, loc: tuple[Any, ...], field: str, lines: YamlLines, suggestion: str | None = None
) -> FleetProblem:
    """A problem with the field `field` of the entry at `loc`, with its line."""
    where = (*loc, field)
    return FleetProblem(message, lines.line(where), _dotted(where), suggestion)


def _node_groups(
    spec: FleetFile, catalog: Catalog, lines: YamlLines, problems: list[FleetProblem]
) -> list[NodeGroup]:
    """The node groups whose accelerator the catalog knows; duplicate names and unknown accelerators noted."""
    groups: list[NodeGroup] = []
    seen_groups: set[str] = set()
    for i, node in enumerate(spec.nodes):
        loc: tuple[Any, ...] = ("nodes", i)
        if node.name in seen_groups:
            problems.append(_problem(f"duplicate node group name '{node.name}'", loc, "name", lines))
        seen_groups.add(node.name)
        acc = _accelerator(catalog, node.accelerator, (*loc, "accelerator"), lines, problems)
        if acc is None:
            continue
        groups.append(
            NodeGroup(
                name=node.name,
                accelerator=acc,
                gpus_per_node=node.gpus_per_node,
                count=node.count,
                ram_bytes=node.ram,
                cpus=node.cpus,
                nvlink=node.nvlink if node.nvlink is not None else acc.interconnect == "nvlink",
            )
        )
    return groups


def _servable_card(
    item: WorkloadSpec,
    catalog: Catalog,
    loc: tuple[Any, ...],
    lines: YamlLines,
    problems: list[FleetProblem],
) -> ModelCard | None:
    """The entry's catalog model when a fleet can serve it (known, generates text, sizable); else a problem."""
    try:
        card = catalog.get(item.model)
    except UnknownModelError as err:
        suggestion = err.suggestions[0] if err.suggestions else None
        message = f"unknown model '{short_text(item.model)}' (see `berth list`)"
        problems.append(_problem(message, loc, "model", lines, suggestion))
        return None
    if card.task == "fill-mask":
        message = f"{card.id} is a fill-mask encoder; fleets serve text generation (chat, completion)"
        problems.append(_problem(message, loc, "model", lines))
        return None
    try:
        layout(card)
    except UnsupportedArchitectureError as err:
        problems.append(_problem(str(err), loc, "model", lines))
        return None
    return card


def _pinned(
    item: WorkloadSpec,
    catalog: Catalog,
    fleet_accelerators: set[str],
    loc: tuple[Any, ...],
    lines: YamlLines,
    problems: list[FleetProblem],
) -> tuple[str, ...]:
    """The accelerator the entry is pinned to (none when it names none or an unknown one)."""
    if item.accelerator is None:
        return ()
    acc = _accelerator(catalog, item.accelerator, (*loc, "accelerator"), lines, problems)
    if acc is None:
        return ()
    if acc.id not in fleet_accelerators:
        message = (
            f"no node group has {acc.id} (the fleet has {', '.join(sorted(fleet_accelerators)) or 'none'})"
        )
        problems.append(_problem(message, loc, "accelerator", lines))
    return (acc.id,)


def _workload(
    item: WorkloadSpec, name: str, card: ModelCard, context: int, pinned: tuple[str, ...]
) -> Workload:
    return Workload(
        name=name,
        card=card,
        context=context,
        concurrency=item.concurrency,
        requests_per_s=item.requests_per_s,
        prompt_tokens=item.prompt_tokens,
        output_tokens=item.output_tokens,
        tokens_per_s_per_user=item.tokens_per_s_per_user,
        dtype=item.dtype,
        quantization=item.quantization or native_fleet_quant(card),
        accelerators=pinned,
        ttft_s=item.ttft_s,
    )


def _engine(spec: FleetFile) -> EngineSettings:
    """The engine section with vLLM's defaults filled in (block size 16)."""
    return EngineSettings(
        gpu_memory_utilization=spec.engine.gpu_memory_utilization,
        block_size=spec.engine.block_size or 16,
        block_size_set=spec.engine.block_size is not None,
        max_num_seqs=spec.engine.max_num_seqs,
        max_num_batched_tokens=spec.engine.max_num_batched_tokens,
    )


def load_fleet_text(text: str, catalog: Catalog, path: Path | None = None) -> FleetRequest:
    """A FleetRequest from fleet.yaml text."""
    spec, lines = parse_fleet_text(text, path)
    return build_request(spec, catalog, lines, path)


def load_fleet(path: Path | str, catalog: Catalog) -> FleetRequest:
    """A FleetRequest from a fleet.yaml file."""
    path = expand_user_path(path)
    try:
        text = read_text_capped(path, MAX_SPEC_BYTES)
    except InputFileError as error:
        raise FleetFileError(path, [FleetProblem(error.problem)]) from None
    return load_fleet_text(text, catalog, path)
