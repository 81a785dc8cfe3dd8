"""`berth plan MODEL`: the whole plan for one model on this machine or named hardware."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from launcher.cli.context import echo_json, get_catalog
from launcher.cli.errors import EXIT_FAILURE
from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError, PlanRequestError
from launcher.plan.ladder import make_plan
from launcher.plan.report import (
    does_not_fit_to_dict,
    measured_to_dict,
    plan_to_dict,
    render_does_not_fit,
    render_measured,
    render_plan,
)
from launcher.plan.request import PlanRequest
from launcher.run.store import Measurement, latest_measurement, machine_key


def host_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--hardware: named hardware standing in for this machine."""
    return click.option(
        "--hardware",
        "hardware",
        default=None,
        metavar="SPEC",
        help='Plan for named hardware instead of this machine: "2xA100-80GB,ram=512GB", "rtx-4090", '
        '"cpu,ram=32GB", a YAML file. Default: $BERTH_HARDWARE, else this machine.',
    )(func)


def plan_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every planning command shares."""
    options: list[Callable[[Any], Any]] = [
        click.option("--context", type=click.IntRange(min=1), default=None, help="Context length in tokens."),
        click.option(
            "--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Sequences at once."
        ),
        click.option(
            "--dtype",
            type=click.Choice(["float32", "bfloat16", "float16"]),
            default=None,
            help="Force a dtype.",
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
        host_options,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_request(
    context: int | None,
    batch: int,
    dtype: str | None,
    quant: str | None,
    gpus: str | None,
    cpu_only: bool,
    no_offload: bool,
    allow_slow: bool,
) -> PlanRequest:
    """A PlanRequest from command-line options."""
    gpu_ids: tuple[int, ...] | None = None
    if gpus:
        try:
            gpu_ids = tuple(int(part) for part in gpus.split(",") if part.strip())
        except ValueError:
            raise click.BadParameter("give GPU indexes like 0 or 0,1", param_hint="--gpus") from None
    if cpu_only and (quant in ("int8", "nf4") or gpu_ids):
        raise PlanRequestError(
            "--cpu contradicts --quant/--gpus", hint="bitsandbytes and GPU choices need a GPU"
        )
    return PlanRequest(
        context=context,
        batch=batch,
        dtype=dtype,  # type: ignore[arg-type]
        quant=quant,  # type: ignore[arg-type]
        gpus=gpu_ids,
        device="cpu" if cpu_only else "auto",
        allow_offload=not no_offload,
        allow_slow=allow_slow,
    )


def resolve_host_for(ctx: click.Context, hardware: str | None) -> HostSnapshot:
    """Named hardware (--hardware or $BERTH_HARDWARE) or a probe of this machine, once per invocation."""
    from launcher.machine.hwspec import resolve_host

    obj = ctx.find_root().obj
    key = ("host", hardware)
    if key not in obj:
        obj[key] = resolve_host(hardware, get_catalog(ctx), os.environ)
    host: HostSnapshot = obj[key]
    return host


@click.command("plan")
@click.argument("model")
@plan_options
@click.option(
    "--emit", type=click.Choice(["python"]), default=None, help="Print the code that loads it as planned."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plan_command(
    ctx: click.Context,
    model: str,
    context: int | None,
    batch: int,
    dtype: str | None,
    quant: str | None,
    gpus: str | None,
    cpu_only: bool,
    no_offload: bool,
    allow_slow: bool,
    hardware: str | None,
    emit: str | None,
    as_json: bool,
) -> None:
    """How MODEL should run here: dtype, GPUs, quantization or offload, memory per device, speed, and why."""
    catalog = get_catalog(ctx)
    card = catalog.get(model)
    request = build_request(context, batch, dtype, quant, gpus, cpu_only, no_offload, allow_slow)
    host = resolve_host_for(ctx, hardware)
    result = make_plan(card, host, request, catalog.accelerators)
    if isinstance(result, DoesNotFitError):
        if as_json:
            echo_json(does_not_fit_to_dict(result) | {"host": host.label})
        else:
            click.echo(render_does_not_fit(result, host.label))
        ctx.exit(EXIT_FAILURE)
    if emit == "python":
        from launcher.plan.emit import python_snippet

        click.echo(python_snippet(card, result), nl=False)
        return
    measured = measured_here(card.id, result.precision.label, host)
    if as_json:
        echo_json(plan_to_dict(result) | {"measured": measured_to_dict(measured)})
        return
    click.echo(render_plan(result))
    if measured is not None:
        click.echo("\n" + render_measured(measured))


def measured_here(model_id: str, precision: str, host: HostSnapshot) -> Measurement | None:
    """The newest launch measurement of this model and precision on this machine (none for named hardware)."""
    if host.source != "probe":
        return None
    return latest_measurement(model_id, precision, machine_key(host))
