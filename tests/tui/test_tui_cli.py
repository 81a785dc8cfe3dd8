"""`berth` opens the TUI only on a terminal; `berth tui` runs it; light commands never import textual."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_berth_without_a_terminal_prints_the_list(berth):
    result = berth(env={"BERTH_HARDWARE": "rtx-4090"})
    assert result.exit_code == 0, result.output
    assert "models fit" in result.output


def test_berth_tui_needs_a_terminal(berth):
    result = berth("tui", "--hardware", "rtx-4090")
    assert result.exit_code == 2
    assert "needs a terminal" in result.output


def test_berth_help_lists_tui_which_the_entry_point_adds_to_the_cli(berth):
    result = berth("--help")
    assert result.exit_code == 0
    commands = result.output.split("Commands:")[1].split()
    assert "tui" in commands and "list" in commands


def test_list_does_not_import_textual():
    code = (
        "import sys, io, contextlib\n"
        "from launcher.entry import berth\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        berth()(['--no-overlay'], prog_name='berth', standalone_mode=False)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('HEAVY=' + ','.join(m for m in ('textual', 'torch', 'transformers') if m in sys.modules))\n"
    )
    env = dict(os.environ, BERTH_HARDWARE="rtx-4090", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.stdout.strip().endswith("HEAVY="), out.stdout[-500:] + out.stderr[-500:]


@pytest.mark.slow  # the real app in a subprocess on a pseudo-terminal
def test_berth_tui_opens_the_app_on_a_terminal(tmp_path):
    """The real entry point in a pseudo-terminal: the Browse table comes up and --ready-file ends it."""
    ready = tmp_path / "ready"
    env = dict(os.environ, PYTHONPATH=str(ROOT), BERTH_HOME=str(tmp_path), TERM="xterm-256color")
    code = "import sys; from launcher.entry import main; sys.argv[0] = 'berth'; main()"
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", code, "tui", "--hardware", "rtx-4090", "--ready-file", str(ready)],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=env,
            close_fds=True,
        )
        deadline = time.monotonic() + 300  # generous: only a hung app gets near it
        while process.poll() is None and time.monotonic() < deadline:
            readable, _, _ = select.select([primary], [], [], 0.1)
            if readable:
                os.read(primary, 65536)  # keep the terminal drained
        if process.poll() is None:
            process.kill()
            process.wait()
            pytest.fail("berth tui --ready-file was still running after 300 s")
    finally:
        os.close(primary)
        os.close(secondary)
    assert process.returncode == 0
    assert float(ready.read_text()) > 0


def test_the_app_gets_the_real_launch_stack_and_the_sqlite_history(berth_home):
    """Outside demo mode `berth tui` launches through launcher.run and keeps chats where `berth history`
    reads them (a lookup by module name once turned both off silently after a package move)."""
    from launcher.tui.adapters import LaunchStackFactory, SqliteChatStore
    from launcher.tui.fake import FakeSessionFactory
    from launcher.tui.wiring import default_wiring
    from registry.catalog import load_catalog

    catalog = load_catalog()
    real = default_wiring(catalog)
    assert isinstance(real.session_factory, LaunchStackFactory)
    assert isinstance(real.store, SqliteChatStore)
    assert isinstance(default_wiring(catalog, demo=True).session_factory, FakeSessionFactory)
