"""``napari-gerbil evaluate`` on a small labelled dataset of pure-delay calls."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from napari_gerbil.baselines import speed_of_sound_m_s
from napari_gerbil.baselines.synthetic import delayed_chirps
from napari_gerbil.cli import evaluate as evaluate_cli
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.vcl import write_vcl

MICS_MM = np.array(
    [[-280.0, -180.0, 340.0], [280.0, -180.0, 340.0], [280.0, 180.0, 340.0], [-280.0, 180.0, 340.0]]
)


def _delays_file(directory, seed: int):
    rng = np.random.default_rng(seed)
    src = np.c_[rng.uniform(-250, 250, 8), rng.uniform(-150, 150, 8), np.full(8, 30.0)]
    audio = delayed_chirps(src, MICS_MM, 125_000, speed_of_sound_m_s(20.0), 4096, snr_db=15)
    path = directory / f"delays_{seed}.h5"
    write_vcl(
        path, list(audio), src[:, None, :], node_names=["source"], sample_rate_hz=125_000,
        arena_dims_mm=(600, 400, 350), mic_positions_mm=MICS_MM, scenario="speaker",
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def vcl_file(tmp_path_factory):
    return _delays_file(tmp_path_factory.mktemp("vcl"), seed=5)


def _run(argv):
    parser = argparse.ArgumentParser()
    evaluate_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_evaluate_baselines_writes_metrics_and_plots(vcl_file, tmp_path, capsys):
    out = tmp_path / "eval"
    argv = [
        "evaluate",
        "--data",
        str(vcl_file),
        "--baseline",
        "muse",
        "gcc-phat",
        "--source-height-mm",
        "30",
        "--out",
        str(out),
    ]
    assert _run(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_calls"] == 8
    for method in ("muse", "gcc_phat"):
        # the source height (30 mm) is the configured assumption, never the labels
        assert metrics["methods"][method]["median_mm"] < 2.0
        assert len(metrics["methods"][method]["errors_mm"]) == 8
    assert (out / "error_cdf.png").stat().st_size > 1000
    assert "gcc_phat" in capsys.readouterr().out


def test_evaluate_split_part_and_errors(vcl_file, tmp_path):
    split = tmp_path / "split.json"
    split.write_text(
        json.dumps({"datasets": [str(vcl_file)], "train": [[0, 0], [0, 1]], "val": [[0, 2]],
                    "test": [[0, 5], [0, 7]]})
    )  # fmt: skip
    out = tmp_path / "eval"
    argv = ["evaluate", "--data", str(vcl_file), "--baseline", "muse", "--split", str(split)]
    assert _run([*argv, "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["n_calls"] == 2
    with pytest.raises(InvalidInputError, match="--model / --baseline / --reference"):
        _run(["evaluate", "--data", str(vcl_file), "--out", str(out)])
    with pytest.raises(InvalidInputError, match="method"):
        _run(["evaluate", "--data", str(vcl_file), "--baseline", "nope", "--out", str(out)])


def test_evaluate_reference_reports_recall(vcl_file, tmp_path, capsys):
    out = tmp_path / "eval"
    # the calls themselves as reference: every call sits at a reference position
    assert _run(["evaluate", "--data", str(vcl_file), "--reference", str(vcl_file),
                 "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recall"]["test_calls_at_training_positions"] == 1.0
    assert metrics["methods"]["fingerprint"]["median_mm"] == 0.0
    assert "100% of the calls sit at a reference position" in capsys.readouterr().out
    # other positions as reference: nothing to recall, so the lookup errs
    other = _delays_file(tmp_path, seed=6)
    assert _run(["evaluate", "--data", str(vcl_file), "--reference", str(other),
                 "--out", str(out), "--overwrite"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recall"]["test_calls_at_training_positions"] == 0.0
    assert metrics["methods"]["fingerprint"]["median_mm"] > 10.0
