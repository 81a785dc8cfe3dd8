"""Asking the Hub again when it answers that it is busy (HTTP 429 rate limit, 502/503/504 unavailable), a bounded
number of times within a bounded wait; imports the standard library only (huggingface_hub's HTTP errors are
recognised by the response they carry).

The wait is the answer's Retry-After when it gives seconds, else a short backoff. A Retry-After longer than
MAX_WAIT_S, or waits adding up to more than the command's budget (BERTH_HUB_TIMEOUT), are not waited for: the
error goes on to its paragraph, which says how long the Hub asked to wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: Answers that mean "ask again later".
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Times a request is asked again after a busy answer.
MAX_RETRIES = 2
#: Seconds to wait before each retry when the answer gives no Retry-After.
BACKOFF_S = (1.0, 2.0)
#: The longest Retry-After waited for.
MAX_WAIT_S = 10.0


def status_of(error: BaseException) -> int | None:
    """The HTTP status of an error that carries a response (huggingface_hub's HfHubHTTPError), else None."""
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_s(error: BaseException) -> float | None:
    """The seconds an error's response asks to wait (Retry-After: N), None when it gives none (or a date)."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return float(int(value.strip()[:9]))
    return None


def with_retries(call: Callable[[], T], budget_s: float, sleep: Callable[[float], Any] = time.sleep) -> T:
    """call(), asked again up to MAX_RETRIES times while the Hub answers busy, waiting at most `budget_s` in all."""
    waited = 0.0
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:
            if status_of(error) not in RETRY_STATUSES or attempt >= MAX_RETRIES:
                raise
            asked = retry_after_s(error)
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)] if asked is None else asked
            if wait > MAX_WAIT_S or waited + wait > budget_s:
                raise
            sleep(wait)
            waited += wait
            attempt += 1
