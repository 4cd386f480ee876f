"""The layers of docs/ARCHITECTURE.md hold: core ← libraries ← app, no library imports the app, no import cycles.

Every import counts, also those inside functions (lazy imports still tie the modules together).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qualbench", "retrievers", "federation")

CORE = {"qualbench", "qualbench.records", "qualbench.answers", "qualbench.domains", "qualbench.errors",
        "qualbench.paths", "qualbench.formatting", "qualbench.results", "qualbench.secrets"}
APP_PREFIXES = ("qualbench.config", "qualbench.study_config", "qualbench.tasks", "qualbench.runner", "qualbench.app",
                "qualbench.__main__", "qualbench.cli_checks", "qualbench.tracking", "qualbench.retrieval_eval",
                "qualbench.report", "qualbench.analysis", "federation.run")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(mod: str) -> str:
    if mod in CORE:
        return "core"
    if any(mod == p or mod.startswith(p + ".") for p in APP_PREFIXES):
        return "app"
    return "library"


def imports_of(path: Path, mod: str) -> set[str]:
    """Project modules imported anywhere in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        out.update(n for n in names if n.split(".")[0] in PACKAGES)
    return out


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
             if "app_project" not in p.parts}
    g = {}
    for mod, path in files.items():
        deps = set()
        for name in imports_of(path, mod):
            while name and name not in files:  # ``from x import func`` names an attribute: its module is x
                name = name.rpartition(".")[0]
            if name and name != mod and not mod.startswith(name + "."):  # a package's own __init__ is not a dep
                deps.add(name)
        g[mod] = deps
    return g


def test_no_library_or_core_module_imports_the_app():
    bad = [f"{m} ({layer(m)}) imports {d}" for m, deps in graph().items() for d in sorted(deps)
           if layer(m) != "app" and layer(d) == "app"]
    assert not bad, "\n".join(bad)


def test_core_imports_only_core():
    bad = [f"{m} imports {d}" for m, deps in graph().items() if layer(m) == "core" for d in sorted(deps)
           if layer(d) != "core"]
    assert not bad, "\n".join(bad)


def test_retrievers_need_no_other_library():
    bad = [f"{m} imports {d}" for m, deps in graph().items() if m.startswith("retrievers")
           for d in sorted(deps) if not d.startswith("retrievers") and layer(d) != "core"]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(" → ".join(c) for c in cycles)


def test_the_graph_is_real():
    g = graph()
    assert "qualbench.evaluation" in g["federation.evaluate"] and "qualbench.results" in g["qualbench.evaluation"]
    assert layer("qualbench.report.build") == "app" and layer("retrievers.bm25_index") == "library"
