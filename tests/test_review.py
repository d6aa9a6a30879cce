"""Review state without a viewer: states, queue, call import, export, undo."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import (
    AMBIGUOUS,
    NOT_REVIEWED,
    UNASSIGNED,
    PredictedAttribution,
    Predictions,
    load_session,
)
from napari_gerbil.io.tracks import load_poses
from napari_gerbil.io.vcl import VCLDataset, validate_vcl
from napari_gerbil.review import (
    HELDOUT_EVERY,
    ReviewModel,
    animal_positions_mm,
    export_reviewed,
    reviewed_calls,
)


def _with_predictions(model: ReviewModel) -> ReviewModel:
    """Give the six calls predictions: call 3 ambiguous, call 5 with a huge set."""
    s = model.session
    n = s.n_calls
    pred = Predictions.empty(n, 2)
    pred.point_mm[:] = 0.0
    pred.member_means_mm[:] = 0.0
    pred.member_chol_mm[:] = np.eye(2) * 20
    pred.set_area_mm2[:] = [900, 1200, 800, 1000, 700, 20000]
    s.predictions = pred
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [1.0, 0.0], [0.7, 0.3]])
    s.predicted = PredictedAttribution([0, 1, 0, AMBIGUOUS, 0, 0], probs)
    model.save()
    return model


def test_states_follow_user_and_predicted_attributions(session_path):
    model = ReviewModel.open(session_path)
    assert set(model.states()) == {"not localized"}
    _with_predictions(model)
    assert list(model.states()) == ["predicted"] * 3 + ["ambiguous"] + ["predicted"] * 2
    model.accept(0)
    model.assign(1, 0)
    model.assign(2, UNASSIGNED)
    states = model.states()
    assert states[0] == "confirmed" and states[1] == "corrected" and states[2] == "corrected"
    on_disk = load_session(session_path)
    assert list(on_disk.user.animal[:4]) == [0, 0, UNASSIGNED, NOT_REVIEWED]
    # user and predicted attributions are stored apart
    assert list(on_disk.predicted.animal[:3]) == [0, 1, 0]


def test_queue_puts_ambiguous_first_then_entropy_and_area(session_path):
    model = _with_predictions(ReviewModel.open(session_path))
    order = list(model.uncertainty_order())
    assert order[0] == 3  # ambiguous
    assert order[-1] == 4  # p = 1.0: no entropy, smallest set
    assert order.index(2) < order.index(0)  # 0.6/0.4 is more uncertain than 0.9/0.1
    model.accept(3)
    assert model.next_uncertain() != 3
    for i in range(model.n_calls):
        model.accept(i)
    assert model.next_uncertain() is None


def test_undo_redo_restore_the_file(session_path):
    model = ReviewModel.open(session_path)
    model.assign(2, 1)
    model.assign(2, 0)
    assert model.undo() == 2 and load_session(session_path).user.animal[2] == 1
    assert model.undo() == 2 and load_session(session_path).user.animal[2] == NOT_REVIEWED
    assert np.isnan(load_session(session_path).user.edit_time_s[2])
    assert model.undo() is None
    assert model.redo() == 2 and load_session(session_path).user.animal[2] == 1
    model.assign(0, 1)
    assert model.redo() is None  # a new edit clears the redo stack
    with pytest.raises(InvalidInputError, match="call index"):
        model.assign(99, 0)
    with pytest.raises(InvalidInputError, match="animal"):
        model.assign(0, 5)


def test_added_calls_skip_overlaps_and_extend_every_table(session_path):
    model = _with_predictions(ReviewModel.open(session_path))
    model.assign(0, 1)
    calls = model.session.calls
    starts = [calls.start_sample[0] + 10, 10, 200000]
    stops = [calls.stop_sample[0] - 10, 500, 201000]
    assert model.add_calls(starts, stops) == 2
    on_disk = load_session(session_path)
    assert on_disk.n_calls == 8
    assert list(on_disk.calls.call_id[-2:]) == [6, 7]
    assert np.isnan(on_disk.predictions.point_mm[-1]).all()
    assert on_disk.user.animal[0] == 1 and on_disk.user.animal[-1] == NOT_REVIEWED
    assert list(model.states()[-2:]) == ["not localized"] * 2


def test_animal_positions_use_the_pose_at_call_time(session_path, call_truth):
    model = ReviewModel.open(session_path)
    poses = load_poses(model.session.tracks.path)
    pos = animal_positions_mm(model.session, poses, np.arange(6), node="nose")
    for row, (animal, xy) in call_truth.items():
        np.testing.assert_allclose(pos[row, animal], xy, atol=1.0)


def test_export_writes_a_valid_vcl_of_reviewed_calls(session_path, call_truth, tmp_path):
    model = ReviewModel.open(session_path)
    audio = model.session.audio.open()
    poses = load_poses(model.session.tracks.path)
    with pytest.raises(InvalidInputError, match="reviewed calls"):
        export_reviewed(model, audio, poses, tmp_path / "none.h5")
    for row, (animal, _) in call_truth.items():
        model.assign(row, animal)
    model.assign(5, UNASSIGNED)  # unassigned calls are not training data
    train, held, _ = reviewed_calls(model, poses)
    assert len(train) + len(held) == 5 and len(held) == 5 // HELDOUT_EVERY
    out, n = export_reviewed(model, audio, poses, tmp_path / "reviewed.h5")
    assert n == len(train)
    summary = validate_vcl(out)
    assert summary["n_calls"] == n
    with VCLDataset(out) as ds:
        for k, row in enumerate(train):
            np.testing.assert_allclose(ds.source_xy_mm()[k], call_truth[int(row)][1], atol=1.0)
            start, stop = (
                model.session.calls.start_sample[row],
                model.session.calls.stop_sample[row],
            )
            np.testing.assert_array_equal(ds.call_audio(k), audio.read(int(start), int(stop)))
    from napari_gerbil.cli.main import main

    assert main(["validate", str(out)]) == 0


def test_export_merges_with_a_training_set(session_path, call_truth, tiny_ensemble_dir, tmp_path):
    model = ReviewModel.open(session_path)
    audio = model.session.audio.open()
    poses = load_poses(model.session.tracks.path)
    for row, (animal, _) in call_truth.items():
        model.assign(row, animal)
    base = tiny_ensemble_dir.parent / "train.h5"
    out, n = export_reviewed(model, audio, poses, tmp_path / "merged.h5", training_set=base)
    with VCLDataset(base) as b, VCLDataset(out) as merged:
        assert merged.n_calls == b.n_calls + n
        assert merged.node_names == b.node_names


def test_add_call_has_no_prediction_until_localized_and_undo_removes_it(session_path):
    model = _with_predictions(ReviewModel.open(session_path))
    calls = model.session.calls
    free = int(calls.stop_sample[0]) + 2000, int(calls.start_sample[1]) - 2000
    index = model.add_call(*free)
    on_disk = load_session(session_path)
    assert index == 6 and on_disk.n_calls == 7 and on_disk.calls.call_id[6] == 6
    assert (on_disk.calls.start_sample[6], on_disk.calls.stop_sample[6]) == free
    assert np.isnan(on_disk.predictions.member_means_mm[6]).all()
    assert on_disk.predicted.animal[6] == UNASSIGNED and on_disk.user.animal[6] == NOT_REVIEWED
    assert model.states()[6] == "not localized"
    with pytest.raises(InvalidInputError, match="overlaps call 0"):
        model.add_call(int(calls.start_sample[0]) - 100, int(calls.start_sample[0]) + 100)
    with pytest.raises(InvalidInputError, match="start < stop"):
        model.add_call(10, model.session.audio.n_samples + 1)
    assert model.undo() == 6 and load_session(session_path).n_calls == 6
    assert model.redo() == 6 and load_session(session_path).n_calls == 7


def test_delete_call_keeps_other_calls_aligned_and_undo_restores_it(session_path):
    model = _with_predictions(ReviewModel.open(session_path))
    model.assign(4, 1)
    before = load_session(session_path)
    model.delete_call(2)
    on_disk = load_session(session_path)
    keep = [0, 1, 3, 4, 5]
    assert list(on_disk.calls.call_id) == keep
    np.testing.assert_array_equal(on_disk.calls.start_sample, before.calls.start_sample[keep])
    np.testing.assert_array_equal(on_disk.user.animal, before.user.animal[keep])
    np.testing.assert_array_equal(on_disk.predicted.animal, before.predicted.animal[keep])
    np.testing.assert_array_equal(
        on_disk.predictions.set_area_mm2, before.predictions.set_area_mm2[keep]
    )
    assert on_disk.user.animal[3] == 1  # call 4's review moved with it
    assert model.undo() is None  # a deletion touches no remaining call
    assert load_session(session_path) == before
    assert model.undo() == 4 and load_session(session_path).user.animal[4] == NOT_REVIEWED


def test_set_bounds_drops_the_prediction_keeps_the_review(session_path):
    model = _with_predictions(ReviewModel.open(session_path))
    model.assign(1, 0)
    calls = model.session.calls
    start, stop = int(calls.start_sample[1]) - 500, int(calls.stop_sample[1]) + 700
    model.set_bounds(1, start, stop)
    on_disk = load_session(session_path)
    assert (on_disk.calls.start_sample[1], on_disk.calls.stop_sample[1]) == (start, stop)
    assert np.isnan(on_disk.predictions.point_mm[1]).all()
    assert np.isfinite(on_disk.predictions.point_mm[[0, 2]]).all()
    assert on_disk.predicted.animal[1] == UNASSIGNED and on_disk.user.animal[1] == 0
    with pytest.raises(InvalidInputError, match="overlaps call 2"):
        model.set_bounds(1, start, int(calls.start_sample[2]) + 10)
    model.undo()
    restored = load_session(session_path)
    assert restored.calls.start_sample[1] == start + 500
    assert np.isfinite(restored.predictions.point_mm[1]).all()


def test_export_selections_label_each_call_with_its_animal(session_path, tmp_path):
    from napari_gerbil.review import export_calls, select_export_calls

    model = _with_predictions(ReviewModel.open(session_path))
    model.assign(2, 1)  # corrected: the user's animal wins over the prediction
    poses = load_poses(model.session.tracks.path)
    s = model.session
    reviewed = select_export_calls(s, poses, "reviewed")
    assert list(reviewed.rows) == [2] and list(reviewed.animal) == [1]
    confident = select_export_calls(s, poses, "confident")  # p >= 0.9 or reviewed
    assert list(confident.rows) == [0, 2, 4] and list(confident.animal) == [0, 1, 0]
    everything = select_export_calls(s, poses, "all")
    assert list(everything.rows) == [0, 1, 2, 3, 4, 5]
    assert list(everything.animal) == [0, 1, 1, 0, 0, 0]  # ambiguous 3: most probable
    expected = animal_positions_mm(s, poses, everything.rows)
    np.testing.assert_allclose(
        everything.positions_mm, expected[np.arange(6), everything.animal], atol=1e-9
    )
    with pytest.raises(InvalidInputError, match="calls"):
        select_export_calls(s, poses, "some")
    path, selection = export_calls(s, tmp_path / "all.h5", "all", poses=poses)
    with VCLDataset(path) as ds:
        assert ds.n_calls == 6
        np.testing.assert_allclose(ds.source_xy_mm(), everything.positions_mm, atol=1e-6)
    with pytest.raises(InvalidInputError, match="different from every input"):
        export_calls(s, session_path, "all", poses=poses)


def test_cancelled_export_leaves_no_file(session_path, tmp_path):
    from napari_gerbil.progress import Cancelled, CancelToken
    from napari_gerbil.review import export_calls

    model = _with_predictions(ReviewModel.open(session_path))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        export_calls(model.session, tmp_path / "x.h5", "all", cancel=token)
    assert list(tmp_path.iterdir()) == []


def test_review_status_is_plain_json_when_probabilities_are_unknown(session_path):
    import json

    from napari_gerbil.review import review_status

    model = _with_predictions(ReviewModel.open(session_path))
    model.session.predicted.probabilities[:] = np.nan  # no animal tracked at any call
    status = review_status(model.session, n_uncertain=6)
    assert [c["top_probability"] for c in status["most_uncertain"]] == [None] * 6
    assert json.loads(json.dumps(status, allow_nan=False)) == status
    assert status["states"]["predicted"] + status["states"]["ambiguous"] == 6
