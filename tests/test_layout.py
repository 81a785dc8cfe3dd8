"""The layout is the architecture: packages follow the data flow, nothing imports backwards, no import cycles.

Every import counts, deferred ones (inside functions) included: a cycle hidden in a function body still
couples two modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Data flow order: a package may import only packages listed before it (and itself). The two faces come next
#: and never import each other; the entry point, last, composes them.
LAYERS = [
    ("registry",),
    ("launcher.display",),
    ("launcher.machine",),
    ("launcher.plan",),
    ("launcher.run", "launcher.fleet"),
    ("launcher.cli", "launcher.tui"),
    ("launcher.entry",),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in ("registry", "launcher")
        for path in (ROOT / package).rglob("*.py")
    }


def _imports(path: Path, known: set[str]) -> set[str]:
    """Berth modules `path` imports anywhere in its body (a `from X import name` of a submodule counts)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def _layer(module: str) -> tuple[int, str]:
    for rank, group in enumerate(LAYERS):
        for package in group:
            if module == package or module.startswith(package + "."):
                return rank, package
    return -1, module


def test_every_module_belongs_to_a_layer():
    assert [name for name in _modules() if _layer(name)[0] < 0 and name != "launcher"] == []


def test_no_package_imports_a_later_one_and_the_faces_never_import_each_other():
    offenders = []
    for module, imported in _graph().items():
        rank, package = _layer(module)
        for target in imported:
            target_rank, target_package = _layer(target)
            if target_package != package and target_rank >= rank:
                offenders.append(f"{module} -> {target}")
    assert sorted(offenders) == []


def test_no_import_cycles_deferred_imports_included():
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert [" -> ".join(cycle) for cycle in cycles] == []
