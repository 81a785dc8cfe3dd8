"""`berth launch MODEL`: plan, fetch, load as planned, measure, and chat (or answer one --prompt).

stdout carries only what the model writes (and, in the line chat, nothing else either); the plan, progress,
notes and figures go to stderr, so `berth launch MODEL --no-tui --prompt "..." | tool` composes. torch and
transformers are imported only after the plan is made and only when something is to be loaded (not for
--dry-run).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from launcher import display
from launcher.cli.context import get_catalog
from launcher.cli.errors import EXIT_FAILURE
from launcher.cli.options import (
    MAX_SEED,
    MAX_TOKENS,
    PlanOptions,
    WholeNumber,
    gpu_index,
    plan_options,
    resolve_host_for,
)
from launcher.machine.host import HostSnapshot
from launcher.machine.hwspec import MAX_SIZE_BYTES, parse_size
from launcher.machine.numbers import SHOWN_CHARS
from launcher.machine.paths import check_folder
from launcher.plan.errors import DoesNotFitError
from launcher.plan.gguf import part_names
from launcher.plan.measured import Measurement
from launcher.plan.report import render_does_not_fit, render_plan
from launcher.plan.request import Plan, PlanRequest
from launcher.run.errors import LoadError, RemoteCodeRefusedError, UnsafeWeightsError
from launcher.run.runtime import hub_gguf_listing, local_gguf_source, plan_source, request_for
from launcher.run.session import DEFAULT_MAX_NEW_TOKENS, GenerationSettings
from launcher.run.source import ModelSource, resolve_source
from launcher.run.store import Store
from registry.errors import short_text
from registry.userdirs import data_dir

if TYPE_CHECKING:
    from launcher.run.runtime import Loaded
    from launcher.run.session import Reply, Session


@dataclass(frozen=True)
class AppLaunch:
    """What `berth launch` hands the app (through the entry point) to load and chat with on a terminal."""

    source: ModelSource
    plan: Plan
    request: PlanRequest
    host: HostSnapshot
    settings: GenerationSettings
    system: str
    trust_remote_code: bool
    allow_pickle: bool
    memory_limits: dict[int | str, int] | None


def app_launcher(ctx: click.Context) -> Callable[[click.Context, AppLaunch], None] | None:
    """The entry point's way to open the app, when stdin and stdout are a terminal; None for plain streaming."""
    hook: Callable[[click.Context, AppLaunch], None] | None = getattr(
        ctx.find_root().command, "app_launcher", None
    )
    if hook is None or not on_terminal():
        return None
    return hook


