"""Scoring predicted attributions against a simulated session's ground truth."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from napari_gerbil.cli.main import main
from napari_gerbil.evaluate.attribution import match_truth_calls, score_attribution
from napari_gerbil.io.session import AMBIGUOUS, UNASSIGNED, load_session
from napari_gerbil.simulate.truth import load_truth


def _predict(session, animal):
    """Give every call a dummy prediction with the attributions ``animal``."""
    n = session.n_calls
    session.set_predictions(
        np.arange(n),
        point_mm=np.zeros((n, 2)),
        member_means_mm=np.zeros((n, 1, 2)),
        member_chol_mm=np.tile(np.eye(2), (n, 1, 1, 1)),
        set_area_mm2=np.ones(n),
        model_version="test",
        animal=np.asarray(animal),
        probabilities=np.full((n, len(session.animal_names)), 0.5),
    )


def test_session_calls_match_their_truth_calls(session_small):
    session = load_session(session_small.session)
    truth = load_truth(session_small.truth)
    match = match_truth_calls(session, truth)
    assert (match >= 0).all()
    assert len(set(match.tolist())) == session.n_calls  # one truth call each


def test_score_counts_right_wrong_ambiguous_and_unlocalized(session_small):
    session = load_session(session_small.session)
    truth = load_truth(session_small.truth)
    true_animal = np.asarray(truth.animal)[match_truth_calls(session, truth)]
    n = session.n_calls
    assert n >= 8
    animal = true_animal.copy()
    animal[0] = 1 - true_animal[0]  # wrong
    animal[1] = AMBIGUOUS
    animal[2] = UNASSIGNED
    _predict(session, animal)
    session.clear_predictions([3])  # not localized: not counted
    score = score_attribution(session, truth)
    assert score.n_calls == n and score.n_matched == n
    assert score.n_localized == n - 1
    assert score.n_assigned == n - 3
    assert score.n_ambiguous == 1 and score.n_unassigned == 1
    assert score.n_right == n - 4
    assert score.right_fraction == pytest.approx((n - 4) / (n - 3))
    assert "ambiguous" in score.summary()


def test_a_false_detection_is_not_matched(session_small):
    session = load_session(session_small.session)
    truth = load_truth(session_small.truth)
    gap = int(truth.start_sample[1]) - int(truth.stop_sample[0])
    assert gap > 10
    end = int(truth.stop_sample[0])
    session.append_calls([end + 2], [end + gap // 2])
    assert match_truth_calls(session, truth)[-1] == -1
    assert score_attribution(session, truth).n_matched == session.n_calls - 1


def test_score_without_predictions_is_empty(session_small):
    score = score_attribution(load_session(session_small.session), load_truth(session_small.truth))
    assert score.n_localized == 0 and np.isnan(score.assigned_fraction)


def test_localize_cli_reports_against_the_truth(session_small, tiny_ensemble_dir, tmp_path, capsys):
    folder = tmp_path / "s"
    shutil.copytree(session_small.session.parent, folder)
    session = folder / session_small.session.name
    truth = folder / session_small.truth.name
    assert main(["localize", str(session), "--model", str(tiny_ensemble_dir), "--quiet",
                 "--truth", str(truth)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    expected = score_attribution(load_session(session), load_truth(truth))
    assert expected.n_localized == load_session(session).n_calls
    assert f"{expected.n_assigned} of {expected.n_localized} localized calls assigned" in out


def test_localize_cli_refuses_a_bad_truth_file_before_work(session_small, tmp_path, capsys):
    bad = tmp_path / "bad.truth.h5"
    bad.write_bytes(b"not hdf5")
    code = main(["localize", str(session_small.session), "--model", str(tmp_path),
                 "--truth", str(bad)])  # fmt: skip
    assert code != 0
    assert "bad.truth.h5" in capsys.readouterr().err
