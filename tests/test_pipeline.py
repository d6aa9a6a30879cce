"""The session pipeline.

Localize -> attribute in batches, resumable, never touching the user's attributions;
detection and import of calls into a session file.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import IncompatibleModelError, InvalidInputError
from napari_gerbil.io.arena import ArenaGeometry, default_cage
from napari_gerbil.io.session import NOT_REVIEWED, load_session, save_session
from napari_gerbil.model.ensemble import load_ensemble
from napari_gerbil.pipeline import (
    LocalizedBatch,
    detect_session,
    import_calls,
    load_session_poses,
    localize_calls,
    localize_session,
)
from napari_gerbil.progress import Cancelled, CancelToken, Progress


@pytest.fixture(scope="module")
def ensemble(tiny_ensemble_dir):
    return load_ensemble(tiny_ensemble_dir)


def test_batches_match_the_ensemble_and_attribute_to_the_animal_in_the_set(
    session_path, ensemble, call_truth
):
    session = load_session(session_path)
    poses = load_session_poses(session)
    batches = list(localize_calls(session, ensemble, poses=poses, batch_size=4))
    assert [len(b.indices) for b in batches] == [4, 2]
    assert [b.done for b in batches] == [4, 6] and batches[-1].progress.fraction == 1.0
    assert all(isinstance(b, LocalizedBatch) for b in batches)
    direct = ensemble.predict(session.read_calls_audio(np.arange(6)))
    means = np.concatenate([b.means_mm for b in batches])
    np.testing.assert_allclose(means, direct.means_mm, atol=1e-4)
    for b in batches:
        assert (b.set_area_mm2 > 0).all() and b.model_version == ensemble.version
        # the assigned animal, if any, is the most probable one among those in the set
        assigned = b.animal >= 0
        probs = np.nan_to_num(b.probabilities, nan=-1)
        assert (probs[assigned, b.animal[assigned]] > 0).all()
    assert session.predictions is None  # the generator never writes


def test_an_incompatible_model_is_refused_before_any_work(session_path, ensemble):
    session = load_session(session_path)
    session.arena = default_cage(dims_mm=(800.0, 400.0, 350.0))
    with pytest.raises(IncompatibleModelError, match="arena_dims_mm"):
        next(localize_calls(session, ensemble))


def test_cancel_stops_between_batches(session_path, ensemble):
    session = load_session(session_path)
    token = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for batch in localize_calls(session, ensemble, batch_size=2, cancel=token):
            seen.append(batch)
            token.cancel()
    assert len(seen) == 1


def test_localize_session_saves_predictions_and_keeps_user_edits(session_path, ensemble):
    session = load_session(session_path)
    session.set_user_attribution(2, 1, now=123.0)
    save_session(session, session_path)
    records: list[Progress] = []

    def edit_meanwhile(record: Progress) -> None:
        records.append(record)
        if len(records) == 2:  # the dock edits the file while the run goes on
            on_disk = load_session(session_path)
            on_disk.set_user_attribution(4, 0, now=456.0)
            save_session(on_disk, session_path)

    summary = localize_session(
        session_path, ensemble, batch_size=2, save_every_s=0.0, progress=edit_meanwhile
    )
    assert summary.n_localized == 6 and summary.n_skipped == 0 and summary.n_saves == 3
    assert records[-1].fraction == 1.0
    result = load_session(session_path)
    assert result.localized().all() and result.predictions.model_version == ensemble.version
    assert result.user.animal[2] == 1 and result.user.edit_time_s[2] == 123.0
    assert result.user.animal[4] == 0  # made during the run, kept
    assert (result.user.animal[[0, 1, 3, 5]] == NOT_REVIEWED).all()
    assert np.isfinite(result.predicted.probabilities).any()


def test_a_cancelled_run_keeps_its_batches_and_resumes(session_path, ensemble, tmp_path):
    token = CancelToken()

    def cancel_after_first_batch(record: Progress) -> None:
        if record.fraction > 0:
            token.cancel()

    with pytest.raises(Cancelled):
        localize_session(
            session_path, ensemble, batch_size=2, progress=cancel_after_first_batch, cancel=token
        )
    partial = load_session(session_path)
    assert partial.localized().sum() == 2
    summary = localize_session(session_path, ensemble, batch_size=2)
    assert summary.n_skipped == 2 and summary.n_localized == 4
    resumed = load_session(session_path)
    again = localize_session(session_path, ensemble, redo=True)
    assert again.n_localized == 6
    np.testing.assert_allclose(
        resumed.predictions.point_mm, load_session(session_path).predictions.point_mm, atol=1e-6
    )


def test_resume_skips_only_the_calls_this_model_localized(session_path, ensemble):
    localize_session(session_path, ensemble)
    session = load_session(session_path)
    session.predictions.call_model_version[[1, 4]] = "an-older-model"  # a mixed session
    kept = session.predictions.point_mm.copy()
    save_session(session, session_path)
    summary = localize_session(session_path, ensemble)
    assert summary.n_skipped == 4 and summary.n_localized == 2
    after = load_session(session_path)
    assert set(after.predictions.call_model_version) == {ensemble.version}
    untouched = [0, 2, 3, 5]
    np.testing.assert_array_equal(after.predictions.point_mm[untouched], kept[untouched])


def test_localize_session_refuses_calls_changed_meanwhile(session_path, ensemble):
    def add_a_call(record: Progress) -> None:
        if record.fraction > 0:
            on_disk = load_session(session_path)
            on_disk.append_calls([10], [500])
            save_session(on_disk, session_path)

    with pytest.raises(InvalidInputError, match="calls added, deleted or moved"):
        localize_session(
            session_path, ensemble, batch_size=2, save_every_s=0.0, progress=add_a_call
        )
    assert load_session(session_path).n_calls == 7  # the user's file wins


def test_detect_then_import_add_only_new_calls(session_path, tmp_path):
    session = load_session(session_path)
    session.delete_calls(np.arange(session.n_calls))
    save_session(session, session_path)
    records: list[Progress] = []
    added = detect_session(session_path, progress=records.append)
    assert added >= 5 and records[-1].fraction == 1.0
    detected = load_session(session_path)
    assert detected.n_calls == added
    rate = detected.audio.sample_rate_hz
    table = tmp_path / "calls.csv"
    first = detected.calls.start_sample[0] / rate
    table.write_text(f"start_s,stop_s\n{first:.4f},{first + 0.01:.4f}\n0.01,0.02\n")
    assert import_calls(session_path, table).n_added == 1  # the first overlaps a detected call
    assert load_session(session_path).n_calls == added + 1
    table.write_text("start_s,stop_s\n0.5,99\n")
    with pytest.raises(InvalidInputError, match="within the audio"):
        import_calls(session_path, table)


def test_cancelled_detection_changes_nothing(session_path):
    before = load_session(session_path)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        detect_session(session_path, cancel=token)
    assert load_session(session_path) == before


def test_a_model_of_another_microphone_layout_is_refused(session_path, ensemble):
    session = load_session(session_path)
    moved = session.arena.mic_positions_mm.copy()
    moved[0, 0] += 40.0
    session.arena = ArenaGeometry(session.arena.dims_mm, moved)
    with pytest.raises(IncompatibleModelError, match="mic_positions_mm"):
        next(localize_calls(session, ensemble))


@pytest.mark.parametrize("keep_video", [True, False])
def test_a_session_without_poses_localizes_with_no_animals(
    session_path, tiny_ensemble_dir, keep_video, capsys
):
    """Issue 20 item 6: audio-only or video-only sessions localize; nothing is attributed."""
    from napari_gerbil.cli.main import main
    from napari_gerbil.io.session import UNASSIGNED

    session = load_session(session_path)
    session.tracks, session.animal_names = None, []
    session.predictions, session.predicted = None, None
    if not keep_video:
        session.video, session.arena = (
            None,
            ArenaGeometry(session.arena.dims_mm, session.arena.mic_positions_mm),
        )
    save_session(session, session_path)
    assert main(["localize", str(session_path), "--model", str(tiny_ensemble_dir), "--quiet"]) == 0
    assert "no animals to attribute to" in capsys.readouterr().out
    done = load_session(session_path)
    assert done.localized().all()
    assert (done.predicted.animal == UNASSIGNED).all()
    assert done.predicted.probabilities.shape == (done.n_calls, 0)
