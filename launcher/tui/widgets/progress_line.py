"""A labelled progress bar with bytes, speed and time left (downloads) or steps (loading)."""

from __future__ import annotations

from collections import deque

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from launcher import display

#: Seconds of samples the speed is averaged over.
RATE_WINDOW_S = 5.0


class RateMeter:
    """Bytes per second over a sliding window of (time, bytes) samples; times come from the caller."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> None:
        """Record that `done` bytes were there at time `now`."""
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()

    @property
    def rate(self) -> float | None:
        """Bytes per second, or None until two samples apart in time exist."""
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else None

    def eta(self, remaining: int) -> float | None:
        """Seconds until `remaining` more bytes arrive at the current rate."""
        rate = self.rate
        return remaining / rate if rate else None


def size_text(n_bytes: int) -> str:
    """Bytes for a transfer: KiB below a MiB, else as display.gib."""
    if n_bytes == 0:
        return "0 B"
    if abs(n_bytes) < display.MIB:
        return f"{n_bytes / 1024:.0f} KiB"
    return display.gib(n_bytes)


def transfer_text(done: int, total: int | None, rate: float | None, eta: float | None) -> str:
    """'120 MiB / 1.0 GiB · 45 MiB/s · 20 s left'."""
    parts = [f"{size_text(done)} / {size_text(total)}" if total else size_text(done)]
    if rate:
        parts.append(f"{size_text(int(rate))}/s")
    if total is not None and done >= total:
        parts.append("done")
    elif eta is not None:
        parts.append(f"{display.seconds(eta)} left")
    return " · ".join(parts)


class ProgressLine(Horizontal):
    """Name, bar and figures on one line."""

    def __init__(self, name: str, *, id: str | None = None) -> None:
        super().__init__(id=id, classes="progress-line")
        self.label = name
        self.done: float = 0
        self.total: float | None = None
        self.figures = ""

    def compose(self) -> ComposeResult:
        yield Label(self.label, classes="progress-name")
        yield ProgressBar(show_eta=False, show_percentage=True, classes="progress-bar")
        yield Label(self.figures, classes="progress-figures")

    def on_mount(self) -> None:
        self.query_one(ProgressBar).update(total=self.total, progress=self.done)

    def set_progress(self, done: float, total: float | None, figures: str) -> None:
        """Move the bar and update the figures (kept until mounted if called before)."""
        self.done, self.total, self.figures = done, total, figures
        if not self.is_mounted:
            return
        self.query_one(ProgressBar).update(total=total, progress=done)
        self.query_one(".progress-figures", Label).update(figures)
