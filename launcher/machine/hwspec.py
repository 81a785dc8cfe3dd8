"""Named hardware standing in for this machine: '2xA100-80GB,ram=512GB', '8xH100+8xH100', or a YAML file."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from launcher.machine.apple import working_set_limit
from launcher.machine.errors import HardwareSpecError
from launcher.machine.host import CpuInfo, GpuInfo, HostSnapshot
from launcher.machine.numbers import SHOWN_CHARS, ascii_int
from registry.bounded_read import MAX_SPEC_BYTES, read_text_capped
from registry.catalog import Catalog
from registry.errors import InputFileError, UnknownAcceleratorError, short_text
from registry.paths import expand_user_path
from registry.schema import Accelerator
from registry.suggest import close_matches

#: RAM of a `cpu` spec that does not say ram= (decimal GB, like every size in a spec).
DEFAULT_CPU_RAM_BYTES = 16 * 10**9
#: RAM of a GPU node that does not say ram=: twice its GPUs' memory (room to stage weights), at least this.
MIN_GPU_NODE_RAM_BYTES = 16 * 10**9
GPU_NODE_RAM_FACTOR = 2
#: Free disk of a node that does not say disk=.
DEFAULT_DISK_BYTES = 10**12
#: Cores of a node that does not say cores=: 8, or 8 per GPU on a GPU node.
DEFAULT_CORES = 8
#: Bounds outside which a figure is a typo, not a machine (they also keep parsing linear and small).
MAX_GPUS_PER_NODE = 64
MAX_NODES = 1024
#: Longest text spec: room for 1,024 nodes of a few GPUs each; a longer one is a paste gone wrong.
MAX_SPEC_CHARS = 64 * 1024
#: Largest size any spec or option may state (1 EB); above it a figure cannot be a machine's.
MAX_SIZE_BYTES = 10**18
MIN_RAM_BYTES = 256 * 10**6
MAX_RAM_BYTES = 64 * 10**12
MAX_DISK_BYTES = 10**15
MAX_CORES = 4096
SPEC_CPU_MODEL = "unspecified CPU (hardware spec)"
#: Longest spec text kept as the snapshot's label (what plans print as the machine's name).
MAX_LABEL_CHARS = 200

_KEYS = ("ram", "disk", "cores")
_SIZE = re.compile(r"^([0-9]+)((?:\.[0-9]+)?)\s*([kmgtpe]?)(i?)b$", re.IGNORECASE | re.ASCII)
_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_COUNTED = re.compile(r"^(-?[0-9]+)\s*[x×*]\s*(.+)$", re.IGNORECASE | re.ASCII)
_COUNT_LAST = re.compile(r"^(.+?)\s*[x×*]\s*([0-9]+)$", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class NodeSpec:
    """One machine of a spec: GPU kinds with counts, and RAM/disk/cores where stated."""

    gpus: tuple[tuple[Accelerator, int], ...]
    ram_bytes: int | None = None
    disk_bytes: int | None = None
    cores: int | None = None


class _Problem(ValueError):
    """A spec problem found before the whole spec text is known to the error (internal)."""

    def __init__(self, problem: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(problem)
        self.problem = problem
        self.suggestions = list(suggestions)


# --------------------------------------------------------------------------- sizes and counts


def parse_size(text: str, what: str) -> int:
    """'512GB', '1.5TB', '64GiB' as int bytes (GB = 10^9, GiB = 2^30); a unit is required and digits are
    ASCII. A size above MAX_SIZE_BYTES comes back as MAX_SIZE_BYTES + 1 without converting all of its
    digits (a 400-digit size costs nothing), so the caller's bound check reports it."""
    cleaned = str(text).strip()
    match = _SIZE.match(cleaned)
    if not match:
        hint = "write a unit" if ascii_int(cleaned, 0) is not None else "write a number and a unit"
        raise _Problem(
            f"{what}={short_text(cleaned, SHOWN_CHARS)} is not a size ({hint}: 64GB, 64GiB, 68719476736B)"
        )
    whole, fraction, prefix, binary = match.groups()
    if len(whole.lstrip("0")) > len(str(MAX_SIZE_BYTES)):
        return MAX_SIZE_BYTES + 1
    value = round(float(whole + fraction[:20]) * (1024 if binary else 1000) ** _POWER[prefix.lower()])
    return min(value, MAX_SIZE_BYTES + 1)


