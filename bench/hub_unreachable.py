"""Seconds until Berth gives up on a Hub it cannot reach, for the search (`berth list --hub`, the app's Hub source)
and for reading one repository (`berth show|plan OWNER/NAME`, not cached): a closed port on 127.0.0.1 (connection
refused), a host name that does not resolve (.invalid) and a socket that accepts but never answers, with a
per-request timeout of TIMEOUT_S. A call still running after GUARD_S is reported as such and left behind.

Run: .venv/bin/python -m bench.hub_unreachable
(or, to time another checkout's registry/: PYTHONPATH=/that/checkout .venv/bin/python bench/hub_unreachable.py)
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

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
        for case, endpoint in cases.items():
            settings = hub_fetch.HubSettings(
                endpoint=endpoint, timeout_s=TIMEOUT_S, hf_cache=Path(home) / "hf"
            )
            search = _timed(partial(hub_fetch.search_hub, "qwen", 20, settings))
            print(f"{case:23} timeout {TIMEOUT_S:g} s  search:    {search}")
            read = _timed(partial(hub_fetch.hub_entry, "someone/anything", settings))
            print(f"{case:23} timeout {TIMEOUT_S:g} s  read repo: {read}")


if __name__ == "__main__":
    main()
