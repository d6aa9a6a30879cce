"""Attributing calls to animals from their poses and the predicted mixture."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.attribute import (
    CALIBRATION_FILE,
    AttributionCalibration,
    animal_positions_at_calls,
    assign,
    attribute_calls,
    load_calibration,
)
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry, default_cage, fit_homography
from napari_gerbil.io.session import (
    AMBIGUOUS,
    UNASSIGNED,
    AudioRef,
    CallTable,
    FileRef,
    Session,
)
from napari_gerbil.io.tracks import Poses
from napari_gerbil.model.mixture import MixturePrediction

ARENA_MM = (600.0, 400.0, 350.0)


def _single_gaussians(centres_mm, sd_mm=10.0) -> MixturePrediction:
    centres = np.asarray(centres_mm, dtype=float)
    chol = np.tile(np.eye(2) * sd_mm, (len(centres), 3, 1, 1))
    return MixturePrediction(np.repeat(centres[:, None], 3, axis=1), chol)


MIXTURE = AttributionCalibration(method="mixture", density_scale=1.0)


def test_the_likely_animal_is_assigned_close_calls_are_ambiguous():
    pred = _single_gaussians([[0, 0], [100, 100]])
    animals = np.array(
        [
            [[5.0, 0.0], [150.0, 0.0]],  # animal 0 far more likely
            [[100.0, 104.0], [100.0, 96.0]],  # equally likely
        ]
    )
    result = attribute_calls(animals, MIXTURE, prediction=pred)
    assert result.animal.tolist() == [0, AMBIGUOUS]
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0)
    assert result.probabilities[0, 0] > 0.999
    assert abs(result.probabilities[1, 0] - 0.5) < 1e-6


def test_assignment_needs_every_animal_tracked_and_the_threshold():
    probs = np.array([[0.97, 0.03], [0.9, 0.1], [1.0, np.nan], [np.nan, np.nan], [0.02, 0.98]])
    assert assign(probs, 0.95).tolist() == [0, AMBIGUOUS, AMBIGUOUS, UNASSIGNED, 1]
    assert assign(np.zeros((3, 0))).tolist() == [UNASSIGNED] * 3  # a session without animals


def test_untracked_animals_get_nan_probability_and_no_animal_means_unassigned():
    pred = _single_gaussians([[0, 0], [0, 0]])
    animals = np.array([[[np.nan, np.nan], [3.0, 0.0]], [[np.nan, np.nan], [np.nan, np.nan]]])
    result = attribute_calls(animals, MIXTURE, prediction=pred)
    assert result.animal.tolist() == [AMBIGUOUS, UNASSIGNED]
    assert np.isnan(result.probabilities[0, 0]) and result.probabilities[0, 1] == 1.0
    assert np.isnan(result.probabilities[1]).all()
    none = attribute_calls(np.zeros((2, 0, 2)), MIXTURE, prediction=pred)
    assert none.animal.tolist() == [UNASSIGNED, UNASSIGNED] and none.probabilities.shape == (2, 0)


def test_steered_response_picks_the_caller_in_an_anechoic_cage():
    from napari_gerbil.io.cage import builtin_cage
    from napari_gerbil.simulate.engine import render_positions

    cage = builtin_cage("paper", absorption_preset="anechoic")
    rng = np.random.default_rng(4)
    t = np.arange(int(0.004 * 125000)) / 125000
    sweep = np.sin(2 * np.pi * (30000 * t - 2e6 * t**2)).astype(np.float32)
    sources = np.array([[-150.0, 60.0, 40.0], [120.0, -80.0, 30.0], [40.0, 100.0, 50.0]])
    calls = render_positions(cage, sources, [sweep] * 3)
    calls = [c + rng.normal(0, 0.01 * c.std(), c.shape).astype(np.float32) for c in calls]
    decoys = sources[:, :2] + np.array([[120.0, 0.0], [0.0, 100.0], [-90.0, -90.0]])
    animals = np.stack([decoys, sources[:, :2]], axis=1)  # the caller is animal 1
    result = attribute_calls(
        animals,
        AttributionCalibration(),
        calls=calls,
        mic_positions_mm=cage.mics,
        sample_rate_hz=125000.0,
    )
    assert result.animal.tolist() == [1, 1, 1]
    assert (result.probabilities[:, 1] > 0.95).all()


def test_calibration_file_round_trip_and_refusals(tmp_path):
    cal = AttributionCalibration(method="srp", srp_scale=33.0, fitted_on="test")
    cal.save(tmp_path / CALIBRATION_FILE)
    assert load_calibration(tmp_path) == cal
    assert load_calibration(tmp_path / "none") == AttributionCalibration()
    with pytest.raises(InvalidInputError, match="method"):
        AttributionCalibration(method="vote")
    with pytest.raises(InvalidInputError, match="assign_probability"):
        AttributionCalibration(assign_probability=1.5)
    with pytest.raises(InvalidInputError, match="srp_scale"):
        AttributionCalibration(srp_scale=float("nan"))


def test_shape_errors_are_reported():
    with pytest.raises(InvalidInputError, match="animal_xy_mm"):
        attribute_calls(np.zeros((2, 2)), MIXTURE, prediction=_single_gaussians([[0, 0]] * 2))


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

    session.arena = ArenaGeometry(cage.dims_mm, cage.mic_positions_mm)
    with pytest.raises(InvalidInputError, match="arena_to_pixels"):
        animal_positions_at_calls(session, poses)


def test_a_wide_band_call_gets_a_sharper_steered_response_scale():
    from napari_gerbil.attribute import candidate_logits

    cal = AttributionCalibration(method="srp", srp_scale=10.0, srp_scale_per_khz=2.0)
    srp = np.array([[0.3, 0.1], [0.3, 0.1]])
    logits = candidate_logits(cal, srp, bandwidth_khz=np.array([5.0, 40.0]))
    np.testing.assert_allclose(logits, [[6.0, 2.0], [27.0, 9.0]])  # (10 + 2 * kHz) * srp
    with pytest.raises(InvalidInputError, match="bandwidth_khz"):
        candidate_logits(cal, srp)
    assert AttributionCalibration(method="mixture", srp_scale_per_khz=3.0).srp_scale_per_khz == 0
