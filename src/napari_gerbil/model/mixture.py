"""Equal-weight Gaussian mixtures of the ensemble members, in mm (numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from napari_gerbil.errors import InvalidInputError

_LOG_2PI = float(np.log(2 * np.pi))


def gaussian_log_density(points_mm, means_mm, chol_mm) -> np.ndarray:
    """Log density of 2-D Gaussians given by lower Cholesky factors.

    Parameters
    ----------
    points_mm
        (..., K, 2) evaluation points.
    means_mm
        (..., 2) means; ``...`` broadcasts against the points' leading axes.
    chol_mm
        (..., 2, 2) lower-triangular Cholesky factors of the covariances.

    Returns
    -------
    (..., K) log densities in 1/mm^2.
    """
    points = np.asarray(points_mm, dtype=np.float64)
    mean = np.asarray(means_mm, dtype=np.float64)[..., None, :]
    chol = np.asarray(chol_mm, dtype=np.float64)
    l11 = chol[..., 0, 0][..., None]
    l21 = chol[..., 1, 0][..., None]
    l22 = chol[..., 1, 1][..., None]
    d = points - mean
    z1 = d[..., 0] / l11
    z2 = (d[..., 1] - l21 * z1) / l22
    return -0.5 * (z1 * z1 + z2 * z2) - np.log(l11) - np.log(l22) - _LOG_2PI


@dataclass
class MixturePrediction:
    """Per-call equal-weight mixtures of M member Gaussians.

    Attributes
    ----------
    means_mm
        (B, M, 2) member means, arena frame (x, y).
    chol_mm
        (B, M, 2, 2) lower-triangular Cholesky factors of the member covariances.
    """

    means_mm: np.ndarray
    chol_mm: np.ndarray

    def __post_init__(self) -> None:
        self.means_mm = np.asarray(self.means_mm, dtype=np.float64)
        self.chol_mm = np.asarray(self.chol_mm, dtype=np.float64)
        m = self.means_mm
        if m.ndim != 3 or m.shape[-1] != 2 or self.chol_mm.shape != m.shape + (2,):
            raise InvalidInputError(
                None,
                "means_mm / chol_mm",
                "shapes (B, M, 2) and (B, M, 2, 2)",
                f"{m.shape} and {self.chol_mm.shape}",
            )

    @property
    def n_calls(self) -> int:
        """Number of calls B."""
        return self.means_mm.shape[0]

    @property
    def n_members(self) -> int:
        """Number of members M."""
        return self.means_mm.shape[1]

    @property
    def point_mm(self) -> np.ndarray:
        """(B, 2) point estimate: the mixture mean (average of the member means)."""
        return self.means_mm.mean(axis=1)

    @property
    def cov_mm2(self) -> np.ndarray:
        """(B, M, 2, 2) member covariances."""
        return self.chol_mm @ np.swapaxes(self.chol_mm, -1, -2)

    def __getitem__(self, index) -> MixturePrediction:
        """The calls selected by ``index`` (an int keeps a batch axis of 1)."""
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1 if index != -1 else None)
        return MixturePrediction(self.means_mm[index], self.chol_mm[index])

    def log_density(self, points_mm) -> np.ndarray:
        """Mixture log density (1/mm^2).

        ``points_mm`` is (B, K, 2) (K points per call) or (K, 2) (the same points for
        every call); returns (B, K).
        """
        pts = np.asarray(points_mm, dtype=np.float64)
        if pts.ndim == 2:
            pts = pts[None]
        member = gaussian_log_density(pts[:, None], self.means_mm, self.chol_mm)  # (B,M,K)
        return logsumexp(member, axis=1) - np.log(self.n_members)

    def with_temperature(self, temperature: float) -> MixturePrediction:
        """Scale every member covariance by ``temperature`` (Cholesky by its root)."""
        if not temperature > 0:
            raise InvalidInputError(None, "temperature", "> 0", repr(temperature))
        return MixturePrediction(self.means_mm, self.chol_mm * np.sqrt(temperature))

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw ``n`` points per call from the mixture: (B, n, 2)."""
        members = rng.integers(0, self.n_members, size=(self.n_calls, n))
        idx = np.arange(self.n_calls)[:, None]
        eps = rng.standard_normal((self.n_calls, n, 2, 1))
        return self.means_mm[idx, members] + (self.chol_mm[idx, members] @ eps)[..., 0]

    @staticmethod
    def concatenate(parts: list[MixturePrediction]) -> MixturePrediction:
        """Join predictions of consecutive batches along the call axis."""
        return MixturePrediction(
            np.concatenate([p.means_mm for p in parts]), np.concatenate([p.chol_mm for p in parts])
        )
