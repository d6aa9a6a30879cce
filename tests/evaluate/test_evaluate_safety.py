"""Issue 13 finding 9 (MUSE was given the calls' true median height) and evaluate's
output and split checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hostile_data import write_small_vcl
from napari_gerbil.cli.main import main
from napari_gerbil.evaluate import runner


@pytest.fixture
def heights_seen(monkeypatch):
    seen = []
    real = runner.run_baseline

    def spy(method, calls, dataset, **options):
        seen.append(options.get("source_height_mm"))
        return real(method, calls, dataset, **options)

    monkeypatch.setattr(runner, "run_baseline", spy)
    return seen


def test_baselines_never_see_the_true_heights(tmp_path, heights_seen):
    low = write_small_vcl(tmp_path / "low.h5", n_calls=4, height_mm=30.0)
    high = write_small_vcl(tmp_path / "high.h5", n_calls=4, height_mm=200.0)
    for data in (low, high):
        argv = ["evaluate", "--data", str(data), "--baseline", "muse"]
        assert main([*argv, "--out", str(tmp_path / data.stem)]) == 0
    assert heights_seen == [0.0, 0.0]  # the assumption `predict` makes, not the labels
    argv = ["evaluate", "--data", str(high), "--baseline", "muse", "--source-height-mm", "30"]
    assert main([*argv, "--out", str(tmp_path / "set")]) == 0
    assert heights_seen[-1] == 30.0


def test_evaluate_outputs_and_numbers(tmp_path, capsys):
    data = write_small_vcl(tmp_path / "d.h5", n_calls=4)
    out = tmp_path / "eval"
    argv = ["evaluate", "--data", str(data), "--baseline", "gcc-phat", "--out", str(out)]
    assert main(argv) == 0
    first = (out / "metrics.json").read_text()
    assert main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == first
    assert main([*argv, "--overwrite"]) == 0
    for bad in (["--max-calls", "-1"], ["--source-height-mm", "nan"]):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, *bad])
        assert exit_.value.code == 2
    # --out on top of the data file
    assert main(["evaluate", "--data", str(data), "--baseline", "muse", "--out", str(data)]) == 1
    assert "inputs are never replaced" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps({"datasets": "x", "train": [], "val": [], "test": []}),
        json.dumps({"datasets": ["a"], "train": [[0, -1]], "val": [], "test": []}),
        json.dumps({"datasets": ["a"], "train": [["x", 1]], "val": [], "test": []}),
        json.dumps({"datasets": ["a"], "train": [[3, 1]], "val": [], "test": []}),
        json.dumps({"datasets": ["a"], "train": []}),
    ],
)
def test_bad_split_files_give_one_line(tmp_path, capsys, content):
    data = write_small_vcl(tmp_path / "d.h5", n_calls=4)
    split = tmp_path / "split.json"
    split.write_text(content)
    argv = ["evaluate", "--data", str(data), "--baseline", "muse", "--split", str(split)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(split) in err


def test_split_of_another_file_version(tmp_path, capsys):
    data = write_small_vcl(tmp_path / "d.h5", n_calls=4)
    split = tmp_path / "split.json"
    split.write_text(
        json.dumps({"datasets": [str(data)], "train": [], "val": [], "test": [[0, 9]]})
    )
    argv = ["evaluate", "--data", str(data), "--baseline", "muse", "--split", str(split)]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 1
    assert "call indices below 4" in capsys.readouterr().err


def test_one_enormous_call_is_refused_before_reading(tmp_path, capsys):
    from napari_gerbil.io.arena import default_cage
    from napari_gerbil.io.vcl import write_vcl

    cage = default_cage()
    rng = np.random.default_rng(0)
    calls = [rng.standard_normal((900, 4)).astype(np.float32),
             rng.standard_normal((700_000, 4)).astype(np.float32)]  # fmt: skip
    data = write_vcl(
        tmp_path / "long.h5", calls, np.zeros((2, 1, 3)), node_names=["s"],
        sample_rate_hz=125000.0, arena_dims_mm=cage.dims_mm, mic_positions_mm=cage.mic_positions_mm,
    )  # fmt: skip
    argv = ["evaluate", "--data", str(data), "--baseline", "muse", "--out", str(tmp_path / "e")]
    assert main(argv) == 1
    assert "call 1 of 700000 samples" in capsys.readouterr().err
