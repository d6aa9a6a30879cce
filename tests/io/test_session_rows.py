"""Row operations of a session: every per-call table stays aligned."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import (
    NOT_REVIEWED,
    UNASSIGNED,
    PredictedAttribution,
    Predictions,
    load_session,
)


@pytest.fixture
def session(session_path):
    s = load_session(session_path)
    n = s.n_calls
    s.predictions = Predictions(
        np.arange(2 * n, dtype=float).reshape(n, 2),
        np.zeros((n, 3, 2)),
        np.tile(np.eye(2), (n, 3, 1, 1)),
        np.arange(n, dtype=float) + 100,
        "model-a",
    )
    s.predicted = PredictedAttribution(np.zeros(n), np.full((n, 2), 0.5))
    s.set_user_attribution(1, 1, now=10.0)
    return s


def test_take_copies_the_rows_in_order(session):
    part = session.take([3, 1])
    assert list(part.calls.call_id) == [3, 1]
    assert list(part.predictions.set_area_mm2) == [103, 101]
    assert list(part.user.animal) == [NOT_REVIEWED, 1]
    part.predictions.set_area_mm2[0] = -1
    assert session.predictions.set_area_mm2[3] == 103  # a copy
    with pytest.raises(InvalidInputError, match="call index"):
        session.take([6])


def test_append_then_delete_keep_every_table_aligned(session):
    rows = session.append_calls([10, 600], [500, 900])
    assert list(rows) == [6, 7] and list(session.calls.call_id[-2:]) == [6, 7]
    assert np.isnan(session.predictions.point_mm[6:]).all()
    assert (session.predicted.animal[6:] == UNASSIGNED).all()
    assert (session.user.animal[6:] == NOT_REVIEWED).all()
    session.delete_calls([0, 6])
    session.check()
    assert list(session.calls.call_id) == [1, 2, 3, 4, 5, 7]
    assert session.user.animal[0] == 1 and session.predictions.set_area_mm2[0] == 101
    with pytest.raises(InvalidInputError, match="stop_sample"):
        session.append_calls([0], [session.audio.n_samples + 1])
    assert session.n_calls == 6  # nothing changed


def test_clear_and_set_predictions_never_touch_the_user(session):
    session.clear_predictions([2])
    assert not session.localized()[2] and session.localized()[[0, 1, 3]].all()
    assert np.isnan(session.predicted.probabilities[2]).all()
    fields = dict(
        point_mm=[[1.0, 2.0]],
        member_means_mm=np.zeros((1, 3, 2)),
        member_chol_mm=np.tile(np.eye(2), (1, 3, 1, 1)),
        set_area_mm2=[5.0],
        animal=[1],
        probabilities=[[0.1, 0.9]],
    )
    session.set_predictions([2], model_version="model-a", **fields)
    assert session.localized().all() and session.predicted.animal[2] == 1
    # another model with as many members: the other calls keep theirs, each call says
    # which model made its prediction
    before = session.predictions.point_mm.copy()
    session.set_predictions([2], model_version="model-b", **fields)
    assert session.localized().all()
    others = np.flatnonzero(np.arange(session.n_calls) != 2)
    np.testing.assert_array_equal(session.predictions.point_mm[others], before[others])
    versions = session.predictions.call_model_version
    assert versions[2] == "model-b" and set(versions[others]) == {"model-a"}
    assert list(np.flatnonzero(session.localized_by("model-b"))) == [2]
    assert session.drops_predictions([2], n_members=3).size == 0
    # another member count cannot share the arrays: the others would be dropped (said first)
    assert list(session.drops_predictions([2], n_members=5)) == list(others)
    five = dict(fields, member_means_mm=np.zeros((1, 5, 2)))
    five["member_chol_mm"] = np.tile(np.eye(2), (1, 5, 1, 1))
    session.set_predictions([2], model_version="model-c", **five)
    assert list(np.flatnonzero(session.localized())) == [2]
    assert session.user.animal[1] == 1 and session.user.edit_time_s[1] == 10.0


def test_call_audio_is_read_from_the_referenced_recording(session):
    with session.audio.open() as audio:
        one = session.read_call_audio(2, audio)
        expected = audio.read(int(session.calls.start_sample[2]), int(session.calls.stop_sample[2]))
    np.testing.assert_array_equal(one, expected)
    clips = session.read_calls_audio([2, 0])
    np.testing.assert_array_equal(clips[0], one)
    assert clips[1].shape == (session.calls.stop_sample[0] - session.calls.start_sample[0], 4)
