"""The demo ensemble is built once (by the data engine) and then reused."""

from __future__ import annotations

import pytest

import napari_gerbil.training.demo as demo
from napari_gerbil.model.ensemble import load_ensemble, read_manifest


@pytest.mark.slow
def test_demo_ensemble_is_built_with_progress_then_reused(monkeypatch, tmp_path_factory):
    # a miniature of the real recipe: 2 members, 1 short epoch of engine calls
    monkeypatch.setattr(demo, "DEMO_MEMBERS", 2)
    monkeypatch.setattr(demo, "DEMO_EPOCHS", 1)
    monkeypatch.setattr(demo, "DEMO_CALLS_PER_EPOCH", 16)
    monkeypatch.setattr(demo, "DEMO_CALIBRATION_CALLS", 64)
    messages = []
    path = demo.ensure_demo_ensemble(progress=lambda p: messages.append((p.message, p.fraction)))
    assert path == demo.demo_model_dir() and path.is_relative_to(demo.cache_dir())
    fractions = [f for _, f in messages]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert any("epoch 1/1" in m for m, _ in messages)
    manifest = read_manifest(path)
    assert manifest["n_members"] == 2 and manifest["preset"] == demo.DEMO_PRESET
    ens = load_ensemble(path)
    assert ens.metadata.n_channels == 4 and ens.metadata.sample_rate_hz == 125000.0
    assert (path / "cage.yaml").exists()  # trained by the data engine in the paper cage
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # work dir gone
    created = manifest["created"]
    again = []
    assert demo.ensure_demo_ensemble(progress=again.append) == path
    assert again == [] and read_manifest(path)["created"] == created
    # it ships its attribution calibration, and `--model demo` finds it
    from napari_gerbil.attribute import CALIBRATION_FILE, load_calibration

    assert (path / CALIBRATION_FILE).is_file()
    assert "64 simulated calls" in load_calibration(path).fitted_on
    _predict_with_model_demo(tmp_path_factory.mktemp("demo_predict"))


def _predict_with_model_demo(folder):
    from napari_gerbil.cli.main import main
    from napari_gerbil.simulate.scenarios import ScenarioConfig, simulate_dataset

    data = simulate_dataset(folder / "d.h5", ScenarioConfig(scenario="robot", n_calls=3))
    assert main(["predict", "--model", "demo", "--data", str(data), "--out",
                 str(folder / "p.h5")]) == 0  # fmt: skip
    assert (folder / "p.h5").is_file()


def test_a_cancelled_demo_build_stops_before_training(monkeypatch, tmp_path):
    from napari_gerbil.progress import Cancelled, CancelToken

    monkeypatch.setattr(demo, "cache_dir", lambda: tmp_path)  # no demo model built yet
    trained = []
    monkeypatch.setattr(
        "napari_gerbil.training.ensembles.train_ensemble", lambda *a, **k: trained.append(1)
    )
    token = CancelToken()

    def cancel_on_first_report(record):
        token.cancel()

    with pytest.raises(Cancelled):
        demo.ensure_demo_ensemble(progress=cancel_on_first_report, cancel=token)
    assert trained == [] and not (demo.demo_model_dir() / "manifest.json").exists()


def test_a_second_build_while_one_runs_is_refused(monkeypatch, tmp_path):
    from napari_gerbil.errors import InvalidInputError

    monkeypatch.setattr(demo, "cache_dir", lambda: tmp_path)
    work = demo.demo_model_dir().parent / f".{demo.DEMO_NAME}.building"
    with demo._build_lock(work), pytest.raises(InvalidInputError, match="build in progress"):
        demo.ensure_demo_ensemble()
    assert not (work / "model").exists()  # the refused build did nothing


def test_engine_data_loads_in_process_off_the_main_thread():
    """The napari dock builds the demo in a worker thread: no loader process may start there."""
    import threading

    from napari_gerbil.training.loop import _loader_workers

    assert _loader_workers(0, engine=True) == 1 and _loader_workers(0, engine=False) == 0
    seen = []
    worker = threading.Thread(target=lambda: seen.append(_loader_workers(4, engine=True)))
    worker.start()
    worker.join()
    assert seen == [0]
