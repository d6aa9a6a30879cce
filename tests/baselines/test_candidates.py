"""Steered response at candidate positions (the tracked animals)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.baselines.candidates import candidate_correlations, search_offsets_mm
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.vcl import VCLDataset


def test_the_caller_scores_above_animals_10_cm_away_in_an_anechoic_cage(anechoic_calls):
    ds = VCLDataset(anechoic_calls)
    calls = [ds.call_audio(i) for i in range(ds.n_calls)]
    xy = ds.source_xy_mm()
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, len(xy))
    decoy = xy + 100.0 * np.c_[np.cos(angle), np.sin(angle)]
    noisy = xy + rng.normal(0.0, 4.0, xy.shape)  # pose error
    cand = np.stack([noisy, decoy, np.full_like(xy, np.nan)], axis=1)
    result = candidate_correlations(calls, ds.mic_positions_mm, ds.sample_rate_hz, cand)
    srp = result.steered_response
    assert np.mean(srp[:, 0] > srp[:, 1]) >= 0.95
    assert np.isnan(srp[:, 2]).all()  # an untracked animal has no score
    # the best point lies within the searched disc and heights
    assert (np.hypot(*result.best_offset_mm[:, 0, :2].T) <= 15.0 + 1e-9).all()
    assert result.bands_hz.shape == (len(calls), 2)


def test_search_grid_and_refusals():
    grid = search_offsets_mm(radius_mm=10.0, step_mm=5.0, heights_mm=(0.0, 50.0))
    assert len(grid) == 2 * 13 and np.hypot(grid[:, 0], grid[:, 1]).max() <= 10.0
    mics = np.array([[-200, -100, 300], [200, -100, 300], [200, 100, 300], [-200, 100, 300.0]])
    empty = candidate_correlations([], mics, 125000.0, np.zeros((0, 2, 2)))
    assert empty.steered_response.shape == (0, 2)
    with pytest.raises(InvalidInputError, match="candidates_xy_mm"):
        candidate_correlations([np.zeros((500, 4))], mics, 125000.0, np.zeros((2, 2, 2)))
