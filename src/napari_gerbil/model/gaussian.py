"""Gaussian head: 5 raw outputs -> mean and Cholesky factor; NLL loss; mm <-> scaled units.

The network works in *scaled* coordinates: millimetres divided by
``scale_mm = max(arena length, arena width) / 2`` (isotropic, so the arena spans
about [-1, 1] along its long side). A point maps as ``u = x_mm / s``; a Gaussian
N(mu, L L^T) in scaled units is N(s mu, (s L)(s L)^T) in mm, and densities obey
``p_mm(x) = p_scaled(x / s) / s**2`` (the Jacobian of the 2-D map).

The supplement applies a "softmax" to the Cholesky diagonal to keep it positive; for
an elementwise map that is the softplus ``log(1 + e^z)``, which we use, plus a floor
of ``CHOL_FLOOR`` so that the diagonal stays positive in float32 for any input.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from napari_gerbil.errors import InvalidInputError

#: Smallest Cholesky diagonal in scaled units (0.03 mm in the default cage).
CHOL_FLOOR = 1e-4


def raw_to_gaussian(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split raw outputs (B, 5) into mean (B, 2) and lower-triangular Cholesky (B, 2, 2)."""
    mean = raw[:, :2]
    l11 = F.softplus(raw[:, 2]) + CHOL_FLOOR
    l21 = raw[:, 3]
    l22 = F.softplus(raw[:, 4]) + CHOL_FLOOR
    zero = torch.zeros_like(l11)
    chol = torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)
    return mean, chol


def gaussian_nll(mean: torch.Tensor, chol: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of ``target`` (B, 2) under N(mean, chol chol^T), shape (B,)."""
    diff = (target - mean).unsqueeze(-1)
    z = torch.linalg.solve_triangular(chol, diff, upper=False).squeeze(-1)
    log_det = torch.log(chol[:, 0, 0]) + torch.log(chol[:, 1, 1])  # half log|Sigma|
    return 0.5 * z.square().sum(-1) + log_det + math.log(2 * math.pi)


def weak_label_nll(mean: torch.Tensor, chol: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """NLL of (B, 2) targets, or multiple-instance NLL of (B, A, 2) candidates, shape (B,).

    With candidates (the tracked animals at a call, the caller unknown) the loss is
    ``-log(mean_a N(x_a | mean, chol chol^T))`` over the rows that are finite (a NaN row
    is an untracked animal), computed with ``logsumexp``. One finite row is the
    ordinary :func:`gaussian_nll`. A call without a finite row is refused.
    """
    if targets.ndim == 2:
        return gaussian_nll(mean, chol, targets)
    if targets.ndim != 3 or targets.shape[-1] != 2 or targets.shape[0] != mean.shape[0]:
        raise InvalidInputError(
            None, "targets", f"({mean.shape[0]}, 2) or ({mean.shape[0]}, A, 2)",
            f"shape {tuple(targets.shape)}",
        )  # fmt: skip
    valid = torch.isfinite(targets).all(-1)  # (B, A)
    if not bool(valid.any(-1).all()):
        raise InvalidInputError(
            None, "targets", "at least one tracked animal (a finite row) per call",
            f"{int((~valid.any(-1)).sum())} call(s) with none",
        )  # fmt: skip
    n_a = targets.shape[1]
    flat = torch.where(valid.unsqueeze(-1), targets, mean.detach().unsqueeze(1)).reshape(-1, 2)
    rep = mean.repeat_interleave(n_a, 0), chol.repeat_interleave(n_a, 0)
    nll = gaussian_nll(rep[0], rep[1], flat).reshape(-1, n_a)
    log_p = torch.where(valid, -nll, torch.full_like(nll, -math.inf))
    return -(torch.logsumexp(log_p, dim=-1) - torch.log(valid.sum(-1).to(nll.dtype)))


def label_scale_mm(arena_dims_mm) -> float:
    """Isotropic label scale: half the largest horizontal arena dimension, in mm."""
    dims = np.asarray(arena_dims_mm, dtype=float).ravel()
    if dims.size < 2 or not np.all(np.isfinite(dims[:2])) or np.any(dims[:2] <= 0):
        raise InvalidInputError(
            None, "arena_dims_mm", "(length, width[, height]) > 0 in mm", repr(dims.tolist())
        )
    return float(dims[:2].max() / 2)


def to_mm(mean, chol, scale_mm: float):
    """Map a Gaussian from scaled units to mm: (s * mean, s * chol). Works for numpy/torch."""
    return mean * scale_mm, chol * scale_mm


def to_scaled(xy_mm, scale_mm: float):
    """Map positions in mm to scaled units."""
    return xy_mm / scale_mm