def _bounded(value: int, low: int, high: int, what: str, text: str) -> int:
    show = str if what == "cores" else _show
    if value < low:
        raise _Problem(
            f"{what}={short_text(text, SHOWN_CHARS)} is less than any machine has (at least {show(low)})"
        )
    if value > high:
        raise _Problem(
            f"{what}={short_text(text, SHOWN_CHARS)} is more than one machine holds (at most {show(high)})"
        )
    return value


def _show(n_bytes: int) -> str:
    for unit, size in (("EB", 10**18), ("PB", 10**15), ("TB", 10**12), ("GB", 10**9), ("MB", 10**6)):
        if n_bytes >= size:
            return f"{n_bytes / size:g} {unit}"
    return f"{n_bytes} B"


def _option(key: str, value: str) -> int:
    if key == "ram":
        return _bounded(parse_size(value, key), MIN_RAM_BYTES, MAX_RAM_BYTES, key, value)
    if key == "disk":
        return _bounded(parse_size(value, key), 0, MAX_DISK_BYTES, key, value)
    cores = ascii_int(value, MAX_CORES)
    if cores is None:
        raise _Problem(f"cores={short_text(value, SHOWN_CHARS)} is not a whole number (digits 0-9)")
    return _bounded(cores, 1, MAX_CORES, key, value)


def _accelerator(name: str, catalog: Catalog) -> Accelerator:
    try:
        return catalog.accelerator(name)
    except UnknownAcceleratorError as error:
        suggestions = list(error.suggestions)
        count_last = _COUNT_LAST.match(name)
        if count_last:
            try:
                catalog.accelerator(count_last.group(1))
                suggestions.insert(0, f"{count_last.group(2)}x{count_last.group(1)} (count first)")
            except UnknownAcceleratorError:
                pass
        known = sorted(a.id for a in catalog.accelerators)
        listed = ", ".join(known[:30]) + (" …" if len(known) > 30 else "")
        raise _Problem(
            f"unknown GPU '{short_text(name, SHOWN_CHARS)}' (known GPUs: {listed or 'none in this catalog'}; or write cpu)",
            suggestions,
        ) from None


def _gpu_entry(item: str, catalog: Catalog) -> tuple[Accelerator, int]:
    counted = _COUNTED.match(item)
    written, name = (counted.group(1), counted.group(2).strip()) if counted else ("1", item)
    acc = _accelerator(name, catalog)
    count = ascii_int(written.removeprefix("-"), MAX_GPUS_PER_NODE)
    if written.startswith("-") or not count:
        raise _Problem(
            f"{short_text(written, SHOWN_CHARS)} × {acc.id} is no GPU at all (leave it out, or write cpu for no GPUs)"
        )
    if count > MAX_GPUS_PER_NODE:
        raise _too_many_gpus(f"{short_text(written, SHOWN_CHARS)} × {acc.id}")
    return acc, count


def _too_many_gpus(what: str) -> _Problem:
    return _Problem(
        f"{what} is more GPUs than one machine holds (at most {MAX_GPUS_PER_NODE} per node; "
        "describe more GPUs as several nodes joined with '+', or plan a fleet with `berth fleet plan`)"
    )


# --------------------------------------------------------------------------- text specs


def parse_spec_nodes(text: str, catalog: Catalog) -> list[NodeSpec]:
    """The nodes of a text spec: '+' separates machines, ',' the entries of one (GPUs, cpu, key=value)."""
    if not text.strip():
        raise _Problem("the spec is empty")
    if len(text) > MAX_SPEC_CHARS:
        raise _Problem(
            f"the spec is {len(text):,} characters long, more than a spec can be (at most {MAX_SPEC_CHARS:,})"
        )
    parts = text.split("+", MAX_NODES)
    if len(parts) > MAX_NODES:
        raise _Problem(f"more than {MAX_NODES} nodes is more than a spec can describe")
    nodes = []
    for number, part in enumerate(parts, start=1):
        try:
            nodes.append(_parse_node(part, catalog))
        except _Problem as problem:
            if len(parts) > 1:
                raise _Problem(
                    f"node {number} ('{short_text(part.strip(), SHOWN_CHARS)}'): {problem.problem}",
                    problem.suggestions,
                ) from None
            raise
    return nodes


