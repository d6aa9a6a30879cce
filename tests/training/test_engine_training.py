"""Training from the data engine.

Fresh calls, unseen validation positions, determinism, and training that stops with a
clear error when it diverges.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_gerbil.io.cage import builtin_cage, load_cage
from napari_gerbil.model.presets import get_preset
from napari_gerbil.simulate.engine import EngineConfig
from napari_gerbil.training.config import TrainingConfig
from napari_gerbil.training.data import EngineCallDataset
from napari_gerbil.training.ensembles import train_ensemble
from napari_gerbil.training.loop import TrainingDivergedError

ENGINE = EngineConfig(calls_per_room=16)


def engine_spec(cage="paper", seed=0) -> dict:
    return {"cage": load_cage(cage).to_dict(), "config": ENGINE.to_dict(), "seed": seed}


def quick(**changes) -> TrainingConfig:
    return TrainingConfig(
        epochs=1, batch_size=16, sim_calls_per_epoch=32, checkpoint_every_s=0, **changes
    )


def test_validation_positions_are_never_training_positions():
    spec = engine_spec()
    common = (spec["cage"], spec["config"], 64, 8192, 360.0)
    train = EngineCallDataset(*common, seed=0)  # member 0 of engine seed 0
    val = EngineCallDataset(*common, seed=10**9, fixed=True)
    seen = np.concatenate([train.positions_mm(epoch) for epoch in range(5)])
    held_out = val.positions_mm()
    gaps = np.linalg.norm(held_out[:, None, :2] - seen[None, :, :2], axis=-1).min(axis=1)
    assert (gaps > 0.01).all()
    # a training epoch brings new positions; a fixed set is the same every epoch
    assert not np.allclose(train.positions_mm(0), train.positions_mm(1))
    np.testing.assert_array_equal(val.positions_mm(0), val.positions_mm(3))


def test_training_from_the_engine_is_deterministic_per_seed(tmp_path):
    net = get_preset("tiny")
    runs = []
    for name in ("a", "b"):
        out = train_ensemble(
            net, quick(), [], tmp_path / name, 1, engine=engine_spec(), show_progress=False
        )
        runs.append(torch.load(out / "member_00" / "final.pt", weights_only=True)["state_dict"])
    for key in runs[0]:
        torch.testing.assert_close(runs[0][key], runs[1][key], rtol=0, atol=0)
    other = train_ensemble(
        net, quick(seed=7), [], tmp_path / "c", 1, engine=engine_spec(), show_progress=False
    )
    state = torch.load(other / "member_00" / "final.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(state[k], runs[0][k]) for k in state)
    # the model records its cage and geometry
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    np.testing.assert_allclose(manifest["mic_positions_mm"], builtin_cage("paper").mics)
    assert load_cage(tmp_path / "a" / "cage.yaml").to_dict() == load_cage("paper").to_dict()
    split = json.loads((tmp_path / "a" / "member_00" / "split.json").read_text())
    assert split["engine"]["seed"] == 0


def test_engine_training_follows_the_cage_channel_count(tmp_path):
    out = train_ensemble(
        get_preset("tiny"),
        quick(),
        [],
        tmp_path / "m8",
        1,
        engine=engine_spec("paper8"),
        show_progress=False,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["n_channels"] == 8


def test_a_diverging_run_stops_with_a_clear_error(tmp_path):
    config = quick(optimizer="sgd", learning_rate=5.0, momentum=0.9, clip_grad_norm=0.0)
    config = config.replace(sim_calls_per_epoch=96, epochs=2)
    with pytest.raises(TrainingDivergedError, match="learning rate") as err:
        train_ensemble(
            get_preset("tiny"),
            config,
            [],
            tmp_path / "bad",
            1,
            engine=engine_spec(),
            show_progress=False,
        )
    assert "diverged" in str(err.value)
    assert not (tmp_path / "bad" / "manifest.json").exists()  # nothing saved as a model


def test_model_trained_in_one_cage_refuses_data_from_another(tmp_path):
    from napari_gerbil.errors import IncompatibleModelError
    from napari_gerbil.model.ensemble import load_ensemble
    from napari_gerbil.model.predict import predict_file
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    model = train_ensemble(
        get_preset("tiny"),
        quick(),
        [],
        tmp_path / "m",
        1,
        engine=engine_spec(),
        show_progress=False,
    )
    ensemble = load_ensemble(model)
    # same dims and channels as the paper cage, one microphone moved by 5 mm
    cage = builtin_cage("paper")
    mics = cage.mics.copy()
    mics[3, 1] += 5.0
    moved = tmp_path / "moved.yaml"
    from napari_gerbil.io.cage import save_cage

    save_cage(cage.with_changes(mic_positions_mm=mics.tolist()), moved)
    data = simulate_dataset(
        tmp_path / "moved.h5", ScenarioConfig(scenario="robot", n_calls=3, cage=str(moved))
    )
    with pytest.raises(IncompatibleModelError) as err:
        predict_file(data, tmp_path / "pred.h5", ensemble=ensemble)
    assert err.value.field == "mic_positions_mm[3]" and "moved.h5" in str(err.value)
    other = simulate_dataset(
        tmp_path / "asym.h5",
        ScenarioConfig(scenario="robot", n_calls=3, cage="omni-corner"),  # 600 x 400 mm
    )
    with pytest.raises(IncompatibleModelError, match="arena_dims_mm"):
        predict_file(other, tmp_path / "pred2.h5", ensemble=ensemble)
    assert not (tmp_path / "pred.h5").exists() and not (tmp_path / "pred2.h5").exists()


def test_engine_calls_render_on_the_training_gpu_in_the_training_process():
    from napari_gerbil.training.loop import _loader_workers

    assert _loader_workers(0, engine=True) == 1  # CPU: a worker process renders
    assert _loader_workers(2, engine=True, render_device="cuda") == 0  # no CUDA in forks
