"""File > Open of a session in a napari that never ran napari-gerbil (new settings folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def test_file_open_in_a_fresh_napari_preselects_napari_gerbil(session_path, tmp_path):
    """The reader chooser (builtins also claim *.h5) preselects napari-gerbil: OK opens it.

    Was: "napari builtins" preselected, OK gave "cannot find loader for this HDF5 file".
    After that first open the plugin is napari's reader of *.gerbil.h5: no chooser.
    """
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (pytest-xvfb)")
    settings = tmp_path / "new napari settings" / "settings.yaml"
    env = {**os.environ, "NAPARI_CONFIG": str(settings)}
    script = Path(__file__).with_name("fresh_file_open.py")
    result = subprocess.run(
        [sys.executable, str(script), str(session_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-2000:] + result.stderr[-3000:]
    first, second = json.loads(lines[0][len("RESULT ") :])["opens"]
    assert first["chooser"].lower() == "napari-gerbil"  # preselected: OK is enough
    assert first["notifications"] == []
    assert first["layers"] == ["video", "tracks", "arena"]
    assert first["readers"] == ["napari-gerbil"]
    assert second["chooser"] is None and second["readers"] == ["napari-gerbil"]
    assert settings.exists()  # napari's own settings file, in the new folder
