"""Cage files: the one description of a recording setup, and their errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

from napari_gerbil.errors import IncompatibleModelError, InvalidInputError
from napari_gerbil.io.cage import (
    BUILTIN_CAGES,
    PHYSICS_PANEL,
    Cage,
    builtin_cage,
    compare_geometry,
    is_cage_file,
    load_cage,
    save_cage,
)


def write(tmp_path, data, name="cage.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_builtin_cages_and_paper_default():
    paper = load_cage("paper")
    assert paper.name == "builtin:paper" and paper.n_mics == 4
    assert paper.dims_mm == (571.5, 355.6, 368.3)  # vocalocator's fitted cage
    np.testing.assert_allclose(paper.mics[0], [-265.10188, -127.62527, 289.68258])
    aim = -paper.mics / np.linalg.norm(paper.mics, axis=1, keepdims=True)
    np.testing.assert_allclose(paper.orientations(), aim, atol=1e-3)  # at the floor centre
    assert paper.mic_pattern_p == 0.75 and paper.scattering == 0.1
    assert paper.absorption == {"walls": 0.147, "floor": 0.636, "ceiling": 0.942}
    old = load_cage("omni-corner")  # the former default, kept as the hard variant
    assert old.dims_mm == (600.0, 400.0, 350.0) and old.mic_pattern_p == 1.0
    np.testing.assert_allclose(old.mics[0], [-275, -175, 340])
    assert old.scattering == 0.0 and load_cage("paper-diffuse").scattering == 0.9
    assert load_cage("paper-diffuse").with_changes(scattering=0.1).to_dict() == paper.to_dict()
    assert set(PHYSICS_PANEL) <= set(BUILTIN_CAGES)
    assert set(paper.band_absorption()) == {"walls", "floor", "ceiling"}
    for name in BUILTIN_CAGES:
        assert builtin_cage(name).n_mics >= 3
    assert load_cage(None).name == "builtin:paper"


def test_asymmetric_cage_round_trip(tmp_path, asymmetric_cage_file):
    path = asymmetric_cage_file
    cage = load_cage(path)
    assert cage.name == str(path) and cage.n_mics == 4 and cage.mic_pattern_p == 0.75
    ori = cage.orientations()
    np.testing.assert_allclose(np.linalg.norm(ori, axis=1), 1.0)
    assert (ori[:, 2] < 0).all()  # down
    assert is_cage_file(path)
    out = tmp_path / "copy.yaml"
    save_cage(cage, out)
    again = load_cage(out)
    assert again.to_dict() == cage.to_dict()
    assert cage.arena().n_mics == 4


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (
            {"mic_positions_mm": [[-400, 0, 100], [0, 0, 100], [100, 0, 100]]},
            "mic_positions_mm[0]",
            "inside",
        ),
        ({"mic_positions_mm": [[0, 0, 100], [10, 0, 100]]}, "mic_positions_mm", "3 to 24"),
        ({"mic_positions_mm": [[0, 0, 100]] * 25}, "mic_positions_mm", "3 to 24"),
        ({"mic_positions_mm": [[0, 0], [1, 1], [2, 2]]}, "mic_positions_mm", "[x, y, z]"),
        ({"mic_positions_mm": [[0, 0, 1], [0, 0, 1], [5, 5, 5]]}, "mic_positions_mm", "distinct"),
        (
            {"mic_orientations": [[0, 0, 0], [0, 0, -1], [0, 0, -1], [0, 0, -1]]},
            "mic_orientations[0]",
            "non-zero",
        ),
        ({"mic_orientations": [[0, 0, -1]]}, "mic_orientations", "one finite"),
        (
            {"absorption": {"walls": 1.5, "floor": 0.5, "ceiling": 0.5}},
            "absorption.walls",
            "0 .. 1",
        ),
        (
            {"absorption": {"walls": [0.1] * 7, "floor": 0.5, "ceiling": 0.5}},
            "absorption.walls",
            "8 octave",
        ),
        ({"absorption": {"walls": 0.1, "floor": 0.5}}, "absorption", "missing"),
        (
            {"absorption": {"walls": 0.1, "floor": 0.5, "ceiling": 0.2, "door": 0.1}},
            "absorption",
            "unknown",
        ),
        ({"absorption": 0.3}, "absorption", "mapping"),
        ({"dims_mm": [600, 400]}, "dims_mm", "3 positive"),
        ({"dims_mm": [600, -1, 300]}, "dims_mm", "3 positive"),
        ({"mic_pattern_p": 1.5}, "mic_pattern_p", "0 .. 1"),
        ({"mic_pattern_p": "omni"}, "mic_pattern_p", "a number"),
        ({"scattering": -0.1}, "scattering", "0 .. 1"),
        ({"temperature_c": float("nan")}, "temperature_c", "-20 .. 50"),
        ({"humidity_pct": 120}, "humidity_pct", "0 .. 100"),
        ({"walls": 0.2}, "walls", "cage keys"),
        ({"dims_mm": "big"}, "dims_mm", "numbers"),
    ],
)
def test_bad_cage_files_name_file_and_key(tmp_path, asymmetric_cage, change, key, words):
    path = write(tmp_path, {**asymmetric_cage, **change})
    with pytest.raises(InvalidInputError) as err:
        load_cage(path)
    assert err.value.source == str(path)
    assert err.value.field == key
    assert words in err.value.expected or words in str(err.value)


def test_unreadable_cage_files(tmp_path, asymmetric_cage):
    with pytest.raises(InvalidInputError, match="built-in cages"):
        load_cage(tmp_path / "missing.yaml")
    with pytest.raises(InvalidInputError, match="built-in cages"):
        load_cage("no-such-cage")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dims_mm: [1, 2\n")
    with pytest.raises(InvalidInputError, match="valid YAML"):
        load_cage(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInputError, match="mapping"):
        load_cage(bad)
    with pytest.raises(InvalidInputError, match="regular"):
        load_cage(tmp_path)
    missing = {k: v for k, v in asymmetric_cage.items() if k != "dims_mm"}
    with pytest.raises(InvalidInputError, match="dims_mm"):
        load_cage(write(tmp_path, missing))
    assert not is_cage_file(bad)


def test_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(InvalidInputError, match="valid YAML"):
        load_cage(path)


def alias_bomb(levels: int = 9) -> str:
    """A YAML "billion laughs": a few hundred bytes expanding to 9**levels strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k in range(1, levels):
        lines.append(f"a{k}: &a{k} [" + ",".join([f"*a{k - 1}"] * 9) + "]")
    lines += [f"dims_mm: *a{levels - 1}", f"mic_positions_mm: *a{levels - 1}"]
    return "\n".join(lines) + "\n"


