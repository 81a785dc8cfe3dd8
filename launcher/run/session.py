"""Chat, completion and fill-mask sessions: history, streaming, stop, and per-reply figures. No UI in here.

A `Session` owns the conversation and the history store; a `Backend` turns one prompt into pieces of text.
Every message the user sends is written to the store before generation starts. `send(text, on_piece=...)`
generates in the calling thread (what the command line does; Ctrl-C stops the reply, not the program);
`stream(text)` generates in a new thread and returns a `ReplyStream` to iterate (what a UI does; a
KeyboardInterrupt while iterating leaves it usable: call `stop()` and keep iterating). `stop()` is safe from any
thread. The reply is written to the store as it streams (one message, updated in place every SAVE_EVERY_TOKENS
tokens or SAVE_EVERY_S seconds, its stats marked partial), so a killed process loses at most the last few
tokens; when it ends the message gets its whole text and figures (time to first token, tokens/s, finish reason).

`TransformersBackend` runs a loaded model (chat template, plain continuation, or fill-mask); it imports torch and
transformers only when used. `ScriptedBackend` is a deterministic fake for UI tests: pass it to `Session`
(or to `open_session`'s `backend=`) in place of a model.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from launcher.run.errors import SessionBusyError, SessionInputError
from launcher.run.store import Role, Store
from registry.schema import ModelCard, Task

if TYPE_CHECKING:
    from launcher.run.load import LoadedModel

FinishReason = Literal["stop", "length", "stopped", "error"]

#: Candidates shown for a fill-mask prompt.
FILL_MASK_TOP_K = 5
#: Longest reply by default, for the command line and the TUI alike.
DEFAULT_MAX_NEW_TOKENS = 256
#: A reply being generated is written to the store after this many tokens or seconds, whichever comes first.
SAVE_EVERY_TOKENS = 16
SAVE_EVERY_S = 0.5


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings for each reply; temperature 0 means greedy decoding."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None
    """Seed set before each reply, for repeatable sampling."""


@dataclass(frozen=True)
class Turn:
    """One message of the conversation; an assistant turn a UI keeps may carry the reply that produced it."""

    role: Role
    content: str
    reply: Reply | None = None


@dataclass(frozen=True)
class Prompt:
    """What a backend generates from: the whole conversation for chat, the text alone otherwise."""

    task: Task
    messages: tuple[Turn, ...]
    text: str
    settings: GenerationSettings


@dataclass(frozen=True)
class Piece:
    """One generated token (or a flush) and the text it completed; text may be empty while a character is
    still incomplete."""

    text: str
    tokens: int = 1
    at: float = 0.0
    """time.perf_counter() when it was produced."""


@dataclass(frozen=True)
class Candidate:
    """A fill-mask candidate: the token, its probability, and the text with it filled in."""

    token: str
    score: float
    text: str


@dataclass(frozen=True)
class Finished:
    """What a backend reports when it is done."""

    prompt_tokens: int
    finish_reason: FinishReason
    candidates: tuple[Candidate, ...] = ()
    dropped_turns: int = 0
    """Oldest turns left out so the conversation fits the context."""


@dataclass(frozen=True)
class Reply:
    """One reply and how fast it came."""

    text: str
    prompt_tokens: int
    new_tokens: int
    time_to_first_token_s: float | None
    """From the message being sent to the first generated token."""
    tokens_per_s: float | None
    """Decode speed: tokens after the first, over the time since the first."""
    total_s: float
    finish_reason: FinishReason
    candidates: tuple[Candidate, ...] = ()
    dropped_turns: int = 0
    error: str | None = None

    @property
    def stopped(self) -> bool:
        """Whether the user stopped it."""
        return self.finish_reason == "stopped"

    def stats(self) -> dict[str, Any]:
        """Figures kept with the message in the history store."""
        data = asdict(self)
        data.pop("text")
        data["candidates"] = [asdict(c) for c in self.candidates]
        data["stopped"] = self.stopped
        return data


Emit = Callable[[Piece], None]


class Backend(Protocol):
    """Produces a reply for a prompt: calls `emit` for each token and returns when done or when `stop` is set."""

    task: Task

    def check(self, text: str) -> None:
        """Raise SessionInputError when `text` cannot be used (called before generation starts)."""

    def run(self, prompt: Prompt, stop: threading.Event, emit: Emit) -> Finished:
        """Generate; runs in the session's worker thread."""
        ...


