"""The plugin manifest, reader and CLI registration."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_gerbil._napari._reader import get_reader


def test_manifest_is_valid_and_discovered():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-gerbil")
    commands = {c.id for c in manifest.contributions.commands}
    assert {
        "napari-gerbil.get_reader",
        "napari-gerbil.review_widget",
        "napari-gerbil.sample_session",
    } <= commands
    assert [r.filename_patterns for r in manifest.contributions.readers] == [["*.gerbil.h5"]]
    from pathlib import Path

    import napari_gerbil

    path = Path(napari_gerbil.__file__).with_name("napari.yaml")
    assert path.is_symlink() and path.resolve() == (path.parents[2] / "napari.yaml").resolve()
    npe2.PluginManifest.from_file(path)  # validates the schema
    assert [w.display_name for w in manifest.contributions.widgets] == ["Review calls"]
    assert manifest.contributions.sample_data[0].key == "synthetic_session"


def test_reader_claims_only_session_files(session_path, tmp_path):
    assert callable(get_reader(str(session_path)))
    assert callable(get_reader([str(session_path)]))
    # an HDF5 file named like a session but without the session marker
    other = tmp_path / "other.gerbil.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    assert get_reader(str(other)) is None
    # a real session under another name is not claimed either (no bare *.h5 pattern)
    renamed = tmp_path / "session.h5"
    renamed.write_bytes(session_path.read_bytes())
    assert get_reader(str(renamed)) is None
    assert get_reader([str(session_path), str(session_path)]) is None


def test_reader_layer_data(session_path):
    layers = get_reader(str(session_path))(str(session_path))
    kinds = {kwargs["name"]: kind for _, kwargs, kind in layers}
    assert kinds == {"video": "image", "tracks": "tracks", "arena": "shapes"}
    for _, kwargs, _ in layers:
        assert kwargs["metadata"]["napari_gerbil_session"] == str(session_path)


def test_demo_command_is_registered():
    from napari_gerbil.cli.main import build_parser

    args = build_parser().parse_args(["demo", "--screenshot", "x.png", "--calls", "3"])
    assert args.command == "demo" and args.calls == 3 and str(args.screenshot) == "x.png"


@pytest.mark.slow
@pytest.mark.gui
def test_demo_saves_a_screenshot_once_a_set_is_drawn(session_path, tiny_ensemble_dir, tmp_path):
    import subprocess
    import sys

    from napari_gerbil.io.session import load_session

    png = tmp_path / "demo.png"
    result = subprocess.run(
        [sys.executable, "-m", "napari_gerbil", "demo", "--session", str(session_path),
         "--model", str(tiny_ensemble_dir), "--screenshot", str(png), "--calls", "3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "screenshot saved" in result.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    session = load_session(session_path)
    assert np.isfinite(session.predictions.point_mm[:3]).all()
    assert np.isnan(session.predictions.point_mm[3:]).all()
