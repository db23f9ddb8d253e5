"""The import graph shows the layers: no cycles, ``models/`` independent of ``bench/``, and no layer importing
one above it. Imports inside functions count: a deferred import is still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# bench's layers, lowest first (bench/<layer>/__init__.py says what each holds); models/ sits below them all
# and run_bench.py above. A module may import its own layer and the ones below.
LAYERS = ["models", "bench.core", "bench.store", "bench.data", "bench.config", "bench.evaluation",
          "bench.execution", "bench.analysis", "bench.report", "bench.cli", "run_bench"]


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of models/, bench/ and run_bench.py, by dotted name."""
    out = {"run_bench": root / "run_bench.py"}
    for pkg in ("models", "bench"):
        for f in (root / pkg).rglob("*.py"):
            rel = f.relative_to(root).with_suffix("")
            out[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = f
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of ``mods`` it imports, at module level or inside a function alike. ``from a import b``
    counts ``a.b`` when that is a module, else ``a``; a package's own ``__init__`` is not an import of its children."""

    def resolve(cur: str, node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = cur.split(".")
                parts = parts if mods[cur].name == "__init__.py" else parts[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        found = []
        for n in names:
            while n and n not in mods:
                n = n.rpartition(".")[0]
            if n and n != cur and not cur.startswith(n + "."):
                found.append(n)
        return found

    graph = {}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {t for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                       for t in resolve(name, node)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layer(module: str) -> int | None:
    """The rank of ``module``'s layer in :data:`LAYERS`, or ``None`` when it belongs to none."""
    ranks = [i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + ".")]
    return ranks[-1] if ranks else None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(modules())


def test_there_is_no_import_cycle(graph):
    assert cycles(graph) == []


def test_models_never_import_bench(graph):
    up = sorted(f"{a} -> {b}" for a, targets in graph.items() if a.startswith("models") for b in targets
                if b.startswith("bench"))
    assert up == []


def test_every_module_sits_in_a_layer(graph):
    assert [m for m in graph if m != "bench" and layer(m) is None] == []


def test_no_layer_imports_a_layer_above_it(graph):
    upward = sorted(f"{a} ({LAYERS[layer(a)]}) -> {b} ({LAYERS[layer(b)]})" for a, targets in graph.items()
                    for b in targets if a != "bench" and layer(a) is not None and layer(b) is not None
                    and layer(b) > layer(a))
    assert upward == []


def test_the_checks_catch_what_they_claim_to(tmp_path):
    """On a made-up tree: a cycle through a function-level import, an upward import, and models -> bench."""
    for rel, text in {"run_bench.py": "", "bench/__init__.py": "", "bench/core/__init__.py": "",
                      "bench/core/a.py": "def f():\n    from bench.report import r\n",
                      "bench/report/__init__.py": "", "bench/report/r.py": "from bench.core import a\n",
                      "models/__init__.py": "", "models/m.py": "import bench.core.a\n"}.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    g = import_graph(modules(tmp_path))
    assert cycles(g) == [["bench.core.a", "bench.report.r"]]
    assert g["models.m"] == {"bench.core.a"} and layer("bench.core.a") < layer("bench.report.r")
