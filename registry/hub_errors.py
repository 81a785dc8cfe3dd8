"""Errors of reading a repository from the Hugging Face Hub on demand; imports only registry.errors."""

from __future__ import annotations

from registry.errors import EXIT_FAILURE, EXIT_USAGE, BerthError, short_text


class HubError(BerthError):
    """A Hub repository Berth could not read; `message` and `hint` make the one paragraph the user reads."""

    exit_code = EXIT_FAILURE

    def __init__(self, repo_id: str, message: str, hint: str = "") -> None:
        self.repo_id = short_text(repo_id, 200)
        super().__init__(message, hint)


class BadRepoIdError(HubError, ValueError):
    """Text that cannot be a Hub repository id (owner/name)."""

    exit_code = EXIT_USAGE


class RepoNotFoundError(HubError, LookupError):
    """The Hub has no such repository (or it is private and the token cannot see it)."""

    exit_code = EXIT_USAGE


class RevisionNotFoundError(HubError, LookupError):
    """The repository has no such branch, tag or commit."""

    exit_code = EXIT_USAGE


class GatedRepoError(HubError, PermissionError):
    """The repository asks users to accept its terms (or log in) before its files can be read."""


class HubUnreachableError(HubError, ConnectionError):
    """The Hub did not answer in time, or at all."""


class HubOfflineError(HubError, ConnectionError):
    """HF_HUB_OFFLINE is set and Berth has no cached entry for the repository."""


class RemoteCodeRequiredError(HubError, PermissionError):
    """The repository's model class is its own Python code, which runs only with --trust-remote-code."""

    exit_code = EXIT_USAGE


class HubModelError(HubError, ValueError):
    """The repository's files cannot describe a model Berth can plan (a config that lies, no weights …)."""

    exit_code = EXIT_USAGE
