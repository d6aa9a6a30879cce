"""Per-call views of a session and the review queue (no review state needed).

Call states, predicted animals, top probabilities, 95% set areas, the order of the
review queue (most uncertain first) and :func:`review_status`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_gerbil.io.session import AMBIGUOUS, NOT_REVIEWED, UNASSIGNED, Session

#: Every state a call can be in (see :func:`call_states`).
STATES = ("predicted", "confirmed", "corrected", "unassigned", "ambiguous", "not localized")


def code_name(code: int, animal_names: list[str]) -> str:
    """Readable name of an attribution code."""
    if code >= 0:
        return animal_names[code] if code < len(animal_names) else f"animal {code}"
    return {UNASSIGNED: "unassigned", AMBIGUOUS: "ambiguous", NOT_REVIEWED: "-"}.get(code, "?")


# -- per-call views of a session (no review state needed) ---------------------------------
def predicted_animal(session: Session) -> np.ndarray:
    """(n,) predicted code (UNASSIGNED where nothing was predicted)."""
    if session.predicted is None:
        return np.full(session.n_calls, UNASSIGNED, np.int64)
    return session.predicted.animal


def call_states(session: Session) -> np.ndarray:
    """(n,) state of each call, one of :data:`STATES` (object array of str)."""
    user = session.user
    predicted = predicted_animal(session)
    localized = session.localized()
    out = np.empty(session.n_calls, dtype=object)
    out[:] = "predicted"
    out[predicted == UNASSIGNED] = "unassigned"
    out[predicted == AMBIGUOUS] = "ambiguous"
    out[~localized & ~user.reviewed] = "not localized"
    # the prediction the user decided against (the current one for older files): a
    # re-localization never turns a correction into a confirmation
    against = user.decided_against
    against = (
        predicted if against is None else np.where(against == NOT_REVIEWED, predicted, against)
    )
    out[user.reviewed & (user.animal == against)] = "confirmed"
    out[user.reviewed & (user.animal != against)] = "corrected"
    return out


def top_probability(session: Session) -> np.ndarray:
    """(n,) highest animal probability (NaN where unknown)."""
    predicted = session.predicted
    if predicted is None or predicted.probabilities.shape[1] == 0:
        return np.full(session.n_calls, np.nan)
    probs = predicted.probabilities
    top = np.full(session.n_calls, np.nan)
    finite = np.isfinite(probs).any(axis=1)
    top[finite] = np.nanmax(probs[finite], axis=1)
    return top


def set_area_mm2(session: Session) -> np.ndarray:
    """(n,) area of the 95% set (NaN where not localized)."""
    pred = session.predictions
    return np.full(session.n_calls, np.nan) if pred is None else pred.set_area_mm2


def uncertainty_order(session: Session) -> np.ndarray:
    """Call rows, most uncertain first.

    Only localized calls not reviewed yet: ambiguous first, then by the entropy of the
    animal probabilities and the area of the 95% set.
    """
    n = session.n_calls
    predicted = predicted_animal(session)
    probs = (
        session.predicted.probabilities
        if session.predicted is not None
        else np.full((n, 0), np.nan)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.nan_to_num(probs, nan=0.0)
        total = p.sum(axis=1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 0.0)
        entropy = -(np.where(p > 0, p * np.log(p), 0.0)).sum(axis=1)
    area = np.nan_to_num(set_area_mm2(session), nan=-1.0)
    candidates = np.flatnonzero(~session.user.reviewed & session.localized())
    # lexsort: last key is primary
    keys = (
        -area[candidates],
        -entropy[candidates],
        (predicted[candidates] != AMBIGUOUS).astype(int),
    )
    return candidates[np.lexsort(keys)]


def _finite_or_none(value: float) -> float | None:
    """``value`` as a float, None when unknown (NaN): plain JSON."""
    return float(value) if np.isfinite(value) else None


def review_status(session: Session, n_uncertain: int = 10) -> dict[str, Any]:
    """Counts of calls by state and the most uncertain calls not reviewed yet.

    Returns
    -------
    dict
        ``n_calls``, ``n_localized``, ``n_reviewed``, ``states`` ({state: count}),
        ``model_version`` and ``most_uncertain`` (list of dicts: ``row``, ``call_id``,
        ``start_s``, ``state``, ``predicted``, ``top_probability``, ``set_area_cm2``;
        None where unknown).
    """
    states = call_states(session)
    top = top_probability(session)
    area = set_area_mm2(session)
    predicted = predicted_animal(session)
    rate = session.audio.sample_rate_hz
    uncertain = []
    for row in uncertainty_order(session)[:n_uncertain]:
        r = int(row)
        uncertain.append(
            {
                "row": r,
                "call_id": int(session.calls.call_id[r]),
                "start_s": float(session.calls.start_sample[r] / rate),
                "state": str(states[r]),
                "predicted": code_name(int(predicted[r]), session.animal_names),
                "top_probability": _finite_or_none(top[r]),
                "set_area_cm2": _finite_or_none(area[r] / 100.0),
            }
        )
    return {
        "n_calls": session.n_calls,
        "n_localized": int(session.localized().sum()),
        "n_reviewed": int(session.user.reviewed.sum()),
        "states": {state: int((states == state).sum()) for state in STATES},
        "model_version": None if session.predictions is None else session.predictions.model_version,
        "most_uncertain": uncertain,
    }
