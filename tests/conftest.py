"""Shared fixtures. Area-specific fixtures live in each test folder's conftest.py."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Generated sample data and demo models go to a per-session temp dir in tests."""
    monkeypatch.setenv("NAPARI_GERBIL_HOME", str(tmp_path_factory.getbasetemp() / "gerbil_home"))
