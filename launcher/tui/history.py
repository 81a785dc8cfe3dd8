"""A chat store kept as one JSON file per conversation, for when the SQLite store is not available.

Measured speeds come from the saved replies themselves: the median decode speed of a model's replies on a
machine (stopped replies and replies under a few tokens do not count).
"""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from launcher.tui.backend import ChatRecord, ChatSummary
from launcher.tui.transcript import record_from_dict, record_to_dict

#: Replies shorter than this many tokens say little about decode speed.
MIN_MEASURED_TOKENS = 8


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class FileChatStore:
    """Conversations as JSON files in one folder (created on first save)."""

    def __init__(self, folder: Path, clock: Callable[[], str] = _now) -> None:
        self.folder = folder
        self._clock = clock
        self._speeds: dict[tuple[str, str], float | None] | None = None

    def _path(self, chat_id: str) -> Path:
        if not chat_id or "/" in chat_id or chat_id.startswith("."):
            raise KeyError(chat_id)
        return self.folder / f"{chat_id}.json"

    def save_chat(self, record: ChatRecord) -> str:
        """Insert (id None) or replace a conversation; returns its id."""
        chat_id = record.id or uuid.uuid4().hex[:12]
        record = replace(record, id=chat_id, created=record.created or self._clock())
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(chat_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record_to_dict(record), ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
        self._speeds = None
        return chat_id

    def _records(self) -> list[ChatRecord]:
        if not self.folder.is_dir():
            return []
        records = []
        for path in self.folder.glob("*.json"):
            try:
                records.append(record_from_dict(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return records

    def list_chats(self) -> list[ChatSummary]:
        """Saved conversations, newest first."""
        summaries = [
            ChatSummary(r.id or "", r.model_id, r.title, r.created, len(r.messages)) for r in self._records()
        ]
        return sorted(summaries, key=lambda s: (s.created, s.id), reverse=True)

    def load_chat(self, chat_id: str) -> ChatRecord:
        """One saved conversation (KeyError if there is none with that id)."""
        path = self._path(chat_id)
        try:
            return record_from_dict(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise KeyError(chat_id) from None

    def delete_chat(self, chat_id: str) -> None:
        """Forget a conversation."""
        self._path(chat_id).unlink(missing_ok=True)
        self._speeds = None

    def measured_speed(self, model_id: str, host_label: str) -> float | None:
        """Median decode tokens/s of this model's saved replies on this machine."""
        if self._speeds is None:
            samples: dict[tuple[str, str], list[float]] = {}
            for record in self._records():
                for message in record.messages:
                    reply = message.reply
                    if reply is None or reply.stopped or reply.new_tokens < MIN_MEASURED_TOKENS:
                        continue
                    if reply.tokens_per_s is not None:
                        samples.setdefault((record.model_id, record.host_label), []).append(
                            reply.tokens_per_s
                        )
            self._speeds = {key: statistics.median(values) for key, values in samples.items()}
        return self._speeds.get((model_id, host_label))