def on_terminal() -> bool:
    """Whether stdin and stdout are both a terminal (a pipe or a file on either keeps plain streaming)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def parse_max_memory(text: str | None) -> dict[int | str, int] | None:
    """'cpu=8GiB,0=20GB,disk=100GB' as {'cpu': …, 0: …, 'disk': …} (bytes)."""
    if not text:
        return None
    caps: dict[int | str, int] = {}
    for item in text.split(","):
        device, sep, size = item.partition("=")
        device = device.strip().lower()
        index = gpu_index(device)
        if not sep or not (index is not None or device in ("cpu", "disk")):
            raise click.BadParameter(
                f"'{short_text(item, SHOWN_CHARS)}': give DEVICE=SIZE with DEVICE a GPU index (0-1023), cpu or disk "
                "(cpu=8GiB,0=20GB)",
                param_hint="--max-memory",
            )
        try:
            value = parse_size(size.strip(), device)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--max-memory") from None
        if value > MAX_SIZE_BYTES:
            raise click.BadParameter(
                f"{device}={short_text(size.strip(), SHOWN_CHARS)} is more than any machine holds (at most 1 EB)",
                param_hint="--max-memory",
            )
        caps[index if index is not None else device] = value
    return caps


def _err(message: str) -> None:
    click.echo(message, err=True)


@click.command("launch")
@click.argument("model", required=False)
@plan_options
@click.option("--gguf", default=None, metavar="FILE", help="Load weights from a local GGUF file.")
@click.option(
    "--max-memory",
    default=None,
    metavar="DEV=SIZE,…",
    help="Cap memory per device (cpu=8GiB,0=20GB): planned within it and enforced while loading.",
)
@click.option(
    "--no-tui",
    is_flag=True,
    help="Chat as plain lines streamed in this terminal instead of opening the app (also what happens when "
    "stdin or stdout is not a terminal, or with --prompt).",
)
@click.option(
    "--prompt", default=None, metavar="TEXT|-", help="Answer one prompt ('-' reads stdin) and exit."
)
@click.option("--system", default=None, metavar="TEXT", help="System prompt for chat models.")
@click.option(
    "--max-new-tokens", type=WholeNumber(1, MAX_TOKENS), default=DEFAULT_MAX_NEW_TOKENS, show_default=True
)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.7, show_default=True)
@click.option(
    "--top-p", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=0.95, show_default=True
)
@click.option("--seed", type=WholeNumber(0, MAX_SEED), default=None, help="Seed for repeatable sampling.")
@click.option("--dry-run", is_flag=True, help="Print the plan and the download list; load nothing.")
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow code from the model's repository, this launch."
)
@click.option(
    "--allow-pickle", is_flag=True, help="Accept pickle (.bin) weights when there is no safetensors."
)
@click.pass_context
def launch_command(
    ctx: click.Context,
    model: str | None,
    options: PlanOptions,
    gguf: str | None,
    max_memory: str | None,
    no_tui: bool,
    prompt: str | None,
    system: str | None,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    dry_run: bool,
    trust_remote_code: bool,
    allow_pickle: bool,
) -> None:
    """Run MODEL here as planned: download, load, measure, then chat (or answer --prompt and exit).

    MODEL is a catalog id or alias, a local model folder, or a .gguf file (or give --gguf FILE). On a terminal
    the app opens on the model's launch progress, then its chat; --no-tui chats in plain lines instead.
    """
    from dataclasses import replace

    if options.batch != 1:
        raise click.BadParameter("a session generates one sequence at a time", param_hint="--batch")
    catalog = get_catalog(ctx)
    source = resolve_source(model, catalog, gguf, trust_remote_code, progress=_err)
    if source.provenance:
        _err(source.provenance)
    caps = parse_max_memory(max_memory)
    gguf_repo = bool(hub_gguf_listing(source))
    request = replace(options.request(), max_memory=caps, allow_disk=source.kind != "gguf" and not gguf_repo)
    host = resolve_host_for(ctx, options.hardware)
    # a GGUF file's tensors, or a Hub GGUF repository's best quant file: the plan runs it with llama.cpp
    planned = plan_source(source, host, request, catalog.accelerators)
    if isinstance(planned, DoesNotFitError):
        click.echo(render_does_not_fit(planned, host.label), err=not dry_run)
        ctx.exit(EXIT_FAILURE)
    assert isinstance(planned, Plan)
    if dry_run:
        _dry_run(source, planned, trust_remote_code, allow_pickle)
        return
    request = request_for(source, request)
    check_folder(data_dir(), "Berth's data folder (history and measurements)", "BERTH_HOME")
    settings = GenerationSettings(max_new_tokens, temperature, top_p, seed)
    hook = None if no_tui or prompt is not None else app_launcher(ctx)
    if hook is not None:  # a Hub GGUF repository's file is downloaded on the app's Launch screen
        hook(
            ctx,
            AppLaunch(
                source, planned, request, host, settings, system or "", trust_remote_code, allow_pickle, caps
            ),
        )
        return
    if gguf_repo:  # only the chosen quant file is downloaded, then planned from its own tensors
        source = local_gguf_source(source, planned)
        request = request_for(source, request)
        planned = plan_source(source, host, request, catalog.accelerators)
        if isinstance(planned, DoesNotFitError):
            click.echo(render_does_not_fit(planned, host.label), err=True)
            ctx.exit(EXIT_FAILURE)
        assert isinstance(planned, Plan)
    text = _read_prompt(prompt)
    _err(render_plan(planned))
    _err("")

    from launcher.run.load import LoadOptions
    from launcher.run.runtime import load

    load_options = LoadOptions(
        trust_remote_code=trust_remote_code,
        allow_pickle=allow_pickle,
        memory_limits=caps,
    )
    store = Store()  # opened (and checked, a damaged file set aside) before anything is downloaded or loaded
    loaded = load(source, host, request, load_options, catalog.accelerators, notify=_err)
    try:
        if not _chat_or_answer(loaded, store, system, settings, text):
            ctx.exit(EXIT_FAILURE)
    finally:
        loaded.close()


def _read_prompt(prompt: str | None) -> str | None:
    """The --prompt text; '-' reads it from stdin."""
    if prompt == "-":
        return sys.stdin.read().rstrip("\r\n")  # the newline a shell or echo adds is not part of it
    return prompt


def _chat_or_answer(
    loaded: Loaded, store: Store, system: str | None, settings: GenerationSettings, text: str | None
) -> bool:
    """Report the load, open a session, then answer `text` or chat line by line; False when the answer failed."""
    from launcher.run.session import open_session

    _report_load(loaded)
    session = open_session(loaded, store, system, settings)
    if session.task != loaded.card.task:
        _err(f"Note: the tokenizer has no chat template, so this is plain {session.task}.")
    if text is None:
        _line_chat(session, loaded, store)
        return True
    return not _answer(session, text, loaded, store).error


# --------------------------------------------------------------------------- dry run


def _echo_hub_download(source: ModelSource, trust_remote_code: bool, allow_pickle: bool) -> None:
    """What a launch of a Hub repository downloads (its config, tokenizer and one copy of the weights)."""
    from launcher.run.download import plan_download

    try:
        fetch_plan = plan_download(source.card, allow_pickle, trust_remote_code)
    except LoadError as error:
        click.echo(
            f"  download list unavailable: {error.message}" + (f" ({error.hint})" if error.hint else "")
        )
        return
    rows = [
        [
            f.path,
            display.gib(f.size) if f.size is not None else "?",
            "cached" if f.path in fetch_plan.cached else "",
        ]
        for f in fetch_plan.selection.files
    ]
    click.echo(display.table(["file", "size", ""], rows, right=(1,)))
    click.echo(
        f"  {display.gib(fetch_plan.bytes_to_download)} to download into the Hugging Face cache"
        + (" (offline: cache only)" if fetch_plan.offline else "")
    )
    if fetch_plan.selection.skipped:
        click.echo(f"  left out: {', '.join(fetch_plan.selection.skipped)}")


def _echo_gguf_download(listing: list[tuple[str, int]], chosen: str) -> None:
    """What a launch of a Hub GGUF repository downloads: the chosen quant file's parts, nothing else."""
    wanted = set(part_names(chosen))
    parts = [(name, size) for name, size in listing if name in wanted]
    rows = [[name, display.gib(size), ""] for name, size in parts]
    click.echo(display.table(["file", "size", ""], rows, right=(1,)))
    others = len(listing) - len(parts)
    click.echo(
        f"  {display.gib(sum(size for _, size in parts))} to download into the Hugging Face cache"
        + (f"; the repository's {others} other GGUF file(s) are left out" if others else "")
    )


