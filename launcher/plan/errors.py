"""Errors of the planner: a model that does not fit, or a request that contradicts itself or the host; imports
only registry.errors."""

from __future__ import annotations

from collections.abc import Sequence

from registry.errors import EXIT_USAGE, BerthError


class DoesNotFitError(BerthError):
    """Nothing on the ladder fits: how much is needed, how much is free, and the nearest ways out."""

    def __init__(
        self,
        model_id: str,
        required_bytes: int,
        available_bytes: int,
        suggestions: Sequence[str] = (),
        detail: str = "",
        reason: str = "",
    ) -> None:
        self.model_id = model_id
        self.required_bytes = required_bytes
        self.available_bytes = available_bytes
        self.suggestions = list(suggestions)
        self.detail = detail
        self.reason = reason
        """Why, in words, where needed against usable does not say it (a device that cannot hold even its
        runtime and activations, or blocks that fit in total but not device by device)."""
        super().__init__(
            f"{model_id} does not fit: needs {required_bytes} bytes, {available_bytes} free",
            hint="; ".join(self.suggestions),
        )


class PlanRequestError(BerthError, ValueError):
    """A request that cannot be planned as asked: context above the model's maximum, a quantization this host
    cannot run, an unknown GPU index, options that contradict each other. `hint` is the fix, in words."""

    exit_code = EXIT_USAGE
