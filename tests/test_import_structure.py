"""Import structure: `jepa_mpc_envs` (envs/) stands alone and no module imports itself back.

The AST of every module of both packages is walked: every import at any depth (function-level ones
included, since they are cycles too, only deferred), relative imports resolved. A module importing
`pkg.a.b` depends on the module `pkg.a.b` (or on `pkg.a` when `b` is a name defined there).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"jepa_mpc": ROOT / "jepa_mpc", "jepa_mpc_envs": ROOT / "envs"}

KNOWN_CYCLES: list[set[str]] = []  # none left


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of both packages."""
    out = {}
    for pkg, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = path
    return out


def _imported_modules(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The modules of `known` that `module` imports anywhere in its source: `import a.b` -> a.b;
    `from a import b` -> a.b when that is a module, else a (relative imports resolved)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                out.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source)
    return out & known


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of both packages it imports (at any depth of its source)."""
    files = module_files()
    return {module: _imported_modules(ast.parse(path.read_text(encoding="utf-8")), module,
                                      path.name == "__init__.py", set(files)) - {module}
            for module, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_envs_import_nothing_from_jepa_mpc():
    bad = sorted(f"{m} -> {d}" for m, deps in import_graph().items() if m.startswith("jepa_mpc_envs")
                 for d in deps if d.split(".")[0] == "jepa_mpc")
    assert not bad, "jepa_mpc_envs must stand alone: " + "; ".join(bad)


def test_no_import_cycles():
    found = [c for c in cycles(import_graph()) if c not in KNOWN_CYCLES]
    assert not found, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_train_and_diagnostics_do_not_import_each_other():
    graph = import_graph()
    assert "jepa_mpc.train" not in graph["jepa_mpc.diagnostics"]  # what they share lives in jepa_mpc.run


def test_the_graph_sees_the_imports():
    graph = import_graph()
    assert "jepa_mpc_envs.geometry" in graph["jepa_mpc_envs.tworoom"]
    assert "jepa_mpc_envs.rollout" in graph["jepa_mpc.data.collect"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_importing_geometry_loads_no_mujoco_and_no_jepa_mpc():
    code = ("import sys, jepa_mpc_envs.geometry, jepa_mpc_envs.errors, jepa_mpc_envs.suites; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mujoco', 'jepa_mpc', 'tyro')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