def _dry_run(source: ModelSource, plan: Plan, trust_remote_code: bool, allow_pickle: bool) -> None:

    click.echo(render_plan(plan))
    click.echo("")
    click.echo(f"Weights: {source.label}")
    refusal: str | None = None
    if source.card.remote_code and not trust_remote_code:
        refusal = RemoteCodeRefusedError(source.card.id).message
    listing = hub_gguf_listing(source)
    if listing and plan.llama_cpp is not None:
        _echo_gguf_download(listing, plan.llama_cpp.file_name)
    elif source.kind == "hub":
        _echo_hub_download(source, trust_remote_code, allow_pickle)
    elif source.kind == "dir" and source.path is not None:
        from registry.importer import weight_files

        files = weight_files(source.path)
        local = files.safetensors or files.pickle
        size = sum(p.stat().st_size for p in local)
        click.echo(f"  {len(local)} local {files.format} file(s), {display.gib(size)}; nothing to download")
        if files.format == "pickle" and not allow_pickle:
            refusal = UnsafeWeightsError(source.card.id, [p.name for p in files.pickle]).message
    elif source.path is not None:
        click.echo(f"  local GGUF file, {display.gib(Path(source.path).stat().st_size)}; nothing to download")
    if refusal:
        click.echo(f"Would refuse: {refusal}")
    click.echo("Dry run: nothing was loaded.")


# --------------------------------------------------------------------------- after loading


def _report_load(loaded: Loaded) -> None:
    plan = loaded.plan
    failed = [a for a in loaded.attempts if a.error]
    if failed:
        _err(f"Loaded with a lower rung after {len(failed)} out-of-memory attempt(s): {plan.summary}")
    cpu_peak = loaded.load_peak.devices.get("cpu")
    _err(
        f"Loaded {loaded.card.id} in {display.seconds(loaded.load_seconds)} ({plan.summary})"
        + (f"; process peak while loading {display.gib(cpu_peak, 2)}" if cpu_peak else "")
    )
    if not loaded.device_map_differences:
        _err("Device map: as planned.")


def _stream_reply(session: Session, text: str, out: Any) -> Reply:
    """Generate in this (the main) thread, writing each piece as it comes; Ctrl-C stops the reply only."""

    def write(piece: str) -> None:
        out.write(piece)
        out.flush()

    from launcher.run.errors import SessionError

    try:
        reply = session.send(text, on_piece=write)
    except SessionError:
        raise
    except Exception as error:  # the model failed mid-reply: say so, keep the program (and the history)
        return _failed(error)
    if reply.stopped:
        _err("\n[stopped]")
    return reply


def _failed(error: BaseException) -> Reply:
    from launcher.run.session import Reply

    return Reply("", 0, 0, None, None, 0.0, "error", error=f"{type(error).__name__}: {error}")


def _reply_stats(reply: Reply) -> str:
    if reply.candidates:
        return ""
    parts = [f"{reply.new_tokens} tokens"]
    if reply.time_to_first_token_s is not None:
        parts.append(f"{display.seconds(reply.time_to_first_token_s)} to first token")
    if reply.tokens_per_s is not None:
        parts.append(f"{display.rate(reply.tokens_per_s)} tokens/s")
    if reply.dropped_turns:
        parts.append(f"{reply.dropped_turns} oldest messages left out to fit the context")
    if reply.stopped:
        parts.append("stopped")
    return "[" + ", ".join(parts) + "]"


