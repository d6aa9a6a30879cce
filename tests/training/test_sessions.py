"""Training from session files: weak labels (the tracked animals), reviewed calls, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.session import load_session, save_session
from napari_gerbil.model.ensemble import load_ensemble, load_member
from napari_gerbil.model.network import build_network
from napari_gerbil.model.presets import get_preset
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.loop import evaluate_member, train_member
from napari_gerbil.training.sessions import EpochConcat, load_session_labels
from napari_gerbil.training.sources import open_training_data

QUICK = {"device": "cpu", "checkpoint_every_s": 1e9, "batch_size": 8, "num_workers": 0}


def test_session_labels_weak_strong_and_skipped(session_path, call_truth):
    session = load_session(session_path)
    session.set_user_attribution(0, 1)  # reviewed: animal 1 (whatever the truth)
    session.set_user_attribution(1, -1)  # reviewed as no animal's: skipped
    save_session(session, session_path)
    labels = load_session_labels([session_path], "nose")
    assert labels.skipped == 1 and len(labels.index) == session.n_calls - 1
    assert labels.index[:, 1].tolist() == [0, 2, 3, 4, 5]
    assert labels.strong.tolist() == [True] + [False] * 4
    first = labels.labels_mm[0]
    assert np.isnan(first[0]).all() and np.isfinite(first[1]).all()
    # a weak label holds every tracked animal; the caller is one of them (within a mm)
    animal, xy = call_truth[2]
    np.testing.assert_allclose(labels.labels_mm[1, animal], xy, atol=1.0)
    assert np.isfinite(labels.labels_mm[1:]).all()
    # the reviewed call validates (strong: a median error exists)
    config = TrainingConfig(**QUICK, label_node="nose")
    data = open_training_data([], config, 2048, sessions=labels)
    assert data.part("val").index.tolist() == [[0, 0]] and not data.part("val").weak
    assert len(data.part("train")) == 4


def _without(session_path, field):
    session = load_session(session_path)
    if field == "tracks":
        session.tracks = None
    else:
        session.arena.arena_to_pixels = None
    save_session(session, session_path)


@pytest.mark.parametrize("field", ["tracks", "arena_to_pixels"])
def test_session_without_poses_or_calibration_is_refused(session_path, field):
    _without(session_path, field)
    with pytest.raises(InvalidInputError, match=field) as err:
        load_session_labels([session_path])
    assert str(session_path.name) in str(err.value)


def test_session_without_localizable_calls_is_refused(session_path):
    session = load_session(session_path)
    for i in range(session.n_calls):
        session.set_user_attribution(i, -1)
    save_session(session, session_path)
    with pytest.raises(InvalidInputError, match="localizable calls"):
        load_session_labels([session_path])


def test_epoch_concat_keeps_each_parts_epoch_keys():
    class Keys:
        scale_mm = 1.0

        def __init__(self, n, tag):
            self.n, self.tag = n, tag

        def __len__(self):
            return self.n

        def __getitem__(self, key):
            return self.tag, key

    mixed = EpochConcat([Keys(3, "a"), Keys(2, "b")])
    assert len(mixed) == 5
    assert [mixed[2 * 5 + i] for i in range(5)] == [
        ("a", 6), ("a", 7), ("a", 8), ("b", 4), ("b", 5)
    ]  # fmt: skip


def test_train_sessions_cli_writes_a_loadable_model(session_path, tmp_path, capsys):
    out = tmp_path / "model"
    argv = ["train", "--preset", "tiny", "--sessions", str(session_path), "--epochs", "1"]
    assert main([*argv, "--out", str(out), "--seed", "3"]) == 0
    assert "6 calls from 1 session(s) (0 reviewed); 0 skipped" in capsys.readouterr().err
    ensemble = load_ensemble(out)
    pred = ensemble.predict(load_session(session_path).read_calls_audio([0, 1]))
    assert np.isfinite(pred.point_mm).all()
    split = json.loads((out / "member_00" / "split.json").read_text())
    assert split["weak_validation"] and len(split["val_rows"]) == 1
    metrics = json.loads((out / "member_00" / "metrics.jsonl").read_text().splitlines()[0])
    assert np.isfinite(metrics["val_nll"]) and np.isnan(metrics["val_median_error_mm"])
    run = json.loads((out / "run.json").read_text())
    assert run["sessions"] == [str(session_path.resolve())]


def test_finetune_from_sessions_is_a_new_version(session_path, tiny_ensemble_dir, tmp_path):
    from napari_gerbil.model.manifest import read_manifest

    (tiny_ensemble_dir / "attribution.yaml").write_text("method: srp\nsrp_scale: 33.0\n")
    try:
        out = tmp_path / "ft"
        argv = ["train", "--finetune", str(tiny_ensemble_dir), "--sessions", str(session_path)]
        assert main([*argv, "--epochs", "1", "--out", str(out)]) == 0
    finally:
        (tiny_ensemble_dir / "attribution.yaml").unlink()
    manifest = read_manifest(out)
    assert manifest["version"] == 2 and manifest["parent"]["path"] == str(tiny_ensemble_dir)
    assert "srp_scale: 33.0" in (out / "attribution.yaml").read_text()
    assert len(json.loads((out / "member_00" / "split.json").read_text())["train_rows"]) == 5


def test_session_training_beats_the_untrained_model(session_small, tmp_path):
    """Weak labels alone teach the network: held-out calls' MIL NLL drops."""
    network = get_preset("tiny")
    config = TrainingConfig(**QUICK, epochs=6, learning_rate=3e-3, seed=0, split=(0.7, 0.3, 0.0))
    data = open_training_data(
        [], config, network.input_length_samples, sessions=[session_small.session]
    )
    val = data.part("val")
    assert val.weak and len(val) >= 5 and len(data.part("train")) >= 15
    torch.manual_seed(config.seed)
    initial = evaluate_member(build_network(network), val, torch.device("cpu"))["val_nll"]
    best = train_member(network, config, data, tmp_path / "m", show_progress=False)
    trained = evaluate_member(load_member(best), val, torch.device("cpu"))["val_nll"]
    assert trained < initial - 0.5, (initial, trained)
