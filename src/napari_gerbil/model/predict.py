"""Localize the calls of a VCL dataset or a session and write a prediction file.

Prediction file (HDF5, written atomically), vocalocator's names where they overlap:

- ``point_predictions`` (n, 2) mm: point estimates (mixture mean / baseline estimate);
- ``confidence_set_areas`` (n,) mm^2 of the ``mass`` set (NaN for baselines);
- ``distances_to_furthest_point`` (n,) mm: point estimate to the farthest set cell;
- ``raw_model_output`` (n, M, 5): per-member mean (2) and Cholesky (l11, l21, l22) mm;
- ``scaled_locations`` (n, 2) mm and ``location_in_confidence_set`` (n,) bool, when
  the true sources are known; plus ours:
- ``member_means_mm`` (n, M, 2), ``member_chol_mm`` (n, M, 2, 2), ``errors_mm`` (n,),
  ``hdr_levels`` (n,) (smallest p whose set holds the truth); attributes ``method``,
  ``model``, ``mass``, ``temperature``, ``calibration_curve`` (observed coverage at
  p = 0, 0.1, ..., 1), ``ece``, ``created``, ``source``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_h5
from napari_gerbil.io.checks import MAX_CALL_S, check_call_lengths, check_finite_calls
from napari_gerbil.model.calibration import coverage_curve, expected_calibration_error
from napari_gerbil.model.confidence import confidence_sets, grid_level
from napari_gerbil.model.ensemble import Ensemble
from napari_gerbil.model.mixture import MixturePrediction
from napari_gerbil.progress import CancelCheck, ProgressCallback, check_cancel, report

#: Estimates further than this outside the arena's floor are flagged, not reported.
OUTSIDE_MARGIN_MM = 50.0


@dataclass
class CallPredictions:
    """Localizations of n calls by an ensemble or a baseline."""

    point_mm: np.ndarray  # (n, 2)
    method: str
    mixture: MixturePrediction | None = None
    set_area_mm2: np.ndarray | None = None  # (n,)
    furthest_mm: np.ndarray | None = None  # (n,)
    truth_mm: np.ndarray | None = None  # (n, 2)
    in_set: np.ndarray | None = None  # (n,) bool
    levels: np.ndarray | None = None  # (n,)
    mass: float = 0.95
    attrs: dict[str, Any] | None = None

    @property
    def errors_mm(self) -> np.ndarray | None:
        """(n,) distance to the true source (None without the truth)."""
        if self.truth_mm is None:
            return None
        return np.linalg.norm(self.point_mm - self.truth_mm, axis=-1)

    def outside_arena(self, arena_dims_mm, margin_mm: float = OUTSIDE_MARGIN_MM) -> np.ndarray:
        """(n,) bool: estimates more than ``margin_mm`` outside the floor (or not finite).

        Such an estimate is a failure of the model, not a localization: report it apart.
        """
        half = np.asarray(arena_dims_mm, float)[:2] / 2.0 + margin_mm
        point = np.asarray(self.point_mm, float)
        finite = np.isfinite(point).all(axis=-1)
        return ~finite | (np.abs(np.nan_to_num(point)) > half).any(axis=-1)


def localize_with_ensemble(
    ensemble: Ensemble,
    calls: Sequence[np.ndarray],
    arena_dims_mm=None,
    mass: float = 0.95,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
    cancel: CancelCheck | None = None,
    truth_mm: np.ndarray | None = None,
) -> CallPredictions:
    """Predict mixtures, their ``mass`` sets and (with ``truth_mm``) set membership.

    Calls go through the ensemble in batches of ``batch_size``; ``progress`` and
    ``cancel`` follow :mod:`napari_gerbil.progress` (checked between batches).
    """
    dims = ensemble.arena_dims_mm if arena_dims_mm is None else np.asarray(arena_dims_mm)
    truth = None if truth_mm is None else np.asarray(truth_mm, dtype=float).reshape(-1, 2)
    total = len(calls)
    parts, areas, furthest, levels = [], [], [], []
    for start in range(0, total, batch_size):
        check_cancel(cancel, "prediction")
        pred = ensemble.predict(calls[start : start + batch_size], batch_size)
        for k, cs in enumerate(confidence_sets(pred, dims, mass)):
            areas.append(cs.area_mm2)
            furthest.append(_furthest_distance(cs, pred.point_mm[k]))
            if truth is not None:
                levels.append(grid_level(cs.grid, cs.prediction, truth[start + k]))
        parts.append(pred)
        done = min(start + batch_size, total)
        report(progress, done / total, f"{done}/{total} calls")
    m = ensemble.n_members
    mixture = (
        MixturePrediction.concatenate(parts)
        if parts
        else MixturePrediction(np.zeros((0, m, 2)), np.zeros((0, m, 2, 2)))
    )
    result = CallPredictions(
        mixture.point_mm,
        "ensemble",
        mixture,
        np.asarray(areas),
        np.asarray(furthest),
        mass=mass,
        attrs={"model": str(ensemble.path or ""), "temperature": ensemble.temperature},
    )
    if truth is not None:
        result.truth_mm = truth
        result.levels = np.asarray(levels)
        result.in_set = result.levels <= mass
    return result


def _furthest_distance(cs, point_mm: np.ndarray) -> float:
    """Distance from ``point_mm`` to the farthest cell centre of the set."""
    grid = cs.grid
    cx, cy = grid.centres_mm()
    rows, cols = np.nonzero(grid.log_density >= cs.log_threshold)
    if len(rows) == 0:
        return float("nan")
    return float(np.hypot(cx[cols] - point_mm[0], cy[rows] - point_mm[1]).max())


def localize_with_baseline(
    method: str,
    calls: Sequence[np.ndarray],
    mic_positions_mm,
    sample_rate_hz: float,
    arena_dims_mm,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
    truth_mm: np.ndarray | None = None,
) -> CallPredictions:
    """Point estimates of a classical baseline (``muse``, ``gcc-phat``, ...)."""
    from napari_gerbil.baselines import localize

    if mic_positions_mm is None:
        raise InvalidInputError(
            None, "mic_positions_mm", "microphone positions (needed by baselines)", "none"
        )
    points = []
    total = len(calls)
    for start in range(0, total, batch_size):
        res = localize(
            method, list(calls[start : start + batch_size]), mic_positions_mm,
            sample_rate_hz, arena_dims_mm,
        )  # fmt: skip
        points.append(np.asarray(res.point_mm, dtype=float))
        done = min(start + batch_size, total)
        report(progress, done / total, f"{done}/{total} calls")
    point = np.concatenate(points) if points else np.zeros((0, 2))
    result = CallPredictions(point, method, attrs={"model": method})
    if truth_mm is not None:
        result.truth_mm = np.asarray(truth_mm, dtype=float).reshape(-1, 2)
    return result


def write_predictions(path: str | os.PathLike, result: CallPredictions, source: str = "") -> Path:
    """Write a prediction file (see the module docstring) atomically."""
    path = Path(path)
    n = len(result.point_mm)
    attrs = {
        "method": result.method,
        "mass": result.mass,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": str(source),
        **{k: v for k, v in (result.attrs or {}).items() if v is not None},
    }
    with atomic_h5(path) as f:
        f["point_predictions"] = result.point_mm
        area = result.set_area_mm2 if result.set_area_mm2 is not None else np.full(n, np.nan)
        f["confidence_set_areas"] = area
        if result.furthest_mm is not None:
            f["distances_to_furthest_point"] = result.furthest_mm
        if result.mixture is not None:
            m = result.mixture
            f["member_means_mm"] = m.means_mm
            f["member_chol_mm"] = m.chol_mm
            chol = m.chol_mm
            raw = np.concatenate(
                [m.means_mm, chol[..., 0, 0, None], chol[..., 1, 0, None], chol[..., 1, 1, None]],
                axis=-1,
            )
            f["raw_model_output"] = raw
        if result.truth_mm is not None:
            f["scaled_locations"] = result.truth_mm
            f["errors_mm"] = result.errors_mm
        if result.in_set is not None:
            f["location_in_confidence_set"] = result.in_set
        if result.levels is not None:
            f["hdr_levels"] = result.levels
            attrs["calibration_curve"] = coverage_curve(result.levels, np.linspace(0, 1, 11))
            attrs["ece"] = expected_calibration_error(result.levels)
        for key, value in attrs.items():
            f.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
    return path


#: Longest call a classical baseline is run on (s): its cost grows with the length.
MAX_BASELINE_CALL_S = MAX_CALL_S


def check_predict_options(mass: float, batch_size: int) -> None:
    """Refuse a ``mass`` outside (0, 1) or a ``batch_size`` below 1 (InvalidInputError)."""
    if not (isinstance(mass, (int, float)) and 0.0 < float(mass) < 1.0):
        raise InvalidInputError(None, "mass", "a probability in (0, 1)", repr(mass))
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise InvalidInputError(None, "batch_size", "an integer >= 1", repr(batch_size))
    if batch_size < 1:
        raise InvalidInputError(None, "batch_size", "an integer >= 1", repr(batch_size))


def _model_files(ensemble: Ensemble | None) -> list[Path]:
    if ensemble is None or ensemble.path is None:
        return []
    root = Path(ensemble.path)
    members = ensemble.manifest.get("members", [])
    return [root / "manifest.json"] + [root / str(m.get("file", "")) for m in members]


def predict_file(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    ensemble: Ensemble | None = None,
    baseline: str | None = None,
    mass: float = 0.95,
    batch_size: int = 64,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> CallPredictions:
    """Localize every call of a VCL dataset or a session file and write ``out``.

    Before any computation: the options are checked, ``out`` may not exist unless
    ``overwrite`` (and is never an input, nor a session with user reviews), the data
    passes the checks of ``napari-gerbil validate`` (a session's files unchanged) and
    ``out`` is locked against a second run. A model reads only the centre of each
    call (its input length); baselines refuse calls longer than
    :data:`MAX_BASELINE_CALL_S`.
    """
    from napari_gerbil.io.checks import check_session, check_vcl_input
    from napari_gerbil.io.inputs import check_input_file
    from napari_gerbil.io.outputs import check_output_path, output_lock
    from napari_gerbil.io.session import is_session_file, load_session

    if (ensemble is None) == (baseline is None):
        raise InvalidInputError(None, "model", "exactly one of a model or a baseline", "both/none")
    check_predict_options(mass, batch_size)
    data = check_input_file(data, "--data", "VCL dataset or session file")
    out = Path(out)
    session = load_session(data) if is_session_file(data) else None
    # the session's audio, video and poses count as inputs (io.outputs.referenced_files)
    check_output_path(out, overwrite=overwrite, inputs=[data, *_model_files(ensemble)])
    with output_lock(out):
        crop = None if ensemble is None else ensemble.metadata.input_length_samples
        truth = None
        sr: float | None
        dims: np.ndarray | None
        mics: np.ndarray | None
        if session is not None:
            check_session(session, data, timing=False)
            sr, n_ch = session.audio.sample_rate_hz, session.audio.n_channels
            dims, mics = session.arena.dims_mm, session.arena.mic_positions_mm
            lengths = session.calls.stop_sample - session.calls.start_sample
        else:
            from napari_gerbil.io.vcl import VCLDataset

            check_vcl_input(data, require_locations=False)
            ds = VCLDataset(data)
            sr, n_ch, dims, mics = (
                ds.sample_rate_hz,
                ds.n_channels,
                ds.arena_dims_mm,
                ds.mic_positions_mm,
            )
            lengths = ds.call_lengths_samples
            if ds.has_locations and not ds.is_multi_animal:
                truth = ds.source_xy_mm(0)
        if ensemble is not None:
            ensemble.check_compatible(n_ch, sr, dims, source=data, mic_positions_mm=mics)
        else:
            if sr is None or dims is None:
                raise InvalidInputError(
                    data,
                    "sample_rate_hz / arena_dims_mm",
                    "stored in the file (for baselines)",
                    "none",
                )
            _check_baseline_lengths(data, np.asarray(lengths), sr)
        if session is not None:
            calls = session_call_audio(session, max_samples=crop)
            check_finite_calls(calls, data)
        else:
            calls = [ds.call_audio(i, max_samples=crop) for i in range(ds.n_calls)]
        if ensemble is not None:
            dims = ensemble.arena_dims_mm if dims is None else dims
            result = localize_with_ensemble(
                ensemble, calls, dims, mass, batch_size, progress, truth_mm=truth
            )
        else:
            # exactly one of ensemble / baseline; a baseline needs the rate (checked above)
            assert baseline is not None and sr is not None
            result = localize_with_baseline(
                baseline, calls, mics, sr, dims, batch_size, progress, truth_mm=truth
            )
        write_predictions(out, result, source=str(data))
    return result


def _check_baseline_lengths(data: Path, lengths: np.ndarray, sample_rate_hz: float) -> None:
    check_call_lengths(
        data,
        lengths,
        sample_rate_hz,
        "a baseline",
        "Split the long segment into calls, or localize it with a model "
        "(which reads only the centre of each call).",
    )


def _centre_window(n_samples: int, max_samples: int | None) -> tuple[int, int]:
    """[start, stop) of the centred ``max_samples`` crop of a call (all of it if shorter)."""
    if max_samples is None or n_samples <= max_samples:
        return 0, n_samples
    start = (n_samples - max_samples) // 2
    return start, start + max_samples


def session_call_audio(session, max_samples: int | None = None) -> list[np.ndarray]:
    """Each call's audio [start_sample, stop_sample) of a session, (n_i, n_channels).

    With ``max_samples`` only the centred window of that length of a longer call is read
    (what a model sees after its centre crop), so one enormous call costs no more.
    """
    source = session.audio.open()
    try:
        out = []
        for a, b in zip(session.calls.start_sample, session.calls.stop_sample, strict=True):
            lo, hi = _centre_window(int(b) - int(a), max_samples)
            out.append(source.read(int(a) + lo, int(a) + hi))
        return out
    finally:
        source.close()