def _candidates(reply: Reply) -> str:
    rows = [[c.token, f"{c.score:.3f}", c.text] for c in reply.candidates]
    return display.table(["candidate", "score", "filled in"], rows, right=(1,))


def _answer(session: Session, text: str, loaded: Loaded, store: Store) -> Reply:
    loaded.meter.phase()
    reply = _stream_reply(session, text, sys.stdout)
    _end_reply(reply, _err)
    if reply.error:
        _err(f"Generation failed: {reply.error}")
        return reply
    _err(_reply_stats(reply))
    _measure(loaded, reply, store)
    return reply


def _end_reply(reply: Reply, show_candidates: Callable[[str], None]) -> None:
    """End the reply's line on stdout; a fill-mask reply's candidates table goes to `show_candidates`."""
    if reply.candidates:
        sys.stdout.write("\n")
        show_candidates(_candidates(reply))
    elif not reply.text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def _measure(loaded: Loaded, reply: Reply, store: Store) -> None:
    tokens = reply.prompt_tokens + reply.new_tokens
    measurement = loaded.measurement(tokens, reply.time_to_first_token_s, reply.tokens_per_s)
    store.record_measurement(measurement)
    _err(compare_line(measurement, loaded.plan))


def compare_line(m: Measurement, plan: Plan) -> str:
    """Estimate vs measured for one launch, in two lines."""
    error = f"{m.error:+.1%}" if m.peak_bytes else "n/a"
    devices = ", ".join(f"{k} {display.gib(v, 2)}" for k, v in m.devices.items() if "." not in k)
    load_peak = sum(v for k, v in m.devices.items() if k.endswith(".load_peak"))
    lines = [
        f"Memory at {m.tokens_used} tokens: estimated {display.gib(m.estimated_bytes, 2)}, measured "
        f"{display.gib(m.peak_bytes, 2)} ({devices}); estimate off by {error}"
        + (f"; loading peaked at {display.gib(load_peak, 2)}" if load_peak else ""),
    ]
    if m.tokens_per_s is not None:
        lines.append(
            f"Speed: {display.rate(m.tokens_per_s)} tokens/s measured, "
            f"{display.rate(plan.speed.decode_tokens_per_s)} estimated"
        )
    return "\n".join(lines)


_HELP = "Commands: /exit (or Ctrl-D), /reset (new chat), /system TEXT, /help. Ctrl-C stops a reply."


def _line_chat(session: Session, loaded: Loaded, store: Store) -> None:
    measured = False
    _err(f"Chatting with {loaded.card.id} ({session.task}). {_HELP}")
    if session.task == "fill-mask":
        _err("Type a sentence with [MASK] where a word is missing.")
    while True:
        line = _read_line()
        if line is None:
            continue
        if not line:
            _err("")
            return
        text = line.rstrip("\n")
        if not text.strip():
            continue
        command = _slash_command(session, text)
        if command == "exit":
            return
        if command is None:
            measured = _chat_turn(session, loaded, store, text, measured)


def _read_line() -> str | None:
    """One line from stdin after the prompt ('' at the end of input); None when Ctrl-C cleared it."""
    try:
        _err_prompt()
        return sys.stdin.readline()
    except KeyboardInterrupt:
        _err("")
        return None


def _slash_command(session: Session, text: str) -> str | None:
    """Carry out a /command: 'exit' to leave the chat, 'done' when it was handled, None for a message."""
    word = text.strip()
    if word in ("/exit", "/quit"):
        return "exit"
    if word == "/help":
        _err(_HELP)
    elif word == "/reset":
        session.reset()
        _err("New chat.")
    elif text.startswith("/system"):
        session.reset(system=text[len("/system") :].strip() or None)
        _err("New chat with that system prompt.")
    else:
        return None
    return "done"


def _chat_turn(session: Session, loaded: Loaded, store: Store, text: str, measured: bool) -> bool:
    """Send one message and show the reply; measure the first reply that succeeds. Whether one has been."""
    from launcher.run.errors import SessionInputError

    if not measured:
        loaded.meter.phase()
    try:
        reply = _stream_reply(session, text, sys.stdout)
    except SessionInputError as error:
        _err(str(error))
        return measured
    _end_reply(reply, click.echo)
    if reply.error:
        _err(f"Generation failed: {reply.error}")
        return measured
    stats = _reply_stats(reply)
    if stats:
        _err(stats)
    if not measured:
        _measure(loaded, reply, store)
    return True


def _err_prompt() -> None:
    sys.stderr.write("> ")
    sys.stderr.flush()
