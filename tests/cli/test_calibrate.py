"""``napari-gerbil calibrate``: a model's attribution calibration, fitted and written once."""

from __future__ import annotations

import shutil

import pytest

from napari_gerbil.attribute import CALIBRATION_FILE, AttributionCalibration, load_calibration
from napari_gerbil.cli.main import main


def test_calibrate_writes_attribution_yaml_and_refuses_to_replace_it(
    tiny_ensemble_dir, tmp_path, capsys
):
    model = tmp_path / "model"
    shutil.copytree(tiny_ensemble_dir, model)
    assert main(["calibrate", "--model", str(model), "--calls", "64", "--quiet"]) == 0
    out = capsys.readouterr().out
    for method in ("srp", "mixture", "combined"):  # every method judged on held-out calls
        assert f"{method}: held-out NLL" in out
    calibration = load_calibration(model)
    assert calibration != AttributionCalibration()  # fitted, not the defaults
    assert "64 simulated calls" in calibration.fitted_on
    before = (model / CALIBRATION_FILE).read_text()
    assert main(["calibrate", "--model", str(model), "--calls", "64", "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (model / CALIBRATION_FILE).read_text() == before  # nothing replaced
    with pytest.raises(SystemExit) as exit_info:  # numbers are checked at parse time
        main(["calibrate", "--model", str(model), "--calls", "10"])
    assert exit_info.value.code == 2
