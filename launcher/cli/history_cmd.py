"""`berth history list | show ID | export ID`: the chats kept in Berth's store."""

from __future__ import annotations

from typing import Any

import click

from launcher import display
from launcher.cli.context import echo_json
from launcher.cli.options import WholeNumber
from launcher.machine.paths import write_user_text
from launcher.run.errors import UnknownChatError
from launcher.run.store import Chat, Store, default_path
from registry.paths import expand_user_path

#: Chat ids are SQLite rowids: positive 64-bit integers.
CHAT_ID = WholeNumber(1, 2**63 - 1)


def _store() -> Store | None:
    path = default_path()
    return Store(path) if path.is_file() else None


def _chat(chat_id: int) -> Chat:
    store = _store()
    chat = store.chat(chat_id) if store is not None else None
    if chat is None:
        raise UnknownChatError(chat_id)
    return chat


def _summary(chat: Chat) -> dict[str, Any]:
    return {
        "id": chat.id,
        "model": chat.model_id,
        "task": chat.task,
        "title": chat.title,
        "messages": chat.message_count,
        "created_at": chat.created_at,
        "updated_at": chat.updated_at,
    }


@click.group("history")
def history_group() -> None:
    """Chats kept on this machine (every message is saved before the model answers)."""


@history_group.command("list")
@click.option("--limit", type=WholeNumber(1, 1_000_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_list(limit: int, as_json: bool) -> None:
    """The most recent chats first."""
    store = _store()
    chats = store.chats(limit) if store is not None else []
    if as_json:
        echo_json({"store": str(default_path()), "chats": [_summary(c) for c in chats]})
        return
    if not chats:
        click.echo("No chats yet. Start one with `berth launch MODEL`.")
        return
    rows = [
        [str(c.id), c.updated_at.replace("T", " ")[:16], c.model_id, str(c.message_count), c.title or ""]
        for c in chats
    ]
    click.echo(display.table(["id", "when (UTC)", "model", "messages", "first message"], rows, right=(0, 3)))


@history_group.command("show")
@click.argument("chat_id", type=CHAT_ID)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_show(chat_id: int, as_json: bool) -> None:
    """One chat, message by message."""
    chat = _chat(chat_id)
    store = _store()
    assert store is not None
    click.echo(store.export(chat.id, "json" if as_json else "md"), nl=False)


@history_group.command("export")
@click.argument("chat_id", type=CHAT_ID)
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md", show_default=True)
@click.option(
    "-o", "--output", default=None, metavar="FILE", help="Write to FILE (created or replaced whole)."
)
def history_export(chat_id: int, fmt: str, output: str | None) -> None:
    """A chat as Markdown or JSON (stdout, or --output FILE)."""
    _chat(chat_id)
    store = _store()
    assert store is not None
    text = store.export(chat_id, "json" if fmt == "json" else "md")
    if output:
        write_user_text(expand_user_path(output), text, "chat export", private=True)
        click.echo(f"Wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
