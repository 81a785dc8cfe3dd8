"""Berth's local SQLite store: chat history (every message written before generation starts) and the memory and
speed measured on this machine, which `berth plan`/`list` can show beside their estimates.

One file, `data_dir()/berth.db`, in WAL mode so a reader (`berth history`) never blocks a running chat. The
store is thread-safe: one connection guarded by a lock, every write committed at once. Chats are private: the
folder is made 0700 and the file (with its -wal/-shm/-journal companions) 0600. A damaged file (not a database,
or failing SQLite's quick check) is moved aside as `berth.db.damaged-YYYYMMDD-HHMMSS`, one line on stderr says
so, and a fresh store takes its place. Standard library only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from launcher.plan.measured import Measurement
from registry.userdirs import data_dir

Role = Literal["system", "user", "assistant"]
ChatExportFormat = Literal["md", "json"]

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL,
    task TEXT NOT NULL,
    title TEXT,
    system TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    chat_id INTEGER NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    created_at TEXT NOT NULL,
    stats TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS messages_by_chat ON messages(chat_id, id);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    model_id TEXT NOT NULL,
    precision TEXT NOT NULL,
    strategy TEXT NOT NULL,
    context INTEGER NOT NULL,
    tokens_used INTEGER NOT NULL,
    machine_key TEXT NOT NULL,
    host_label TEXT NOT NULL,
    peak_bytes INTEGER NOT NULL,
    estimated_bytes INTEGER NOT NULL,
    devices TEXT NOT NULL DEFAULT '{}',
    load_seconds REAL,
    time_to_first_token_s REAL,
    tokens_per_s REAL,
    created_at TEXT NOT NULL,
    estimated_tokens_per_s REAL
);
CREATE INDEX IF NOT EXISTS measurements_by_key ON measurements(model_id, precision, machine_key, id);
"""


def default_path() -> Path:
    """Where the store lives: data_dir()/berth.db (BERTH_HOME or ~/.local/share/berth)."""
    return data_dir() / "berth.db"


#: Seconds a statement waits for another process's lock before failing.
STORE_TIMEOUT_S = 10.0
#: SQLite result codes meaning the file is not a usable database (as opposed to locked, read-only or full).
_DAMAGE_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
#: Files SQLite keeps beside the database, private like it.
_COMPANIONS = ("-wal", "-shm", "-journal")


class StoreDamaged(sqlite3.DatabaseError):
    """SQLite's quick check found the store damaged."""


def is_damage(error: BaseException) -> bool:
    """Whether an SQLite error means the file itself is damaged (never a lock, a full disk or permissions)."""
    if isinstance(error, StoreDamaged):
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.DatabaseError) and code is not None and (code & 0xFF) in _DAMAGE_CODES


