"""``napari-gerbil cage plan``: microphone rigs compared on simulated sessions."""

from __future__ import annotations

import json

import pytest
import yaml

from napari_gerbil.cli.main import main
from napari_gerbil.io.cage import BUILTIN_CAGES, MIC_RIGS, builtin_cage


def test_builtin_rigs_of_4_8_and_16_microphones():
    assert [builtin_cage(r).n_mics for r in MIC_RIGS] == [4, 8, 16]
    paper, paper16 = builtin_cage("paper"), builtin_cage("paper16")
    assert paper16.dims_mm == paper.dims_mm and paper16.absorption == paper.absorption


@pytest.mark.slow
def test_cage_plan_at_smoke_size_writes_table_and_figure(tmp_path, capsys):
    rig = dict(BUILTIN_CAGES["paper"], mic_pattern_p=1.0)  # a user's own rig file
    rig_file = tmp_path / "omni_rig.yaml"
    rig_file.write_text(yaml.safe_dump(rig))
    out = tmp_path / "plan"
    args = ["cage", "plan", "paper8", str(rig_file), "--out", str(out), "--duration", "5",
            "--calibration-calls", "32", "--seed", "3", "--quiet"]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| paper8 | 8 | srp | 2 |" in printed and "| omni_rig | 4 | srp | 3 |" in printed
    plan = json.loads((out / "plan.json").read_text())
    assert list(plan["rigs"]) == ["paper8", "omni_rig"]
    for row in plan["rigs"].values():
        for k in (2, 3):
            r = row[f"{k}_animals"]
            assert r["n"] > 0 and set(r["by_distance_cm"]) == {"0-5", "5-10", "10-20", "20+"}
            assert sum(b["n"] for b in r["by_distance_cm"].values()) == r["n"]
        assert row["muse_median_error_mm"] > 0
    assert (out / "plan.png").stat().st_size > 5000
    assert "| rig | mics |" in (out / "plan.md").read_text()
    # a second run refuses to replace the plan, and leaves it as it was
    before = (out / "plan.json").read_text()
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "plan.json").read_text() == before


def _rig(tmp_path, name, **changes):
    data = dict(BUILTIN_CAGES["paper"], **changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"mic_positions_mm": [[0, 0, 100], [400, 0, 100], [0, 100, 100]]},
         "mic_positions_mm[1]", "strictly inside the cage"),
        ({"mic_positions_mm": [[0, 0, 100]], "mic_orientations": None},
         "mic_positions_mm", "3 to 24 microphones"),
        ({"mic_positions_mm": [], "mic_orientations": None},
         "mic_positions_mm", "3 to 24 microphones"),
        ({"mic_positions_mm": [[0, 0, 100], [10, 0, 100], [0, 0, 100]],
          "mic_orientations": None}, "mic_positions_mm", "distinct microphone positions"),
    ],
)  # fmt: skip
def test_bad_rigs_are_refused_with_one_clear_error(tmp_path, capsys, changes, field, expected):
    bad = _rig(tmp_path, "bad", **changes)
    out = tmp_path / "plan"
    assert main(["cage", "plan", "paper", bad, "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert bad in err and field in err and expected in err
    assert err.count("\n") <= 3  # one error, not a traceback
    assert not out.exists()  # refused before anything ran


def test_a_rig_named_twice_is_refused(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["cage", "plan", "paper", "paper", "--out", str(out), "--quiet"]) == 1
    assert "each rig once" in capsys.readouterr().err
    assert not out.exists()