_DONE = object()


class ReplyStream:
    """The pieces of one reply as they arrive. Iterate for text; `reply` is set once iteration ends."""

    def __init__(self, started: float) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._done = threading.Event()
        self.stop_event = threading.Event()
        self.started = started
        self.reply: Reply | None = None
        """The finished reply (None until the stream is exhausted or `wait` returns)."""
        self.message_id: int | None = None
        """The stored assistant message, once the reply's first text has been written."""
        self._error: BaseException | None = None

    def __iter__(self) -> ReplyStream:
        return self

    def __next__(self) -> str:
        while True:
            item = self._queue.get()
            if item is _DONE:
                self._queue.put(_DONE)  # iterating again after the end stays at the end
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopIteration
            if item:
                return str(item)

    def stop(self) -> None:
        """Ask generation to stop after the current token (thread-safe, idempotent)."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> Reply | None:
        """Block until the reply is finished (consuming nothing); the reply, or None on timeout."""
        self._done.wait(timeout)
        return self.reply

    @property
    def done(self) -> bool:
        """Whether generation has ended."""
        return self._done.is_set()

    # called from the worker thread
    def _put(self, text: str) -> None:
        self._queue.put(text)

    def _finish(self, reply: Reply, error: BaseException | None) -> None:
        self.reply = reply
        self._error = error
        self._done.set()
        self._queue.put(_DONE)


class Session:
    """A conversation with one model: history, store, settings, and at most one reply at a time."""

    def __init__(
        self,
        backend: Backend,
        model_id: str,
        store: Store | None = None,
        system: str | None = None,
        settings: GenerationSettings | None = None,
    ) -> None:
        self.backend = backend
        self.model_id = model_id
        self.store = store
        self.system = system if backend.task == "chat" else None
        self.settings = settings or GenerationSettings()
        self.history: list[Turn] = []
        """Finished turns (user and assistant), oldest first; the system prompt is kept apart."""
        self.chat_id: int | None = None
        self._lock = threading.Lock()
        self._active: ReplyStream | None = None

    @property
    def task(self) -> Task:
        """chat, completion or fill-mask."""
        return self.backend.task

    @property
    def busy(self) -> bool:
        """Whether a reply is being generated."""
        with self._lock:
            return self._active is not None and not self._active.done

    def reset(self, system: str | None = None) -> None:
        """Start a new conversation (a new chat in the store at the next message)."""
        with self._lock:
            if self._active is not None and not self._active.done:
                raise SessionBusyError("a reply is still being generated")
            self.history.clear()
            self.chat_id = None
            if system is not None:
                self.system = system if self.task == "chat" else None

    def stop(self) -> None:
        """Stop the reply being generated, if any (thread-safe)."""
        with self._lock:
            active = self._active
        if active is not None:
            active.stop()

    def stream(self, text: str, settings: GenerationSettings | None = None) -> ReplyStream:
        """Send a message: it is written to the store first; the reply is generated in a new thread and streams.

        For a UI. Generation runs in a thread of its own, so load the model in a thread that has finished (or
        the same kind of short-lived thread): a live thread that ran torch code keeps an OpenMP team, and two
        teams on few cores slow every matrix product. `send` generates in the calling thread instead.
        """
        prompt, stream = self._begin(text, settings)

        def work() -> None:
            reply, error = self._run(prompt, stream, stream._put)
            stream._finish(reply, error)

        threading.Thread(target=work, name=f"berth-generate-{self.model_id}", daemon=True).start()
        return stream

    def send(
        self,
        text: str,
        on_piece: Callable[[str], None] | None = None,
        settings: GenerationSettings | None = None,
    ) -> Reply:
        """Send a message and generate the reply in this thread, passing each piece of text to `on_piece`.

        Ctrl-C (KeyboardInterrupt) during generation stops the reply, which is kept as stopped; `stop()` from
        another thread does the same. Errors from the model are raised once the reply has been recorded.
        """
        prompt, stream = self._begin(text, settings)
        reply, error = self._run(prompt, stream, on_piece or (lambda _text: None))
        stream._finish(reply, None)
        if error is not None:
            raise error
        return reply

    def _begin(self, text: str, settings: GenerationSettings | None) -> tuple[Prompt, ReplyStream]:
        if not text.strip():
            raise SessionInputError("the message is empty")
        started = time.perf_counter()
        with self._lock:
            if self._active is not None and not self._active.done:
                raise SessionBusyError("a reply is still being generated; stop it first")
            self._save("user", text)
            self.backend.check(text)
            messages = ([Turn("system", self.system)] if self.system else []) + self.history
            prompt = Prompt(self.task, (*messages, Turn("user", text)), text, settings or self.settings)
            stream = ReplyStream(started)
            self._active = stream
        return prompt, stream

    def _save(self, role: Role, content: str, stats: dict[str, Any] | None = None) -> None:
        if self.store is None:
            return
        if self.chat_id is None:
            self.chat_id = self.store.new_chat(self.model_id, self.task, self.system, asdict(self.settings))
        self.store.add_message(self.chat_id, role, content, stats)

    def _run(
        self, prompt: Prompt, stream: ReplyStream, deliver: Callable[[str], None]
    ) -> tuple[Reply, BaseException | None]:
        """Run the backend, collect figures, record the reply; returns it with the error that ended it, if any."""
        tally = _Tally(deliver, lambda text: self._save_partial(stream, text))
        error: BaseException | None = None
        finished: Finished | None = None
        try:
            finished = self.backend.run(prompt, stream.stop_event, tally.emit)
        except KeyboardInterrupt:
            stream.stop_event.set()
            finished = Finished(0, "stopped")
        except BaseException as caught:  # handed to whoever waits for the reply, never lost here
            error = caught
        reply = tally.reply(finished, error, stream.started, time.perf_counter())
        return reply, self._record(prompt, stream, reply, error)

    def _save_partial(self, stream: ReplyStream, text: str) -> None:
        """Write the reply so far: one assistant message, added with the first text and then updated in place."""
        if self.store is None or self.chat_id is None or not text:
            return
        if stream.message_id is None:
            stream.message_id = self.store.add_message(self.chat_id, "assistant", text, PARTIAL)
        else:
            self.store.update_message(stream.message_id, text, PARTIAL)

    def _record(
        self, prompt: Prompt, stream: ReplyStream, reply: Reply, error: BaseException | None
    ) -> BaseException | None:
        """Save the reply and add the exchange to the history (unless it failed before any text); the error to
        hand on: the run's, else a failure of the store."""
        text = reply.text
        try:
            with self._lock:
                if stream.message_id is not None and self.store is not None:
                    self.store.update_message(stream.message_id, text, reply.stats())
                elif text or error is None:
                    self._save("assistant", text, reply.stats())
                if error is None or text:
                    self.history += [Turn("user", prompt.text), Turn("assistant", text)]
                if self._active is stream:
                    self._active = None
        except BaseException as caught:  # a store failure reaches the caller too
            error = error or caught
        return error


