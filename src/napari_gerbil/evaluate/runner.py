"""Run localizers (ensembles, classical baselines) on dataset calls and score them."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from napari_gerbil.evaluate.metrics import (
    error_summary,
    localization_errors_mm,
    mixture_calibration,
)
from napari_gerbil.io.vcl import VCLDataset

#: Classical methods the benchmark runs by default.
BASELINE_METHODS = ("muse", "gcc_phat")


def dataset_calls(
    datasets: Sequence[VCLDataset], pairs: np.ndarray, node: int | str = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Audio and true (x, y) of (file index, call index) pairs: list of (T_i, C), (n, 2)."""
    labels = [ds.source_xy_mm(node) for ds in datasets]
    calls = [datasets[f].call_audio(int(i)) for f, i in pairs]
    truth = np.array([labels[f][i] for f, i in pairs], dtype=float).reshape(-1, 2)
    return calls, truth


def source_height_mm(datasets: Sequence[VCLDataset], pairs: np.ndarray, node: int = 0) -> float:
    """Median source height of the given calls (0 when the files store only x, y)."""
    heights = []
    for f, i in pairs:
        loc = datasets[f].locations_mm
        if loc is not None and loc.shape[-1] == 3 and loc.ndim == 3:
            heights.append(loc[i, node, 2])
    return float(np.median(heights)) if heights else 0.0


def run_baseline(method: str, calls, dataset: VCLDataset, **options) -> tuple[np.ndarray, float]:
    """Point estimates (n, 2) of a classical method on the calls, and the seconds it took."""
    from napari_gerbil.baselines import localize
    from napari_gerbil.errors import InvalidInputError

    missing = [
        name
        for name in ("mic_positions_mm", "sample_rate_hz", "arena_dims_mm")
        if getattr(dataset, name) is None
    ]
    if missing:
        raise InvalidInputError(
            dataset.path,
            missing[0],
            "stored in the dataset (classical baselines need the geometry)",
            "missing",
        )
    start = time.perf_counter()
    result = localize(
        method,
        calls,
        dataset.mic_positions_mm,
        dataset.sample_rate_hz,  # type: ignore[arg-type]  # checked above
        dataset.arena_dims_mm,
        **options,
    )
    return result.point_mm, time.perf_counter() - start


def score_points(point_mm: np.ndarray, truth_mm: np.ndarray) -> dict:
    """Error metrics of point estimates (see :func:`error_summary`) plus the errors."""
    errors = localization_errors_mm(point_mm, truth_mm)
    return {"errors_mm": errors, **error_summary(errors)}


#: Calls closer than this (mm) to a reference call's position count as "at a reference
#: position".
SAME_POSITION_MM = 1.0


def fingerprint_recall(ref_calls, ref_xy_mm: np.ndarray, calls, truth_mm: np.ndarray):
    """Score the fingerprint lookup of ``calls`` among reference calls.

    Also says how many calls sit at a reference position (all the lookup can place).

    Returns
    -------
    scores
        As :func:`score_points` plus ``calls_per_s`` (calls the lookup finds no match for
        are placed at the mean reference position).
    info
        ``test_calls_at_training_positions`` (fraction within ``SAME_POSITION_MM``),
        ``median_nearest_training_position_mm``, ``fingerprint_median_similarity``.
    """
    from scipy.spatial import cKDTree

    from napari_gerbil.baselines.fingerprint import FingerprintIndex

    ref_xy_mm = np.asarray(ref_xy_mm, dtype=float)
    start = time.perf_counter()
    match = FingerprintIndex(ref_calls, ref_xy_mm).match(calls)
    seconds = time.perf_counter() - start
    found = match.index >= 0
    point = np.where(found[:, None], match.point_mm, ref_xy_mm.mean(axis=0))
    scores = score_points(point, truth_mm)
    scores["calls_per_s"] = len(calls) / seconds
    nearest_mm, _ = cKDTree(ref_xy_mm).query(truth_mm)  # memory O(n), not n x n_ref
    info = {
        "test_calls_at_training_positions": float(np.mean(nearest_mm < SAME_POSITION_MM)),
        "median_nearest_training_position_mm": float(np.median(nearest_mm)),
        "fingerprint_median_similarity": float(np.median(match.similarity)),
    }
    return scores, info


def score_mixture(prediction, truth_mm: np.ndarray, arena_dims_mm) -> dict:
    """Errors of the mixture mean plus calibration, 95% coverage and set areas."""
    out = score_points(prediction.point_mm, truth_mm)
    cal = mixture_calibration(prediction, truth_mm, arena_dims_mm)
    out.update(
        levels=cal["levels"],
        nominal=cal["nominal"],
        coverage=cal["coverage"],
        ece=cal["ece"],
        coverage_95=cal["coverage_at_mass"],
        set_area_mm2=cal["set_area_mm2"],
        median_set_area_mm2=float(np.median(cal["set_area_mm2"])),
    )
    return out


def single_member(prediction, member: int = 0):
    """The mixture of one ensemble member (a single model's Gaussian)."""
    from napari_gerbil.model.mixture import MixturePrediction

    return MixturePrediction(
        prediction.means_mm[:, member : member + 1], prediction.chol_mm[:, member : member + 1]
    )
