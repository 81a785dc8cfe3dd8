"""Deterministic stand-ins for the launch stack: a fake loader, a fake generator and an in-memory store.

Tests, snapshots, the startup bench and `berth tui --demo` use them: the same input always gives the same
pieces, and nothing here sleeps unless asked to (`piece_delay_s`, `step_delay_s`).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from launcher.machine.host import HostSnapshot
from launcher.plan.request import Plan
from launcher.run.session import Candidate, GenerationSettings, Reply, Turn
from launcher.tui.backend import (
    ChatRecord,
    ChatSummary,
    DownloadProgress,
    Fallback,
    LaunchCallback,
    LaunchCancelledError,
    Launched,
    LoadProgress,
    Note,
    PieceCallback,
)
from registry.schema import ModelCard, Task

_WORD = re.compile(r"\s*\S+")


def canned_reply(messages: Sequence[Turn]) -> str:
    """The fake model's answer: it repeats the last question and shows a little Markdown."""
    last = next((m.content for m in reversed(messages) if m.role == "user"), "")
    turns = sum(1 for m in messages if m.role == "user")
    return (
        f"You asked: **{' '.join(last.split())}**\n\n"
        f"This is reply {turns} from the fake model. It streams word by word:\n\n"
        "- plans come from the real planner\n"
        "- replies come from this fake\n\n"
        "```python\nprint('hello from berth')\n```\n\n"
        "The end."
    )


def pieces(text: str) -> list[str]:
    """Split a text into word pieces that join back to exactly the text."""
    found = _WORD.findall(text)
    rest = text[sum(len(p) for p in found) :]
    if rest:
        found.append(rest)
    return found


def decode_rate(tokens: int, seconds: float, first_s: float | None) -> float | None:
    """Decode tokens/s from a reply's figures: tokens after the first over the time since the first."""
    if tokens <= 0 or seconds <= 0:
        return None
    decode = seconds - (first_s or 0.0)
    if tokens > 1 and decode > 0:
        return (tokens - 1) / decode
    return tokens / seconds


@dataclass
class FakeSession:
    """A generator that streams a canned reply word by word; `stop()` ends it after the current word."""

    model_id: str
    task: Task = "chat"
    piece_delay_s: float = 0.0
    """Pause after each piece, so that a test can press Esc in the middle of a reply."""
    memory: dict[str, int] = field(default_factory=lambda: {"CPU RAM": 600 * 2**20})
    replies: list[str] = field(default_factory=list)
    """Replies to give, in order, before falling back to canned_reply."""
    calls: list[tuple[str, object]] = field(default_factory=list)
    """What was asked, for assertions: ('chat', messages) / ('complete', prompt) / ('fill_mask', text)."""
    clock: Callable[[], float] = time.perf_counter
    """Where reply timings come from (a counter makes the stats repeatable)."""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    closed: bool = False

    def _stream(self, text: str, on_piece: PieceCallback, settings: GenerationSettings) -> Reply:
        self._stop.clear()
        start = self.clock()
        first: float | None = None
        sent: list[str] = []
        for piece in pieces(text)[: max(settings.max_new_tokens, 1)]:
            if self._stop.is_set():
                break
            on_piece(piece)
            sent.append(piece)
            if first is None:
                first = self.clock() - start
            if self.piece_delay_s:
                self._stop.wait(self.piece_delay_s)
        seconds = self.clock() - start
        return Reply(
            text="".join(sent),
            prompt_tokens=0,
            new_tokens=len(sent),
            time_to_first_token_s=first,
            tokens_per_s=decode_rate(len(sent), seconds, first),
            total_s=seconds,
            finish_reason="stopped" if self._stop.is_set() else "stop",
        )

    def chat(
        self,
        messages: Sequence[Turn],
        settings: GenerationSettings,
        system_prompt: str,  # noqa: ARG002 - the Session protocol names it; scripted replies ignore it
        on_piece: PieceCallback,
    ) -> Reply:
        """Stream the next scripted reply, or canned_reply(messages); the system prompt changes nothing."""
        self.calls.append(("chat", tuple(messages)))
        text = self.replies.pop(0) if self.replies else canned_reply(messages)
        return self._stream(text, on_piece, settings)

    def complete(self, prompt: str, settings: GenerationSettings, on_piece: PieceCallback) -> Reply:
        """Stream a fixed continuation."""
        self.calls.append(("complete", prompt))
        text = self.replies.pop(0) if self.replies else " and then the story went on, one word at a time."
        return self._stream(text, on_piece, settings)

    def fill_mask(self, text: str, top_k: int = 5) -> list[Candidate]:
        """Five fixed guesses, most likely first."""
        self.calls.append(("fill_mask", text))
        words = ["Paris", "London", "Berlin", "Rome", "Madrid"][:top_k]
        scores = [0.62, 0.14, 0.09, 0.05, 0.03]
        return [
            Candidate(w, s, text.replace(self.mask_token, w, 1)) for w, s in zip(words, scores, strict=False)
        ]

    @property
    def mask_token(self) -> str:
        """The fake's mask token."""
        return "[MASK]"

    def stop(self) -> None:
        """End the reply after the current piece."""
        self._stop.set()

    def memory_bytes(self) -> dict[str, int]:
        """Fixed figures."""
        return dict(self.memory)

    def close(self) -> None:
        """Nothing to free."""
        self.closed = True


