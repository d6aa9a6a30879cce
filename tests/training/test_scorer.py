"""The learned audio-pose scorer: it learns, it is saved safely, it refuses other rigs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_gerbil.baselines.candidate_features import candidate_features, feature_size
from napari_gerbil.cli.main import main
from napari_gerbil.errors import IncompatibleModelError, InvalidInputError
from napari_gerbil.io.cage import builtin_cage
from napari_gerbil.model.scorer import (
    SCORER_FILE,
    CandidateScorer,
    check_rig,
    load_scorer,
    save_scorer,
    score_candidates,
)
from napari_gerbil.training.scorer import (
    N_CANDIDATES,
    engine_candidate_set,
    ranked_first,
    train_scorer,
)


@pytest.fixture(scope="module")
def engine_sets():
    """Fresh plausible-caller engine calls in the paper cage: training and held-out."""
    return engine_candidate_set("paper", 320, seed=3), engine_candidate_set("paper", 160, seed=4)


def test_features_keep_levels_and_heading(engine_sets):
    train, _ = engine_sets
    n_mics = builtin_cage("paper").n_mics
    assert train.features.shape == (320, N_CANDIDATES, feature_size(n_mics))
    assert np.isfinite(train.features).all() and train.valid.all()
    # the level block differs between calls (levels between microphones survive)
    assert train.features[:, 0, -(5 * n_mics + 1) : -(3 * n_mics + 1)].std(axis=0).min() > 0.01
    assert (train.features[:, :, -1] == 1).all()  # every heading known
    assert (train.distance_mm[:, 0] == 0).all() and (train.distance_mm[:, 1:] > 0).all()


def test_the_scorer_learns_a_small_case(engine_sets):
    train, test = engine_sets
    untrained = CandidateScorer(train.features.shape[-1])
    untrained.set_normalization(train.features, train.valid)
    trained = train_scorer(train, epochs=12, batch_size=64, seed=0)
    before = ranked_first(score_candidates(untrained, test.features, test.valid))
    after = ranked_first(score_candidates(trained, test.features, test.valid))
    chance = 1.0 / N_CANDIDATES
    assert after > chance + 0.15 and after > before + 0.15, (chance, before, after)


def test_scorer_file_round_trip_and_rig_check(tmp_path):
    torch.manual_seed(0)
    scorer = CandidateScorer(feature_size(4), hidden=(16,))
    cage = builtin_cage("paper")
    rig = {"mic_positions_mm": cage.mics, "sample_rate_hz": 125000.0}
    path = save_scorer(scorer, tmp_path / SCORER_FILE, rig, {"calls": 1})
    loaded, record = load_scorer(path)
    x = torch.randn(3, 2, feature_size(4))
    torch.testing.assert_close(loaded(x), scorer.eval()(x))
    check_rig(record, cage.mics, 125000.0, "data.h5")  # its own rig passes
    with pytest.raises(IncompatibleModelError, match="8 .*4 microphones|4 microphones"):
        check_rig(record, builtin_cage("paper8").mics, 125000.0, "data.h5")
    moved = cage.mics + np.array([[30.0, 0, 0]] + [[0, 0, 0]] * 3)
    with pytest.raises(IncompatibleModelError, match=r"mic_positions_mm\[0\]"):
        check_rig(record, moved, 125000.0, "data.h5")
    with pytest.raises(IncompatibleModelError, match="sample_rate_hz"):
        check_rig(record, cage.mics, 250000.0, "data.h5")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidInputError, match="bad.pt"):
        load_scorer(tmp_path / "bad.pt")


def test_untracked_candidates_get_no_score():
    rng = np.random.default_rng(0)
    calls = [rng.standard_normal((2000, 4)).astype(np.float32) for _ in range(3)]
    cand = rng.uniform(-100, 100, (3, 2, 2))
    cand[1, 1] = np.nan
    feats = candidate_features(calls, builtin_cage("paper").mics, 125000.0, cand)
    assert not feats.valid[1, 1] and (feats.features[1, 1] == 0).all()
    scores = score_candidates(CandidateScorer(feats.features.shape[-1]), feats.features,
                              feats.valid)  # fmt: skip
    assert np.isnan(scores[1, 1]) and np.isfinite(scores[0]).all()


@pytest.mark.slow
def test_train_scorer_command_writes_scorer_and_calibration_once(
    tiny_ensemble_dir, tmp_path, capsys
):
    import shutil

    from napari_gerbil.attribute import load_calibration

    model = tmp_path / "model"
    shutil.copytree(tiny_ensemble_dir, model)
    args = ["train-scorer", "--model", str(model), "--calls", "96", "--epochs", "2",
            "--calibration-calls", "64", "--quiet"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "   scorer: held-out NLL" in out and "srp: held-out NLL" in out
    _, record = load_scorer(model / SCORER_FILE)
    assert record["provenance"]["calls"] == 96 and record["rig"]["cage"] == "builtin:paper"
    assert load_calibration(model).method in ("srp", "mixture", "combined", "scorer")
    before = (model / SCORER_FILE).read_bytes()
    assert main(args) == 1  # scorer and calibration exist: nothing replaced
    assert "--overwrite" in capsys.readouterr().err
    assert (model / SCORER_FILE).read_bytes() == before
    # a rig the model (and scorer) were not trained for is refused before any work
    assert main([*args, "--overwrite", "--cage", "paper8"]) == 1
    assert "paper8" in (err := capsys.readouterr().err) and "4 channels" in err
    assert (model / SCORER_FILE).read_bytes() == before


@pytest.fixture(scope="module")
def reviewed_session(tmp_path_factory):
    """A short simulated 2-animal session whose calls a 'reviewer' (the truth) attributed."""
    from napari_gerbil.evaluate.attribution import match_truth_calls
    from napari_gerbil.io.session import load_session, save_session
    from napari_gerbil.simulate.session import SessionConfig, simulate_session
    from napari_gerbil.simulate.truth import load_truth

    folder = tmp_path_factory.mktemp("reviewed")
    paths = simulate_session(folder, SessionConfig(n_animals=2, duration_s=20.0, seed=4,
                                                   call_rate_hz=1.0), progress=False)  # fmt: skip
    session = load_session(paths.session)
    match = match_truth_calls(session, load_truth(paths.truth))
    for row in np.flatnonzero(match >= 0):
        session.set_user_attribution(int(row), int(load_truth(paths.truth).animal[match[row]]))
    save_session(session, paths.session)
    return paths.session


def test_reviewed_calls_teach_the_scorer_with_a_verdict(reviewed_session, tmp_path):
    from napari_gerbil.review.export import HELDOUT_EVERY as EXPORT_HELDOUT_EVERY
    from napari_gerbil.training.scorer import HELDOUT_EVERY, finetune_scorer, scorer_verdict

    assert HELDOUT_EVERY == EXPORT_HELDOUT_EVERY  # the same calls are held out
    parent, out = tmp_path / "parent", tmp_path / "parent-ft1"
    parent.mkdir()
    torch.manual_seed(1)
    before = CandidateScorer(feature_size(4), hidden=(32,))
    cage = builtin_cage("paper")
    save_scorer(before, parent / SCORER_FILE,
                {"mic_positions_mm": cage.mics, "sample_rate_hz": 125000.0}, {})  # fmt: skip
    verdict = finetune_scorer(parent, out, [reviewed_session, reviewed_session], epochs=3)
    assert verdict is not None and verdict["n_train"] >= 20 and verdict["n_heldout"] >= 5
    assert set(verdict["before"]) == {"n", "assigned", "right"} == set(verdict["after"])
    after, record = load_scorer(out / SCORER_FILE)
    changed = [
        not torch.equal(a, b)
        for a, b in zip(after.state_dict().values(), before.state_dict().values(), strict=True)
    ]
    assert any(changed)  # the fine-tune changed the scorer ...
    assert (parent / SCORER_FILE).is_file() and not (parent / "scorer_finetune.json").exists()
    assert record["provenance"]["finetuned_on"]["reviewed_calls"] == verdict["n_train"]
    text = scorer_verdict(verdict)  # ... and says what changed on held-out calls
    assert f"{verdict['n_heldout']} held-out reviewed calls" in text and "->" in text
    assert (out / "scorer_finetune.json").is_file()
    # a parent without a scorer: nothing to teach, nothing written
    assert finetune_scorer(tmp_path / "none", tmp_path / "none-ft1", [reviewed_session]) is None
    assert not (tmp_path / "none-ft1").exists()
