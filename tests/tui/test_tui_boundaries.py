"""Boundaries: textual only under launcher/tui, and nothing there imports torch (not even the adapters)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_textual_is_imported_only_under_launcher_tui():
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("launcher", "registry")
        for path in (ROOT / package).rglob("*.py")
        if "textual" in _imports(path) and "tui" not in path.relative_to(ROOT).parts
    ]
    assert offenders == []


def test_no_module_under_launcher_tui_imports_torch():
    tui = ROOT / "launcher" / "tui"
    heavy = {"torch", "transformers", "accelerate"}
    assert [str(p) for p in tui.rglob("*.py") if _imports(p) & heavy] == []
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in tui.rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.stdout.strip().endswith("HEAVY="), out.stdout[-500:] + out.stderr[-1500:]