def _parse_node(text: str, catalog: Catalog) -> NodeSpec:
    if not text.strip():
        raise _Problem("a node is empty (two '+' in a row, or one at an end?)")
    gpus: list[tuple[Accelerator, int]] = []
    options: dict[str, int] = {}
    cpu = False
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise _Problem("an entry is empty (two commas in a row, or one at an end?)")
        if "=" in item:
            _setting(item, options)
        elif item.lower() == "cpu":
            cpu = True
        else:
            gpus.append(_gpu_entry(item, catalog))
            if sum(count for _, count in gpus) > MAX_GPUS_PER_NODE:
                raise _too_many_gpus(f"{sum(count for _, count in gpus)} GPUs in one node")
    if cpu and gpus:
        raise _Problem("'cpu' means a machine without GPUs, but GPUs are named too")
    _check_apple(gpus)
    if not cpu and not gpus:
        raise _Problem("name the GPUs (8xH100) or write cpu for a machine without GPUs")
    return NodeSpec(tuple(gpus), options.get("ram"), options.get("disk"), options.get("cores"))


def _check_apple(gpus: Sequence[tuple[Accelerator, int]]) -> None:
    """An Apple silicon Mac has one chip and no other GPU."""
    apple = [acc for acc, _ in gpus if acc.vendor == "apple"]
    if apple and (len(gpus) > 1 or gpus[0][1] > 1):
        raise _Problem(
            f"a Mac has one Apple chip and no other GPU; name one chip with its memory ({apple[0].id},ram=64GB)"
        )


def _setting(item: str, options: dict[str, int]) -> None:
    """Read one key=value entry of a node into `options`."""
    key, _, value = item.partition("=")
    key = key.strip().lower()
    if key not in _KEYS:
        close = close_matches(key, _KEYS, n=1, cutoff=0.5)
        raise _Problem(
            f"unknown setting '{short_text(key, SHOWN_CHARS)}' (settings: {', '.join(_KEYS)})", close
        )
    if key in options:
        raise _Problem(f"{key}= is given twice")
    options[key] = _option(key, value.strip())


# --------------------------------------------------------------------------- YAML files


def _option_field(key: str) -> Any:
    """A validator that reads a YAML value as the text spec's key=value would be read."""

    def parse(value: object) -> object:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return _option(key, str(value))
        return value

    return BeforeValidator(parse)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class GpuGroupFile(_Strict):
    """GPUs of one kind in a node."""

    kind: str
    """Catalog accelerator id or alias (a100-80gb, H100, rtx-4090)."""
    count: Annotated[int, Field(ge=1, le=MAX_GPUS_PER_NODE)] = 1
    """How many."""


class NodeFile(_Strict):
    """One machine."""

    gpus: list[GpuGroupFile] = Field(default_factory=list)
    """GPU kinds and counts; empty or absent for a machine without GPUs."""
    ram: Annotated[int, _option_field("ram"), Field(ge=MIN_RAM_BYTES, le=MAX_RAM_BYTES)] | None = None
    """RAM with a unit (512GB, 64GiB); default as for text specs."""
    disk: Annotated[int, _option_field("disk"), Field(ge=0, le=MAX_DISK_BYTES)] | None = None
    """Free disk with a unit (2TB)."""
    cores: Annotated[int, _option_field("cores"), Field(ge=1, le=MAX_CORES)] | None = None
    """CPU cores."""


class HardwareFile(_Strict):
    """A hardware spec file: `nodes:`, a list of machines (see NodeFile)."""

    nodes: Annotated[list[NodeFile], Field(min_length=1, max_length=MAX_NODES)]
    """The machines; GPUs of an NVLink kind on one node are NVLink peers."""


def parse_spec_yaml(text: str, catalog: Catalog) -> list[NodeSpec]:
    """The nodes of a YAML hardware file's text."""
    import yaml  # here, not at the top: a spec given inline (`--hardware rtx-4090`) parses no YAML

    from registry.safe_yaml import load_yaml_bounded

    try:
        raw = load_yaml_bounded(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None)
        raise _Problem(
            f"not valid YAML{where}" + (f" ({short_text(problem, 160)})" if problem else "")
        ) from None
    except (ValueError, RecursionError):  # a number of thousands of digits; nesting thousands deep
        raise _Problem("not a hardware file (a number too long, or nesting too deep)") from None
    if not isinstance(raw, dict):
        raise _Problem(
            "the file must be a mapping with nodes: (a list of machines, each with gpus/ram/disk/cores)"
        )
    try:
        spec = HardwareFile.model_validate(raw)
    except ValidationError as error:
        raise _yaml_problem(error) from None
    nodes = []
    for number, node in enumerate(spec.nodes):
        try:
            gpus = tuple((_accelerator(g.kind, catalog), g.count) for g in node.gpus)
            if sum(g.count for g in node.gpus) > MAX_GPUS_PER_NODE:
                raise _too_many_gpus(f"{sum(g.count for g in node.gpus)} GPUs")
        except _Problem as problem:
            raise _Problem(f"nodes.{number}: {problem.problem}", problem.suggestions) from None
        nodes.append(NodeSpec(gpus, node.ram, node.disk, node.cores))
    return nodes


