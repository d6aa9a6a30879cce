"""The core must import and run with Qt and napari unavailable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui",
               "vispy", "superqt", "app_model")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked import of {name} in the core")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_blocker_really_blocks():
    result = _run("import napari")
    assert result.returncode != 0
    assert "blocked import of napari" in result.stderr


def test_every_core_module_imports_without_qt_or_napari():
    result = _run(
        """
        import pkgutil, importlib, napari_gerbil
        names = [m.name for m in pkgutil.walk_packages(napari_gerbil.__path__, "napari_gerbil.")
                 if "._napari" not in m.name]
        for name in names:
            importlib.import_module(name)
        print(len(names))
        """
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 5


def test_cli_builds_without_qt_or_napari():
    result = _run(
        """
        from napari_gerbil.cli.main import build_parser
        build_parser().format_help()
        """
    )
    assert result.returncode == 0, result.stderr
