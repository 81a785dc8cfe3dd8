"""Thin adapters from the launch stack to the TUI's seam (`launcher.tui.backend`), changing neither side.

- `LaunchStackFactory` downloads with `launcher.run.load.fetch_files` (a tqdm class that reports bytes per file),
  loads with the runtime the plan picks (launcher.run.runtime.load: its progress hook and notes), and opens
  `launcher.run.session` sessions, so the app drives transformers and llama.cpp alike.
- `LaunchStackSession` drives a `launcher.run.session.Session` from the conversation the screen holds, streams its
  pieces, and records the first full reply's memory and speed in the store.
- `SqliteChatStore` keeps the TUI's chats in `launcher.run.store.Store`, the file `berth history` reads.

torch is imported by launcher.run.load/launcher.run.session, only when a model is launched; nothing here imports it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from launcher.machine.host import HostSnapshot
from launcher.plan.request import Plan, PlanRequest
from launcher.run.session import PARTIAL
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
from launcher.tui.transcript import reply_from_figures, settings_from
from registry.catalog import Catalog
from registry.schema import ModelCard, Task

if TYPE_CHECKING:
    from launcher.run.runtime import Loaded
    from launcher.run.session import Candidate, GenerationSettings, Reply, Session, Turn
    from launcher.run.source import ModelSource
    from launcher.run.store import Message as StoredMessage
    from launcher.run.store import Store

#: Replies shorter than this do not say much about speed; the first longer one is recorded as a measurement.
MIN_MEASURED_TOKENS = 8


def request_for(plan: Plan) -> PlanRequest:
    """A request that makes the planner choose `plan` again (its context and precision)."""
    precision = plan.precision
    return PlanRequest(context=plan.context, dtype=precision.dtype, quant=precision.quant or "none")


def measured_by_label(plan: Plan, devices: dict[str, int]) -> dict[str, int]:
    """Peak bytes by the plan's device labels ('cpu' -> 'CPU RAM', 'cuda:0' -> 'GPU 0 (…)')."""
    labels = {p.device: p.label for p in plan.placements}
    out: dict[str, int] = {}
    for device, value in devices.items():
        if "." in device:  # 'cpu.load_peak' and the like
            continue
        out[labels.get(device, "CPU RAM" if device == "cpu" else device)] = value
    return out


def download_progress_class(on_event: LaunchCallback, cancel: threading.Event) -> Any:
    """A huggingface_hub tqdm class that reports each file's bytes and stops the download on cancel."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class Reporter(hub_tqdm):
        """Reports byte bars (one per file) as DownloadProgress; draws nothing."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = False
            kwargs["file"] = _Null()
            super().__init__(*args, **kwargs)
            self._report()

        def _report(self) -> None:
            if cancel.is_set():
                raise LaunchCancelledError("download cancelled")
            if getattr(self, "unit", "") == "B":
                name = str(self.desc or "file").rsplit("/", 1)[-1].strip(": ") or "file"
                total = int(self.total) if self.total else None
                on_event(DownloadProgress(name, int(self.n), total))

        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            self._report()
            return result

    return Reporter


class _Null:
    """A file that swallows the progress bar's drawing."""

    def write(self, _text: str) -> int:
        return 0

    def flush(self) -> None:
        return None


def catalog_source(catalog: Catalog) -> Callable[[ModelCard], ModelSource]:
    """Where an entry's weights come from, as `berth launch` decides it: the local folder or GGUF file an entry
    made with `berth catalog add` points at (while it is there), else the Hub."""
    from launcher.run.source import ModelSource, resolve_source
    from registry.errors import UnknownModelError

    def source_for(card: ModelCard) -> ModelSource:
        try:
            source = resolve_source(card.id, catalog)
        except UnknownModelError:
            return ModelSource(card, "hub")
        return source if source.card.id == card.id else ModelSource(card, "hub")

    return source_for


def launch_request(
    plan: Plan, source: ModelSource, memory_limits: dict[int | str, int] | None
) -> PlanRequest:
    """The request the loader re-plans with: the plan's context and precision within the person's memory caps;
    for a GGUF file only its context (the runtime picks how to run the file; never offloaded to disk)."""
    from dataclasses import replace

    if (
        source.kind == "gguf"
    ):  # the runtime and precision are the file's to decide (llama.cpp runs it as stored)
        return PlanRequest(context=plan.context, max_memory=memory_limits, allow_disk=False)
    return replace(request_for(plan), max_memory=memory_limits)


