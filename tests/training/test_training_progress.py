"""Training reports through the common progress protocol, and a token cancels it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.progress import CancelToken, Progress
from napari_gerbil.training.progress import TrainingProgress


def test_training_reports_become_ensemble_wide_fractions():
    records: list[Progress] = []
    adapter = TrainingProgress(records.append, n_members=2)
    for member in ("member_00", "member_01"):
        for step in (1, 2):
            adapter({"member": member, "epoch": 0, "epochs": 1, "step": step, "steps": 2})
        adapter({"member": member, "epochs": 1, "val_nll": 0.1})  # epoch summary: skipped
    assert [r.fraction for r in records] == [0.25, 0.5, 0.75, 1.0]
    assert records[0].message == "member_00 epoch 1"


def test_a_cancel_token_stops_training_at_the_next_step(tmp_path):
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.io.vcl import write_vcl
    from napari_gerbil.model.presets import get_preset
    from napari_gerbil.training.config import TrainingConfig
    from napari_gerbil.training.ensembles import train_ensemble

    rng = np.random.default_rng(0)
    cage = default_cage()
    calls = [rng.standard_normal((2048, 4)).astype(np.float32) for _ in range(64)]
    data = write_vcl(
        tmp_path / "noise.h5",
        calls,
        rng.uniform(-100, 100, (64, 1, 2)),
        node_names=["source"],
        sample_rate_hz=125000.0,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
    )
    token = CancelToken()
    records: list[Progress] = []

    def cancel_at_first_step(record: Progress) -> None:
        records.append(record)
        token.cancel()

    config = TrainingConfig(epochs=3, batch_size=8, checkpoint_every_s=1e9)
    with pytest.raises(InterruptedError, match="cancelled"):
        train_ensemble(
            get_preset("tiny", input_length_samples=2048),
            config,
            [data],
            tmp_path / "model",
            2,
            progress=TrainingProgress(cancel_at_first_step, 2),
            cancel=token,
            show_progress=False,
        )
    assert len(records) == 1  # not a single step after the cancel
    assert not (tmp_path / "model" / "manifest.json").exists()
    assert (tmp_path / "model" / "member_00" / "last.pt").exists()  # resumable