def test_alias_bomb_cage_is_refused_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size < 600
    start = time.perf_counter()
    with pytest.raises(InvalidInputError, match="alias") as err:
        load_cage(path)
    assert time.perf_counter() - start < 2.0
    assert err.value.source == str(path)
    assert not is_cage_file(path)


def test_training_config_alias_bomb_and_size_are_refused(tmp_path):
    from napari_gerbil.training.config import TrainingConfig

    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    with pytest.raises(InvalidInputError, match="alias"):
        TrainingConfig.load(path)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 1_100_000 + "\n")
    with pytest.raises(InvalidInputError, match="at most") as err:
        load_cage(big)
    assert err.value.source == str(big)
    # a few aliases in a real file stay fine
    ok = tmp_path / "ok.yaml"
    ok.write_text("epochs: &e 3\nseed: *e\n")
    assert TrainingConfig.load(ok).epochs == 3


def test_compare_geometry_names_the_field():
    paper = builtin_cage("paper")
    same = paper.fingerprint()
    compare_geometry(same, same, "data.h5")
    compare_geometry(same, {"dims_mm": None, "mic_positions_mm": None}, "data.h5")  # unknown
    moved = np.asarray(paper.mic_positions_mm)
    moved[2, 0] += 1.5
    with pytest.raises(IncompatibleModelError) as err:
        compare_geometry(same, {**same, "mic_positions_mm": moved.tolist()}, "data.h5")
    assert err.value.field == "mic_positions_mm[2]" and err.value.source == "data.h5"
    moved[2, 0] -= 1.0  # 0.5 mm off: within the 1 mm tolerance
    compare_geometry(same, {**same, "mic_positions_mm": moved.tolist()}, "data.h5")
    with pytest.raises(IncompatibleModelError, match="arena_dims_mm"):
        compare_geometry(same, {**same, "dims_mm": [600, 410, 350]}, "data.h5")
    with pytest.raises(IncompatibleModelError, match="8 microphones"):
        compare_geometry(builtin_cage("paper8").fingerprint(), same, "data.h5")


