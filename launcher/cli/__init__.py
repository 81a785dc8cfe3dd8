"""The `berth` command: a click group whose subcommands live one area per module."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from launcher.cli.errors import EXIT_USAGE, explain, register


class BerthGroup(click.Group):
    """Runs a command and turns Berth's errors into a paragraph and an exit code (traceback: BERTH_DEBUG=1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as error:
            if os.environ.get("BERTH_DEBUG") == "1":
                raise
            found = explain(error)
            if found is None:
                raise
            message, code = found
            click.echo(click.wrap_text(f"Error: {message}", width=100, preserve_paragraphs=True), err=True)
            ctx.exit(code)


@click.group(
    cls=BerthGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="BERTH_CATALOG",
    help="Catalog file to use instead of the shipped one (the user overlay still applies).",
)
@click.option("--no-overlay", is_flag=True, help="Ignore the user's catalog overlay.")
@click.version_option(package_name="berth-llm")
@click.pass_context
def cli(ctx: click.Context, catalog_path: str | None, no_overlay: bool) -> None:
    """Which open language models fit this machine, how they should run, and how to launch them."""
    ctx.ensure_object(dict)
    ctx.obj["catalog_path"] = catalog_path
    ctx.obj["overlay"] = not no_overlay
    if ctx.invoked_subcommand is None:
        if sys.stdout.isatty() and sys.stdin.isatty():
            from launcher.cli.tui_cmd import run_tui

            run_tui(ctx)
        else:
            ctx.invoke(list_command)


def main() -> None:
    """Console entry point."""
    try:
        cli(prog_name="berth")
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


from launcher.cli.catalog_cmds import catalog_group, show_command  # noqa: E402
from launcher.cli.fleet_cmd import fleet_group  # noqa: E402
from launcher.cli.history_cmd import history_group  # noqa: E402
from launcher.cli.launch_cmd import launch_command  # noqa: E402
from launcher.cli.list_cmd import list_command  # noqa: E402
from launcher.cli.plan_cmd import plan_command  # noqa: E402
from launcher.cli.probe_cmd import explain_launcher_error, probe_command  # noqa: E402
from launcher.cli.tui_cmd import tui_command  # noqa: E402

cli.add_command(list_command)
cli.add_command(plan_command)
cli.add_command(show_command)
cli.add_command(catalog_group)
cli.add_command(probe_command)
cli.add_command(fleet_group)
cli.add_command(launch_command)
cli.add_command(history_group)
cli.add_command(tui_command)
register(explain_launcher_error)

__all__ = ["EXIT_USAGE", "cli", "main"]
