"""The layer order of docs/architecture.md, checked on the source.

Every import counts, also those inside functions: a module imports only its own unit
and units of lower layers, and nothing outside ``_napari`` imports Qt or napari.
Between modules there is no import cycle: the module-level graph over
``src/napari_gerbil`` counts every runtime import, also those inside functions, but
not those under ``if TYPE_CHECKING:`` (they never run). ``from package import name``
points to ``package.name`` when that is a module, else to the package's
``__init__``; an import of ``a.b.c`` points to that module only (not its parents).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import napari_gerbil

PACKAGE = Path(napari_gerbil.__file__).parent

#: Layer of each unit (a top-level module or subpackage of napari_gerbil), bottom = 0.
#: Keep in step with the diagram in docs/architecture.md.
LAYERS = {
    "errors": 0,
    "napari_gerbil": 1,  # the package itself: __version__
    "physics": 1,
    "paths": 1,
    "io.atomic": 1,  # atomic writes: below config (atomic save), which io.cage uses
    "config": 2,
    "progress": 2,
    "io": 3,
    "signal": 4,
    "simulate": 4,
    "baselines": 4,
    "cagefit": 5,  # fits a cage to recordings: reads io, renders with simulate
    "model": 5,
    "attribute": 6,
    "training": 7,  # fits the attribution calibration: above attribute
    "review": 7,
    "pipeline": 8,
    "evaluate": 8,
    "cli": 9,
    "_napari": 10,
    "__main__": 11,
}
#: Imports allowed against the order, with the reason.
EXCEPTIONS = {
    ("napari_gerbil.cli.demo", "_napari"): "the demo command opens the napari window",
}
#: Top-level packages only the napari front may import.
GUI_PACKAGES = {"napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui",
                "vispy", "superqt", "app_model"}  # fmt: skip


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 2 and ".".join(parts[1:3]) in LAYERS:  # a module with its own layer
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "napari_gerbil"


def _import_statements(
    path: Path, module: str, runtime_only: bool = False
) -> list[tuple[str, list[str], int]]:
    """(absolute module name, imported names, line) of every import in the file.

    ``runtime_only``: leave out those under ``if TYPE_CHECKING:`` (they never run).
    """
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[str, list[str], int]] = []

    def type_checking(test: ast.expr) -> bool:
        return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )

    def visit(node: ast.AST) -> None:
        if runtime_only and isinstance(node, ast.If) and type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, [], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((name, [alias.name for alias in node.names], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the file."""
    return [(name, line) for name, _, line in _import_statements(path, module)]


def _import_graph(modules: list[tuple[str, Path]]) -> dict[str, dict[str, int]]:
    """Module -> {imported package module: line} over the runtime imports."""
    known = {module for module, _ in modules}
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules:
        edges = graph.setdefault(module, {})
        for name, names, line in _import_statements(path, module, runtime_only=True):
            targets = [f"{name}.{n}" for n in names if f"{name}.{n}" in known]
            if len(targets) < len(names) or not names:  # names defined in ``name`` itself
                targets.append(name)
            for target in targets:
                if target in known and target != module:
                    edges.setdefault(target, line)
    return graph


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles():
    graph = _import_graph(_modules())
    lines = []
    for component in _cycles(graph):
        members = set(component)
        edges = [
            f"  {source} -> {target} (line {line})"
            for source in component
            for target, line in sorted(graph[source].items())
            if target in members
        ]
        lines.append("cycle among " + ", ".join(component) + ":\n" + "\n".join(edges))
    assert not lines, "import cycles:\n" + "\n".join(lines)


def test_cycle_finder_sees_a_cycle_through_functions_but_not_type_checking(tmp_path):
    pkg = tmp_path / "napari_gerbil"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from napari_gerbil.b import g\n")
    (pkg / "b.py").write_text("from napari_gerbil import a\n")
    (pkg / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from napari_gerbil import a\n"
    )
    (pkg / "d.py").write_text("from . import c\n")
    modules = [("napari_gerbil", pkg / "__init__.py")] + [
        (f"napari_gerbil.{n}", pkg / f"{n}.py") for n in "abcd"
    ]
    graph = _import_graph(modules)
    assert graph["napari_gerbil.c"] == {}
    assert graph["napari_gerbil.d"] == {"napari_gerbil.c": 1}
    assert _cycles(graph) == [["napari_gerbil.a", "napari_gerbil.b"]]


def test_every_unit_has_a_layer():
    units = {_unit(m) for m, _ in _modules()}
    assert units <= set(LAYERS), f"add {sorted(units - set(LAYERS))} to LAYERS"


def test_imports_only_point_down():
    wrong = []
    for module, path in _modules():
        unit = _unit(module)
        for name, line in _imports(path, module):
            if name.split(".")[0] != "napari_gerbil":
                continue
            target = _unit(name)
            if target == unit or (module, target) in EXCEPTIONS:
                continue
            if LAYERS[target] >= LAYERS[unit]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line}: {unit} imports {name}")
    assert not wrong, "imports pointing up or sideways:\n" + "\n".join(wrong)


def test_only_the_napari_front_imports_qt_or_napari():
    wrong = []
    for module, path in _modules():
        if _unit(module) == "_napari" or (module, "_napari") in EXCEPTIONS:
            continue
        for name, line in _imports(path, module):
            if name.split(".")[0] in GUI_PACKAGES:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line}: imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from napari_gerbil.review import ReviewModel", "napari_gerbil.review"),
        ("from ..io import session", "napari_gerbil.io"),
        ("from . import vcl", "napari_gerbil.io"),
    ],
)
def test_relative_imports_are_resolved(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert _imports(path, "napari_gerbil.io.m")[0][0] == expected
