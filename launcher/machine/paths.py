"""Files a user names: writes atomic (never a partial file), folders checked before slow work (reads capped in
size are registry.bounded_read's); `~user` is expanded by registry.paths.expand_user_path, the one expander
every layer uses."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from launcher.machine.errors import UserFileError
from registry.errors import EXIT_FAILURE


def write_user_text(path: Path, text: str, what: str = "output file", private: bool = False) -> None:
    """Write `text` to `path` through a temporary file in the same folder, renamed into place, so the file
    is whole or untouched; UserFileError names the cause (no such folder, not a file, no permission, disk
    full). A file it replaces keeps its mode; a new one is 0600 when `private`, else 0644."""
    folder = path.parent
    if not folder.is_dir():
        raise _folder_problem(path, what)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file (a device or other special file)"
        raise UserFileError(
            f"cannot write the {what} {path}: it is {kind}",
            hint="Give the path of a file to create or replace (-o FILE), or leave -o out for stdout.",
        )
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _write_problem(path, what, error) from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, _mode(path, private))
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise _write_problem(path, what, error) from None


def _mode(path: Path, private: bool) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o600 if private else 0o644


def _folder_problem(path: Path, what: str) -> UserFileError:
    folder = path.parent
    if folder.exists():
        return UserFileError(
            f"cannot write the {what} {path}: {folder} is a file, not a folder",
            hint="Give a path inside an existing folder.",
        )
    return UserFileError(
        f"cannot write the {what} {path}: the folder {folder} does not exist",
        hint=f"Create it first (mkdir -p {folder}), or give a path inside an existing folder.",
    )


def _write_problem(path: Path, what: str, error: OSError) -> UserFileError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserFileError(
            f"cannot write the {what} {path}: the disk is full (nothing was written)",
            hint="Free some space, or write to another disk with -o.",
            exit_code=EXIT_FAILURE,
        )
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
        return UserFileError(
            f"cannot write the {what} {path}: {path.parent} is not writable ({error.strerror})",
            hint="Give a path in a folder you can write to, or leave -o out for stdout.",
        )
    return UserFileError(
        f"cannot write the {what} {path}: {error.strerror or error}",
        hint="Give another path with -o, or leave -o out for stdout.",
        exit_code=EXIT_FAILURE,
    )


def check_folder(folder: Path, what: str, variable: str | None = None) -> None:
    """UserFileError (exit 2) unless `folder` is a folder that can be written, or can be created: checked
    before slow work (a download, a load) whose results would go there. `variable` names the setting that
    chose the folder, for the hint."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = f"Point {variable} at a folder (or unset it)" if variable and os.environ.get(variable) else ""
    if not existing.is_dir():
        raise UserFileError(
            f"cannot use {what} {folder}: {existing} is a file, not a folder",
            hint=(where or "Move that file away") + ", then run the command again.",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserFileError(
            f"cannot use {what} {folder}: {existing} is not writable",
            hint=(where or "Make it writable (chmod u+w)") + ", then run the command again.",
        )
