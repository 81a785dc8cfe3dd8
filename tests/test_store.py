"""The SQLite store: chats and messages (written at once, WAL), exports, measurements per machine."""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import stat
import threading

import pytest
from conftest import cpu_host

from launcher.machine.host import GpuInfo
from launcher.plan.measured import Measurement, machine_key
from launcher.run.store import Store, default_path, latest_measurement


def test_chats_messages_and_exports(berth_home):
    store = Store()
    assert store.path == default_path() == berth_home / "berth.db"
    chat = store.new_chat("org/model", "chat", system="Be brief.", settings={"temperature": 0.5})
    store.add_message(chat, "user", "What is the capital of France?\nPlease answer.")
    store.add_message(chat, "assistant", "Paris.", {"new_tokens": 3, "stopped": False})
    other = store.new_chat("org/other", "completion")
    store.add_message(other, "user", "Once upon a time")
    store.add_message(other, "assistant", " there was", {"stopped": True})

    listed = store.chats()
    assert [c.id for c in listed] == [other, chat]
    assert listed[1].title == "What is the capital of France? Please answer." and listed[1].message_count == 3
    whole = store.chat(chat)
    assert whole is not None
    assert [m.role for m in whole.messages] == ["system", "user", "assistant"]
    assert whole.messages[2].stats["new_tokens"] == 3 and whole.settings == {"temperature": 0.5}
    markdown = store.export(chat, "md")
    assert "## user" in markdown and "Paris." in markdown and "Be brief." in markdown
    assert "*(stopped)*" in store.export(other, "md")
    data = json.loads(store.export(chat, "json"))
    assert data["model_id"] == "org/model" and [m["content"] for m in data["messages"]][-1] == "Paris."
    assert store.chat(9999) is None
    store.close()


def test_wal_and_durability(tmp_path):
    path = tmp_path / "b.db"
    store = Store(path)
    chat = store.new_chat("m", "chat")
    store.add_message(chat, "user", "kept")
    # Another connection sees the message at once: it is committed before add_message returns.
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT content FROM messages").fetchall() == [("kept",)]
    other.close()


