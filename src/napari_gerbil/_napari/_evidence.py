"""What decided a call's attribution, per animal, in words (no Qt).

The session stores each call's probability per animal (the attribution: the steered
response at each animal, or the ensemble's density there, through the calibration's
softmax) and the ensemble's mixture, whose 95% set is drawn as *where the call came
from*. The two are different evidence and may disagree; :func:`call_evidence` gathers
both for one call and the ``*_text`` functions say them as the dock shows them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_gerbil.io.session import AMBIGUOUS, UNASSIGNED
from napari_gerbil.review import code_name

#: What the dock says of a session without animals (as ``napari-gerbil localize`` does).
NO_ANIMALS = "no animals to attribute to: the session has no pose tracks (calls localized only)"


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 call', '2 calls' (``words``: an irregular plural)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


@dataclasses.dataclass
class CallEvidence:
    """One call's attribution evidence.

    Attributes
    ----------
    call_id
        The call's id.
    names
        The session's animal names (animal ``a`` has key ``a + 1``).
    probabilities
        (A,) stored probability per animal (NaN: not localized or animal untracked).
    positions_mm
        (A, 2) each animal's position at the call (NaN where unknown).
    in_set
        (A,) whether each animal lies in the call's 95% set (None: not localized).
    predicted
        The stored predicted code (an animal, UNASSIGNED or AMBIGUOUS).
    state
        The call's review state.
    assign_probability
        The rule: an animal is assigned at this probability or more.
    steered_response
        (A,) steered response at each animal, recomputed from the call's audio (None:
        not computed).
    best_mm
        (A, 2) the best point of the steered response near each animal (None: idem).
    """

    call_id: int
    names: list[str]
    probabilities: np.ndarray
    positions_mm: np.ndarray
    in_set: np.ndarray | None
    predicted: int
    state: str
    assign_probability: float
    steered_response: np.ndarray | None = None
    best_mm: np.ndarray | None = None

    @property
    def localized(self) -> bool:
        """Whether the call has a prediction (probabilities or not)."""
        return self.in_set is not None

    def name(self, animal: int) -> str:
        """Animal ``animal``'s name."""
        return code_name(animal, self.names)


def call_evidence(
    review, poses, index: int, confidence_set=None, assign_probability: float = 0.95
) -> CallEvidence:
    """Gather call ``index``'s evidence.

    ``confidence_set``: the call's :class:`~napari_gerbil.model.confidence.ConfidenceSet`
    (None: not localized).
    """
    from napari_gerbil.review import animal_positions_mm

    session = review.session
    n_animals = len(session.animal_names)
    probs = np.full(n_animals, np.nan)
    predicted = int(review.predicted_animal()[index])
    if session.predicted is not None and session.predicted.probabilities.shape[1] == n_animals:
        probs = np.asarray(session.predicted.probabilities[index], float)
    positions = animal_positions_mm(session, poses, [index])[0] if n_animals else np.zeros((0, 2))
    in_set = None
    if confidence_set is not None:
        in_set = np.zeros(n_animals, bool)
        known = np.isfinite(positions).all(axis=1)
        if known.any():
            in_set[known] = confidence_set.contains(positions[known])
    return CallEvidence(
        call_id=int(session.calls.call_id[index]),
        names=list(session.animal_names),
        probabilities=probs,
        positions_mm=positions,
        in_set=in_set,
        predicted=predicted,
        state=str(review.states()[index]),
        assign_probability=float(assign_probability),
    )


def add_steered_response(evidence: CallEvidence, review, audio, index: int) -> None:
    """Recompute the steered response at each tracked animal from the call's audio."""
    from napari_gerbil.baselines.candidates import candidate_correlations

    known = np.isfinite(evidence.positions_mm).all(axis=1)
    if not known.any():
        return
    session = review.session
    clip = session.read_calls_audio(np.array([index]), audio)
    scores = candidate_correlations(
        clip,
        session.arena.mic_positions_mm,
        session.audio.sample_rate_hz,
        evidence.positions_mm[None],
    )
    evidence.steered_response = np.asarray(scores.steered_response[0], float)
    offsets = np.asarray(scores.best_offset_mm[0][:, :2], float)
    evidence.best_mm = evidence.positions_mm + offsets


def decision_text(evidence: CallEvidence) -> str:
    """What was decided: the predicted code in words."""
    if not evidence.localized:
        return "not localized"
    if evidence.predicted >= 0:
        return f"assigned to {evidence.name(evidence.predicted)}"
    return {AMBIGUOUS: "ambiguous", UNASSIGNED: "unassigned"}.get(evidence.predicted, "?")


def rule_text(evidence: CallEvidence) -> str:
    """'assigned at p ≥ 0.95; this call: 0.73 gerbil B / 0.27 gerbil A → ambiguous'."""
    rule = f"assigned at p ≥ {evidence.assign_probability:.2f}"
    if not evidence.names:
        return NO_ANIMALS
    if not evidence.localized:
        return f"{rule}; this call is not localized yet"
    probs = evidence.probabilities
    if not np.isfinite(probs).any():
        return f"{rule}; this call: no tracked animal → {decision_text(evidence)}"
    order = sorted(np.flatnonzero(np.isfinite(probs)), key=lambda a: -probs[a])
    shown = " / ".join(f"{probs[a]:.2f} {evidence.name(int(a))}" for a in order)
    return f"{rule}; this call: {shown} → {decision_text(evidence)}"


def set_text(evidence: CallEvidence) -> str:
    """Which animals the drawn 95% set (localization) holds, and where it disagrees."""
    if not evidence.localized or not evidence.names:
        return ""
    assert evidence.in_set is not None
    inside = [int(a) for a in np.flatnonzero(evidence.in_set)]
    held = " and ".join(evidence.name(a) for a in inside) or "no animal"
    head = f"the 95% set (where the call came from) holds {held}"
    probs = np.nan_to_num(evidence.probabilities, nan=-1.0)
    predicted = evidence.predicted
    if predicted >= 0 and predicted not in inside:
        return (
            f"{head}: it disagrees with the decision. {evidence.name(predicted)} is assigned "
            f"(p {probs[predicted]:.2f}) but lies outside the set; the probabilities "
            "decided, not the set."
        )
    if predicted >= 0 and len(inside) >= 2:
        return (
            f"{head}: the set cannot tell them apart; the probabilities decided "
            f"({evidence.name(predicted)}, p {probs[predicted]:.2f})."
        )
    best = int(np.argmax(probs)) if probs.size and probs.max() >= 0 else -1
    if predicted == AMBIGUOUS and best >= 0 and best not in inside and inside:
        return (
            f"{head}: it disagrees with the probabilities. {evidence.name(best)} has the "
            f"higher probability ({probs[best]:.2f}) but lies outside the set."
        )
    return head


def method_text(evidence: CallEvidence) -> str:
    """What the method saw: the steered response at each animal (if computed)."""
    srp = evidence.steered_response
    if srp is None or evidence.best_mm is None:
        return ""
    parts = []
    for a, name in enumerate(evidence.names):
        if np.isfinite(srp[a]):
            gap = float(np.linalg.norm(evidence.best_mm[a] - evidence.positions_mm[a]))
            parts.append(f"{name} {srp[a]:.2f} (best point {gap:.0f} mm away)")
    if not parts:
        return ""
    return "steered response at each animal (recomputed from the audio): " + ", ".join(parts)
