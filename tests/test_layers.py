"""The layer order of docs/architecture.md, checked on the source.

Every import counts, also those inside functions: a module imports only its own unit
and units of lower layers, and nothing outside ``_napari`` imports Qt or napari.
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


def _imports(path: Path, module: str) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


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