class LaunchStackFactory:
    """The SessionFactory for real models (see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store | None = None,
        source_for: Callable[[ModelCard], ModelSource] | None = None,
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        memory_limits: dict[int | str, int] | None = None,
        initial: tuple[ModelSource, PlanRequest, Plan] | None = None,
    ) -> None:
        self.catalog = catalog
        self.initial = initial
        """`berth launch`'s source, request and plan for the model it names (used as the CLI would use them)."""
        self.store = store
        self.source_for = source_for or catalog_source(catalog)
        self.trust_remote_code = trust_remote_code
        self.allow_pickle = allow_pickle
        self.memory_limits = memory_limits
        """Per-device caps (`berth launch --max-memory`), enforced while loading."""

    def __call__(
        self,
        card: ModelCard,
        plan: Plan,
        host: HostSnapshot,
        on_event: LaunchCallback,
        cancel: threading.Event,
    ) -> Launched:
        """Fetch, load as planned (stepping down on out-of-memory), and open the session."""
        from launcher.run.load import LoadOptions, fetch_files
        from launcher.run.runtime import load, local_gguf_source  # transformers or llama.cpp, as planned
        from launcher.run.session import open_session

        def on_progress(what: str, done: int, total: int | None) -> None:
            if cancel.is_set():
                raise LaunchCancelledError(card.id)
            on_event(LoadProgress(done, total or max(done, 1), what or "weights"))

        fallbacks: list[str] = []

        def notify(message: str) -> None:
            if "ran out of memory" in message:
                fallbacks.append(message)
                on_event(Fallback(message))
            else:
                on_event(Note(message))

        options = LoadOptions(
            trust_remote_code=self.trust_remote_code,
            allow_pickle=self.allow_pickle,
            show_progress=False,
            on_progress=on_progress,
            memory_limits=self.memory_limits,
        )
        source, request = self._source_and_request(card, plan)
        on_event(Note(f"fetching {source.label}"))
        try:
            bar = download_progress_class(on_event, cancel)
            if source.kind == "hub" and plan.llama_cpp is not None:  # a Hub GGUF repository: its chosen file
                source = local_gguf_source(source, plan, tqdm_class=bar)
                request = launch_request(plan, source, self.memory_limits)
            folder = fetch_files(source, options, tqdm_class=bar)
            if cancel.is_set():
                raise LaunchCancelledError(card.id)
            on_event(Note(f"loading {card.id}: {plan.summary}"))
            loaded = load(source, host, request, options, self.catalog.accelerators, notify, files=folder)
        except Exception:
            if cancel.is_set():
                raise LaunchCancelledError(card.id) from None
            raise
        if cancel.is_set():
            loaded.close()
            raise LaunchCancelledError(card.id)
        session = open_session(loaded, store=None)
        measured = measured_by_label(loaded.plan, dict(loaded.load_peak.devices))
        return Launched(
            LaunchStackSession(session, loaded, self.store),
            loaded.plan,
            measured,
            tuple(fallbacks),
            loaded.load_seconds,
        )

    def _source_and_request(self, card: ModelCard, plan: Plan) -> tuple[ModelSource, PlanRequest]:
        """The source `berth launch` resolved for the model it named (its request too, for its own plan);
        for any other model the entry's own source."""
        if self.initial is not None:
            source, request, initial_plan = self.initial
            if source.card.id == card.id:
                if plan == initial_plan:
                    return source, request
                return source, launch_request(plan, source, self.memory_limits)
        source = self.source_for(card)
        return source, launch_request(plan, source, self.memory_limits)


class LaunchStackSession:
    """The TUI's Session over a launcher.run.session.Session (chat, completion, fill-mask)."""

    def __init__(self, session: Session, loaded: Loaded, store: Store | None = None) -> None:
        self.session = session
        self.loaded = loaded
        self.store = store
        self.model_id: str = session.model_id
        self.task: Task = session.task
        self._measured = False

    def _run(self, text: str, settings: GenerationSettings, on_piece: PieceCallback) -> Reply:
        # send() generates in the calling thread: the TUI's worker, a short-lived thread per reply, so only
        # one OpenMP team is ever live (the session module explains why that matters on few cores).
        self.loaded.meter.phase()
        reply = self.session.send(text, on_piece=on_piece, settings=settings)
        self._measure(reply)
        return reply

    def _measure(self, reply: Reply) -> None:
        if self._measured or self.store is None or reply.stopped or reply.new_tokens < MIN_MEASURED_TOKENS:
            return
        self._measured = True
        measurement = self.loaded.measurement(
            reply.prompt_tokens + reply.new_tokens, reply.time_to_first_token_s, reply.tokens_per_s
        )
        self.store.record_measurement(measurement)

    def chat(
        self,
        messages: Sequence[Turn],
        settings: GenerationSettings,
        system_prompt: str,
        on_piece: PieceCallback,
    ) -> Reply:
        """Reply to the last user message with the turns before it as history."""
        *earlier, last = messages
        self.session.history = [m for m in earlier if m.role != "system"]
        self.session.system = system_prompt or None
        return self._run(last.content, settings, on_piece)

    def complete(self, prompt: str, settings: GenerationSettings, on_piece: PieceCallback) -> Reply:
        """Continue a text on its own."""
        self.session.history = []
        self.session.system = None
        return self._run(prompt, settings, on_piece)

    def fill_mask(self, text: str, top_k: int = 5) -> list[Candidate]:
        """The session's candidates for the mask."""
        self.session.history = []
        reply = self.session.send(text.replace(self.mask_token, "[MASK]"))
        return list(reply.candidates[:top_k])

    @property
    def mask_token(self) -> str:
        """The tokenizer's mask token ([MASK] when it has none)."""
        tokenizer = getattr(self.session.backend, "tokenizer", None)
        return getattr(tokenizer, "mask_token", None) or "[MASK]"

    def stop(self) -> None:
        """Stop the reply being generated."""
        self.session.stop()

    def memory_bytes(self) -> dict[str, int]:
        """This process's resident memory now, and each GPU's peak reserved memory in this phase."""
        from launcher.run.measure import gpu_peaks, rss_bytes

        figures: dict[str, int] = {}
        rss = rss_bytes()
        if rss is not None:
            figures["CPU RAM"] = rss
        for index, value in gpu_peaks().items():
            figures[f"GPU {index} peak"] = value
        return figures

    def close(self) -> None:
        """Stop any reply and free the model."""
        self.session.stop()
        self.loaded.close()