def set_aside(path: Path) -> Path:
    """Move a damaged store (and its -wal/-journal) to `NAME.damaged-YYYYMMDD-HHMMSS`; the path it was kept as."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while kept.exists():
        n += 1
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.replace(path, kept)
    for suffix in _COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if suffix == "-shm":
            companion.unlink(missing_ok=True)  # shared-memory index only, rebuilt from the -wal
        elif companion.exists():
            os.replace(companion, kept.with_name(kept.name + suffix))
    return kept


def damaged_line(path: Path, kept: Path, error: BaseException) -> str:
    """The one line that says a damaged store was kept aside and a fresh one started."""
    reason = " ".join(str(error).split())[:120] or type(error).__name__
    return (
        f"berth: the store {path} is damaged ({reason}); kept it as {kept} "
        "(its chats and measurements stay there) and started a fresh store."
    )


def _warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _private_folder(folder: Path) -> None:
    """Create the store's folder 0700; tighten Berth's own data folder when it is open to others."""
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)
    elif folder == data_dir() and folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) & 0o077:
        os.chmod(folder, 0o700)


def _private_files(path: Path) -> None:
    """Create the database file 0600 (SQLite gives its -wal and -journal the same mode) and tighten existing ones."""
    if not path.exists():
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + s) for s in _COMPANIONS)):
        if file.is_file() and stat.S_IMODE(file.stat().st_mode) & 0o077:
            os.chmod(file, 0o600)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Message:
    """One message of a chat."""

    id: int
    chat_id: int
    role: Role
    content: str
    created_at: str
    stats: Mapping[str, Any] = field(default_factory=dict)
    """Reply figures: tokens, time to first token, tokens/s, whether it was stopped."""


@dataclass(frozen=True)
class Chat:
    """A chat and, when read whole, its messages in order."""

    id: int
    model_id: str
    task: str
    title: str | None
    system: str | None
    settings: Mapping[str, Any]
    created_at: str
    updated_at: str
    message_count: int = 0
    messages: tuple[Message, ...] = ()


class Store:
    """The SQLite file with chats, messages and measurements; safe to share between threads."""

    def __init__(
        self, path: Path | str | None = None, on_damaged: Callable[[str], None] | None = None
    ) -> None:
        """Open (or create) the store; a damaged file is set aside and `on_damaged` (default: stderr) told."""
        self.path = Path(path) if path is not None else default_path()
        _private_folder(self.path.parent)
        self._lock = threading.RLock()
        self.kept_aside: Path | None = None
        """Where a damaged file found on opening was moved, if one was."""
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as error:
            if not is_damage(error):
                raise
            self.kept_aside = set_aside(self.path)
            (on_damaged or _warn)(damaged_line(self.path, self.kept_aside, error))
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        """Connect, check the file (quick_check) and create the schema; raises sqlite3.DatabaseError if damaged."""
        _private_files(self.path)
        db = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=STORE_TIMEOUT_S
        )
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            problems = [row[0] for row in db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise StoreDamaged(f"quick check: {'; '.join(problems[:3])}")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
            _add_missing_columns(db)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        _private_files(self.path)
        return db

    def close(self) -> None:
        """Close the connection (later calls fail)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ chats

    def new_chat(
        self,
        model_id: str,
        task: str,
        system: str | None = None,
        settings: Mapping[str, Any] | None = None,
        title: str | None = None,
    ) -> int:
        """Start a chat; a system prompt is also stored as its first message. Returns the chat id."""
        now = _now()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO chats (model_id, task, title, system, settings, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model_id, task, title, system, json.dumps(dict(settings or {})), now, now),
            )
            chat_id = int(cursor.lastrowid or 0)
            if system:
                db.execute(
                    "INSERT INTO messages (chat_id, role, content, created_at) VALUES (?, 'system', ?, ?)",
                    (chat_id, system, now),
                )
        return chat_id

    def add_message(
        self, chat_id: int, role: Role, content: str, stats: Mapping[str, Any] | None = None
    ) -> int:
        """Append a message, committed before this returns. The chat's title is its first user message."""
        now = _now()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO messages (chat_id, role, content, created_at, stats) VALUES (?, ?, ?, ?, ?)",
                (chat_id, role, content, now, json.dumps(dict(stats or {}))),
            )
            db.execute(
                "UPDATE chats SET updated_at = ?, title = COALESCE(title, CASE WHEN ? = 'user' THEN ? END) "
                "WHERE id = ?",
                (now, role, _title(content), chat_id),
            )
            return int(cursor.lastrowid or 0)

    def update_message(self, message_id: int, content: str, stats: Mapping[str, Any] | None = None) -> None:
        """Replace a message's text and figures in place (a reply written as it streams), committed at once."""
        now = _now()
        with self._write() as db:
            db.execute(
                "UPDATE messages SET content = ?, stats = ? WHERE id = ?",
                (content, json.dumps(dict(stats or {})), message_id),
            )
            db.execute(
                "UPDATE chats SET updated_at = ? WHERE id = (SELECT chat_id FROM messages WHERE id = ?)",
                (now, message_id),
            )

    def chats(self, limit: int = 50) -> list[Chat]:
        """The most recently used chats first, without their messages."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.chat_id = c.id) AS n "
                "FROM chats c ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_chat(row, row["n"]) for row in rows]

    def chat(self, chat_id: int) -> Chat | None:
        """One chat with all its messages, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM chats WHERE id = ?", (chat_id,)).fetchone()
            if row is None:
                return None
            rows = self._db.execute(
                "SELECT * FROM messages WHERE chat_id = ? ORDER BY id", (chat_id,)
            ).fetchall()
        messages = tuple(
            Message(r["id"], r["chat_id"], r["role"], r["content"], r["created_at"], json.loads(r["stats"]))
            for r in rows
        )
        return _chat(row, len(messages), messages)

    def export(self, chat_id: int, fmt: ChatExportFormat = "md") -> str:
        """A chat as Markdown or JSON; KeyError when there is no such chat."""
        chat = self.chat(chat_id)
        if chat is None:
            raise KeyError(chat_id)
        if fmt == "json":
            data = asdict(chat)
            data["settings"] = dict(chat.settings)
            data["messages"] = [{**asdict(m), "stats": dict(m.stats)} for m in chat.messages]
            data.pop("message_count")
            return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        lines = [
            f"# {chat.title or 'Chat'} ({chat.model_id})",
            "",
            f"Started {chat.created_at}, task {chat.task}.",
        ]
        for message in chat.messages:
            lines += ["", f"## {message.role}", "", message.content]
            if message.stats.get("stopped"):
                lines += ["", "*(stopped)*"]
            elif message.stats.get("partial"):
                lines += ["", "*(cut off: Berth ended before the reply was finished)*"]
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ measurements

    def record_measurement(self, m: Measurement) -> int:
        """Keep one launch's measured figures."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO measurements (model_id, precision, strategy, context, tokens_used, machine_key, "
                "host_label, peak_bytes, estimated_bytes, devices, load_seconds, time_to_first_token_s, "
                "tokens_per_s, created_at, estimated_tokens_per_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    m.model_id,
                    m.precision,
                    m.strategy,
                    m.context,
                    m.tokens_used,
                    m.machine_key,
                    m.host_label,
                    m.peak_bytes,
                    m.estimated_bytes,
                    json.dumps(dict(m.devices)),
                    m.load_seconds,
                    m.time_to_first_token_s,
                    m.tokens_per_s,
                    m.created_at or _now(),
                    m.estimated_tokens_per_s,
                ),
            )
            return int(cursor.lastrowid or 0)

    def latest_measurement(
        self, model_id: str, precision: str, machine: str, context: int | None = None
    ) -> Measurement | None:
        """The newest measurement of this model in this precision on this machine (at this context if given)."""
        query = "SELECT * FROM measurements WHERE model_id = ? AND precision = ? AND machine_key = ?"
        args: list[Any] = [model_id, precision, machine]
        if context is not None:
            query += " AND context = ?"
            args.append(context)
        with self._lock:
            row = self._db.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return _measurement(row) if row is not None else None

    def measurements(self, model_id: str | None = None) -> list[Measurement]:
        """Every measurement (of one model if given), newest first."""
        with self._lock:
            if model_id is None:
                rows = self._db.execute("SELECT * FROM measurements ORDER BY id DESC").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM measurements WHERE model_id = ? ORDER BY id DESC", (model_id,)
                ).fetchall()
        return [_measurement(r) for r in rows]


def latest_measurement(
    model_id: str, precision: str, machine: str, path: Path | str | None = None
) -> Measurement | None:
    """The newest measurement from the store file, or None when there is no store yet (never creates one)."""
    db_path = Path(path) if path is not None else default_path()
    if not db_path.is_file():
        return None
    with Store(db_path) as store:
        return store.latest_measurement(model_id, precision, machine)


#: Columns added after version 1, with their types: a store from an older Berth gains them when opened.
_ADDED_COLUMNS = {"measurements": {"estimated_tokens_per_s": "REAL"}}


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for name, kind in columns.items():
            if name not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def speed_measurements(machine: str, path: Path | str | None = None, limit: int = 50) -> list[Measurement]:
    """This machine's newest launches that measured decode speed beside an estimate (newest first); [] when
    there is no store yet (never creates one)."""
    db_path = Path(path) if path is not None else default_path()
    if not db_path.is_file():
        return []
    with Store(db_path) as store, store._lock:
        rows = store._db.execute(
            "SELECT * FROM measurements WHERE machine_key = ? AND tokens_per_s > 0 AND estimated_tokens_per_s > 0 "
            "ORDER BY id DESC LIMIT ?",
            (machine, limit),
        ).fetchall()
    return [_measurement(r) for r in rows]


def latest_measurements(machine: str, path: Path | str | None = None) -> dict[tuple[str, str], Measurement]:
    """The newest measurement of each (model, precision) on this machine; {} when there is no store yet."""
    db_path = Path(path) if path is not None else default_path()
    if not db_path.is_file():
        return {}
    with Store(db_path) as store, store._lock:
        rows = store._db.execute(
            "SELECT * FROM measurements WHERE id IN (SELECT MAX(id) FROM measurements WHERE machine_key = ? "
            "GROUP BY model_id, precision)",
            (machine,),
        ).fetchall()
    return {(r["model_id"], r["precision"]): _measurement(r) for r in rows}


def _title(content: str) -> str:
    line = " ".join(content.split())
    return line[:60] + ("…" if len(line) > 60 else "")


def _chat(row: sqlite3.Row, count: int, messages: tuple[Message, ...] = ()) -> Chat:
    return Chat(
        id=row["id"],
        model_id=row["model_id"],
        task=row["task"],
        title=row["title"],
        system=row["system"],
        settings=json.loads(row["settings"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        message_count=count,
        messages=messages,
    )


def _measurement(row: sqlite3.Row) -> Measurement:
    return Measurement(
        model_id=row["model_id"],
        precision=row["precision"],
        strategy=row["strategy"],
        context=row["context"],
        tokens_used=row["tokens_used"],
        machine_key=row["machine_key"],
        host_label=row["host_label"],
        peak_bytes=row["peak_bytes"],
        estimated_bytes=row["estimated_bytes"],
        devices=json.loads(row["devices"]),
        load_seconds=row["load_seconds"],
        time_to_first_token_s=row["time_to_first_token_s"],
        tokens_per_s=row["tokens_per_s"],
        estimated_tokens_per_s=row["estimated_tokens_per_s"],
        created_at=row["created_at"],
        id=row["id"],
    )