def _yaml_problem(error: ValidationError) -> _Problem:
    first = error.errors(include_url=False)[0]
    path = first["loc"]
    loc = ".".join(str(p) for p in path) or "the file"
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _Problem):
        return _Problem(f"{loc}: {cause.problem}")
    if first["type"] == "extra_forbidden":
        owners: dict[int, type[BaseModel]] = {1: HardwareFile, 3: NodeFile, 5: GpuGroupFile}
        owner = owners.get(len(path), NodeFile)
        keys = list(owner.model_fields)
        close = close_matches(str(path[-1]), keys, n=1, cutoff=0.5)
        return _Problem(f"{loc}: unknown key (keys here: {', '.join(keys)})", close)
    if len(path) == 4 and path[2] == "gpus" and first["type"] == "model_type":
        return _Problem(f"{loc}: write each GPU kind as a mapping, like {{kind: h100, count: 8}}")
    return _Problem(f"{loc}: {first['msg']}")


def _is_path(text: str) -> bool:
    stripped = text.strip()
    return stripped.lower().endswith((".yaml", ".yml")) or "/" in stripped or "\\" in stripped


# --------------------------------------------------------------------------- snapshot


#: RAM a named spec's operating system keeps for itself (kernel, services, a desktop, page cache it will not
#: give up): a probe sees only what is available after it, a spec names the installed total. A share of the RAM,
#: at least 1 GiB (a headless server) and at most 8 GiB (large servers do not need more). The planner keeps its
#: own headroom (launcher.plan.placement.RAM_HEADROOM_BYTES) on top, as it does on a probed machine.
SPEC_OS_RESERVE_FRACTION = 0.08
SPEC_OS_RESERVE_MIN = 1 * 2**30
SPEC_OS_RESERVE_MAX = 8 * 2**30