class SqliteChatStore:
    """The TUI's ChatStore over launcher.run.store.Store (append-only: a changed past turn starts a new chat,
    except a reply saved while it streamed, which later saves update in place)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save_chat(self, record: ChatRecord) -> str:
        """Append the turns the store lacks; a chat whose earlier turns changed is saved as a new one."""
        if record.id is not None and self._extend(int(record.id), record):
            return record.id
        settings = record.settings
        chat_id = self.store.new_chat(
            record.model_id,
            record.task,
            record.system_prompt or None,
            {
                "max_new_tokens": settings.max_new_tokens,
                "temperature": settings.temperature,
                "top_p": settings.top_p,
            },
        )
        self._append(chat_id, record, 0)
        return str(chat_id)

    def _extend(self, chat_id: int, record: ChatRecord) -> bool:
        """Bring a stored chat up to `record` if only its end differs (new turns, a streaming reply grown)."""
        existing = self.store.chat(chat_id)
        if existing is None:
            return False
        stored = [m for m in existing.messages if m.role != "system"]
        pending = stored.pop() if stored and stored[-1].stats.get("partial") else None
        turns = [(m.role, m.content) for m in record.messages]
        if turns[: len(stored)] != [(m.role, m.content) for m in stored]:
            return False
        start = len(stored)
        if pending is not None:
            if len(turns) <= start or turns[start][0] != "assistant":
                return False
            turn = record.messages[start]
            if turn.content != pending.content or turn.reply is not None:
                self.store.update_message(pending.id, turn.content, self._stats(record, start))
            start += 1
        self._append(chat_id, record, start)
        return True

    def _append(self, chat_id: int, record: ChatRecord, start: int) -> None:
        for index in range(start, len(record.messages)):
            message = record.messages[index]
            self.store.add_message(chat_id, message.role, message.content, self._stats(record, index))

    @staticmethod
    def _stats(record: ChatRecord, index: int) -> dict[str, Any] | None:
        """A message's figures: its reply's, or partial for a reply still streaming."""
        message = record.messages[index]
        if message.reply is not None:
            return message.reply.stats()
        if record.partial and index == len(record.messages) - 1 and message.role == "assistant":
            return dict(PARTIAL)
        return None

    def list_chats(self) -> list[ChatSummary]:
        """The store's chats, most recently used first."""
        return [
            ChatSummary(str(c.id), c.model_id, c.title or "", c.created_at, c.message_count)
            for c in self.store.chats(limit=500)
        ]

    def load_chat(self, chat_id: str) -> ChatRecord:
        """One chat with its turns, settings and reply figures."""
        chat = self.store.chat(int(chat_id)) if chat_id.isdigit() else None
        if chat is None:
            raise KeyError(chat_id)
        from launcher.run.session import Turn

        messages = [
            Turn(m.role, m.content, reply_from_figures(m.content, dict(m.stats)) if _is_reply(m) else None)
            for m in chat.messages
            if m.role != "system"
        ]
        task: Task = "chat"
        if chat.task == "completion":
            task = "completion"
        elif chat.task == "fill-mask":
            task = "fill-mask"
        return ChatRecord(
            model_id=chat.model_id,
            messages=tuple(messages),
            settings=settings_from(chat.settings),
            system_prompt=chat.system or "",
            task=task,
            title=chat.title or "",
            id=str(chat.id),
            created=chat.created_at,
        )

    def delete_chat(self, chat_id: str) -> None:
        """The history store keeps every chat."""
        raise NotImplementedError(
            "Berth's history keeps every chat; export it, or delete berth.db to start over"
        )

    def measured_speed(self, model_id: str, host_label: str) -> float | None:
        """The newest measured decode speed of this model on this host."""
        for m in self.store.measurements(model_id):
            if m.host_label == host_label and m.tokens_per_s:
                return float(m.tokens_per_s)
        return None


def _is_reply(message: StoredMessage) -> bool:
    """Whether a stored message is an assistant reply with its figures."""
    return message.role == "assistant" and "new_tokens" in message.stats
