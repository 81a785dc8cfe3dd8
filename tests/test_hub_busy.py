"""A Hub that answers busy (HTTP 429 rate limit, 503 unavailable) is asked again a bounded number of times
within a bounded wait (registry.hub_retry), for the model info, the files, the safetensors headers and the
search; past that, one paragraph says what the Hub said and what to do next. The Hub is a real HTTP server on
127.0.0.1 (tests/hub_server.py); huggingface_hub talks to it unmocked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from hub_server import HubServer, llama_like_tensors, safetensors_repo, use_hub

from registry.hub_retry import MAX_RETRIES, with_retries

CPU = "cpu,ram=64GB,disk=2000GB"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    server = HubServer()
    server.start()
    use_hub(monkeypatch, server.url, tmp_path / "hf-cache")
    yield server
    server.stop()


def _repo(hub: HubServer, repo_id: str, **kwargs):
    """Mistral-7B's fixture config and two shards of headers, served as `repo_id`."""
    repo = safetensors_repo("mistralai/Mistral-7B-v0.1", llama_like_tensors, shards=2, **kwargs)
    repo.repo_id = repo_id
    return hub.add(repo)


def _info_requests(hub: HubServer, repo_id: str) -> int:
    return sum(1 for _, path in hub.requests if path.startswith(f"/api/models/{repo_id}"))


def _paragraph(stderr: str) -> str:
    assert "Error:" in stderr and "Traceback" not in stderr, stderr
    text = stderr[stderr.index("Error:") :].strip()
    assert "\n\n" not in text, stderr
    return " ".join(text.split())


def test_a_busy_model_info_is_asked_again(berth, hub):
    _repo(hub, "busy/model-info", busy=[(503, "0"), (429, "0")])
    result = berth("show", "busy/model-info", "--json")
    assert result.exit_code == 0, result.stderr
    assert _info_requests(hub, "busy/model-info") == 3


def test_busy_files_and_headers_are_asked_again(berth, hub):
    """config.json, the safetensors index and a shard's header range request answered busy are each asked again."""
    busy = {
        "config.json": [(503, None)],
        "model.safetensors.index.json": [(502, "0")],
        "model-00002-of-00002.safetensors": [(504, "0"), (429, "0")],
    }
    repo = _repo(hub, "busy/files", files_busy={name: list(answers) for name, answers in busy.items()})
    result = berth("plan", "busy/files", "--hardware", CPU, "--json")
    assert result.exit_code == 0, result.stderr
    assert not any(repo.files_busy.values())  # every busy answer was given, and each request asked again
    for name, answers in busy.items():
        asked = sum(1 for _, path in hub.requests if path.endswith("/" + name))
        assert asked == len(answers) + 1, (name, asked)


def test_a_search_answered_busy_is_asked_again(berth, hub):
    _repo(hub, "busy/searched", downloads=10)
    hub.search_busy.append((503, "0"))
    result = berth("list", "--hub", "searched", "--hardware", CPU, "--json")
    assert result.exit_code == 0, result.stderr
    assert "busy/searched" in result.output
    assert sum(1 for _, path in hub.requests if path.startswith("/api/models?")) == 2


def test_a_hub_that_keeps_limiting_gets_one_paragraph(berth, hub, berth_home):
    _repo(hub, "busy/limited", busy=[(429, "0")] * (MAX_RETRIES + 1))
    result = berth("show", "busy/limited")
    assert result.exit_code == 1
    text = _paragraph(result.stderr)
    assert "limiting requests from this machine (HTTP 429" in text and "HF_TOKEN" in text
    assert _info_requests(hub, "busy/limited") == MAX_RETRIES + 1
    assert not list((berth_home / "cache" / "hub").rglob("*.json"))


def test_a_long_retry_after_is_not_waited_for(berth, hub):
    """The Hub asks for two minutes: Berth does not wait, and says how long it asked."""
    _repo(hub, "busy/come-back-later", busy=[(429, "120")])
    start = time.monotonic()
    result = berth("show", "busy/come-back-later")
    assert result.exit_code == 1
    assert "asks to wait 120 s" in _paragraph(result.stderr)
    assert _info_requests(hub, "busy/come-back-later") == 1
    assert time.monotonic() - start < 60  # a hang guard, not a speed target


def _busy(status: int, retry_after: str | None = None) -> Exception:
    error = RuntimeError(f"HTTP {status}")
    error.response = SimpleNamespace(  # type: ignore[attr-defined]
        status_code=status, headers={} if retry_after is None else {"retry-after": retry_after}
    )
    return error


def test_waits_follow_retry_after_then_the_backoff_within_the_budget():
    answers = [_busy(503), _busy(429, "3")]
    slept: list[float] = []

    def call() -> str:
        if answers:
            raise answers.pop(0)
        return "answered"

    assert with_retries(call, budget_s=10, sleep=slept.append) == "answered"
    assert slept == [1.0, 3.0]
    answers[:] = [_busy(503), _busy(503)]
    slept.clear()
    with pytest.raises(RuntimeError, match="503"):
        with_retries(call, budget_s=1.5, sleep=slept.append)  # 1 s, then 2 s would pass the budget
    assert slept == [1.0]


def test_other_errors_are_not_asked_again():
    calls = []

    def call() -> None:
        calls.append(1)
        raise _busy(404)

    with pytest.raises(RuntimeError):
        with_retries(call, budget_s=10, sleep=lambda _s: None)
    assert len(calls) == 1
