"""Issue 13 finding 8: malformed model directories are refused by ``validate`` with the
field at fault, and never crash ``predict``."""

from __future__ import annotations

import json
import shutil

import pytest

from hostile_data import TINY_LENGTH, train_tiny_model, write_small_vcl
from napari_gerbil.cli.main import main
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.model.ensemble import (
    load_ensemble,
    save_checkpoint,
    sha256_file,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("modeldir")
    data = write_small_vcl(root / "d.h5", n_calls=16)
    return data, train_tiny_model(data, root / "tiny")


def _edit_manifest(model, tmp_path, change):
    copy = shutil.copytree(model, tmp_path / "m")
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def _set(key, value):
    def change(m):
        m[key] = value

    return change


def _member(key, value):
    def change(m):
        m["members"][0][key] = value

    return change


CASES = {
    "members empty": (_set("members", []), "members"),
    "members not a list": (_set("members", "member_00/best.pt"), "members"),
    "member not an object": (_set("members", [3]), r"members\[0\]"),
    "n_channels a string": (_set("n_channels", "4"), "n_channels"),
    "n_channels negative": (_set("n_channels", -4), "n_channels"),
    "sample rate text": (_set("sample_rate_hz", "fast"), "sample_rate_hz"),
    "arena negative": (_set("arena_dims_mm", [-600, 400, 350]), "arena_dims_mm"),
    "label scale zero": (_set("label_scale_mm", 0), "label_scale_mm"),
    "input length negative": (_set("input_length_samples", -1024), "input_length_samples"),
    "temperature negative": (_set("temperature", -1.0), "temperature"),
    "member path escapes": (_member("file", "../../etc/passwd"), r"members\[0\].file"),
    "member sha wrong type": (_member("sha256", 123), r"members\[0\].sha256"),
    "mics wrong shape": (_set("mic_positions_mm", [[0, 0, 0]]), "mic_positions_mm"),
    "n_members lies": (_set("n_members", 5), "n_members"),
    "format missing": (_set("format", None), "format"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_manifest_is_refused_by_validate_and_predict(built, tmp_path, capsys, case):
    data, model = built
    change, field = CASES[case]
    bad = _edit_manifest(model, tmp_path, change)
    with pytest.raises(InvalidInputError, match=field) as err:
        load_ensemble(bad)
    assert "manifest.json" in str(err.value) or str(bad) in str(err.value)
    assert main(["validate", str(bad)]) == 1
    err_text = capsys.readouterr().err.strip()
    assert len(err_text.splitlines()) == 1 and "Traceback" not in err_text
    out = tmp_path / "p.h5"
    assert main(["predict", "--model", str(bad), "--data", str(data), "--out", str(out)]) == 1
    assert not out.exists()


def test_checkpoint_of_another_architecture_is_named(built, tmp_path):
    from napari_gerbil.model.network import build_network
    from napari_gerbil.model.presets import get_preset

    _, model = built
    bad = shutil.copytree(model, tmp_path / "m")
    member = bad / "member_00" / "best.pt"
    # same config recorded, weights of a bigger network
    import torch

    payload = torch.load(member, weights_only=True)
    other = build_network(get_preset("fast", input_length_samples=TINY_LENGTH))
    torch.save({"network": payload["network"], "state_dict": other.state_dict()}, member)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["members"][0]["sha256"] = sha256_file(member)
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInputError, match="state_dict") as err:
        load_ensemble(bad)
    assert str(member) in str(err.value) and "tiny" in str(err.value)


def test_members_of_different_architectures_are_refused(built, tmp_path):
    from napari_gerbil.model.network import build_network
    from napari_gerbil.model.presets import get_preset

    _, model = built
    bad = shutil.copytree(model, tmp_path / "m")
    (bad / "member_01").mkdir()
    net = build_network(get_preset("tiny", input_length_samples=2 * TINY_LENGTH))
    save_checkpoint(bad / "member_01" / "best.pt", net)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["members"].append(
        {"file": "member_01/best.pt", "sha256": sha256_file(bad / "member_01/best.pt"), "seed": 1}
    )
    manifest["n_members"] = 2
    (bad / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidInputError, match="architecture of member 0"):
        load_ensemble(bad)


def test_truncated_or_non_checkpoint_member(built, tmp_path):
    _, model = built
    for content in (b"", b"not a zip", b"PK\x03\x04garbage"):
        bad = shutil.copytree(model, tmp_path / f"m{len(content)}")
        member = bad / "member_00" / "best.pt"
        member.write_bytes(content)
        with pytest.raises(InvalidInputError, match="best.pt"):
            load_ensemble(bad, verify=False)
    nan_json = _edit_manifest(model, tmp_path / "j", lambda m: None)
    (nan_json / "manifest.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="valid JSON"):
        load_ensemble(nan_json)
    (nan_json / "manifest.json").write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="JSON object"):
        load_ensemble(nan_json)
