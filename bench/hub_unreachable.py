"""Seconds until Berth gives up on a Hub it cannot reach, for the search (`berth list --hub`, the app's Hub source)
and for reading one repository (`berth show|plan OWNER/NAME`, not cached): a closed port on 127.0.0.1 (connection
refused), a host name that does not resolve (.invalid), a socket that accepts but never answers, and (reading
only) the test Hub server answering the model info at once but no file, with a per-request timeout of TIMEOUT_S. A call still running after GUARD_S is reported as such and left behind.

Run: .venv/bin/python -m bench.hub_unreachable
(or, to time another checkout's registry/: PYTHONPATH=/that/checkout .venv/bin/python bench/hub_unreachable.py)
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hub_server import HubServer, llama_like_tensors, safetensors_repo

TIMEOUT_S = 3.0
GUARD_S = 90.0


def _timed(call: Callable[[], Any]) -> str:
    """How long call() took to fail and with what, or that it was still running after GUARD_S."""
    box: dict[str, str] = {}

    def run() -> None:
        try:
            call()
            box["outcome"] = "returned without an error"
        except Exception as error:
            box["outcome"] = f"{type(error).__name__}: {error}"

    start = time.perf_counter()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    seconds = time.perf_counter() - start
    if thread.is_alive():
        return f"> {GUARD_S:.0f} s (still waiting)"
    return f"{seconds:6.2f} s  {box['outcome'][:150]}"


def main() -> None:
    with tempfile.TemporaryDirectory() as home, socket.socket() as silent, socket.socket() as probe:
        os.environ.update(BERTH_HOME=home)
        os.environ.pop("HF_HUB_OFFLINE", None)
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
        probe.close()
        import registry.hub_fetch as hub_fetch

        print(f"# registry/hub_fetch.py from {Path(hub_fetch.__file__).resolve().parent.parent}")
        cases = {
            "connection refused": f"http://127.0.0.1:{closed}",
            "name does not resolve": "http://no-such-hub.invalid",
            "accepts, never answers": f"http://127.0.0.1:{silent.getsockname()[1]}",
        }
        stalls = safetensors_repo("Qwen/Qwen2.5-0.5B-Instruct", llama_like_tensors, files_delay_s=2 * GUARD_S)
        stalls.repo_id = "acme/Stalls"
        server = HubServer()
        server.add(stalls)
        server.start()
        cases["model info only"] = server.url
        for case, endpoint in cases.items():
            settings = hub_fetch.HubSettings(
                endpoint=endpoint, timeout_s=TIMEOUT_S, hf_cache=Path(home) / "hf"
            )
            if case != "model info only":
                search = _timed(partial(hub_fetch.search_hub, "qwen", 20, settings))
                print(f"{case:23} timeout {TIMEOUT_S:g} s  search:    {search}")
            repo = "acme/Stalls" if case == "model info only" else "someone/anything"
            read = _timed(partial(hub_fetch.hub_entry, repo, settings))
            print(f"{case:23} timeout {TIMEOUT_S:g} s  read repo: {read}")


if __name__ == "__main__":
    main()
