"""A Hub that cannot be reached: a closed port on 127.0.0.1 (connection refused), a host name that does not resolve
(.invalid, RFC 6761) and a socket that accepts connections but never answers. Each command gives its one
paragraph (what failed and what to do next) with exit code 1, asks once (huggingface_hub logs no retry) and
returns: a thread with a generous limit guards against a hang; the seconds it takes are in bench/hub_unreachable.py."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hub_server import HubServer, llama_like_tensors, safetensors_repo

CPU = "cpu,ram=64GB,disk=2000GB"
HANG_GUARD_S = 60


@pytest.fixture
def hub_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("BERTH_HUB_TIMEOUT", "5")
    return monkeypatch


@pytest.fixture
def closed_port() -> str:
    """An address on 127.0.0.1 nobody listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_hub() -> Iterator[str]:
    """A socket that accepts connections (the kernel's backlog) but never reads or answers a request."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def _returns(call: Callable[[], Any]) -> Any:
    """call() run in a thread; fails the test if it has not returned within HANG_GUARD_S."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as error:  # handed to the test below
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), f"still waiting for the Hub after {HANG_GUARD_S} s"
    if "error" in box:
        raise box["error"]
    return box["result"]


def _one_paragraph(stderr: str) -> str:
    assert "Error:" in stderr and "Traceback" not in stderr, stderr
    text = stderr[stderr.index("Error:") :].strip()
    assert "\n\n" not in text, stderr
    return " ".join(text.split())


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "Retry" in r.getMessage()]


COMMANDS = {
    "list --hub": (("list", "--hub", "qwen", "--hardware", CPU), "the search for 'qwen'"),
    "show": (("show", "someone/anything"), "someone/anything"),
    "plan": (("plan", "someone/anything", "--hardware", CPU), "someone/anything"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_refused_connection_fails_at_once_with_the_reason(berth, hub_env, closed_port, caplog, command):
    hub_env.setenv("HF_ENDPOINT", closed_port)
    args, what = COMMANDS[command]
    caplog.set_level(logging.WARNING, logger="huggingface_hub")
    result = _returns(lambda: berth(*args))
    assert result.exit_code == 1, result.output
    text = _one_paragraph(result.stderr)
    assert f"the Hub at {closed_port} could not be reached (connection refused) while reading {what}" in text
    assert "HF_ENDPOINT" in text and "HF_HUB_OFFLINE=1" in text
    assert "BERTH_HUB_TIMEOUT" not in text  # waiting longer would not help
    assert _retries(caplog) == []


@pytest.mark.parametrize("command", ["list --hub", "show"])
def test_host_name_that_does_not_resolve(berth, hub_env, caplog, command):
    hub_env.setenv("HF_ENDPOINT", "http://no-such-hub.invalid")
    args, what = COMMANDS[command]
    caplog.set_level(logging.WARNING, logger="huggingface_hub")
    result = _returns(lambda: berth(*args))
    assert result.exit_code == 1, result.output
    text = _one_paragraph(result.stderr)
    assert "could not be reached (its host name does not resolve)" in text and what in text
    assert _retries(caplog) == []


@pytest.mark.parametrize("command", ["list --hub", "show"])
def test_hub_that_never_answers_times_out_once(berth, hub_env, silent_hub, caplog, command):
    """huggingface_hub's list_models sends no timeout: before Berth asked itself, this search never returned."""
    hub_env.setenv("HF_ENDPOINT", silent_hub)
    hub_env.setenv("BERTH_HUB_TIMEOUT", "0.5")
    args, what = COMMANDS[command]
    caplog.set_level(logging.WARNING, logger="huggingface_hub")
    result = _returns(lambda: berth(*args))
    assert result.exit_code == 1, result.output
    text = _one_paragraph(result.stderr)
    assert f"the Hub at {silent_hub} did not answer within 0.5 s while reading {what}" in text
    assert "BERTH_HUB_TIMEOUT" in text
    assert _retries(caplog) == []


def test_an_endpoint_that_is_not_a_hub_says_so(berth, hub_env):
    """A web server that answers the search with something other than a list of models (HF_ENDPOINT set to the
    wrong address) is one paragraph, not a traceback."""
    import http.server

    class NotAHub(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotAHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hub_env.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        result = _returns(lambda: berth("list", "--hub", "qwen", "--hardware", CPU))
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1, result.output
    assert "did not answer with a list of models" in _one_paragraph(result.stderr)


@pytest.fixture
def stalls_after_model_info() -> Iterator[HubServer]:
    """A Hub whose model info answers at once, then never answers for a file (within the test)."""
    repo = safetensors_repo(
        "Qwen/Qwen2.5-0.5B-Instruct",
        lambda c: llama_like_tensors(c, qkv_bias=True),
        files_delay_s=3 * HANG_GUARD_S,
    )
    repo.repo_id = "acme/Stalls"  # not in the catalog
    server = HubServer()
    server.add(repo)
    server.start()
    yield server
    server.stop()


def test_hub_that_stops_answering_after_the_model_info(berth, hub_env, stalls_after_model_info, caplog):
    """config.json is asked for once with the timeout: hf_hub_download, when its first HEAD times out and nothing
    is cached, asks 5 more times with a 60 s timeout each."""
    hub_env.setenv("HF_ENDPOINT", stalls_after_model_info.url)
    hub_env.setenv("BERTH_HUB_TIMEOUT", "0.5")
    caplog.set_level(logging.WARNING, logger="huggingface_hub")
    result = _returns(lambda: berth("show", "acme/Stalls"))
    assert result.exit_code == 1, result.output
    text = _one_paragraph(result.stderr)
    assert "did not answer within 0.5 s while reading acme/Stalls" in text
    assert _retries(caplog) == []
    files = [(method, path) for method, path in stalls_after_model_info.requests if "/resolve/" in path]
    assert len(files) == 1 and files[0][0] == "GET" and files[0][1].endswith("/config.json"), files
