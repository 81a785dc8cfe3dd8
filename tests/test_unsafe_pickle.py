"""A malicious pickle weights file with --allow-pickle: refused by PyTorch's safe loader, never run, and reported
in one paragraph with exit 2 (no traceback)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import save_tiny_model


class _Exploit:
    """Unpickling this calls os.system: the loader must refuse it, never run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_runs_code_is_refused_in_one_paragraph(berth, tmp_path, monkeypatch):
    import torch

    folder = save_tiny_model("gpt2", tmp_path / "evil", pickle=True)
    marker = tmp_path / "PWNED"
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    state["transformer.wte.weight"] = _Exploit(marker)
    torch.save(state, folder / "pytorch_model.bin")
    monkeypatch.setenv("BERTH_DEBUG", "")
    result = berth(
        "launch", str(folder), "--allow-pickle", "--no-tui", "--prompt", "hi", "--max-new-tokens", "2"
    )
    assert not marker.exists()  # the code in the file never ran
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "UnpicklingError" not in result.output
    last = " ".join(result.stderr.strip().split("\n\n")[-1].split())
    assert "pytorch_model.bin of" in last and "is not plain weights" in last and "GLOBAL posix.system" in last
    assert "nothing in it ran" in last and "do not use this file" in last
