"""Score a session's attributions against the ground truth of a simulated session.

The question a user asks of the tool: of the calls it assigned to an animal, how many
went to the animal that made them, and how many calls did it assign at all? Session
calls are matched to truth calls by overlap of their sample bounds, so sessions whose
calls were detected (not copied from the simulator) can be scored too.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import AMBIGUOUS, UNASSIGNED, Session
from napari_gerbil.simulate.truth import SessionTruth


@dataclasses.dataclass
class AttributionScore:
    """Counts of a session's predicted attributions against the truth.

    Attributes
    ----------
    n_calls
        Calls in the session.
    n_matched
        Calls that overlap a true call (the others are false detections).
    n_localized
        Matched calls with a prediction.
    n_assigned, n_ambiguous, n_unassigned
        Matched, localized calls assigned to one animal / with several animals in the
        95% set / with none in it.
    n_right
        Assigned calls whose animal is the one that emitted the call.
    by_distance_cm
        The same counts by distance from the caller to the nearest other animal at the
        call (bins of :data:`DISTANCE_BINS_CM`): ``{"0-5": {"n", "assigned", "right"}}``
        with ``assigned`` the share of localized calls assigned and ``right`` the share of
        those right (NaN when none).
    """

    n_calls: int
    n_matched: int
    n_localized: int
    n_assigned: int
    n_ambiguous: int
    n_unassigned: int
    n_right: int
    by_distance_cm: dict = dataclasses.field(default_factory=dict)

    @property
    def assigned_fraction(self) -> float:
        """Share of the localized calls assigned to one animal (NaN if none localized)."""
        return self.n_assigned / self.n_localized if self.n_localized else float("nan")

    @property
    def right_fraction(self) -> float:
        """Share of the assigned calls given to the right animal (NaN if none assigned)."""
        return self.n_right / self.n_assigned if self.n_assigned else float("nan")

    def summary(self) -> str:
        """One line for a terminal."""
        return (
            f"{self.n_assigned} of {self.n_localized} localized calls assigned "
            f"({100 * self.assigned_fraction:.0f}%), {self.n_right} of them to the right "
            f"animal ({100 * self.right_fraction:.0f}%); {self.n_ambiguous} ambiguous, "
            f"{self.n_unassigned} with no animal tracked"
        )

    def distance_table(self) -> str:
        """Assigned and right by distance between the animals, one line per bin."""
        lines = []
        for name, b in self.by_distance_cm.items():
            lines.append(
                f"  animals {name} cm apart: {b['n']} calls, "
                f"{_pct(b['assigned'])} assigned, {_pct(b['right'])} of those right"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Counts and fractions (JSON-ready)."""
        return {
            **dataclasses.asdict(self),
            "assigned_fraction": self.assigned_fraction,
            "right_fraction": self.right_fraction,
        }


#: Bins (cm) of the distance from the caller to the nearest other animal.
DISTANCE_BINS_CM = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, float("inf")))


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.0f}%"


def _bin_name(lo: float, hi: float) -> str:
    return f"{lo:g}+" if not np.isfinite(hi) else f"{lo:g}-{hi:g}"


def nearest_other_distance_cm(session: Session, truth: SessionTruth, match: np.ndarray):
    """(n_calls,) distance (cm) from each matched call's caller to the nearest other animal.

    Uses the true (noise-free) nose positions at the emission frame; NaN for unmatched
    calls and single-animal sessions.
    """
    out = np.full(session.n_calls, np.nan)
    poses = np.asarray(truth.poses_mm)
    if poses.ndim != 4 or poses.shape[1] < 2 or not (match >= 0).any():
        return out
    rows = np.flatnonzero(match >= 0)
    t = match[rows]
    frames = np.clip(
        np.atleast_1d(session.frame_of_sample(truth.emit_sample[t])), 0, len(poses) - 1
    ).astype(np.int64)
    nose = poses[frames, :, 0, :2]  # (m, A, 2)
    caller = np.asarray(truth.animal)[t]
    d = np.linalg.norm(nose - nose[np.arange(len(t)), caller][:, None], axis=-1)
    d[np.arange(len(t)), caller] = np.inf
    out[rows] = d.min(axis=1) / 10.0
    return out


