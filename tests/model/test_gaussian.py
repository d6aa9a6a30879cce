"""Gaussian NLL and the mm <-> scaled unit conversion (Jacobian)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.gaussian import (
    gaussian_nll,
    label_scale_mm,
    raw_to_gaussian,
    to_mm,
    to_scaled,
)
from napari_gerbil.model.mixture import MixturePrediction, gaussian_log_density


def test_nll_equals_the_negative_log_density_of_the_full_covariance_gaussian(rng):
    raw = torch.tensor(rng.normal(size=(20, 5)), dtype=torch.float64)
    target = torch.tensor(rng.normal(size=(20, 2)), dtype=torch.float64)
    mean, chol = raw_to_gaussian(raw)
    nll = gaussian_nll(mean, chol, target).numpy()
    for i in range(20):
        cov = (chol[i] @ chol[i].T).numpy()
        expected = -multivariate_normal(mean[i].numpy(), cov).logpdf(target[i].numpy())
        assert nll[i] == pytest.approx(expected, rel=1e-9)


def test_scale_is_half_the_largest_floor_dimension():
    assert label_scale_mm((600, 400, 350)) == 300.0
    assert label_scale_mm((300, 500)) == 250.0
    with pytest.raises(InvalidInputError, match="arena_dims_mm"):
        label_scale_mm((0, 400, 350))


def test_mm_conversion_transforms_density_with_the_jacobian(rng):
    s = label_scale_mm((600, 400, 350))
    raw = torch.tensor(rng.normal(size=(5, 5)), dtype=torch.float64)
    mean, chol = (t.numpy() for t in raw_to_gaussian(raw))
    mean_mm, chol_mm = to_mm(mean, chol, s)
    x_mm = rng.normal(scale=100, size=(5, 7, 2))
    log_p_mm = gaussian_log_density(x_mm, mean_mm, chol_mm)
    log_p_scaled = gaussian_log_density(to_scaled(x_mm, s), mean, chol)
    np.testing.assert_allclose(log_p_mm, log_p_scaled - 2 * np.log(s), rtol=1e-12)
    # the mm density integrates to one (numerically, on a fine grid)
    pred = MixturePrediction(mean_mm[:1, None], chol_mm[:1, None])
    sd = np.sqrt((chol_mm[0] ** 2).sum(-1)).max()
    xs = np.linspace(mean_mm[0, 0] - 8 * sd, mean_mm[0, 0] + 8 * sd, 801)
    ys = np.linspace(mean_mm[0, 1] - 8 * sd, mean_mm[0, 1] + 8 * sd, 801)
    gx, gy = np.meshgrid(xs, ys)
    dens = np.exp(pred.log_density(np.c_[gx.ravel(), gy.ravel()]))
    assert dens.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]) == pytest.approx(1.0, abs=1e-3)
