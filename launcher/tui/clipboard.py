"""Copying text for the person: through the desktop's clipboard tool when there is one (then Berth knows the
copy worked), and always as OSC 52 through the terminal (which many terminals ignore, silently).
Imports textual's App (typing only) and the standard library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App

#: Seconds a clipboard tool may take before Berth gives up on it.
TOOL_TIMEOUT_S = 2.0


def clipboard_command(env: Mapping[str, str], platform: str = sys.platform) -> list[str] | None:
    """The local clipboard tool for this session, if one is installed and reaches the person's desktop.

    Over SSH a tool on this machine would fill the remote machine's clipboard, so only OSC 52 is used."""
    if env.get("SSH_CONNECTION") or env.get("SSH_TTY"):
        return None
    path = env.get("PATH", "")
    candidates: list[list[str]] = []
    if platform == "darwin":
        candidates.append(["pbcopy"])
    if env.get("WAYLAND_DISPLAY"):
        candidates.append(["wl-copy"])
    if env.get("DISPLAY"):
        candidates += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    for command in candidates:
        found = shutil.which(command[0], path=path)
        if found:
            return [found, *command[1:]]
    return None


def copy_text(app: App[object], text: str, what: str = "") -> str:
    """Copy `text` and return what to tell the person: "Copied" only when a clipboard tool confirmed it."""
    app.copy_to_clipboard(text)  # OSC 52: works where the terminal allows it, and costs nothing
    thing = what or f"{len(text)} characters"
    command = clipboard_command(os.environ)
    if command is not None:
        try:
            done = subprocess.run(command, input=text.encode("utf-8"), timeout=TOOL_TIMEOUT_S, check=False)
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0:
            return f"Copied {thing} to the clipboard."
    return (
        f"Copy requested: sent {thing} to the terminal as OSC 52. If nothing was copied, the terminal "
        "blocks clipboard access (select the text with the mouse instead, often with shift held)."
    )