#: The stats of a reply still being written (what a killed process leaves in the store).
PARTIAL: dict[str, Any] = {"partial": True}


@dataclass
class _Tally:
    """A reply's text and token times as its pieces arrive; each piece's text is passed on to `deliver`, and the
    text so far to `save` every SAVE_EVERY_TOKENS tokens or SAVE_EVERY_S seconds."""

    deliver: Callable[[str], None]
    save: Callable[[str], None] = lambda _text: None
    parts: list[str] = field(default_factory=list)
    tokens: int = 0
    first: float | None = None
    last: float | None = None
    unsaved: int = 0
    saved_at: float | None = None

    def emit(self, piece: Piece) -> None:
        if piece.tokens:
            self.tokens += piece.tokens
            self.first = piece.at if self.first is None else self.first
            self.last = piece.at
        if piece.text:
            self.parts.append(piece.text)
            self.deliver(piece.text)
        self._maybe_save(piece)

    def _maybe_save(self, piece: Piece) -> None:
        self.unsaved += max(piece.tokens, 1)
        now = piece.at or time.perf_counter()
        if self.saved_at is None:
            self.saved_at = now
        if self.parts and (self.unsaved >= SAVE_EVERY_TOKENS or now - self.saved_at >= SAVE_EVERY_S):
            self.save("".join(self.parts))
            self.unsaved, self.saved_at = 0, now

    def reply(
        self, finished: Finished | None, error: BaseException | None, started: float, ended: float
    ) -> Reply:
        """The Reply with its figures: time to first token and the decode rate after it."""
        text = "".join(self.parts)
        if finished is not None and finished.candidates and not text:
            text = finished.candidates[0].text
        first, last = self.first, self.last
        ttft = (first - started) if first is not None else None
        rate = (
            (self.tokens - 1) / (last - first)
            if first is not None and last is not None and last > first
            else None
        )
        return Reply(
            text=text,
            prompt_tokens=finished.prompt_tokens if finished else 0,
            new_tokens=self.tokens,
            time_to_first_token_s=ttft,
            tokens_per_s=rate,
            total_s=ended - started,
            finish_reason=finished.finish_reason if finished else "error",
            candidates=finished.candidates if finished else (),
            dropped_turns=finished.dropped_turns if finished else 0,
            error=f"{type(error).__name__}: {error}" if error else None,
        )


