"""The `berth` command: a click group whose subcommands live one area per module."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from launcher.cli.errors import EXIT_USAGE, explain, wrap_paragraphs

#: Subcommands and where they live: a command's module (and what it imports) loads only when it runs,
#: so `berth list` never pays for the fleet planner or the launch stack.
COMMANDS = {
    "list": "launcher.cli.list_cmd:list_command",
    "plan": "launcher.cli.plan_cmd:plan_command",
    "show": "launcher.cli.catalog_cmds:show_command",
    "catalog": "launcher.cli.catalog_cmds:catalog_group",
    "probe": "launcher.cli.probe_cmd:probe_command",
    "fleet": "launcher.cli.fleet_cmd:fleet_group",
    "launch": "launcher.cli.launch_cmd:launch_command",
    "history": "launcher.cli.history_cmd:history_group",
}
#: The command `berth` alone runs on a terminal, when the entry point (launcher.entry) has added it.
INTERACTIVE = "tui"


def load_command(name: str) -> click.Command:
    """Import a subcommand's module and return the command."""
    module, attr = COMMANDS[name].split(":")
    command: click.Command = getattr(importlib.import_module(module), attr)
    return command


class BerthGroup(click.Group):
    """Loads subcommands lazily, runs them, and turns Berth's errors into a paragraph and an exit code
    (traceback: BERTH_DEBUG=1)."""

    app_launcher: Any = None
    """Set by the entry point (launcher.entry): opens `berth launch` in the app on a terminal, called with the
    click context and a launcher.cli.launch_cmd.AppLaunch. None where only the CLI is wired (no app)."""

    def list_commands(self, _ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else super().get_command(ctx, cmd_name)

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
            click.echo(wrap_paragraphs(f"Error: {message}"), err=True)
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
        interactive = cli.commands.get(INTERACTIVE)
        if interactive is not None and sys.stdout.isatty() and sys.stdin.isatty():
            ctx.invoke(interactive)
        else:
            ctx.invoke(load_command("list"))


def main() -> None:
    """Console entry point."""
    try:
        cli(prog_name="berth")
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)


__all__ = ["EXIT_USAGE", "cli", "main"]
