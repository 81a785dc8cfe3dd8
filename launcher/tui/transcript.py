"""Conversations as JSON-ready dicts and as Markdown (exports and the file-backed chat store)."""

from __future__ import annotations

import json
from typing import Any

from launcher import display
from launcher.tui.backend import ChatRecord, Message, ReplyStats, Sampling


def stats_line(stats: ReplyStats) -> str:
    """'42 tokens · 12.3 tokens/s · first token 180 ms' (plus 'stopped')."""
    parts = [f"{stats.tokens} tokens", f"{display.rate(stats.tokens_per_s)} tokens/s"]
    if stats.time_to_first_token_s is not None:
        parts.append(f"first token {display.seconds(stats.time_to_first_token_s)}")
    if stats.stopped:
        parts.append("stopped")
    return " · ".join(parts)


def _stats_to_dict(stats: ReplyStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {
        "tokens": stats.tokens,
        "seconds": round(stats.seconds, 4),
        "time_to_first_token_s": (
            None if stats.time_to_first_token_s is None else round(stats.time_to_first_token_s, 4)
        ),
        "tokens_per_s": None if stats.tokens_per_s is None else round(stats.tokens_per_s, 3),
        "decode_tokens_per_s": stats.decode_tokens_per_s,
        "stopped": stats.stopped,
    }


def _stats_from_dict(value: dict[str, Any] | None) -> ReplyStats | None:
    if not value:
        return None
    return ReplyStats(
        tokens=int(value["tokens"]),
        seconds=float(value["seconds"]),
        time_to_first_token_s=value.get("time_to_first_token_s"),
        stopped=bool(value.get("stopped", False)),
        decode_tokens_per_s=value.get("decode_tokens_per_s"),
    )


def record_to_dict(record: ChatRecord) -> dict[str, Any]:
    """Everything in a conversation, as plain JSON values."""
    sampling = record.sampling
    return {
        "id": record.id,
        "model": record.model_id,
        "task": record.task,
        "title": record.title,
        "created": record.created,
        "host": record.host_label,
        "sampling": {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_new_tokens": sampling.max_new_tokens,
            "system_prompt": sampling.system_prompt,
        },
        "messages": [
            {"role": m.role, "content": m.content, "stats": _stats_to_dict(m.stats)} for m in record.messages
        ],
    }


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
        sampling=Sampling(
            temperature=float(sampling.get("temperature", Sampling.temperature)),
            top_p=float(sampling.get("top_p", Sampling.top_p)),
            max_new_tokens=int(sampling.get("max_new_tokens", Sampling.max_new_tokens)),
            system_prompt=str(sampling.get("system_prompt", "")),
        ),
        messages=tuple(
            Message(role=m["role"], content=m["content"], stats=_stats_from_dict(m.get("stats")))
            for m in value.get("messages", [])
        ),
    )


def to_json(record: ChatRecord) -> str:
    """The conversation as an indented JSON document."""
    return json.dumps(record_to_dict(record), indent=2, ensure_ascii=False) + "\n"


def to_markdown(record: ChatRecord) -> str:
    """The conversation as Markdown: a heading, the settings, then each turn under its speaker."""
    sampling = record.sampling
    lines = [
        f"# {record.title or 'Chat'}",
        "",
        f"- model: `{record.model_id}`",
    ]
    if record.created:
        lines.append(f"- started: {record.created}")
    lines.append(
        f"- sampling: temperature {sampling.temperature}, top-p {sampling.top_p}, "
        f"up to {sampling.max_new_tokens} new tokens"
    )
    if sampling.system_prompt:
        lines += ["", "## System", "", sampling.system_prompt]
    for message in record.messages:
        speaker = {"user": "You", "assistant": "Assistant", "system": "System"}[message.role]
        lines += ["", f"## {speaker}", "", message.content.rstrip()]
        if message.stats is not None:
            lines += ["", f"*{stats_line(message.stats)}*"]
    return "\n".join(lines) + "\n"
