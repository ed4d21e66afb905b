"""Imports point one way (docs/architecture.md): no cycle among gptfl_ray's modules.

Both module-level imports and imports inside functions count: a deferred import that closes a
cycle still ties the two modules together, it only hides the knot from Python's loader. The
graph is read from the source with `ast`, so the test imports nothing it checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"gptfl_ray": ROOT / "gptfl_ray", "gptfl_ray.cli": ROOT / "cli"}


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods[".".join([prefix, *parts])] = path
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The longest known module that `name` (a module or a name inside one) lies in."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                dep = _resolve(t, mods)
                # a package's __init__ naming its own submodules is the package, not a cycle
                if dep and dep != mod and not dep.startswith(mod + ".") and not mod.startswith(dep + "."):
                    graph[mod].add(dep)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {m: WHITE for m in graph}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        colour[m] = GREY
        stack.append(m)
        for d in sorted(graph[m]):
            if colour[d] == GREY:
                return stack[stack.index(d) :] + [d]
            if colour[d] == WHITE and (c := visit(d)):
                return c
        stack.pop()
        colour[m] = BLACK
        return None

    for m in sorted(graph):
        if colour[m] == WHITE and (c := visit(m)):
            return c
    return None


def test_detector_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert graph, "no modules found"
    # cli modules import the library; the library never imports the CLI
    assert any(
        not d.startswith("gptfl_ray.cli") for m, deps in graph.items() if m.startswith("gptfl_ray.cli") for d in deps
    )
    # methods/fgl.py defers some imports into functions; they must be seen
    src = (ROOT / "gptfl_ray" / "methods" / "fgl.py").read_text("utf-8")
    deferred = [
        i
        for n in ast.walk(ast.parse(src))
        if isinstance(n, ast.FunctionDef)
        for i in ast.walk(n)
        if isinstance(i, ast.ImportFrom) and (i.module or "").startswith("gptfl_ray")
    ]
    assert deferred and all(_resolve(i.module, _modules()) in graph["gptfl_ray.methods.fgl"] for i in deferred)


# The cycles issue 17 found (FGL's runners and GPT-FL's simulate calling each other; the generator
# contract and the Parquet store sharing the target format) are fixed. This is a ratchet: a new
# cycle fails, and so does fixing one listed here without deleting it.
KNOWN_CYCLES: set[frozenset[str]] = set()


def strongly_connected(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """Tarjan's algorithm: every set of modules that import each other, directly or not."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[frozenset[str]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.add(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_strongly_connected_on_a_planted_graph():
    g = {"a": {"b"}, "b": {"a", "c"}, "c": {"d"}, "d": {"c"}, "e": {"a"}}
    assert strongly_connected(g) == {frozenset("ab"), frozenset("cd")}


def test_no_new_import_cycles():
    found = strongly_connected(import_graph())
    new = found - KNOWN_CYCLES
    fixed = KNOWN_CYCLES - found
    assert not new, "new import cycle(s): " + "; ".join(" <-> ".join(sorted(c)) for c in new)
    assert not fixed, "fixed, delete from KNOWN_CYCLES: " + "; ".join(" <-> ".join(sorted(c)) for c in fixed)


def test_library_never_imports_the_cli():
    graph = import_graph()
    bad = sorted(
        f"{m} -> {d}"
        for m, deps in graph.items()
        if not m.startswith("gptfl_ray.cli")
        for d in deps
        if d.startswith("gptfl_ray.cli")
    )
    assert not bad, bad
