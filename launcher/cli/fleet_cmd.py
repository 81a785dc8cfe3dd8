"""`berth fleet plan|export`: capacity planning for a fleet, and configs for Ray Serve LLM, KubeRay, vLLM."""

from __future__ import annotations

from pathlib import Path

import click

from launcher.cli.context import echo_json, get_catalog
from launcher.cli.errors import EXIT_FAILURE
from launcher.fleet.export import DEFAULT_IMAGE, FORMATS, ExportFormat, export_text
from launcher.fleet.load import load_fleet
from launcher.fleet.planner import plan_fleet
from launcher.fleet.report import plan_text, plan_to_dict
from launcher.fleet.types import FleetPlan
from launcher.machine.paths import write_user_text
from registry.paths import expand_user_path


def _plan(ctx: click.Context, fleet_file: str) -> FleetPlan:
    return plan_fleet(load_fleet(fleet_file, get_catalog(ctx)))


@click.group("fleet")
def fleet_group() -> None:
    """Plan GPUs and machines for a workload; export configs for Ray Serve LLM, KubeRay or vLLM."""


@fleet_group.command("plan")
@click.argument("fleet_file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plan_command(ctx: click.Context, fleet_file: str, as_json: bool) -> None:
    """Replica shapes, counts and placement for FLEET_FILE; exit 1 when the fleet is too small."""
    plan = _plan(ctx, fleet_file)
    if as_json:
        echo_json(plan_to_dict(plan))
    else:
        click.echo(plan_text(plan))
    if not plan.complete:
        ctx.exit(EXIT_FAILURE)


@fleet_group.command("export")
@click.argument("fleet_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="What to write.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), default=None, help="File to write (default: stdout)."
)
@click.option(
    "--allow-partial", is_flag=True, help="Export the replicas that fit when the fleet is too small."
)
@click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="Container image (kuberay).")
@click.option("--name", default="berth-fleet", show_default=True, help="RayService name (kuberay).")
@click.pass_context
def export_command(
    ctx: click.Context,
    fleet_file: str,
    fmt: ExportFormat,
    output: str | None,
    allow_partial: bool,
    image: str,
    name: str,
) -> None:
    """Write the plan for FLEET_FILE as a Ray Serve config, a KubeRay RayService or vLLM commands."""
    plan = _plan(ctx, fleet_file)
    text = export_text(plan, fmt, Path(fleet_file).name, image=image, name=name, allow_partial=allow_partial)
    if output is None:
        click.echo(text, nl=False)
        return
    write_user_text(expand_user_path(output), text, f"{fmt} export")
    click.echo(f"Wrote {output} ({fmt}).", err=True)
