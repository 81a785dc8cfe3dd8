"""What the TUI needs from the rest of Berth, as small types and Protocols (no textual, no torch here).

The app is built against this seam: a planner, a session factory that downloads and loads a model while
reporting progress, the session it returns (stream a reply piece by piece, stop, stats), and a chat store.
Tests pass the deterministic fakes in `launcher.tui.fake`; `launcher.tui.adapters` maps the real launch
stack onto the same shapes. The chat values themselves are launcher.run.session's (imported without torch).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from launcher.machine.host import HostSnapshot
from launcher.plan.errors import DoesNotFitError
from launcher.plan.request import Plan, PlanRequest
from launcher.run.session import Candidate, GenerationSettings, Reply, Turn
from registry.schema import Accelerator, ModelCard, Task

# --------------------------------------------------------------------------- planning


class Planner(Protocol):
    """`launcher.plan.ladder.make_plan`'s shape: a plan or a does-not-fit verdict; PlanRequestError for bad asks."""

    def __call__(
        self,
        card: ModelCard,
        host: HostSnapshot,
        request: PlanRequest | None = None,
        accelerators: Sequence[Accelerator] = (),
        explain: bool = True,
    ) -> Plan | DoesNotFitError: ...


HardwareResolver = Callable[[str], HostSnapshot]
"""Turns a hardware spec ('2xA100-80GB,ram=512GB', 'rtx-4090', 'cpu,ram=32GB') into a HostSnapshot."""


# --------------------------------------------------------------------------- chat values
# Turns, replies, settings and fill-mask candidates are the session's own (launcher.run.session): a Turn the
# TUI keeps carries its Reply; the system prompt travels beside the GenerationSettings.


PieceCallback = Callable[[str], None]
"""Receives each decoded piece of a reply as soon as it exists (called from the generation thread)."""


class Session(Protocol):
    """A loaded model ready to answer. Generation methods block: the TUI calls them from a thread worker."""

    model_id: str
    task: Task

    def chat(
        self,
        messages: Sequence[Turn],
        settings: GenerationSettings,
        system_prompt: str,
        on_piece: PieceCallback,
    ) -> Reply:
        """Reply to a conversation after the system prompt ('' for none), streaming pieces."""
        ...

    def complete(self, prompt: str, settings: GenerationSettings, on_piece: PieceCallback) -> Reply:
        """Continue a text, streaming pieces."""
        ...

    def fill_mask(self, text: str, top_k: int = 5) -> list[Candidate]:
        """The likeliest tokens for the mask in `text`."""
        ...

    @property
    def mask_token(self) -> str | None:
        """The mask token a fill-mask model expects in its input ('[MASK]', '<mask>')."""
        ...

    def stop(self) -> None:
        """Ask the reply being generated to end after the current token (any thread)."""
        ...

    def memory_bytes(self) -> dict[str, int]:
        """Memory the model holds now, by device label ('GPU 0', 'CPU RAM')."""
        ...

    def close(self) -> None:
        """Free the model."""
        ...


# --------------------------------------------------------------------------- launching


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of one file fetched so far (total None while unknown)."""

    file: str
    done_bytes: int
    total_bytes: int | None


@dataclass(frozen=True)
class LoadProgress:
    """Loading weights into memory: `done` of `total` steps (checkpoint shards or layers)."""

    done: int
    total: int
    what: str = "weights"


@dataclass(frozen=True)
class Fallback:
    """The loader stepped down the plan's ladder (out of memory, a missing kernel): what it did and why."""

    message: str


@dataclass(frozen=True)
class Note:
    """A status line from the loader (resolving files, building the model, tokenizer …)."""

    message: str


LaunchEvent = DownloadProgress | LoadProgress | Fallback | Note
LaunchCallback = Callable[[LaunchEvent], None]


@dataclass(frozen=True)
class Launched:
    """A model loaded as planned (or as fallen back to), with the memory it measurably took."""

    session: Session
    plan: Plan
    """The plan that was finally used (differs from the one asked for after a fallback)."""
    measured_bytes: dict[str, int] = field(default_factory=dict)
    """Memory taken by loading, by device label (same labels as the plan's placements)."""
    fallbacks: tuple[str, ...] = ()
    load_seconds: float = 0.0


class LaunchCancelledError(Exception):
    """The user cancelled a launch; the factory has cleaned up what it started."""


class SessionFactory(Protocol):
    """Downloads and loads `card` as `plan` (made for `host`, this machine) says, reporting progress; blocking
    (run it in a thread worker).

    It checks `cancel` between steps and raises LaunchCancelledError once it is set. Other failures raise
    the loader's own errors; the TUI shows their message.
    """

    def __call__(
        self,
        card: ModelCard,
        plan: Plan,
        host: HostSnapshot,
        on_event: LaunchCallback,
        cancel: threading.Event,
    ) -> Launched: ...


@dataclass(frozen=True)
class InitialLaunch:
    """What `berth launch MODEL` hands the app: the model and its plan to load at once, then chat with the
    settings and system prompt given on the command line."""

    card: ModelCard
    plan: Plan
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    system_prompt: str = ""


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class ChatRecord:
    """A saved conversation."""

    model_id: str
    messages: tuple[Turn, ...]
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    system_prompt: str = ""
    task: Task = "chat"
    title: str = ""
    id: str | None = None
    created: str = ""
    """ISO 8601 time, set by the store when first saved."""
    host_label: str = ""
    """The machine the replies were generated on (their speeds count as measurements there)."""
    partial: bool = False
    """The last message is a reply still being generated (saved as it streams, finished by a later save)."""


@dataclass(frozen=True)
class ChatSummary:
    """One line of the list of past chats."""

    id: str
    model_id: str
    title: str
    created: str
    message_count: int


class ChatStore(Protocol):
    """Where conversations are kept between runs, and measured speeds are read from."""

    def save_chat(self, record: ChatRecord) -> str:
        """Insert (id None) or replace a conversation; returns its id."""
        ...

    def list_chats(self) -> list[ChatSummary]:
        """Saved conversations, newest first."""
        ...

    def load_chat(self, chat_id: str) -> ChatRecord:
        """One saved conversation (KeyError if there is none with that id)."""
        ...

    def delete_chat(self, chat_id: str) -> None:
        """Forget a conversation (NotImplementedError where the store keeps every chat)."""
        ...

    def measured_speed(self, model_id: str, host_label: str) -> float | None:
        """Decode tokens/s measured for this model on this host, if it was ever run here."""
        ...


def chat_title(messages: Sequence[Turn], width: int = 60) -> str:
    """A title from the first user message."""
    for message in messages:
        if message.role == "user" and message.content.strip():
            line = " ".join(message.content.split())
            return line if len(line) <= width else line[: width - 1] + "…"
    return "(empty chat)"