def test_threads_share_one_store(tmp_path):
    store = Store(tmp_path / "b.db")
    chat = store.new_chat("m", "chat")

    def write(n: int) -> None:
        for i in range(25):
            store.add_message(chat, "user", f"{n}-{i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    whole = store.chat(chat)
    assert whole is not None and len(whole.messages) == 100


def _measurement(**changes):
    fields = {
        "model_id": "org/model",
        "precision": "bf16",
        "strategy": "cpu",
        "context": 4096,
        "tokens_used": 40,
        "machine_key": "abc",
        "host_label": "this machine",
        "peak_bytes": 700 * 2**20,
        "estimated_bytes": 690 * 2**20,
        "devices": {"cpu": 700 * 2**20},
        "tokens_per_s": 40.0,
    }
    fields.update(changes)
    return Measurement(**fields)


def test_measurements_by_model_precision_machine(tmp_path):
    path = tmp_path / "b.db"
    assert latest_measurement("org/model", "bf16", "abc", path) is None
    assert not path.exists()  # looking does not create a store
    with Store(path) as store:
        store.record_measurement(_measurement(tokens_per_s=30.0))
        store.record_measurement(_measurement(tokens_per_s=41.0))
        store.record_measurement(_measurement(precision="fp32"))
        store.record_measurement(_measurement(machine_key="other"))
        latest = store.latest_measurement("org/model", "bf16", "abc")
        assert latest is not None and latest.tokens_per_s == 41.0 and latest.devices == {"cpu": 700 * 2**20}
        assert store.latest_measurement("org/model", "bf16", "abc", context=1) is None
        assert len(store.measurements("org/model")) == 4
    found = latest_measurement("org/model", "bf16", "abc", path)
    assert found is not None and abs(found.error - (-10 / 700)) < 1e-9


def test_machine_key_ignores_free_memory():
    a = cpu_host(ram_bytes=16 * 10**9)
    b = cpu_host(ram_bytes=16 * 10**9).__class__(**{**a.__dict__, "ram_available_bytes": 1})
    assert machine_key(a) == machine_key(b)
    gpu = GpuInfo(0, "NVIDIA H100 80GB HBM3", total_bytes=80 * 10**9, free_bytes=1)
    assert machine_key(a) != machine_key(a.__class__(**{**a.__dict__, "gpus": (gpu,)}))


@pytest.mark.parametrize("damage", ["random", "truncated", "garbled page"])
def test_a_damaged_store_is_kept_aside_and_a_fresh_one_started(tmp_path, damage):
    path = tmp_path / "berth.db"
    with Store(path) as store:
        chat = store.new_chat("m", "chat")
        for i in range(400):
            store.add_message(chat, "user", f"message {i} " * 20)
    data = path.read_bytes()
    broken = {
        "random": random.Random(0).randbytes(8192),
        "truncated": data[: len(data) // 2],
        "garbled page": data[: 4096 * 3] + random.Random(1).randbytes(4096) + data[4096 * 4 :],
    }[damage]
    path.write_bytes(broken)
    lines: list[str] = []
    with Store(path, on_damaged=lines.append) as store:
        assert store.chats() == [] and store.measurements() == []
        kept = store.kept_aside
        assert kept is not None and kept.read_bytes() == broken
        assert re.fullmatch(r"berth\.db\.damaged-\d{8}-\d{6}", kept.name)
        store.new_chat("m", "chat")  # the fresh store works
    assert len(lines) == 1 and "\n" not in lines[0]
    assert str(path) in lines[0] and str(kept) in lines[0] and "fresh store" in lines[0]
    with Store(path, on_damaged=lines.append) as store:  # healthy now: nothing more is moved
        assert store.kept_aside is None and len(store.chats()) == 1
    assert len(lines) == 1


def test_locks_are_not_taken_for_damage(tmp_path, monkeypatch):
    monkeypatch.setattr("launcher.run.store.STORE_TIMEOUT_S", 0.05)
    path = tmp_path / "berth.db"
    Store(path).close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("PRAGMA journal_mode=DELETE")  # a writer holding an exclusive lock
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError):
            Store(path, on_damaged=pytest.fail)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert path.exists() and not list(tmp_path.glob("*.damaged-*"))


@pytest.mark.parametrize(
    "command", [["list"], ["plan", "gpt2"], ["history", "list"], ["history", "show", "1"]]
)
def test_commands_carry_on_past_a_damaged_store(berth, berth_home, command):
    (berth_home / "berth.db").write_bytes(random.Random(2).randbytes(4096))
    result = berth(*command)
    assert "Traceback" not in result.output and "DatabaseError" not in result.output
    assert result.exit_code == (2 if command[1:2] == ["show"] else 0), result.output
    assert "is damaged" in result.stderr and "fresh store" in result.stderr
    assert len(list(berth_home.glob("berth.db.damaged-*"))) == 1


def test_the_store_is_private(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        folder = tmp_path / "data" / "berth"
        monkeypatch.setenv("BERTH_HOME", str(folder))
        with Store() as store:
            chat = store.new_chat("m", "chat")
            store.add_message(chat, "user", "secret")
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
            for suffix in ("", "-wal", "-shm"):
                assert stat.S_IMODE(os.stat(f"{store.path}{suffix}").st_mode) == 0o600, suffix
        # an older store made 0644 in a 0755 folder is tightened when opened
        os.chmod(folder, 0o755)
        os.chmod(folder / "berth.db", 0o644)
        Store().close()
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(folder / "berth.db").st_mode) == 0o600
    finally:
        os.umask(old)


def test_launch_checks_the_store_before_loading(berth, berth_home, tiny_models, monkeypatch):
    import launcher.run.load as load
    from launcher.run.errors import LoadError

    folder = tiny_models("gpt2")
    (berth_home / "berth.db").write_bytes(random.Random(3).randbytes(4096))
    seen: list[list[str]] = []

    def load_model(source, *_args, **_kwargs):
        seen.append([p.name for p in berth_home.glob("berth.db*")])
        raise LoadError(source.card.id, "stopped here by the test")

    monkeypatch.setattr(load, "load_model", load_model)
    result = berth("launch", str(folder), "--no-tui", "--prompt", "hi")
    assert "stopped here by the test" in result.stderr and "Traceback" not in result.output
    assert len(seen) == 1 and any(".damaged-" in name for name in seen[0]) and "berth.db" in seen[0]
    assert result.stderr.index("is damaged") < result.stderr.index("stopped here")
