"""Atomic replacement keeps the old file on failure and gives normal permissions."""

from __future__ import annotations

import os

import pytest

from napari_gerbil.io.atomic import atomic_path, atomic_write_text


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_written_file_has_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "y.txt", "new")
    finally:
        os.umask(umask)
    assert (tmp_path / "y.txt").stat().st_mode & 0o777 == 0o644
