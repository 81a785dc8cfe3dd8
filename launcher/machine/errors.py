"""Errors of describing a machine (probe, hardware specs), with structured fields; imports only registry.errors."""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import EXIT_USAGE, BerthError, short_text

#: Specs shown whenever one cannot be read, so the message always holds something to copy.
SPEC_EXAMPLES = (
    "2xA100-80GB,ram=512GB",
    "rtx-4090,ram=64GB,disk=1TB",
    "cpu,ram=32GB,cores=8",
    "8xH100+8xH100",
    "path/to/hardware.yaml",
)

#: Longest spec text repeated in a message (a pasted 100 KB spec is named by its start).
_SHOWN_SPEC_CHARS = 80


class ProbeError(BerthError, RuntimeError):
    """This machine could not be described (RAM unreadable, a requested measurement failed)."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, reading: str | None = None) -> None:
        self.reading = reading
        """What was being read: 'ram', 'cpu_bandwidth' …"""
        super().__init__(
            message,
            hint="See what can be read with `berth probe`, or name the hardware instead with --hardware SPEC "
            "(for example 'cpu,ram=32GB').",
        )


class HardwareSpecError(BerthError, ValueError):
    """A hardware spec that cannot be parsed, names an unknown GPU, or describes an impossible machine."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        spec: str,
        problem: str,
        suggestions: Sequence[str] = (),
        origin: str | None = None,
    ) -> None:
        self.spec = spec
        self.problem = problem
        """What is wrong, in words (without the examples)."""
        self.suggestions = list(suggestions)
        """Close accelerator names or corrected specs, best first."""
        self.origin = origin
        """Where the spec came from when not the command line ('BERTH_HARDWARE')."""
        self.examples = SPEC_EXAMPLES
        super().__init__(
            problem,
            hint="Fix or unset BERTH_HARDWARE, or pass --hardware SPEC."
            if origin
            else "Check a spec with `berth probe --hardware SPEC`; leave --hardware out for this machine.",
        )

    def with_origin(self, origin: str) -> HardwareSpecError:
        """The same error, saying where the spec came from."""
        return HardwareSpecError(self.spec, self.problem, self.suggestions, origin)

    def __str__(self) -> str:
        where = f"{self.origin}=" if self.origin else ""
        hint = f" Did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        spec = short_text(self.spec, _SHOWN_SPEC_CHARS)
        return (
            f"cannot use hardware spec {where}'{spec}': {self.problem}.{hint}"
            f" Valid specs look like {', '.join(repr(e) for e in SPEC_EXAMPLES)}."
        )


class UserFileError(BerthError, OSError):
    """A file or folder the user named that cannot be used: '~someone' with no such user, a missing folder,
    a device or folder where a file should be, no permission, too large to read, or a full disk."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
