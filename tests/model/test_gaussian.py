"""Gaussian NLL and the mm <-> scaled unit conversion (Jacobian)."""

from __future__ import annotations

import math

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
    weak_label_nll,
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


# --- multiple-instance (weak-label) NLL ---------------------------------------------


def _gaussian_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(4, 5, generator=g)
    mean, chol = raw_to_gaussian(raw)
    return mean, chol, torch.randn(4, 3, 2, generator=g)


def test_weak_label_nll_is_gaussian_nll_with_one_tracked_animal():
    mean, chol, cand = _gaussian_batch()
    only = torch.full_like(cand, float("nan"))
    only[:, 1] = cand[:, 1]  # one finite row per call: the ordinary NLL of that row
    torch.testing.assert_close(
        weak_label_nll(mean, chol, only), gaussian_nll(mean, chol, cand[:, 1])
    )
    torch.testing.assert_close(
        weak_label_nll(mean, chol, cand[:, 0]), gaussian_nll(mean, chol, cand[:, 0])
    )


def test_weak_label_nll_is_minus_log_mean_density_over_tracked_animals():
    mean, chol, cand = _gaussian_batch(1)
    cand[0, 2] = float("nan")  # animal 2 untracked at call 0
    got = weak_label_nll(mean, chol, cand)
    dens = torch.stack([torch.exp(-gaussian_nll(mean, chol, cand[:, a])) for a in range(3)], 1)
    want = -torch.log(torch.stack([dens[0, :2].mean(), *[dens[b].mean() for b in range(1, 4)]]))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # a candidate far away cannot make the loss much worse than log(A): it is a mixture
    far = cand.clone()
    far[:, 1:] = 100.0
    assert (
        weak_label_nll(mean, chol, far) - gaussian_nll(mean, chol, cand[:, 0]) <= math.log(3) + 1e-4
    ).all()


def test_weak_label_nll_gradient_flows_and_untracked_rows_give_none():
    raw = torch.randn(3, 5, generator=torch.Generator().manual_seed(2), requires_grad=True)
    mean, chol = raw_to_gaussian(raw)
    cand = torch.randn(3, 2, 2)
    cand[1, 1] = float("nan")
    weak_label_nll(mean, chol, cand).sum().backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()
    assert (raw.grad.abs().sum(1) > 0).all()


def test_weak_label_nll_refuses_a_call_with_no_tracked_animal():
    mean, chol, cand = _gaussian_batch()
    cand[2] = float("nan")
    with pytest.raises(InvalidInputError, match="at least one tracked animal"):
        weak_label_nll(mean, chol, cand)