def spec_os_reserve(ram_bytes: int) -> int:
    """Bytes of a spec's RAM taken as used by the operating system."""
    reserve = int(ram_bytes * SPEC_OS_RESERVE_FRACTION)
    return min(max(reserve, SPEC_OS_RESERVE_MIN), SPEC_OS_RESERVE_MAX, ram_bytes // 2)


def host_from_nodes(nodes: Sequence[NodeSpec], label: str) -> HostSnapshot:
    """The snapshot a spec stands for: GPUs fully free, nominal RAM/disk/cores (defaults documented above).

    With several nodes, RAM, disk and cores are those of the smallest node: a process offloads only to its
    own machine. GPU indexes count on over the nodes; `GpuInfo.node` says which machine a GPU is in.
    """
    gpus: list[GpuInfo] = []
    rams, disks, cores = [], [], []
    for number, node in enumerate(nodes):
        kinds = [acc for acc, count in node.gpus for _ in range(count)]
        ram = node.ram_bytes if node.ram_bytes is not None else default_ram_bytes(kinds)
        if any(acc.vendor == "apple" for acc in kinds):
            ram = mac_memory_bytes(ram)
        gpus.extend(_unified(g, ram) for g in node_gpus(kinds, len(gpus), number))
        rams.append(ram)
        disks.append(node.disk_bytes if node.disk_bytes is not None else DEFAULT_DISK_BYTES)
        cores.append(node.cores or max(DEFAULT_CORES, DEFAULT_CORES * len(kinds)))
    ram = min(rams)
    return HostSnapshot(
        label=label,
        gpus=tuple(gpus),
        ram_total_bytes=ram,
        ram_available_bytes=ram - spec_os_reserve(ram),
        cpu=CpuInfo(model=SPEC_CPU_MODEL, physical_cores=min(cores), logical_cores=min(cores)),
        swap_free_bytes=0,
        disk_free_bytes=min(disks),
        disk_path=None,
        nodes=len(nodes),
        source="spec",
    )


def node_gpus(kinds: Sequence[Accelerator], first: int, node: int) -> list[GpuInfo]:
    """One node's GPUs, indexes from `first`; GPUs of one NVLink kind are each other's peers. Each kind's
    index tuple is built once and sliced, so the cost is that of the peer lists (at most 63 per GPU)."""
    groups: dict[str, list[int]] = {}
    for k, acc in enumerate(kinds):
        groups.setdefault(acc.id, []).append(first + k)
    out = []
    for k, acc in enumerate(kinds):
        group = groups[acc.id] if acc.interconnect == "nvlink" else []
        peers = tuple(i for i in group if i != first + k)
        out.append(_gpu(acc, first + k, node, peers))
    return out


def mac_memory_bytes(stated: int) -> int:
    """A Mac's memory as hw.memsize reports it: Apple sells binary sizes and calls them GB, so a whole number of
    decimal GB (ram=128GB) means that many GiB (137438953472 bytes); a size given in GiB or bytes is kept."""
    return stated // 10**9 * 2**30 if stated % 10**9 == 0 else stated


def _unified(gpu: GpuInfo, ram: int) -> GpuInfo:
    """An Apple chip's GPU in a Mac with `ram` bytes of unified memory: the macOS working-set limit of it."""
    if not gpu.unified_memory:
        return gpu
    limit = working_set_limit(ram)
    return replace(gpu, total_bytes=limit, free_bytes=limit)


def default_ram_bytes(gpus: Sequence[Accelerator]) -> int:
    """RAM assumed for a node that does not say: 16 GB without GPUs; else twice the GPU memory, at least
    16 GB; on Apple silicon the memory is shared, so the GPU's memory is the machine's."""
    if not gpus:
        return DEFAULT_CPU_RAM_BYTES
    if any(acc.vendor == "apple" for acc in gpus):
        return max(acc.memory_bytes for acc in gpus)
    return max(MIN_GPU_NODE_RAM_BYTES, GPU_NODE_RAM_FACTOR * sum(acc.total_bytes for acc in gpus))


def _gpu(acc: Accelerator, index: int, node: int, peers: tuple[int, ...]) -> GpuInfo:
    major, _, minor = acc.compute_capability.partition(".")
    return GpuInfo(
        index=index,
        name=acc.name,
        total_bytes=acc.total_bytes,
        free_bytes=acc.total_bytes,
        used_bytes=0,
        compute_capability=(int(major), int(minor)),
        vendor=acc.vendor,
        accelerator_id=acc.id,
        bandwidth_bytes_per_s=acc.bandwidth_bytes_per_s,
        bf16_tflops=acc.bf16_tflops,
        node=node,
        nvlink_peers=peers,
        unified_memory=acc.vendor == "apple",
    )


# --------------------------------------------------------------------------- entry points


def parse_hardware_spec(text: str, catalog: Catalog) -> HostSnapshot:
    """A HostSnapshot for a spec ('2xA100-80GB,ram=512GB', 'cpu,ram=32GB,cores=8', '8xH100+8xH100') or the
    path of a YAML file with `nodes:`; HardwareSpecError says what is wrong and shows valid specs."""
    label = text.strip()
    try:
        if _is_path(label):
            nodes = parse_spec_yaml(_read_spec_file(label), catalog)
        else:
            nodes = parse_spec_nodes(label, catalog)
    except _Problem as problem:
        raise HardwareSpecError(label, problem.problem, problem.suggestions) from None
    return host_from_nodes(nodes, short_text(label, MAX_LABEL_CHARS))


def _read_spec_file(path: str) -> str:
    """The file's text, at most MAX_SPEC_BYTES; UserPathError for '~nosuchuser', _Problem otherwise."""
    try:
        return read_text_capped(expand_user_path(path), MAX_SPEC_BYTES)
    except InputFileError as error:
        raise _Problem(error.problem) from None


def resolve_host(spec: str | None, catalog: Catalog, environ: Mapping[str, str]) -> HostSnapshot:
    """The machine to plan for: `spec` if given, else BERTH_HARDWARE from `environ`, else this machine."""
    if spec is not None:
        return parse_hardware_spec(spec, catalog)
    from_env = environ.get("BERTH_HARDWARE", "").strip()
    if from_env:
        try:
            return parse_hardware_spec(from_env, catalog)
        except HardwareSpecError as error:
            raise error.with_origin("BERTH_HARDWARE") from None
    from launcher.machine.probe import probe_host  # here: planning for named hardware probes nothing

    return probe_host(catalog, environ=environ)
