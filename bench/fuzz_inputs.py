"""Hostile-input generators for every parser, and a forked worker that runs each example under CPU and
memory limits; shared by tests/test_fuzz_parsers.py (a small budget) and bench/fuzz.py (10,000 a parser).

An example "escapes" when the parser raises anything but the errors it is meant to raise (BerthError, or the
parser's documented error), or when the worker dies (the CPU limit's SIGXCPU, a crash). Nothing here
imports torch.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import resource
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

#: Each example must end within these (issue 15): CPU seconds, and memory above the worker's baseline.
CPU_LIMIT_S = 2
MEMORY_LIMIT_BYTES = 256 * 2**20

# --------------------------------------------------------------------------- building blocks

#: Digits that str.isdigit() accepts but are not ASCII (superscripts, Arabic-Indic, fullwidth, Devanagari).
UNICODE_DIGITS = "²³¹٣۴０１２３४৫"
HUGE_NUMBERS = ("9" * 400, "1" + "0" * 30, "18446744073709551616", "1180591620717411303424", "1e400")
GPU_NAMES = ("h100", "H100-SXM", "a100-80gb", "l40s", "rtx-4090", "mi300x", "m2-ultra", "nosuchgpu", "")
UNITS = ("", "B", "KB", "MB", "GB", "TB", "PB", "EB", "KiB", "MiB", "GiB", "TiB", "gb", "ib", "XB")

_short_text = st.text(max_size=12)
_number_text = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**20).map(str),
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(("nan", "inf", "-inf", "0", "-0", "0.0", "1.5", ".5", "5.", "1_000", "0x10", " 8 ")),
    st.text(alphabet="0123456789" + UNICODE_DIGITS + ".-", min_size=1, max_size=8),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
size_text = st.one_of(
    st.builds(lambda n, u: n + u, _number_text, st.sampled_from(UNITS)),
    _short_text,
)


def _spec_item() -> st.SearchStrategy[str]:
    count = st.one_of(_number_text, st.sampled_from(("", "1", "8", "1024", "1025")))
    sep = st.sampled_from(("x", "X", "×", "*", " x "))
    gpu = st.builds(lambda c, s, g: f"{c}{s}{g}" if c else g, count, sep, st.sampled_from(GPU_NAMES))
    key = st.sampled_from(("ram", "disk", "cores", "RAM", "memory", ""))
    setting = st.builds(lambda k, v: f"{k}={v}", key, st.one_of(size_text, _number_text))
    return st.one_of(gpu, setting, st.just("cpu"), _short_text)


spec_text = st.one_of(
    st.lists(st.lists(_spec_item(), min_size=1, max_size=5).map(",".join), min_size=1, max_size=4).map(
        "+".join
    ),
    st.builds(lambda n, g: ",".join([g] * n), st.integers(1, 3000), st.sampled_from(("h100", "1024xh100"))),
    st.text(max_size=40).filter(lambda t: "/" not in t and "\\" not in t and not t.endswith(("yaml", "yml"))),
)

max_memory_text = (
    st.lists(
        st.builds(
            lambda d, v: f"{d}={v}",
            st.one_of(st.sampled_from(("cpu", "disk", "0", "1", "CPU", "gpu", "")), _number_text),
            size_text,
        ),
        min_size=1,
        max_size=4,
    ).map(",".join)
    | _short_text
)

# --------------------------------------------------------------------------- YAML documents

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from((10**400, -(10**400), 2**64)),
    st.floats(allow_nan=True, allow_infinity=True),
    _short_text,
    size_text,
)
values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_short_text, inner, max_size=4)),
    max_leaves=12,
)

BASE_MODEL: dict[str, Any] = {
    "id": "fuzz/model",
    "aliases": ["fuzz-model"],
    "family": "fuzz",
    "model_type": "mistral",
    "task": "chat",
    "license": "apache-2.0",
    "native_dtype": "bfloat16",
    "context_length": 16384,
    "params": 1831201280,
    "params_source": "computed",
    "architecture": {
        "num_layers": 24,
        "hidden_size": 2560,
        "intermediate_size": 6912,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
        "tie_word_embeddings": False,
    },
    "source": "https://example.invalid/config.json",
}
BASE_ACCELERATOR: dict[str, Any] = {
    "id": "fuzz-gpu",
    "name": "Fuzz GPU",
    "aliases": ["fuzzgpu"],
    "memory_bytes": "80GB",
    "bandwidth_bytes_per_s": "1TB",
    "bf16_tflops": 100,
    "compute_capability": "9.0",
    "interconnect": "nvlink",
    "interconnect_bytes_per_s": "900GB",
}
BASE_FLEET: dict[str, Any] = {
    "schema_version": 1,
    "nodes": [{"name": "h100", "accelerator": "h100-sxm", "gpus_per_node": 8, "count": 1, "ram": "2TB"}],
    "network": {"bandwidth_bytes_per_s": "50GB"},
    "engine": {"gpu_memory_utilization": 0.9},
    "models": [{"model": "gemma-2-9b-it", "context": 8192, "concurrency": 4}],
}
BASE_HARDWARE: dict[str, Any] = {
    "nodes": [{"gpus": [{"kind": "h100", "count": 8}], "ram": "512GB", "cores": 64}]
}
#: YAML that is cheap to parse and dear to print: nine levels of nine aliases, and an alias to itself.
BILLION_LAUGHS = "&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"
for _prev, _cur in zip("abcdefgh", "bcdefghi", strict=True):
    BILLION_LAUGHS = f"[{BILLION_LAUGHS}, &{_cur} [{', '.join([f'*{_prev}'] * 9)}]]"


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a template (dict keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*prefix, index))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    in_dict = isinstance(doc, dict) and head in doc
    in_list = isinstance(doc, list) and isinstance(head, int) and head < len(doc)
    inside = in_dict or in_list
    if not inside:  # an earlier replacement took this path away
        return doc
    copy: Any = list(doc) if isinstance(doc, list) else dict(doc)
    copy[head] = _replace(doc[head], rest, value)
    return copy


@st.composite
def mutated_yaml(draw: st.DrawFn, template: Any) -> str:
    """The template's YAML with a few values replaced (random values, billion laughs, unhashable keys), or a
    broken document: random text, cut short, binary junk."""
    kind = draw(st.sampled_from(("mutate", "mutate", "mutate", "laughs", "text", "cut", "top")))
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "top":
        return yaml.safe_dump(draw(values))
    doc = template
    paths = _paths(template)
    for _ in range(draw(st.integers(1, 3))):
        doc = _replace(doc, draw(st.sampled_from(paths)), draw(values))
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    if kind == "laughs":
        key = draw(st.sampled_from([str(p[-1]) for p in paths if isinstance(p[-1], str)]))
        text = text.replace(f"{key}:", f"{key}: {BILLION_LAUGHS}\n  _was:", 1)
    if kind == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text


overlay_yaml = st.one_of(
    mutated_yaml({"models": [BASE_MODEL]}),
    mutated_yaml({"accelerators": [BASE_ACCELERATOR]}),
)
fleet_yaml = mutated_yaml(BASE_FLEET)
hardware_yaml = mutated_yaml(BASE_HARDWARE)

# --------------------------------------------------------------------------- the parsers


@dataclass(frozen=True)
class Target:
    """One parser: what to generate, how to call it on an example, and the errors it may raise."""

    name: str
    strategy: st.SearchStrategy[str]
    run: Callable[[str, Any], object]
    allowed: Callable[[], tuple[type[BaseException], ...]]


def _berth_errors() -> tuple[type[BaseException], ...]:
    from registry.errors import BerthError

    return (BerthError,)


def _size_errors() -> tuple[type[BaseException], ...]:
    from launcher.machine import hwspec

    return (*_berth_errors(), getattr(hwspec, "_Problem", ValueError))


def _max_memory_errors() -> tuple[type[BaseException], ...]:
    import click

    return (*_berth_errors(), click.UsageError)


def _in_file(text: str, suffix: str) -> Path:
    handle, name = tempfile.mkstemp(suffix=suffix)
    with os.fdopen(handle, "w", encoding="utf-8", errors="surrogateescape") as out:
        out.write(text)
    return Path(name)


def _spec(text: str, catalog: Any) -> object:
    from launcher.machine.hwspec import parse_hardware_spec

    return parse_hardware_spec(text, catalog)


def _spec_file(text: str, catalog: Any) -> object:
    path = _in_file(text, ".yaml")
    try:
        return _spec(str(path), catalog)
    finally:
        path.unlink()


def _overlay(text: str, _catalog: Any) -> object:
    from registry.catalog import load_catalog

    path = _in_file(text, ".yaml")
    try:
        return load_catalog(overlay=path)
    finally:
        path.unlink()


def _fleet(text: str, catalog: Any) -> object:
    from launcher.fleet.load import load_fleet

    path = _in_file(text, ".yaml")
    try:
        return load_fleet(path, catalog)
    finally:
        path.unlink()


def _size(text: str, _catalog: Any) -> object:
    from launcher.machine.hwspec import parse_size

    return parse_size(text, "size")


def _max_memory(text: str, _catalog: Any) -> object:
    from launcher.cli.launch_cmd import parse_max_memory

    return parse_max_memory(text)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("spec-text", spec_text, _spec, _berth_errors),
        Target("spec-file", hardware_yaml, _spec_file, _berth_errors),
        Target("overlay", overlay_yaml, _overlay, _berth_errors),
        Target("fleet-file", fleet_yaml, _fleet, _berth_errors),
        Target("size", size_text, _size, _size_errors),
        Target("max-memory", max_memory_text, _max_memory, _max_memory_errors),
    )
}

# --------------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class Outcome:
    """What one example did: `escape` names what got out ('' when the parser behaved)."""

    escape: str
    detail: str
    cpu_s: float
    peak_bytes: int


def _vm_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _run_one(target: Target, text: str, catalog: Any, allowed: tuple[type[BaseException], ...]) -> Outcome:
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = used.ru_utime + used.ru_stime
    soft = math.ceil(cpu_before) + CPU_LIMIT_S + 1  # whole seconds; the +1 covers the rounding
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.RLIM_INFINITY))
    escape = detail = ""
    try:
        target.run(text, catalog)
    except allowed:
        pass
    except BaseException as error:  # everything else is what the fuzzer is looking for
        escape = type(error).__name__
        detail = "".join(traceback.format_exception_only(type(error), error))[-300:].strip()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - cpu_before
    if not escape and cpu > CPU_LIMIT_S:
        escape, detail = "SlowExample", f"{cpu:.2f} s of CPU"
    return Outcome(escape, detail, cpu, after.ru_maxrss * 1024)


def _serve(conn: Connection, target_name: str) -> None:
    from registry.catalog import load_catalog

    target = TARGETS[target_name]
    catalog = load_catalog(overlay=False)
    allowed = target.allowed()
    limit = _vm_bytes() + MEMORY_LIMIT_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.chdir(tempfile.mkdtemp(prefix="berth-fuzz-"))
    conn.send(("ready", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))
    while True:
        text = conn.recv()
        if text is None:
            return
        conn.send(_run_one(target, text, catalog, allowed))


class Worker:
    """A forked child that runs one target's examples, each under the CPU and memory limits; restarted when
    an example kills it (that example is reported as the escape 'WorkerDied')."""

    def __init__(self, target_name: str) -> None:
        self.target_name = target_name
        self.baseline_bytes = 0
        self._process: Any = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        parent, child = multiprocessing.get_context("fork").Pipe()
        process = multiprocessing.get_context("fork").Process(
            target=_serve, args=(child, self.target_name), daemon=True
        )
        process.start()
        child.close()
        _, self.baseline_bytes = parent.recv()
        self._process, self._conn = process, parent
        return parent

    def run(self, text: str) -> Outcome:
        conn = self._conn or self._start()
        started = time.process_time()
        try:
            conn.send(text)
            outcome: Outcome = conn.recv()
            return outcome
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self._process.join(5)
            code = self._process.exitcode
            self._conn = None
            cpu = float(CPU_LIMIT_S) if code == -24 else time.process_time() - started
            return Outcome("WorkerDied", f"exit code {code} (-24: SIGXCPU, the CPU limit)", cpu, 0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.send(None)
            self._process.join(5)
            self._conn = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