# --------------------------------------------------------------------------- a deterministic fake


@dataclass
class ScriptedBackend:
    """A fake model for UI and session tests: replies with scripted pieces, one per `delay_s`, honouring stop."""

    replies: Sequence[Sequence[str]] = (("Hello", ",", " world", "."),)
    """Pieces of each reply in turn; the last is repeated when there are more messages than replies."""
    task: Task = "chat"
    delay_s: float = 0.0
    fail_with: BaseException | None = None
    """Raised instead of replying (to test error paths)."""
    prompts: list[Prompt] = field(default_factory=list)
    """Every prompt received, for assertions."""

    def check(self, text: str) -> None:
        """Fill-mask prompts need [MASK]."""
        if self.task == "fill-mask" and "[MASK]" not in text:
            raise SessionInputError("put [MASK] where the missing word goes")

    def run(self, prompt: Prompt, stop: threading.Event, emit: Emit) -> Finished:
        """Emit the next scripted reply piece by piece."""
        self.prompts.append(prompt)
        if self.fail_with is not None:
            raise self.fail_with
        pieces = self.replies[min(len(self.prompts) - 1, len(self.replies) - 1)]
        if self.task == "fill-mask":
            candidates = tuple(
                Candidate(p.strip(), 1.0 / (i + 2), prompt.text.replace("[MASK]", p.strip(), 1))
                for i, p in enumerate(pieces)
            )
            emit(Piece(candidates[0].text, 0, time.perf_counter()))
            return Finished(len(prompt.text.split()), "stop", candidates)
        produced = 0
        for piece in pieces[: prompt.settings.max_new_tokens]:
            if stop.is_set():
                return Finished(len(prompt.text.split()), "stopped")
            if self.delay_s:
                stop.wait(self.delay_s)
            emit(Piece(piece, 1, time.perf_counter()))
            produced += 1
        reason: FinishReason = "length" if produced >= prompt.settings.max_new_tokens else "stop"
        return Finished(len(prompt.text.split()), "stopped" if stop.is_set() else reason)


# --------------------------------------------------------------------------- transformers


