"""Attributing calls to animals from their poses and the predicted mixture."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.attribute import animal_positions_at_calls, attribute_calls, attribute_session
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry, default_cage, fit_homography
from napari_gerbil.io.session import (
    AMBIGUOUS,
    UNASSIGNED,
    AudioRef,
    CallTable,
    FileRef,
    Predictions,
    Session,
)
from napari_gerbil.io.tracks import Poses
from napari_gerbil.model.mixture import MixturePrediction

ARENA_MM = (600.0, 400.0, 350.0)


def _single_gaussians(centres_mm, sd_mm=10.0) -> MixturePrediction:
    centres = np.asarray(centres_mm, dtype=float)
    chol = np.tile(np.eye(2) * sd_mm, (len(centres), 3, 1, 1))
    return MixturePrediction(np.repeat(centres[:, None], 3, axis=1), chol)


def test_one_animal_in_the_set_is_assigned_several_are_ambiguous_none_unassigned():
    pred = _single_gaussians([[0, 0], [100, 100], [-200, 50]])
    animals = np.array(
        [
            [[5.0, 0.0], [150.0, 0.0]],  # only animal 0 near
            [[100.0, 108.0], [97.0, 100.0]],  # both inside
            [[0.0, 0.0], [200.0, -100.0]],  # neither
        ]
    )
    result = attribute_calls(pred, animals, ARENA_MM)
    assert result.animal.tolist() == [0, AMBIGUOUS, UNASSIGNED]
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0)
    assert result.probabilities[0, 0] > 0.999
    # probabilities follow the density: the closer of two animals is more likely
    assert result.probabilities[1, 1] > result.probabilities[1, 0]
    assert result.in_set.tolist() == [[True, False], [True, True], [False, False]]


def test_untracked_animals_are_skipped_and_get_nan_probability():
    pred = _single_gaussians([[0, 0], [0, 0]])
    animals = np.array([[[np.nan, np.nan], [3.0, 0.0]], [[np.nan, np.nan], [np.nan, np.nan]]])
    result = attribute_calls(pred, animals, ARENA_MM)
    assert result.animal.tolist() == [1, UNASSIGNED]
    assert np.isnan(result.probabilities[0, 0]) and result.probabilities[0, 1] == 1.0
    assert np.isnan(result.probabilities[1]).all()


def test_shape_errors_are_reported():
    with pytest.raises(InvalidInputError, match="animal_xy_mm"):
        attribute_calls(_single_gaussians([[0, 0]]), np.zeros((2, 2, 2)), ARENA_MM)


def test_session_attribution_maps_poses_at_call_time_through_the_homography(tmp_path):
    cage = default_cage()
    corners_px = np.array([[400.0, 20.0], [400.0, 620.0], [0.0, 620.0], [0.0, 20.0]])  # row, col
    h = fit_homography(cage.corners_mm(), corners_px)
    arena = ArenaGeometry(cage.dims_mm, cage.mic_positions_mm, h)
    audio_file = tmp_path / "a.h5"
    audio_file.write_bytes(b"0")
    audio = AudioRef([FileRef.from_file(audio_file)], "audio", 125000.0, 4, 125000 * 4)
    calls = CallTable.from_samples([125000, 250000], [126000, 251000])  # at 1 s and 2 s
    session = Session(audio=audio, arena=arena, calls=calls, fps=30.0, animal_names=["a", "b"])
    # animal a sits at (100, 50) mm from frame 25 on, b at (-150, -60) mm
    xy_mm = {"a": [100.0, 50.0], "b": [-150.0, -60.0]}
    rc = {k: arena.to_pixels(np.array([v]))[0] for k, v in xy_mm.items()}
    xy_px = np.full((90, 2, 1, 2), np.nan)
    for t, name in enumerate(["b", "a"]):  # tracks stored in the other order
        xy_px[25:, t, 0] = rc[name][::-1]  # SLEAP (x, y) = (col, row)
    poses = Poses(["nose"], ["b", "a"], xy_px, np.arange(90))
    pos = animal_positions_at_calls(session, poses, "nose")
    np.testing.assert_allclose(pos[:, 0], [[100.0, 50.0]] * 2, atol=1e-6)
    np.testing.assert_allclose(pos[:, 1], [[-150.0, -60.0]] * 2, atol=1e-6)

    pred = _single_gaussians([[-148.0, -58.0], [0.0, 0.0]])
    session.predictions = Predictions(
        pred.point_mm, pred.means_mm, pred.chol_mm, np.ones(2), "test"
    )
    attribution = attribute_session(session, poses, "nose")
    assert attribution.animal.tolist() == [1, UNASSIGNED]
    assert session.predicted is attribution
    assert attribution.probabilities[0, 1] > 0.99

    session.arena = ArenaGeometry(cage.dims_mm, cage.mic_positions_mm)
    with pytest.raises(InvalidInputError, match="arena_to_pixels"):
        animal_positions_at_calls(session, poses)
