"""The package graph: every module imports, no import cycles, and the engine's layers
import only downwards (ARCHITECTURE.md). Every import statement counts, lazy ones too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("aeep_core", "aeep_tui")

# aeep_core's layers, bottom-up: a module may import its own layer and those below.
LAYERS = {
    "pool": 0,
    "locations": 0,
    "extras": 0,
    "processes": 0,  # a service object in a child process; imports nothing of the engine
    "sequences": 1,
    "data": 2,
    "strategies": 3,
    "learning": 4,
    "store": 5,
    "session": 6,
    "bench": 7,
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for file in (ROOT / package).rglob("*.py"):
            name = ".".join(file.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = file
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a module importing its own package aside)."""

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, file in modules.items():
        is_package = file.name == "__init__.py"
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                found = resolve(target)
                if found and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def test_there_are_no_import_cycles():
    graph = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_engine_imports_only_downwards_and_never_the_ui():
    graph = _imports(_modules())
    wrong = []
    for name, targets in graph.items():
        if not name.startswith("aeep_core."):
            continue
        layer = LAYERS[name.split(".")[1]]
        for target in targets:
            if target.startswith("aeep_tui") or (target.startswith("aeep_core.") and LAYERS[target.split(".")[1]] > layer):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports against the layering of ARCHITECTURE.md: " + ", ".join(sorted(wrong))


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(m for m in _modules() if not m.endswith("__main__"))
    code = f"import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\n"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_engine_loads_without_the_ui_toolkit():
    code = (
        "import importlib, pkgutil, sys, aeep_core\n"
        "for m in pkgutil.walk_packages(aeep_core.__path__, 'aeep_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('textual', 'textual_image', 'aeep_tui')}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
