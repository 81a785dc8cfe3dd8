"""`berth plan MODEL`: the whole plan for one model on this machine or named hardware."""

from __future__ import annotations

from dataclasses import replace

import click

from launcher.cli.context import echo_json, get_catalog
from launcher.cli.errors import EXIT_FAILURE
from launcher.cli.hub_out import echo_provenance, hub_json, say_progress, trust_remote_code_option
from launcher.cli.options import PlanOptions, plan_options, resolve_host_for
from launcher.machine.host import HostSnapshot
from launcher.plan.calibration import calibrated, calibration_for
from launcher.plan.errors import DoesNotFitError
from launcher.plan.measured import Measurement, machine_key
from launcher.plan.report import (
    does_not_fit_to_dict,
    measured_to_dict,
    plan_to_dict,
    render_does_not_fit,
    render_measured,
    render_plan,
)
from launcher.run.runtime import plan_source
from launcher.run.source import resolve_source
from launcher.run.store import latest_measurement, speed_measurements


@click.command("plan")
@click.argument("model")
@plan_options
@click.option(
    "--emit", type=click.Choice(["python"]), default=None, help="Print the code that loads it as planned."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@trust_remote_code_option
@click.pass_context
def plan_command(
    ctx: click.Context,
    model: str,
    options: PlanOptions,
    emit: str | None,
    as_json: bool,
    trust_remote_code: bool,
) -> None:
    """How MODEL should run here: dtype, GPUs, quantization or offload, memory per device, speed, and why.

    MODEL is a catalog id or alias, a local model folder, a .gguf file, or any Hugging Face repository
    OWNER/NAME[@REVISION] (read from the Hub without downloading weights, then cached).
    """
    catalog = get_catalog(ctx)
    source = resolve_source(model, catalog, trust_remote_code=trust_remote_code, progress=say_progress)
    card = source.card
    host = resolve_host_for(ctx, options.hardware)
    # a GGUF file's tensors, or a Hub GGUF repository's best quant file: planned for llama.cpp
    result = plan_source(source, host, options.request(), catalog.accelerators)
    if isinstance(result, DoesNotFitError):
        if as_json:
            echo_json(does_not_fit_to_dict(result) | {"host": host.label} | hub_json(source))
        else:
            click.echo(render_does_not_fit(result, host.label))
            echo_provenance(source)
        ctx.exit(EXIT_FAILURE)
    if host.source == "probe":  # this machine's own launches correct the speed estimate
        found = calibration_for(result.strategy, speed_measurements(machine_key(host)))
        result = replace(result, speed=calibrated(result.speed, found))
    if emit == "python":
        from launcher.plan.emit import python_snippet

        click.echo(python_snippet(card, result), nl=False)
        return
    measured = measured_here(card.id, result.precision.label, host)
    if as_json:
        echo_json(plan_to_dict(result) | {"measured": measured_to_dict(measured)} | hub_json(source))
        return
    click.echo(render_plan(result))
    if measured is not None:
        click.echo("\n" + render_measured(measured))
    echo_provenance(source)


def measured_here(model_id: str, precision: str, host: HostSnapshot) -> Measurement | None:
    """The newest launch measurement of this model and precision on this machine (none for named hardware)."""
    if host.source != "probe":
        return None
    return latest_measurement(model_id, precision, machine_key(host))
