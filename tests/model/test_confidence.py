"""Highest-density confidence sets: coverage, normalization, polygons, membership."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.calibration import coverage_curve, expected_calibration_error
from napari_gerbil.model.confidence import (
    confidence_set,
    confidence_sets,
    density_grid,
    hdr_levels,
)
from napari_gerbil.model.mixture import MixturePrediction

ARENA_MM = np.array([600.0, 400.0, 350.0])


def _mixture(rng, n_members=10, spread_mm=30.0, sd_mm=(8.0, 25.0)) -> MixturePrediction:
    means = rng.normal(0, spread_mm, (1, n_members, 2))
    chol = np.zeros((1, n_members, 2, 2))
    chol[..., 0, 0] = rng.uniform(*sd_mm, (1, n_members))
    chol[..., 1, 1] = rng.uniform(*sd_mm, (1, n_members))
    chol[..., 1, 0] = rng.normal(0, 5, (1, n_members))
    return MixturePrediction(means, chol)


@pytest.mark.parametrize("mass", [0.5, 0.9, 0.95])
def test_sets_cover_samples_of_a_known_mixture_within_1_5_percent(rng, mass):
    pred = _mixture(rng)
    cs = confidence_sets(pred, ARENA_MM, mass)[0]
    samples = pred.sample(40000, rng)[0]
    assert abs(cs.contains(samples).mean() - mass) < 0.015


def test_density_sums_to_one_over_the_grid(rng):
    pred = _mixture(rng)
    grid = density_grid(pred, ARENA_MM)
    assert grid.mass.sum() == pytest.approx(1.0, abs=1e-12)
    # the unnormalized density integrates to ~1 too: the grid holds all the mass
    raw = np.exp(grid.log_density).sum() * grid.cell_area_mm2
    assert raw == pytest.approx(1.0, abs=5e-3)


def test_single_gaussian_set_is_the_chi_square_ellipse():
    chol = np.array([[[20.0, 0.0], [10.0, 15.0]]])
    cs = confidence_set(np.array([[10.0, -20.0]]), chol, ARENA_MM, 0.95)
    expected = np.pi * chi2.ppf(0.95, 2) * 20.0 * 15.0
    assert cs.area_mm2 == pytest.approx(expected, rel=0.03)
    (poly,) = cs.polygons_mm
    x, y = poly[:, 0], poly[:, 1]
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert shoelace == pytest.approx(expected, rel=0.03)
    assert cs.contains([[10.0, -20.0]])[0]
    assert not cs.contains([[200.0, 150.0]])[0]


def test_the_crossing_cell_is_included_so_the_set_never_holds_less_than_p(rng):
    for _ in range(5):
        pred = _mixture(rng, n_members=3)
        cs = confidence_sets(pred, ARENA_MM, 0.9)[0]
        held = cs.grid.mass[cs.grid.log_density >= cs.log_threshold].sum()
        assert held >= 0.9
        # without the densest-but-last cell it would hold less than p
        lowest = cs.grid.mass[cs.grid.log_density >= cs.log_threshold].min()
        assert held - lowest < 0.9


def test_two_separated_modes_give_two_polygons_and_a_set_cut_by_a_wall_is_closed():
    means = np.array([[-150.0, 0.0], [150.0, 50.0]])
    chol = np.tile(np.eye(2) * 10.0, (2, 1, 1))
    cs = confidence_set(means, chol, ARENA_MM)
    assert len(cs.polygons_mm) == 2
    centres = sorted(p.mean(axis=0)[0] for p in cs.polygons_mm)
    assert centres[0] == pytest.approx(-150, abs=3) and centres[1] == pytest.approx(150, abs=3)

    wall = confidence_set(np.array([[295.0, 0.0]]), np.eye(2)[None] * 20.0, ARENA_MM)
    (poly,) = wall.polygons_mm
    np.testing.assert_allclose(poly[0], poly[-1])  # closed
    assert poly[:, 0].max() <= 300.0 + 1e-9
    assert not wall.contains([[305.0, 0.0]])[0]  # outside the arena: never in the set
    # renormalized inside the arena, the half-cut set is smaller than the full ellipse
    assert wall.area_mm2 < np.pi * chi2.ppf(0.95, 2) * 400


def test_hdr_levels_of_samples_are_uniform_so_the_coverage_curve_is_diagonal(rng):
    pred = _mixture(rng, n_members=4)
    n = 250
    many = MixturePrediction(np.repeat(pred.means_mm, n, 0), np.repeat(pred.chol_mm, n, 0))
    levels = hdr_levels(many, pred.sample(n, rng)[0], ARENA_MM)
    assert expected_calibration_error(levels) < 0.04
    curve = coverage_curve(levels, np.array([0.0, 0.5, 1.0]))
    assert curve[0] < 0.01 and curve[2] == 1.0 and abs(curve[1] - 0.5) < 0.06
    # an overconfident prediction (covariances shrunk 4x) under-covers
    tight = many.with_temperature(0.25)
    assert np.mean(hdr_levels(tight, pred.sample(n, rng)[0], ARENA_MM) <= 0.9) < 0.75


def test_bad_inputs_are_rejected(rng):
    pred = _mixture(rng)
    with pytest.raises(InvalidInputError, match="mass"):
        confidence_sets(pred, ARENA_MM, 1.5)
    with pytest.raises(InvalidInputError, match="arena_dims_mm"):
        confidence_sets(pred, [600.0, -1.0], 0.95)
    with pytest.raises(InvalidInputError, match="means_mm"):
        MixturePrediction(np.zeros((2, 3)), np.zeros((2, 3, 2)))
    with pytest.raises(InvalidInputError, match="points_mm"):
        hdr_levels(pred, np.zeros((3, 2)), ARENA_MM)
