"""Issue 13 findings 1, 3, 5 and 7 for training: no code from checkpoints, run folders
that remember their inputs, NaN labels and invalid files refused before training."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from hostile_data import TINY_LENGTH, tiny_config, train_tiny_model, write_small_vcl
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.ensemble import load_ensemble, load_member
from napari_gerbil.model.presets import get_preset
from napari_gerbil.training.ensembles import train_ensemble


class _Payload:
    """Pickles to a call that creates a marker file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_small_vcl(tmp_path_factory.mktemp("train") / "d.h5", n_calls=16)


@pytest.fixture(scope="module")
def model(data, tmp_path_factory):
    return train_tiny_model(data, tmp_path_factory.mktemp("models") / "tiny")


def test_resume_never_runs_code_from_last_pt(data, model, tmp_path):
    """Finding 1: last.pt was loaded with weights_only=False."""
    import shutil

    model = shutil.copytree(model, tmp_path / "shared_model")
    marker = tmp_path / "pwned"
    last = model / "member_00" / "last.pt"
    torch.save({"state_dict": _Payload(marker), "optimizer": {}}, last)
    # the payload is live: an unsafe load would run it
    probe = tmp_path / "probe"
    torch.save({"x": _Payload(probe)}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert probe.exists()
    net = get_preset("tiny", input_length_samples=TINY_LENGTH)
    with pytest.raises(InvalidInputError, match="safe loader") as err:
        train_ensemble(net, tiny_config(), [data], model, 1, show_progress=False)
    assert str(last) in str(err.value) and "Unsupported global" in str(err.value)
    assert not marker.exists()


def test_member_checkpoints_never_run_code(model, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "best.pt"
    torch.save({"network": {}, "state_dict": _Payload(marker)}, evil)
    with pytest.raises(InvalidInputError, match="safe loader"):
        load_member(evil)
    assert not marker.exists()


def test_run_folder_refuses_other_data_preset_or_changed_file(data, model, tmp_path):
    """Finding 3: resuming on other inputs kept the old model or mixed members."""
    record = json.loads((model / "inputs.json").read_text())
    assert record["data"][0]["path"] == str(data.resolve())
    other = write_small_vcl(tmp_path / "other.h5", n_calls=16, seed=3)
    net = get_preset("tiny", input_length_samples=TINY_LENGTH)
    with pytest.raises(InvalidInputError, match="--data") as err:
        train_ensemble(net, tiny_config(), [other], model, 1, show_progress=False)
    assert str(model) in str(err.value)
    with pytest.raises(InvalidInputError, match="preset / network"):
        train_ensemble(
            get_preset("tiny", input_length_samples=2 * TINY_LENGTH),
            tiny_config(),
            [data],
            model,
            1,
            show_progress=False,
        )
    with pytest.raises(InvalidInputError, match="config"):
        train_ensemble(net, tiny_config(seed=7), [data], model, 1, show_progress=False)
    # the same inputs resume (nothing left to do) and keep the model
    before = (model / "manifest.json").read_text()
    assert train_ensemble(net, tiny_config(), [data], model, 1, show_progress=False) == model
    assert (
        json.loads(before)["members"]
        == json.loads((model / "manifest.json").read_text())["members"]
    )


def test_run_folder_without_a_record_is_refused(data, model, tmp_path):
    import shutil

    legacy = tmp_path / "legacy"
    shutil.copytree(model, legacy)
    (legacy / "inputs.json").unlink()
    net = get_preset("tiny", input_length_samples=TINY_LENGTH)
    with pytest.raises(InvalidInputError, match="inputs.json"):
        train_ensemble(net, tiny_config(), [data], legacy, 1, show_progress=False)


def test_nan_labels_are_refused_before_training(tmp_path):
    """Finding 5: batches with NaN locations were skipped silently (train_nll 0.0)."""
    path = write_small_vcl(tmp_path / "nan.h5", n_calls=16)
    with h5py.File(path, "r+") as f:
        f["locations"][3, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN/inf at call 3") as err:
        train_tiny_model(path, tmp_path / "m")
    assert str(path) in str(err.value)
    assert not (tmp_path / "m" / "member_00").exists()


def test_a_non_finite_loss_stops_training_loudly(data, tmp_path, monkeypatch):
    """Finding 5: NaN batches were skipped silently and the epoch reported train_nll 0.0."""
    import napari_gerbil.training.loop as loop
    from napari_gerbil.errors import GerbilError

    def nan_loss(mean, chol, y):
        return torch.full(mean.shape[:1], float("nan"), requires_grad=True)

    monkeypatch.setattr(loop, "weak_label_nll", nan_loss)
    with pytest.raises(GerbilError, match="loss nan"):
        train_tiny_model(data, tmp_path / "m")
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_training_refuses_what_validate_refuses(tmp_path):
    """Finding 7: train skipped validate's checks (length_idx, arena, silent audio)."""
    cases = {}
    p = write_small_vcl(tmp_path / "lidx.h5")
    with h5py.File(p, "r+") as f:
        f["length_idx"][5] = f["length_idx"][4]  # a zero-length call
    cases[p] = "zero-length call 4"
    p = write_small_vcl(tmp_path / "outside.h5")
    with h5py.File(p, "r+") as f:
        f["locations"][2, 0, 0] = 5000.0
    cases[p] = "inside the arena"
    p = write_small_vcl(tmp_path / "silent.h5")
    with h5py.File(p, "r+") as f:
        a, b = f["length_idx"][6], f["length_idx"][7]
        f["audio"][a:b] = 0
    cases[p] = "call 6 silent"
    for path, message in cases.items():
        with pytest.raises(InvalidInputError, match=message):
            train_tiny_model(path, tmp_path / f"m_{path.stem}")


def test_the_same_file_twice_is_refused(data, tmp_path):
    net = get_preset("tiny", input_length_samples=TINY_LENGTH)
    with pytest.raises(InvalidInputError, match="same file twice"):
        train_ensemble(net, tiny_config(), [data, data], tmp_path / "m", 1, show_progress=False)


def test_trained_model_still_loads(model):
    assert load_ensemble(model).n_members == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**40}, "seed"),
        ({"split_seed": -5}, "split_seed"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"batch_size": 0}, "batch_size"),
        ({"checkpoint_every_s": -5.0}, "checkpoint_every_s"),
        ({"clip_grad_norm": -1.0}, "clip_grad_norm"),
        ({"time_mask_max_fraction": 5.0}, "time_mask_max_fraction"),
        ({"noise_std_range": (1.0, -1.0)}, "noise_std_range"),
        ({"sim_calls_per_epoch": 0}, "sim_calls_per_epoch"),
    ],
)
def test_training_config_refuses_nonsense(change, field):
    with pytest.raises(InvalidInputError, match=f"field '{field}'"):
        tiny_config(**change).validate("c.yaml")


def test_an_enormous_training_call_is_refused(tmp_path):
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.io.vcl import write_vcl

    cage = default_cage()
    rng = np.random.default_rng(0)
    calls = [rng.standard_normal((900, 4)).astype(np.float32) for _ in range(7)]
    calls.append(rng.standard_normal((700_000, 4)).astype(np.float32))
    path = write_vcl(
        tmp_path / "long.h5", calls, np.zeros((8, 1, 3)), node_names=["s"],
        sample_rate_hz=125000.0, arena_dims_mm=cage.dims_mm, mic_positions_mm=cage.mic_positions_mm,
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match="call 7 of 700000 samples"):
        train_tiny_model(path, tmp_path / "m")