@dataclass
class FakeSessionFactory:
    """A loader that 'downloads' two files in chunks, 'loads' the shards, and returns a FakeSession.

    `gate`, when given, is waited on before loading starts (a test sets it, or cancels first). `fail` makes
    it raise that error after the download. `fallback` reports a fallback step.
    """

    step_delay_s: float = 0.0
    piece_delay_s: float = 0.0
    gate: threading.Event | None = None
    fail: Exception | None = None
    fallback: str | None = None
    measured_ratio: float = 0.97
    clock: Callable[[], float] = time.perf_counter
    sessions: list[FakeSession] = field(default_factory=list)
    files: tuple[tuple[str, int], ...] = (("config.json", 700), ("model.safetensors", 64 * 2**20))

    def __call__(
        self,
        card: ModelCard,
        plan: Plan,
        host: HostSnapshot,  # noqa: ARG002 - the SessionFactory protocol names it; the fake loads nowhere
        on_event: LaunchCallback,
        cancel: threading.Event,
    ) -> Launched:
        """Run the fake launch."""
        on_event(Note(f"resolving files of {card.id}"))
        for name, size in self.files:
            chunks = 4
            for i in range(chunks + 1):
                on_event(DownloadProgress(name, size * i // chunks, size))
                self._step(card, cancel)
        if self.gate is not None:
            while not self.gate.wait(0.01):
                if cancel.is_set():
                    raise LaunchCancelledError(card.id)
        if self.fail is not None:
            raise self.fail
        fallbacks: tuple[str, ...] = ()
        if self.fallback:
            on_event(Fallback(self.fallback))
            fallbacks = (self.fallback,)
        shards = 3
        for i in range(shards + 1):
            on_event(LoadProgress(i, shards, "checkpoint shards"))
            self._step(card, cancel)
        measured = {p.label: int(p.used_bytes * self.measured_ratio) for p in plan.placements}
        session = FakeSession(
            card.id, card.task, piece_delay_s=self.piece_delay_s, memory=dict(measured), clock=self.clock
        )
        self.sessions.append(session)
        return Launched(session, plan, measured, fallbacks, load_seconds=1.5)

    def _step(self, card: ModelCard, cancel: threading.Event) -> None:
        """Wait one step (`step_delay_s`); a cancelled launch stops here."""
        if self.step_delay_s:
            cancel.wait(self.step_delay_s)
        if cancel.is_set():
            raise LaunchCancelledError(card.id)


class TickClock:
    """A clock that advances `step` seconds each time it is read (repeatable reply stats)."""

    def __init__(self, step: float = 0.05) -> None:
        self.step = step
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now += self.step
            return self.now


class MemoryChatStore:
    """Chats in a dict; ids and times are counters, so runs are repeatable."""

    def __init__(self, speeds: dict[tuple[str, str], float] | None = None) -> None:
        self.chats: dict[str, ChatRecord] = {}
        self.speeds = dict(speeds or {})
        self._counter = 0
        self.clock: Callable[[], str] = lambda: f"2025-01-01T00:{self._counter:02d}:00+00:00"

    def save_chat(self, record: ChatRecord) -> str:
        """Insert or replace."""
        if record.id is None:
            self._counter += 1
            record = replace(record, id=f"chat{self._counter}")
        chat_id = record.id or ""
        self.chats[chat_id] = replace(record, created=record.created or self.clock())
        return chat_id

    def list_chats(self) -> list[ChatSummary]:
        """Newest first."""
        rows = [
            ChatSummary(k, r.model_id, r.title, r.created, len(r.messages)) for k, r in self.chats.items()
        ]
        return sorted(rows, key=lambda s: (s.created, s.id), reverse=True)

    def load_chat(self, chat_id: str) -> ChatRecord:
        """One chat (KeyError if unknown)."""
        return self.chats[chat_id]

    def delete_chat(self, chat_id: str) -> None:
        """Forget one chat."""
        self.chats.pop(chat_id, None)

    def measured_speed(self, model_id: str, host_label: str) -> float | None:
        """What the test put in `speeds`."""
        return self.speeds.get((model_id, host_label))
