"""The plan options every planning command shares (--context … --hardware) as one PlanOptions value (click only)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, cast

import click

from launcher.cli.context import get_catalog
from launcher.machine.host import HostSnapshot
from launcher.machine.numbers import SHOWN_CHARS, ascii_int
from launcher.plan.errors import PlanRequestError
from launcher.plan.request import KvCacheType, PlanRequest, Runtime
from registry.errors import short_text
from registry.memory import Quant
from registry.schema import Dtype

#: Bounds of whole-number options: far above any real value, small enough that nothing downstream overflows.
MAX_TOKENS = 100_000_000
MAX_BATCH = 1_000_000
MAX_GPU_INDEX = 1023
MAX_SEED = 2**63 - 1


class WholeNumber(click.ParamType):
    """A whole number typed with ASCII digits 0-9 within [low, high] (click's int takes '١٠' and 400 digits)."""

    name = "integer"

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number: int | None = value
        else:
            number = ascii_int(str(value), self.high)
        if number is None:
            self.fail(
                f"'{short_text(str(value), SHOWN_CHARS)}' is not a whole number (digits 0-9)", param, ctx
            )
        if not self.low <= number <= self.high:
            self.fail(
                f"{short_text(str(value), SHOWN_CHARS)} is not between {self.low} and {self.high:,}",
                param,
                ctx,
            )
        return number

    def __repr__(self) -> str:
        return f"WholeNumber({self.low}, {self.high})"


def gpu_index(text: str) -> int | None:
    """A GPU index as typed ('0', ' 3 '); None unless ASCII digits within 0..MAX_GPU_INDEX."""
    index = ascii_int(text, MAX_GPU_INDEX)
    return index if index is not None and index <= MAX_GPU_INDEX else None


@dataclass(frozen=True)
class PlanOptions:
    """What the user asked on the command line about how to plan, before it is checked."""

    context: int | None = None
    batch: int = 1
    dtype: str | None = None
    quant: str | None = None
    gpus: str | None = None
    """GPU indexes as typed: '0,1'."""
    cpu_only: bool = False
    no_offload: bool = False
    allow_slow: bool = False
    runtime: str | None = None
    """'auto' (or None), 'llama.cpp' or 'transformers'."""
    kv_cache: str | None = None
    """llama.cpp's KV cache type: f16, q8_0 or q4_0 (None: chosen)."""
    hardware: str | None = None
    """A hardware spec standing in for this machine (None: $BERTH_HARDWARE, else a probe)."""

    def request(self) -> PlanRequest:
        """The PlanRequest these options ask for; PlanRequestError when they contradict each other."""
        gpu_ids: tuple[int, ...] | None = None
        if self.gpus:
            indexes = [gpu_index(part) for part in self.gpus.split(",") if part.strip()]
            if None in indexes:
                raise click.BadParameter(
                    f"give GPU indexes like 0 or 0,1 (digits 0-9, at most {MAX_GPU_INDEX})",
                    param_hint="--gpus",
                )
            gpu_ids = tuple(i for i in indexes if i is not None)
        if self.cpu_only and (self.quant in ("int8", "nf4") or gpu_ids):
            raise PlanRequestError(
                "--cpu contradicts --quant/--gpus", hint="bitsandbytes and GPU choices need a GPU"
            )
        return PlanRequest(
            context=self.context,
            batch=self.batch,
            dtype=cast("Dtype | None", self.dtype),
            quant=cast("Quant | None", self.quant),
            gpus=gpu_ids,
            device="cpu" if self.cpu_only else "auto",
            allow_offload=not self.no_offload,
            allow_slow=self.allow_slow,
            runtime=cast("Runtime | None", None if self.runtime in (None, "auto") else self.runtime),
            kv_cache=cast("KvCacheType | None", self.kv_cache),
        )


def host_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--hardware: named hardware standing in for this machine."""
    return click.option(
        "--hardware",
        "hardware",
        default=None,
        metavar="SPEC",
        help='Plan for named hardware instead of this machine: "2xA100-80GB,ram=512GB", "rtx-4090", '
        '"cpu,ram=32GB", a YAML file. Default: $BERTH_HARDWARE, else this machine.',
    )(func)


_CLICK_OPTIONS: list[Callable[[Any], Any]] = [
    click.option(
        "--context", type=WholeNumber(1, MAX_TOKENS), default=None, help="Context length in tokens."
    ),
    click.option(
        "--batch", type=WholeNumber(1, MAX_BATCH), default=1, show_default=True, help="Sequences at once."
    ),
    click.option(
        "--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default=None, help="Force a dtype."
    ),
    click.option(
        "--quant",
        type=click.Choice(["int8", "nf4", "none"]),
        default=None,
        help="Force bitsandbytes 8/4-bit, or 'none' to rule quantization out.",
    ),
    click.option("--gpus", default=None, metavar="0,1", help="Use only these GPU indexes."),
    click.option("--cpu", "cpu_only", is_flag=True, help="Run on the CPU only."),
    click.option("--no-offload", is_flag=True, help="Never put layers in RAM or on disk behind a GPU."),
    click.option("--allow-slow", is_flag=True, help="Offer offload plans slower than 0.1 tokens/s."),
    click.option(
        "--runtime",
        type=click.Choice(["auto", "llama.cpp", "transformers"]),
        default=None,
        help="Force a runtime. Default (auto): llama.cpp for a GGUF file (run quantized), else transformers.",
    ),
    click.option(
        "--kv-cache",
        type=click.Choice(["f16", "q8_0", "q4_0"]),
        default=None,
        help="llama.cpp's KV cache type. Default: f16, else the first of q8_0, q4_0 that fits.",
    ),
    host_option,
]
_NAMES = tuple(f.name for f in fields(PlanOptions))


def plan_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared plan options to a command; it receives them as one `options: PlanOptions` argument."""

    @functools.wraps(func)
    def with_options(*args: Any, **kwargs: Any) -> Any:
        options = PlanOptions(**{name: kwargs.pop(name) for name in _NAMES})
        return func(*args, options=options, **kwargs)

    command: Callable[..., Any] = with_options
    for option in reversed(_CLICK_OPTIONS):
        command = option(command)
    return command


def resolve_host_for(ctx: click.Context, hardware: str | None) -> HostSnapshot:
    """Named hardware (--hardware or $BERTH_HARDWARE) or a probe of this machine, once per invocation."""
    from launcher.machine.hwspec import resolve_host

    obj = ctx.find_root().obj
    key = ("host", hardware)
    if key not in obj:
        obj[key] = resolve_host(hardware, get_catalog(ctx), os.environ)
    host: HostSnapshot = obj[key]
    return host
