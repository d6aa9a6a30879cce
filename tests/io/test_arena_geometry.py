"""Arena geometry: default cage, homography fit and round trips, (de)serialization."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import (
    ArenaGeometry,
    apply_homography,
    default_cage,
    fit_homography,
)


def test_default_cage_matches_the_paper():
    cage = default_cage()  # the fitted cage of the paper (vocalocator's e1 room)
    np.testing.assert_allclose(cage.dims_mm, [571.5, 355.6, 368.3])
    assert cage.n_mics == 4
    mics = cage.mic_positions_mm
    # about 20 mm from the x walls, 50 mm from the y walls, 79 mm below the ceiling
    np.testing.assert_allclose(np.abs(mics[:, 0]), 265.1, atol=0.1)
    np.testing.assert_allclose(np.abs(mics[:, 1]), 127.6, atol=0.1)
    np.testing.assert_allclose(mics[:, 2], 289.7, atol=0.1)
    np.testing.assert_array_equal(np.sign(mics[:, :2]), np.sign(cage.corners_mm()))
    assert cage.arena_to_pixels is None


def test_the_io_fixture_is_the_omni_corner_cage(cage):
    np.testing.assert_array_equal(cage.dims_mm, [600, 400, 350])
    mics = cage.mic_positions_mm  # 25 mm from both nearest walls, 10 mm below the ceiling
    np.testing.assert_allclose(np.abs(mics[:, :3]), [[275, 175, 340]] * 4)


def test_contains_with_margin(cage):
    pts = np.array([[0, 0], [299, 199], [301, 0], [0, -205], [-300, -200]])
    np.testing.assert_array_equal(cage.contains(pts), [True, True, False, False, True])
    np.testing.assert_array_equal(cage.contains(pts, margin_mm=10), [True] * 5)


def _perspective_homography():
    """A camera looking at the floor from an angle: a genuinely projective map."""
    h = np.array([[0.9, 0.05, 240.0], [-0.03, 1.1, 330.0], [2e-4, -3e-4, 1.0]])
    return h


@pytest.mark.parametrize("kind", ["affine", "perspective"])
def test_fit_from_four_corners_recovers_the_map(cage, kind, rng):
    truth = (
        np.array([[0.0, 0.8, 240.0], [0.8, 0.0, 320.0], [0.0, 0.0, 1.0]])  # x -> col, y -> row
        if kind == "affine"
        else _perspective_homography()
    )
    corners_px = apply_homography(truth, cage.corners_mm())
    calibrated = cage.with_corners_px(corners_px)
    h = calibrated.arena_to_pixels
    np.testing.assert_allclose(h / h[2, 2], truth / truth[2, 2], rtol=1e-8, atol=1e-10)
    xy = rng.uniform([-300, -200], [300, 200], size=(500, 2))
    rc = calibrated.to_pixels(xy)
    np.testing.assert_allclose(rc, apply_homography(truth, xy), atol=1e-6)
    back = calibrated.to_arena(rc)
    # round trip arena -> pixels -> arena -> pixels well under 0.1 px
    assert np.abs(calibrated.to_pixels(back) - rc).max() < 0.1
    assert np.abs(back - xy).max() < 1e-6


def test_round_trip_with_noisy_clicks_and_more_points(cage, rng):
    truth = _perspective_homography()
    grid = np.stack(np.meshgrid([-300, 0, 300], [-200, 0, 200]), -1).reshape(-1, 2)
    clicks = apply_homography(truth, grid) + rng.normal(0, 0.5, (len(grid), 2))
    h = fit_homography(grid, clicks)  # least squares over 9 points
    err = np.abs(apply_homography(h, grid) - apply_homography(truth, grid)).max()
    assert err < 1.0  # within the click noise
    geo = ArenaGeometry(cage.dims_mm, cage.mic_positions_mm, h)
    rc = rng.uniform([0, 0], [720, 1280], size=(200, 2))
    assert np.abs(geo.to_pixels(geo.to_arena(rc)) - rc).max() < 0.1


def test_degenerate_corners_are_refused(cage):
    collinear = np.array([[0, 0], [1, 1], [2, 2], [3, 3]], float)
    with pytest.raises(InvalidInputError, match="degenerate"):
        fit_homography(cage.corners_mm(), collinear)
    with pytest.raises(InvalidInputError, match="at least 4"):
        fit_homography(cage.corners_mm()[:3], collinear[:3])
    with pytest.raises(InvalidInputError, match="corners_px"):
        fit_homography(cage.corners_mm(), collinear[:3])
    with pytest.raises(InvalidInputError, match="finite"):
        fit_homography(cage.corners_mm(), np.full((4, 2), np.nan))


def test_uncalibrated_arena_says_so(cage):
    with pytest.raises(InvalidInputError, match="arena_to_pixels"):
        cage.to_pixels([0, 0])


def test_invalid_geometry_is_refused():
    mics = default_cage().mic_positions_mm
    with pytest.raises(InvalidInputError, match="dims_mm"):
        ArenaGeometry([600, 400], mics)
    with pytest.raises(InvalidInputError, match="dims_mm"):
        ArenaGeometry([600, -400, 350], mics)
    with pytest.raises(InvalidInputError, match="mic_positions_mm"):
        ArenaGeometry([600, 400, 350], mics[:, :2])
    with pytest.raises(InvalidInputError, match="arena_to_pixels"):
        ArenaGeometry([600, 400, 350], mics, np.zeros((3, 3)))
    with pytest.raises(InvalidInputError, match="xy_mm"):
        default_cage().contains(np.zeros((3, 3)))


def test_to_dict_from_dict_through_json(cage):
    geo = cage.with_corners_px(apply_homography(_perspective_homography(), cage.corners_mm()))
    again = ArenaGeometry.from_dict(json.loads(json.dumps(geo.to_dict())))
    assert again == geo
    assert again != cage
    assert ArenaGeometry.from_dict(cage.to_dict()) == cage
    with pytest.raises(InvalidInputError, match="mic_positions_mm") as err:
        ArenaGeometry.from_dict({"dims_mm": [1, 1, 1]}, source="s.json")
    assert "s.json" in str(err.value)