def match_truth_calls(session: Session, truth: SessionTruth) -> np.ndarray:
    """(n_calls,) the truth call each session call overlaps best (by IoU; -1: none)."""
    start = np.asarray(session.calls.start_sample, dtype=np.int64)
    stop = np.asarray(session.calls.stop_sample, dtype=np.int64)
    t_start = np.asarray(truth.start_sample, dtype=np.int64)
    t_stop = np.asarray(truth.stop_sample, dtype=np.int64)
    if len(start) == 0 or len(t_start) == 0:
        return np.full(len(start), -1, dtype=np.int64)
    overlap = np.minimum(stop[:, None], t_stop[None]) - np.maximum(start[:, None], t_start[None])
    union = np.maximum(stop[:, None], t_stop[None]) - np.minimum(start[:, None], t_start[None])
    iou = np.maximum(overlap, 0) / union  # calls of two animals may overlap in time
    best = np.argmax(iou, axis=1)
    return np.where(iou[np.arange(len(start)), best] > 0, best, -1)


def check_truth_matches(session: Session, truth: SessionTruth, source=None) -> None:
    """Refuse a truth file that belongs to another session.

    The truth's calls must overlap at least half of the session's calls in time, and
    name as many animals: a truth file of another recording overlaps only by chance.
    """
    if (
        truth.animal_names
        and session.animal_names
        and (len(truth.animal_names) != len(session.animal_names))
    ):
        raise InvalidInputError(
            source, "animal_names", f"{len(session.animal_names)} animals like the session",
            f"{len(truth.animal_names)}", hint="Pass the truth file of this session.",
        )  # fmt: skip
    if session.n_calls == 0:
        return
    matched = float(np.mean(match_truth_calls(session, truth) >= 0))
    if matched < 0.5:
        raise InvalidInputError(
            source, "start_sample/stop_sample",
            "the truth of this session (its calls overlapping the session's)",
            f"{matched:.0%} of the session's {session.n_calls} calls overlap a truth call",
            hint="Pass the truth file written next to this session.",
        )  # fmt: skip


@dataclasses.dataclass
class AttributionOutcomes:
    """Per-call outcome of predicted attributions against the truth (arrays of n calls)."""

    matched: np.ndarray
    localized: np.ndarray
    predicted: np.ndarray
    true_animal: np.ndarray
    distance_cm: np.ndarray

    @classmethod
    def concatenate(cls, parts: list[AttributionOutcomes]) -> AttributionOutcomes:
        """The outcomes of several sessions as one."""
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts])
                     for f in dataclasses.fields(cls)))  # fmt: skip

    def score(self) -> AttributionScore:
        """Counts, fractions and the by-distance table."""
        localized, predicted = self.localized, self.predicted
        assigned = localized & (predicted >= 0)
        right = assigned & (predicted == self.true_animal)
        bins = {}
        for lo, hi in DISTANCE_BINS_CM:
            inside = localized & (self.distance_cm >= lo) & (self.distance_cm < hi)
            n_in, n_assigned = int(inside.sum()), int((inside & assigned).sum())
            bins[_bin_name(lo, hi)] = {
                "n": n_in,
                "assigned": n_assigned / n_in if n_in else float("nan"),
                "right": int((inside & right).sum()) / n_assigned if n_assigned else float("nan"),
            }
        return AttributionScore(
            n_calls=len(predicted),
            n_matched=int(self.matched.sum()),
            n_localized=int(localized.sum()),
            n_assigned=int(assigned.sum()),
            n_ambiguous=int((localized & (predicted == AMBIGUOUS)).sum()),
            n_unassigned=int((localized & (predicted == UNASSIGNED)).sum()),
            n_right=int(right.sum()),
            by_distance_cm=bins,
        )


def attribution_outcomes(
    session: Session, truth: SessionTruth, predicted: np.ndarray | None = None
) -> AttributionOutcomes:
    """Each call's predicted attribution next to the truth.

    ``predicted`` (n_calls,) codes replace the session's own (a method under test; every
    call then counts as localized).
    """
    match = match_truth_calls(session, truth)
    matched = match >= 0
    if predicted is None:
        localized = matched & session.localized()
        predicted = (
            np.full(session.n_calls, UNASSIGNED)
            if session.predicted is None
            else np.asarray(session.predicted.animal)
        )
    else:
        localized = matched.copy()
    true_animal = np.where(matched, np.asarray(truth.animal)[np.maximum(match, 0)], -1)
    distance = nearest_other_distance_cm(session, truth, match)
    return AttributionOutcomes(matched, localized, np.asarray(predicted), true_animal, distance)


def score_attribution(
    session: Session, truth: SessionTruth, predicted: np.ndarray | None = None
) -> AttributionScore:
    """Count assigned, ambiguous and right attributions (see the module doc).

    ``predicted``: codes to score instead of the session's own predictions.
    """
    return attribution_outcomes(session, truth, predicted).score()
