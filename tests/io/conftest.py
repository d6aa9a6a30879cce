"""Fixtures of the data-layer tests: small VCL files, written by us and by plain h5py."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from napari_gerbil.io.cage import builtin_cage
from napari_gerbil.io.vcl import write_vcl


@pytest.fixture
def cage():
    """A 600 x 400 x 350 mm arena, mics 25 mm from two walls (the ``omni-corner`` cage)."""
    return builtin_cage("omni-corner").arena()


def random_calls(rng, n_calls=6, n_channels=4, min_len=200, max_len=900):
    """Float32 calls of random lengths and random (x, y) locations inside the cage."""
    calls = [
        rng.standard_normal((int(rng.integers(min_len, max_len)), n_channels)).astype(np.float32)
        for _ in range(n_calls)
    ]
    xy = rng.uniform([-280, -180], [280, 180], size=(n_calls, 2))
    return calls, xy


@pytest.fixture
def make_vcl(tmp_path, rng, cage):
    """Write a VCL file with our metadata; returns (path, calls, locations)."""

    def make(name="ds.h5", n_calls=6, scenario="speaker", stimulus=True, **kw):
        calls, xy = random_calls(rng, n_calls)
        locations = xy[:, None, :]  # (n, 1 node, 2)
        classes = [f"class{i % 3}" for i in range(n_calls)] if stimulus else None
        path = write_vcl(
            tmp_path / name,
            calls,
            locations,
            node_names=["nose"],
            sample_rate_hz=125000.0,
            arena_dims_mm=cage.dims_mm,
            mic_positions_mm=cage.mic_positions_mm,
            stimulus_classes=classes,
            scenario=scenario,
            provenance={"made_by": "test"},
            **kw,
        )
        return path, calls, locations

    return make


def write_plain_vcl(path, calls, locations, node_names=(b"nose",), old_names=False):
    """A vocalocator-style file: only the four datasets, no attributes."""
    audio = np.concatenate(calls, axis=0)
    length_idx = np.r_[0, np.cumsum([len(c) for c in calls])].astype(np.int64)
    with h5py.File(path, "w") as f:
        f["vocalizations" if old_names else "audio"] = audio
        f["len_idx" if old_names else "length_idx"] = length_idx
        f["locations"] = locations
        f["node_names"] = np.array(list(node_names))
    return path


@pytest.fixture
def plain_vcl(tmp_path, rng):
    """(path, calls, locations) of a plain vocalocator file (no metadata)."""
    calls, xy = random_calls(rng, 5)
    locations = np.stack([xy, xy + 20.0], axis=1)  # (n, 2 nodes, 2)
    path = write_plain_vcl(tmp_path / "plain.h5", calls, locations, (b"nose", b"head"))
    return path, calls, locations


@pytest.fixture
def write_plain():
    """The :func:`write_plain_vcl` helper."""
    return write_plain_vcl


@pytest.fixture
def calls_maker(rng):
    """The :func:`random_calls` helper bound to the test's generator."""
    return lambda n_calls=6, n_channels=4: random_calls(rng, n_calls, n_channels)
