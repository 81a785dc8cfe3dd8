"""The `berth` console entry point, above both faces: the CLI's click group with the `tui` command that runs
the Textual app. The only module that imports both launcher.cli and launcher.tui (textual only when the app runs).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from launcher.cli import cli
from launcher.cli import main as cli_main
from launcher.cli.context import get_catalog
from launcher.cli.options import host_option, resolve_host_for
from launcher.machine.host import HostSnapshot
from registry.catalog import Catalog
from registry.gc_pause import freeze_bulk_work

if TYPE_CHECKING:
    from launcher.cli.launch_cmd import AppLaunch
    from launcher.tui.app import BerthApp


def hardware_resolver(catalog: Catalog) -> Callable[[str], HostSnapshot]:
    """Spec text -> HostSnapshot for the app's hardware switcher ('' probes this machine)."""

    def resolve(spec: str) -> HostSnapshot:
        if not spec.strip():
            from launcher.machine.probe import probe_host

            return probe_host(catalog)
        from launcher.machine.hwspec import parse_hardware_spec

        return parse_hardware_spec(spec, catalog)

    return resolve


def run_tui(
    ctx: click.Context,
    hardware: str | None = None,
    context: int | None = None,
    demo: bool = False,
    ready_file: str | None = None,
) -> None:
    """Build the app from this invocation's catalog and host, and run it until the person quits."""
    started = time.perf_counter()
    catalog = get_catalog(ctx)
    host = resolve_host_for(ctx, hardware)
    explicit = hardware is not None or bool(os.environ.get("BERTH_HARDWARE", "").strip())

    from launcher.tui.app import build_app
    from launcher.tui.wiring import default_wiring

    def on_ready(app: BerthApp) -> None:
        if ready_file:
            Path(ready_file).write_text(f"{time.perf_counter() - started:.4f}\n", encoding="utf-8")
            app.exit()

    wiring = default_wiring(catalog, demo)
    app = build_app(
        catalog,
        host,
        host_is_this_machine=not explicit,
        session_factory=wiring.session_factory,
        store=wiring.store,
        hardware_resolver=hardware_resolver(catalog),
        context=context,
        on_ready=on_ready,
        demo=demo,
    )
    app.run()


def launch_in_app(ctx: click.Context, launch: AppLaunch) -> None:
    """`berth launch MODEL` on a terminal: the app opens on the model's Launch screen (plan, download and load
    progress), then its chat; Browse, plans and past chats are a key away, and the model stays loaded."""
    from launcher.tui.app import build_app
    from launcher.tui.backend import InitialLaunch
    from launcher.tui.wiring import LaunchOptions, launch_wiring

    catalog = get_catalog(ctx)
    options = LaunchOptions(
        launch.source,
        launch.request,
        launch.plan,
        launch.trust_remote_code,
        launch.allow_pickle,
        launch.memory_limits,
    )
    wiring = launch_wiring(catalog, options)
    app = build_app(
        catalog,
        launch.host,
        session_factory=wiring.session_factory,
        store=wiring.store,
        hardware_resolver=hardware_resolver(catalog),
        context=launch.request.context,
        initial_launch=InitialLaunch(launch.source.card, launch.plan, launch.settings, launch.system),
    )
    app.run()


@click.command("tui")
@host_option
@click.option("--context", type=click.IntRange(min=1), default=None, help="Context length to plan for.")
@click.option(
    "--demo",
    is_flag=True,
    help="Launch a fake model that answers instantly (try every screen without downloading weights).",
)
@click.option("--ready-file", hidden=True, default=None, help="Write the startup time here and exit (bench).")
@click.pass_context
def tui_command(
    ctx: click.Context, hardware: str | None, context: int | None, demo: bool, ready_file: str | None
) -> None:
    """Browse what fits, read a plan, launch a model and chat with it, in the terminal."""
    if not sys.stdout.isatty() and not ready_file:
        raise click.UsageError("the TUI needs a terminal; use `berth list` in scripts")
    run_tui(ctx, hardware, context, demo, ready_file)


def berth() -> click.Group:
    """The whole `berth` command: the CLI's group with `tui` added (which `berth` alone opens on a terminal), and
    the app lent to `berth launch` for terminals."""
    cli.add_command(tui_command)
    cli.app_launcher = launch_in_app
    return cli


def main() -> None:
    """Console entry point (pyproject's [project.scripts] berth)."""
    freeze_bulk_work()  # this process ends with its command: a catalog or a listing is never garbage
    berth()
    cli_main()