class _EventStop:
    """A StoppingCriteria that ends generation once an event is set (checked after every token)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, _scores: Any, **_kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class _TokenEmitter:
    """A transformers streamer: decodes each new token and emits the text it completes (holding back a
    half-finished character), with the time it was produced."""

    def __init__(self, tokenizer: Any, emit: Emit) -> None:
        self.tokenizer = tokenizer
        self.emit = emit
        self.prompt_seen = False
        self.cache: list[int] = []
        self.printed = 0

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        now = time.perf_counter()
        for token in value.reshape(-1).tolist():
            self.cache.append(int(token))
            text = self.tokenizer.decode(self.cache, skip_special_tokens=True)
            if text.endswith("\ufffd"):
                self.emit(Piece("", 1, now))
                continue
            self.emit(Piece(text[self.printed :], 1, now))
            self.printed = len(text)
            if text.endswith("\n"):
                self.cache, self.printed = [], 0

    def end(self) -> None:
        if self.cache:
            text = self.tokenizer.decode(self.cache, skip_special_tokens=True)
            if len(text) > self.printed:
                self.emit(Piece(text[self.printed :], 0, time.perf_counter()))
        self.cache, self.printed = [], 0


class TransformersBackend:
    """Runs a transformers model: chat through the tokenizer's chat template, plain continuation, or fill-mask."""

    def __init__(self, model: Any, tokenizer: Any, task: Task, context: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.task: Task = task
        self.context = context
        self.lock = threading.Lock()

    @property
    def input_device(self) -> Any:
        """Where inputs go: the device of the first block on a GPU, else the CPU."""
        import torch

        device_map = getattr(self.model, "hf_device_map", None) or {}
        for device in device_map.values():
            if isinstance(device, int) or (isinstance(device, str) and device.startswith(("cuda", "mps"))):
                return torch.device(f"cuda:{device}" if isinstance(device, int) else device)
        return torch.device("cpu")

    def check(self, text: str) -> None:
        """Fill-mask needs the tokenizer's mask token (or [MASK])."""
        if self.task == "fill-mask":
            mask = self.tokenizer.mask_token or "[MASK]"
            if mask not in text and "[MASK]" not in text:
                raise SessionInputError(f"put {mask} where the missing word goes")

    def run(self, prompt: Prompt, stop: threading.Event, emit: Emit) -> Finished:
        """Generate (or fill the mask) for one prompt."""
        with self.lock:
            if self.task == "fill-mask":
                return self._fill_mask(prompt, emit)
            return self._generate(prompt, stop, emit)

    def _encode(self, prompt: Prompt) -> tuple[dict[str, Any], int]:
        settings = prompt.settings
        if self.task != "chat":
            return dict(self.tokenizer(prompt.text, return_tensors="pt")), 0
        messages = list(prompt.messages)
        dropped = 0
        while True:
            encoded = self._apply_template(messages)
            length = int(encoded["input_ids"].shape[1])
            fits = self.context is None or length + settings.max_new_tokens <= self.context
            first_turn = 1 if messages and messages[0].role == "system" else 0
            if fits or len(messages) - first_turn <= 1:
                return dict(encoded), dropped
            del messages[first_turn : first_turn + 2]  # the oldest user/assistant exchange
            dropped += 2

    def _apply_template(self, messages: list[Turn]) -> Any:
        turns = [{"role": t.role, "content": t.content} for t in messages]
        try:
            return self.tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, return_dict=True, return_tensors="pt"
            )
        except Exception:
            # Some templates (Gemma's) reject a system role: fold it into the first user message instead.
            if len(turns) < 2 or turns[0]["role"] != "system":
                raise
            system, first = turns[0], turns[1]
            merged = [
                {"role": first["role"], "content": f"{system['content']}\n\n{first['content']}"},
                *turns[2:],
            ]
            return self.tokenizer.apply_chat_template(
                merged, add_generation_prompt=True, return_dict=True, return_tensors="pt"
            )

    def _generate(self, prompt: Prompt, stop: threading.Event, emit: Emit) -> Finished:
        import torch
        from transformers import StoppingCriteriaList, set_seed

        settings = prompt.settings
        inputs, dropped = self._encode(prompt)
        device = self.input_device
        inputs = {k: v.to(device) for k, v in inputs.items()}
        prompt_tokens = int(inputs["input_ids"].shape[1])
        max_new = settings.max_new_tokens
        if self.context is not None:
            max_new = max(min(max_new, self.context - prompt_tokens), 1)
        tokenizer = self.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "streamer": _TokenEmitter(tokenizer, emit),
            "stopping_criteria": StoppingCriteriaList([_EventStop(stop)]),
            "pad_token_id": pad,
        }
        if settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p, top_k=None)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if settings.seed is not None:
            set_seed(settings.seed)
        try:
            with torch.inference_mode():
                output = self.model.generate(**inputs, **kwargs)
        except (
            KeyboardInterrupt
        ):  # Ctrl-C while generating in the main thread: the reply stops, not the program
            stop.set()
            return Finished(prompt_tokens, "stopped", dropped_turns=dropped)
        produced = int(output.shape[1]) - prompt_tokens
        reason: FinishReason = "stopped" if stop.is_set() else ("length" if produced >= max_new else "stop")
        return Finished(prompt_tokens, reason, dropped_turns=dropped)

    def _fill_mask(self, prompt: Prompt, emit: Emit) -> Finished:
        import torch

        tokenizer = self.tokenizer
        mask = tokenizer.mask_token or "[MASK]"
        text = prompt.text.replace("[MASK]", mask) if mask != "[MASK]" else prompt.text
        inputs = {k: v.to(self.input_device) for k, v in tokenizer(text, return_tensors="pt").items()}
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        ids = inputs["input_ids"][0]
        positions = (ids == tokenizer.mask_token_id).nonzero().flatten().tolist()
        if not positions:
            raise SessionInputError(f"put {mask} where the missing word goes")
        filled = text
        candidates: list[Candidate] = []
        for n, position in enumerate(positions):
            probs = torch.softmax(logits[0, position].float(), dim=-1)
            top = torch.topk(probs, FILL_MASK_TOP_K)
            words = [tokenizer.decode([int(i)]).strip() for i in top.indices]
            if n == 0:
                candidates = [
                    Candidate(w, float(s), filled.replace(mask, w, 1))
                    for w, s in zip(words, top.values.tolist(), strict=True)
                ]
            filled = filled.replace(mask, words[0], 1)
        if len(positions) == 1:
            filled = candidates[0].text
        emit(Piece(filled, 0, time.perf_counter()))
        return Finished(int(ids.shape[0]), "stop", tuple(candidates))


