"""Conversations as JSON-ready dicts and as Markdown (exports and the file-backed chat store)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from launcher import display
from launcher.run.session import GenerationSettings, Reply, Turn
from launcher.tui.backend import ChatRecord


def stats_line(reply: Reply) -> str:
    """'42 tokens · 12.3 tokens/s · first token 180 ms' (plus 'stopped')."""
    parts = [f"{reply.new_tokens} tokens", f"{display.rate(reply.tokens_per_s)} tokens/s"]
    if reply.time_to_first_token_s is not None:
        parts.append(f"first token {display.seconds(reply.time_to_first_token_s)}")
    if reply.stopped:
        parts.append("stopped")
    return " · ".join(parts)


def _reply_to_dict(reply: Reply | None) -> dict[str, Any] | None:
    if reply is None:
        return None
    return {
        "tokens": reply.new_tokens,
        "seconds": round(reply.total_s, 4),
        "time_to_first_token_s": (
            None if reply.time_to_first_token_s is None else round(reply.time_to_first_token_s, 4)
        ),
        "tokens_per_s": None if reply.tokens_per_s is None else round(reply.tokens_per_s, 3),
        "decode_tokens_per_s": reply.tokens_per_s,
        "stopped": reply.stopped,
    }


def reply_from_figures(text: str, figures: dict[str, Any]) -> Reply:
    """A finished reply rebuilt from the figures kept with its message (the export's or the store's keys)."""
    tokens_per_s = figures.get("decode_tokens_per_s")
    if tokens_per_s is None:
        tokens_per_s = figures.get("tokens_per_s")
    return Reply(
        text=text,
        prompt_tokens=int(figures.get("prompt_tokens") or 0),
        new_tokens=int(figures.get("tokens", figures.get("new_tokens")) or 0),
        time_to_first_token_s=figures.get("time_to_first_token_s"),
        tokens_per_s=None if tokens_per_s is None else float(tokens_per_s),
        total_s=float(figures.get("seconds", figures.get("total_s")) or 0.0),
        finish_reason="stopped" if figures.get("stopped") else figures.get("finish_reason", "stop"),
    )


def record_to_dict(record: ChatRecord) -> dict[str, Any]:
    """Everything in a conversation, as plain JSON values."""
    settings = record.settings
    return {
        "id": record.id,
        "model": record.model_id,
        "task": record.task,
        "title": record.title,
        "created": record.created,
        "host": record.host_label,
        "sampling": {
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_new_tokens": settings.max_new_tokens,
            "system_prompt": record.system_prompt,
        },
        "messages": [
            {"role": m.role, "content": m.content, "stats": _reply_to_dict(m.reply)} for m in record.messages
        ],
    }


def settings_from(values: Mapping[str, Any]) -> GenerationSettings:
    """Generation settings from a saved chat's settings (defaults for what is missing)."""
    return GenerationSettings(
        temperature=float(values.get("temperature", GenerationSettings.temperature)),
        top_p=float(values.get("top_p", GenerationSettings.top_p)),
        max_new_tokens=int(values.get("max_new_tokens", GenerationSettings.max_new_tokens)),
    )


def record_from_dict(value: dict[str, Any]) -> ChatRecord:
    """The inverse of record_to_dict."""
    sampling = value.get("sampling") or {}
    return ChatRecord(
        id=value.get("id"),
        model_id=value["model"],
        task=value.get("task", "chat"),
        title=value.get("title", ""),
        created=value.get("created", ""),
        host_label=value.get("host", ""),
        settings=settings_from(sampling),
        system_prompt=str(sampling.get("system_prompt", "")),
        messages=tuple(
            Turn(
                m["role"],
                m["content"],
                reply_from_figures(m["content"], m["stats"]) if m.get("stats") else None,
            )
            for m in value.get("messages", [])
        ),
    )


def to_json(record: ChatRecord) -> str:
    """The conversation as an indented JSON document."""
    return json.dumps(record_to_dict(record), indent=2, ensure_ascii=False) + "\n"


def to_markdown(record: ChatRecord) -> str:
    """The conversation as Markdown: a heading, the settings, then each turn under its speaker."""
    settings = record.settings
    lines = [
        f"# {record.title or 'Chat'}",
        "",
        f"- model: `{record.model_id}`",
    ]
    if record.created:
        lines.append(f"- started: {record.created}")
    lines.append(
        f"- sampling: temperature {settings.temperature}, top-p {settings.top_p}, "
        f"up to {settings.max_new_tokens} new tokens"
    )
    if record.system_prompt:
        lines += ["", "## System", "", record.system_prompt]
    for message in record.messages:
        speaker = {"user": "You", "assistant": "Assistant", "system": "System"}[message.role]
        lines += ["", f"## {speaker}", "", message.content.rstrip()]
        if message.reply is not None:
            lines += ["", f"*{stats_line(message.reply)}*"]
    return "\n".join(lines) + "\n"