def test_cage_is_a_config_with_one_set_of_keys():
    keys = set(Cage().to_dict())
    assert keys == {
        "dims_mm",
        "mic_positions_mm",
        "mic_orientations",
        "mic_pattern_p",
        "absorption",
        "scattering",
        "temperature_c",
        "humidity_pct",
        "mic_gains_db",
    }


@pytest.mark.parametrize(
    ("gains", "words"),
    [
        ([0.0, 1.0, 2.0], "4 finite gains"),
        ([0.0, 1.0, 2.0, 3.0, 4.0], "4 finite gains"),
        ([0.0, float("nan"), 0.0, 0.0], "4 finite gains"),
        ([0.0, float("inf"), 0.0, 0.0], "4 finite gains"),
        ([0.0, 0.0, 41.0, 0.0], "+-40 dB"),
        ([-45.0, 0.0, 0.0, 0.0], "+-40 dB"),
        ("loud", "numbers"),
    ],
)
def test_bad_mic_gains_name_file_and_key(tmp_path, asymmetric_cage, gains, words):
    path = write(tmp_path, {**asymmetric_cage, "mic_gains_db": gains})
    with pytest.raises(InvalidInputError) as err:
        load_cage(path)
    assert err.value.source == str(path)
    assert err.value.field == "mic_gains_db"
    assert words in err.value.expected or words in str(err.value)


def test_mic_gains_round_trip_and_reach_the_renderer(tmp_path, asymmetric_cage):
    from napari_gerbil.simulate.renderer import ImageSourceRenderer
    from napari_gerbil.simulate.room import RenderConfig, Room

    gains_db = [0.0, 6.0, -3.5, 40.0]
    path = write(tmp_path, {**asymmetric_cage, "mic_gains_db": gains_db})
    cage = load_cage(path)
    assert cage.mic_gains_db == gains_db
    copy = tmp_path / "copy.yaml"
    save_cage(cage, copy)
    assert load_cage(copy).to_dict() == cage.to_dict()
    plain = cage.with_changes(mic_gains_db=None)
    np.testing.assert_allclose(plain.mic_gains(), 1.0)
    linear = 10.0 ** (np.asarray(gains_db) / 20.0)
    np.testing.assert_allclose(Room.from_cage(cage).mic_gains, linear)
    np.testing.assert_allclose(Room.from_cage(plain).mic_gains, 1.0)
    # the rendered responses: channel k of the gained cage = gain k x the plain one's
    config = RenderConfig(max_order=2, specular_order=2)
    source = np.array([[40.0, -30.0, 40.0]])
    with_gains = ImageSourceRenderer(Room.from_cage(cage), 125000.0, config).rirs(source, seed=0)
    without = ImageSourceRenderer(Room.from_cage(plain), 125000.0, config).rirs(source, seed=0)
    ratio = np.linalg.norm(with_gains[0], axis=0) / np.linalg.norm(without[0], axis=0)
    np.testing.assert_allclose(ratio, linear, rtol=1e-4)
