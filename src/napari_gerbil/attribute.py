"""Attribute calls to animals from their poses at call time and the predicted mixture.

Rule (per call):

- Each animal's position is its ``node`` (nose by default) at the video frame nearest
  to the call's start sample (``Session.frame_of_sample``), mapped from pixels to mm
  through the arena homography. Animals not tracked on that frame are skipped.
- ``probabilities``: the mixture density at each animal's position, normalized over
  the tracked animals (a softmax of the log densities; NaN for untracked animals, all
  NaN when no animal is tracked).
- ``animal`` (the assigned code): the one animal inside the ``mass`` (95%) confidence
  set if exactly one is; AMBIGUOUS (-2) if several are; UNASSIGNED (-1) if none is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import AMBIGUOUS, UNASSIGNED
from napari_gerbil.model.confidence import ConfidenceSet, confidence_sets
from napari_gerbil.model.mixture import MixturePrediction


@dataclass
class Attribution:
    """Assigned codes (n,), probabilities (n, A) and set membership (n, A) of calls."""

    animal: np.ndarray
    probabilities: np.ndarray
    in_set: np.ndarray


def attribute_calls(
    prediction: MixturePrediction,
    animal_xy_mm: np.ndarray,
    arena_dims_mm,
    mass: float = 0.95,
    sets: list[ConfidenceSet] | None = None,
) -> Attribution:
    """Attribute each call to an animal (see the module docstring for the rule).

    Parameters
    ----------
    prediction
        Mixtures of n calls.
    animal_xy_mm
        (n, A, 2) animal positions at each call, NaN where not tracked.
    arena_dims_mm
        Arena size (the confidence sets are computed inside it).
    mass
        Probability of the confidence set.
    sets
        Precomputed confidence sets of the calls (same ``mass``), to save time.
    """
    xy = np.asarray(animal_xy_mm, dtype=float)
    n = prediction.n_calls
    if xy.ndim != 3 or xy.shape[0] != n or xy.shape[2] != 2:
        raise InvalidInputError(
            None, "animal_xy_mm", f"shape ({n}, n_animals, 2)", f"shape {xy.shape}"
        )
    n_animals = xy.shape[1]
    tracked = np.all(np.isfinite(xy), axis=-1)
    log_d = prediction.log_density(np.where(tracked[..., None], xy, 0.0))
    log_d = np.where(tracked, log_d, -np.inf)
    probs = np.full((n, n_animals), np.nan)
    any_tracked = tracked.any(axis=1)
    if any_tracked.any():
        ld = log_d[any_tracked]
        w = np.exp(ld - ld.max(axis=1, keepdims=True))
        p = w / w.sum(axis=1, keepdims=True)
        probs[any_tracked] = np.where(tracked[any_tracked], p, np.nan)
    if sets is None:
        sets = confidence_sets(prediction, arena_dims_mm, mass)
    in_set = np.zeros((n, n_animals), dtype=bool)
    for i, cs in enumerate(sets):
        if tracked[i].any():
            in_set[i, tracked[i]] = cs.contains(xy[i, tracked[i]])
    count = in_set.sum(axis=1)
    animal = np.where(count == 1, in_set.argmax(axis=1), np.where(count > 1, AMBIGUOUS, UNASSIGNED))
    return Attribution(animal.astype(np.int64), probs, in_set)


def animal_positions_at_calls(session, poses, node: int | str = 0) -> np.ndarray:
    """(n_calls, n_animals, 2) mm: ``node`` of each track at each call's start.

    NaN for calls the video clock does not cover (they would all map to the last
    frame otherwise), so such calls stay unassigned.

    ``poses`` is a :class:`napari_gerbil.io.tracks.Poses`; its tracks are the animals
    (in ``session.animal_names`` order when the names match).
    """
    if session.arena.arena_to_pixels is None:
        raise InvalidInputError(
            session.path, "arena/arena_to_pixels", "a video calibration (homography)", "none"
        )
    frames = session.frame_of_sample(session.calls.start_sample)
    frames = np.atleast_1d(np.asarray(frames))
    node_i = poses.node_index(node)
    order = list(range(poses.n_tracks))
    if session.animal_names and set(session.animal_names) <= set(poses.track_names):
        order = [poses.track_names.index(a) for a in session.animal_names]
    xy_px = poses.at_frames(frames)[:, order, node_i, :]  # (n, A, 2) SLEAP (x, y) = (col, row)
    from napari_gerbil.io.checks import calls_on_video_clock

    xy_px[~calls_on_video_clock(session)] = np.nan  # no frame at that time: no position
    rc = xy_px[..., ::-1].reshape(-1, 2)
    ok = np.all(np.isfinite(rc), axis=-1)
    out = np.full(rc.shape, np.nan)
    if ok.any():
        out[ok] = session.arena.to_arena(rc[ok])
    return out.reshape(xy_px.shape)


def attribute_session(session, poses=None, node: int | str = 0, mass: float = 0.95):
    """Attribute the session's predicted calls; stores and returns ``session.predicted``.

    ``poses`` defaults to loading ``session.tracks``.
    """
    from napari_gerbil.io.session import PredictedAttribution

    if session.predictions is None:
        raise InvalidInputError(session.path, "predictions", "predicted calls", "none")
    if poses is None:
        if session.tracks is None:
            raise InvalidInputError(session.path, "tracks", "a pose file", "none")
        from napari_gerbil.io.tracks import load_poses

        poses = load_poses(session.tracks.path)
    pred = MixturePrediction(
        session.predictions.member_means_mm, session.predictions.member_chol_mm
    )
    xy = animal_positions_at_calls(session, poses, node)
    done = np.all(np.isfinite(pred.means_mm), axis=(1, 2))
    n_animals = xy.shape[1]
    animal = np.full(session.n_calls, UNASSIGNED, dtype=np.int64)
    probs = np.full((session.n_calls, n_animals), np.nan)
    if done.any():
        result = attribute_calls(pred[np.nonzero(done)[0]], xy[done], session.arena.dims_mm, mass)
        animal[done] = result.animal
        probs[done] = result.probabilities
    session.predicted = PredictedAttribution(animal, probs)
    return session.predicted
