"""The package's layers, read from the source (docs/architecture.md states them in words).

The import graph is built with :mod:`ast` from every module of ``actspec_jax``, without
importing anything. An edge ``a -> b`` is an ``import``/``from … import`` in ``a`` that names
module ``b`` (``from pkg import name`` names ``pkg.name`` when that is a module, else ``pkg``).
Imports inside functions are edges too, kept apart as *local* so both graphs are checked;
imports under ``if TYPE_CHECKING:`` never run and are left out, and so is the implicit import
of a parent package's ``__init__`` (Python runs it first for every submodule, so counting it
would make every module depend on ``actspec_jax/__init__.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "actspec_jax"

#: Layer of each module: the first matching prefix wins (exact name, or name + ".").
LAYERS = [
    ("root", ("actspec_jax",)),
    ("analysis", ("actspec_jax.analysis",)),
    ("reports", ("actspec_jax.reports",)),
    ("runs", ("actspec_jax.runs",)),
    ("companions", ("actspec_jax.concepts", "actspec_jax.layers", "actspec_jax.interop")),
    ("zoo", ("actspec_jax.models", "actspec_jax.data")),
    ("cli", ("actspec_jax.cli", "actspec_jax.commands")),
    (
        "core",
        (
            "actspec_jax.errors",
            "actspec_jax.diagnostics",
            "actspec_jax._io",
            "actspec_jax._format",
            "actspec_jax.spectrum",
            "actspec_jax.problems",
            "actspec_jax.transforms",
            "actspec_jax.solvers",
        ),
    ),
]
#: What each layer may import (besides itself). ``root`` (the curated ``__init__``) may import all.
MAY_IMPORT = {
    "core": set(),
    "zoo": {"core"},
    "analysis": {"core"},
    "reports": {"core", "analysis"},
    "companions": {"core", "analysis", "reports"},
    "runs": {"core", "zoo", "analysis", "reports"},
    "cli": {"root", "core", "zoo", "analysis", "reports", "companions", "runs"},
}

MAX_LINES = 500
#: Function-local circles allowed for now, each with the reason (as _cycles reports them).
CYCLES_ALLOWED: set[tuple[str, ...]] = set()

#: Modules over MAX_LINES without a "Size:" line yet, each with the reason it is allowed.
OVERSIZE_ALLOWED: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, path: Path, *, annotations: bool = False) -> list[tuple[str, bool]]:
    """``[(imported module, local)]`` of one module; ``local`` = inside a function.
    ``annotations``: also the imports under ``if TYPE_CHECKING:`` (counted as local)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    edges: list[tuple[str, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                if annotations:
                    for inside in child.body:
                        visit(ast.Module(body=[inside], type_ignores=[]), True)
                for other in child.orelse:
                    visit(other, local)
                continue
            inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in child.names]
            else:
                names = []
            for name in names:
                target = _resolve(name) if name.startswith("actspec_jax") else None
                if target is not None and target != module:
                    edges.append((target, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return edges


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}
#: The same graph with the annotation-only imports (``if TYPE_CHECKING:``) as local edges.
TYPED_GRAPH = {module: _imports(module, path, annotations=True) for module, path in MODULES.items()}


def _layer(module: str) -> str:
    for layer, prefixes in LAYERS:
        if any(module == p or (layer != "root" and module.startswith(p + ".")) for p in prefixes):
            return layer
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md).")


def _cycles(include_local: bool, edges_of: dict[str, list[tuple[str, bool]]] = GRAPH) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph = {
        m: sorted({t for t, local in edges if include_local or not local}) for m, edges in edges_of.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_the_graph_sees_known_imports():
    """Guards the parser itself: edges that exist in the source are found (module and local)."""
    assert ("actspec_jax.transforms.indexing", False) in GRAPH["actspec_jax.spectrum"]
    assert ("actspec_jax.solvers.common.heldout", True) in GRAPH["actspec_jax.spectrum"]
    assert ("actspec_jax.analysis.indices", False) in GRAPH["actspec_jax.reports.plots_indices"]
    assert ("actspec_jax.runs.pipeline", True) in GRAPH["actspec_jax.commands.run"] or (
        "actspec_jax.runs",
        True,
    ) in GRAPH["actspec_jax.commands.run"]
    assert len(MODULES) > 100


@pytest.mark.parametrize("include_local", [False, True], ids=["module-level", "with-function-local"])
def test_no_import_cycles(include_local):
    assert [c for c in _cycles(include_local) if tuple(c) not in CYCLES_ALLOWED] == []


def test_cycle_allow_list_is_not_stale():
    found = {tuple(c) for c in _cycles(True)}
    for cycle in CYCLES_ALLOWED:
        assert cycle in found, f"{cycle} is gone: remove it from CYCLES_ALLOWED"


def test_every_import_respects_the_layers():
    wrong = []
    for module, edges in GRAPH.items():
        here = _layer(module)
        for target, local in edges:
            there = _layer(target)
            if here == "root" or there == here:
                continue
            ok = there in MAY_IMPORT[here]
            if not ok:
                wrong.append(
                    f"{module} ({here}) imports {target} ({there}){' in a function' if local else ''}"
                )
    assert wrong == [], "\n".join(wrong)


def test_core_imports_nothing_above_it():
    above = {"analysis", "reports", "runs", "cli", "companions", "zoo", "root"}
    offending = [
        (module, target)
        for module, edges in GRAPH.items()
        if _layer(module) == "core"
        for target, _ in edges
        if _layer(target) in above
    ]
    assert offending == []


def test_modules_are_small_or_say_why():
    too_long = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines <= MAX_LINES or module in OVERSIZE_ALLOWED:
            continue
        doc = ast.get_docstring(ast.parse(text)) or ""
        if not any(line.startswith("Size:") for line in doc.splitlines()):
            too_long.append(f"{module}: {lines} lines and no 'Size:' line in its docstring")
    assert too_long == [], "\n".join(too_long)


def test_allow_list_is_not_stale():
    for module in OVERSIZE_ALLOWED:
        assert MODULES[module].read_text(encoding="utf-8").count("\n") > MAX_LINES, (
            f"{module} is now short enough: remove it from OVERSIZE_ALLOWED"
        )


def test_no_old_import_paths_remain():
    """The moved modules' old top-level paths (``actspec_jax.metrics``, ``.runner``, …) are gone:
    one path per module, and the public surface is ``actspec_jax`` and the sub-package faces."""
    for old in ("metrics", "indices", "ablation", "firing", "report", "plots", "plots_indices", "sharding",
                "locks", "runner"):  # fmt: skip
        assert not (ROOT / f"{old}.py").exists(), old


def test_architecture_page_names_real_paths_and_is_linked():
    repo = ROOT.parent
    page = (repo / "docs" / "architecture.md").read_text(encoding="utf-8")
    import re

    paths = set(re.findall(r"`(actspec_jax/[\w/.]+?|tests/[\w/.]+?)`", page))
    assert len(paths) > 10
    missing = sorted(p for p in paths if not (repo / p).exists())
    assert missing == []
    assert "(docs/architecture.md)" in (repo / "README.md").read_text(encoding="utf-8")


def _room(module: str) -> str:
    """The sub-package a module lives in: ``actspec_jax.solvers.gl``, ``actspec_jax.problems``, …"""
    parts = module.split(".")
    depth = 3 if parts[:2] == ["actspec_jax", "solvers"] and len(parts) > 3 else 2
    return ".".join(parts[:depth])


def test_no_circle_between_sub_packages_even_in_annotations():
    """Annotation-only imports never run, but a circle through them still ties two rooms together."""
    crossing = [c for c in _cycles(True, TYPED_GRAPH) if len({_room(m) for m in c}) > 1]
    assert crossing == []


SOLVER_ROOMS = {"common", "compressive", "exact", "gl"}


def test_every_solver_lives_in_its_sub_package():
    solvers = ROOT / "solvers"
    loose = sorted(p.stem for p in solvers.glob("*.py"))
    assert loose == ["__init__", "functional"], loose  # the face and the functional core
    rooms = {p.name for p in solvers.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms == SOLVER_ROOMS
    private = sorted(str(p.relative_to(ROOT)) for p in solvers.rglob("_*.py") if p.name != "__init__.py")
    assert private == [], "inside a sub-package a module's name says what it holds, without '_'"


def test_no_alias_modules():
    """A module that only re-exports another (a former path kept alive) is an alias: none remain."""
    aliases = []
    for module, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        kinds = {type(n) for n in body}
        if (
            body
            and kinds <= {ast.ImportFrom, ast.Import, ast.Assign}
            and any(isinstance(n, ast.ImportFrom) for n in body)
        ):
            aliases.append(module)
    assert aliases == []


def test_solver_rooms_share_only_through_common():
    """A solver room imports ``solvers/common/`` (and the functional core), never another solver's
    room; ``common/`` imports no solver room."""
    crossing = []
    for module, edges in TYPED_GRAPH.items():
        here = _room(module)
        if not here.startswith("actspec_jax.solvers."):
            continue
        for target, _ in edges:
            there = _room(target)
            if there == here or not there.startswith("actspec_jax.solvers"):
                continue
            shared = there == "actspec_jax.solvers.common"
            if shared or (there == "actspec_jax.solvers" and here != "actspec_jax.solvers.common"):
                continue
            crossing.append(f"{module} -> {target}")
    assert crossing == []
