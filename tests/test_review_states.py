"""Confirmed / corrected come from the user's action, never from a re-localization."""

from __future__ import annotations

import h5py
import numpy as np

from napari_gerbil.io.session import NOT_REVIEWED, UNASSIGNED, load_session
from napari_gerbil.review import ReviewModel


def _predict(session, animal, version):
    n = session.n_calls
    session.set_predictions(
        np.arange(n),
        point_mm=np.zeros((n, 2)),
        member_means_mm=np.zeros((n, 1, 2)),
        member_chol_mm=np.broadcast_to(np.eye(2) * 50, (n, 1, 2, 2)).copy(),
        set_area_mm2=np.full(n, 5000.0),
        model_version=version,
        animal=np.asarray(animal),
        probabilities=np.full((n, len(session.animal_names)), 0.5),
    )


def test_a_relocalization_keeps_corrected_calls_corrected(session_path):
    review = ReviewModel.open(session_path)
    _predict(review.session, [0, 0, 1, 1, 0, 1], "v1")
    review.save()
    review.assign(0, 1)  # corrected: predicted 0
    review.assign(1, 0)  # confirmed
    review.assign(5, UNASSIGNED)  # corrected
    assert list(review.states()[[0, 1, 5]]) == ["corrected", "confirmed", "corrected"]
    # a fine-tuned model now repeats the labels it was trained on
    _predict(review.session, [1, 1, 1, 1, 0, UNASSIGNED], "v2")
    review.save()
    states = ReviewModel.open(session_path).states()
    assert list(states[[0, 1, 5]]) == ["corrected", "confirmed", "corrected"]
    # undo restores the decision and what it was made against
    review.undo()
    assert review.session.user.decided_against[5] == NOT_REVIEWED
    review.redo()
    assert load_session(session_path).user.decided_against[5] == 1
    # a decision on a call never localized is against "no prediction" (unassigned)
    review.session.predictions.point_mm[3] = np.nan
    review.assign(3, UNASSIGNED)
    assert review.states()[3] == "confirmed"


def test_older_files_without_the_decision_fall_back_to_the_current_prediction(session_path):
    review = ReviewModel.open(session_path)
    _predict(review.session, [0, 0, 1, 1, 0, 1], "v1")
    review.assign(2, 1)
    review.assign(3, 0)
    with h5py.File(session_path, "a") as f:
        del f["attribution/user/decided_against"]
    session = load_session(session_path)
    assert (session.user.decided_against == NOT_REVIEWED).all()
    assert list(ReviewModel(session, session_path).states()[[2, 3]]) == ["confirmed", "corrected"]