def session_task(loaded: LoadedModel | OwnBackend) -> Task:
    """The session kind for a loaded model: its card's task, or completion for a chat card without a template."""
    if hasattr(loaded, "session_backend"):
        own: Task = loaded.session_backend().task
        return own
    task: Task = loaded.card.task
    if task == "chat" and not getattr(loaded.tokenizer, "chat_template", None):
        return "completion"
    return task


class OwnBackend(Protocol):
    """A loaded model of another runtime (llama.cpp) that makes its own session backend."""

    @property
    def card(self) -> ModelCard: ...

    def session_backend(self) -> Backend:
        """The backend a session generates with."""
        ...


def open_session(
    loaded: LoadedModel | OwnBackend,
    store: Store | None = None,
    system: str | None = None,
    settings: GenerationSettings | None = None,
    backend: Backend | None = None,
) -> Session:
    """The session for a loaded model of either runtime (the factory the CLI and the TUI use; tests pass
    `backend`)."""
    if backend is not None:
        chosen = backend
    elif hasattr(loaded, "session_backend"):
        chosen = loaded.session_backend()
    else:
        chosen = TransformersBackend(loaded.model, loaded.tokenizer, session_task(loaded), loaded.context)
    return Session(chosen, loaded.card.id, store=store, system=system, settings=settings)
