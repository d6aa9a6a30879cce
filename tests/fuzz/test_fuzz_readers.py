"""Fuzz every reader with damaged copies of valid files (issue 13).

Each reader gets a valid base file (VCL dataset, session, recording, pose file, model
directory, call table, prediction file) and hypothesis applies one mutation: an HDF5
dataset or attribute deleted, retyped (text, bytes), reshaped, truncated, emptied, or
filled with NaN / inf / negative / huge values; a JSON field of a manifest replaced; a
byte range of the file overwritten or the file truncated. The reader must then either
work or raise :class:`~napari_gerbil.errors.GerbilError`; ``napari-gerbil info`` and
``validate`` must exit 0 or 1 with one line and no traceback. Mutations that make a
file certainly invalid must make ``validate`` exit 1.

Bounded: small ``max_examples`` per reader and ``deadline=None``; the whole module runs
in well under a minute. New readers (e.g. the lead's cage files) register in
:data:`READERS` with a base-file builder and a reading function.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile_data import (
    train_tiny_model,
    write_poses_h5,
    write_small_vcl,
    write_wav_session,
)
from napari_gerbil.cli.main import main
from napari_gerbil.errors import GerbilError

pytestmark = pytest.mark.fuzz

#: Examples per reader (raise GERBIL_FUZZ_EXAMPLES locally to search harder).
EXAMPLES = int(os.environ.get("GERBIL_FUZZ_EXAMPLES", "25"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

MUTATIONS = (
    "delete", "text", "bytes", "nan", "inf", "negative", "huge", "empty", "scalar",
    "extra_dim", "flatten", "truncate", "zero",
)  # fmt: skip


# ---------------------------------------------------------------------------------------
# base files (built once per test session)
# ---------------------------------------------------------------------------------------


@dataclass
class Reader:
    """A reader under fuzz: how to build its base input and how to read it."""

    build: Callable[[Path], Path]
    read: Callable[[Path], object]
    hdf5: bool = True
    #: (object path, attribute or None, mutation) that make the file certainly invalid
    must_fail: list[tuple[str, str | None, str]] = field(default_factory=list)


def _read_vcl(path: Path) -> None:
    from napari_gerbil.io.vcl import VCLDataset, validate_vcl

    validate_vcl(path)
    with VCLDataset(path) as ds:
        for i in range(ds.n_calls):
            ds.call_audio(i)
        _ = ds.locations_mm, ds.sample_rate_hz, ds.mic_positions_mm, ds.provenance
        if ds.has_locations and not ds.is_multi_animal:
            ds.source_xy_mm(0)


def _read_session(path: Path) -> None:
    from napari_gerbil.io.checks import check_session
    from napari_gerbil.io.session import load_session

    s = load_session(path)
    check_session(s)
    s.calls_table()
    s.effective_attribution()


def _build_session(root: Path) -> Path:
    poses = write_poses_h5(root / "poses.h5", n_frames=30)
    return write_wav_session(
        root, calls=((0, 500), (1000, 2000), (20000, 30000)), video_frames=30, tracks=poses
    )


def _build_recording(root: Path) -> Path:
    path = root / "rec.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["audio"] = rng.standard_normal((5000, 4)).astype(np.float32)
        f["audio"].attrs["sample_rate_hz"] = 125000.0
    return path


def _read_recording(path: Path) -> None:
    from napari_gerbil.io.audio import AudioSource

    src = AudioSource.open(path)
    src.read(0, min(src.n_samples, 4096))
    src.read_seconds(0.0, 0.01)


def _read_poses(path: Path) -> None:
    from napari_gerbil.io.tracks import load_poses

    poses = load_poses(path)
    poses.at_frames(np.arange(5))
    _ = poses.rc_px


def _build_slp(root: Path) -> Path:
    from napari_gerbil.simulate.slp_writer import write_tracked_slp

    xy = np.random.default_rng(0).uniform(10, 30, size=(8, 2, 2, 2))
    xy[3, 1] = np.nan  # a gap
    return write_tracked_slp(
        root / "poses.slp", xy, ["nose", "head"], [("nose", "head")], ["a", "b"], "v.mp4"
    )


def _build_truth(root: Path) -> Path:
    """A small ``*.truth.h5`` as ``simulate session`` writes it (3 calls, 2 animals)."""
    from napari_gerbil.simulate.session import NODE_NAMES
    from napari_gerbil.simulate.truth import TRUTH_FORMAT

    path = root / "s.truth.h5"
    with h5py.File(path, "w") as f:
        f.attrs["napari_gerbil_format"] = TRUTH_FORMAT
        f.attrs["animal_names"] = ["animal0", "animal1"]
        f.attrs["node_names"] = list(NODE_NAMES)
        f.attrs["sample_rate_hz"] = 125000.0
        f["animal"] = np.array([0, 1, 0])
        f["emit_sample"] = np.array([100, 5000, 9000])
        f["start_sample"] = np.array([100, 5000, 9000])
        f["stop_sample"] = np.array([900, 6000, 9800])
        f["source_mm"] = np.zeros((3, 3))
        f["heading_rad"] = np.zeros(3)
        f["stimulus_class"] = np.array(["a", "b", "a"], dtype=h5py.string_dtype())
        f["poses_mm"] = np.zeros((4, 2, len(NODE_NAMES), 3), np.float32)
    return path


def _read_truth(path: Path) -> None:
    from napari_gerbil.simulate.truth import load_truth

    load_truth(path)


def _build_predictions(root: Path) -> Path:
    from napari_gerbil.model.predict import predict_file

    data = write_small_vcl(root / "pd.h5", n_calls=4)
    out = root / "pred.h5"
    predict_file(data, out, baseline="gcc-phat")
    return out


def _read_predictions(path: Path) -> None:
    from napari_gerbil.cli._describe import describe_predictions

    describe_predictions(path)


READERS: dict[str, Reader] = {
    "vcl": Reader(
        lambda root: write_small_vcl(root / "d.h5", n_calls=6),
        _read_vcl,
        must_fail=[
            ("audio", None, "nan"),
            ("audio", None, "inf"),
            ("audio", None, "text"),
            ("audio", None, "zero"),
            ("length_idx", None, "negative"),
            ("length_idx", None, "truncate"),
            ("length_idx", None, "nan"),
            ("locations", None, "nan"),
            ("locations", None, "huge"),
            ("locations", None, "truncate"),
            ("locations", None, "text"),
            ("/", "sample_rate_hz", "negative"),
            ("/", "sample_rate_hz", "nan"),
            ("/", "arena_dims_mm", "negative"),
            ("/", "mic_positions_mm", "truncate"),
        ],
    ),
    "session": Reader(
        _build_session,
        _read_session,
        must_fail=[
            ("calls/start_sample", None, "truncate"),
            ("calls/stop_sample", None, "huge"),
            ("attribution/user/animal", None, "huge"),
            ("arena/dims_mm", None, "nan"),
            ("arena/mic_positions_mm", None, "truncate"),
            ("audio", "sample_rate_hz", "negative"),
            ("audio", "n_channels", "huge"),
            ("audio", "n_samples", "negative"),
            ("/", "schema_version", "huge"),
            ("audio/file0", "checksum", "text"),
            ("timing", "fps", "negative"),
        ],
    ),
    "recording": Reader(
        _build_recording,
        _read_recording,
        must_fail=[("audio", None, "text"), ("audio", "sample_rate_hz", "negative")],
    ),
    "poses": Reader(
        lambda root: write_poses_h5(root / "poses.h5", n_frames=12),
        _read_poses,
        must_fail=[("tracks", None, "text"), ("tracks", None, "flatten")],
    ),
    "poses_slp": Reader(
        _build_slp,
        _read_poses,
        must_fail=[("frames", None, "text"), ("pred_points", None, "text")],
    ),
    "truth": Reader(
        _build_truth,
        _read_truth,
        must_fail=[("animal", None, "text"), ("source_mm", None, "flatten")],
    ),
    "predictions": Reader(
        _build_predictions,
        _read_predictions,
        must_fail=[("point_predictions", None, "flatten"), ("errors_mm", None, "truncate")],
    ),
}


@pytest.fixture(scope="session")
def bases(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name, reader in READERS.items():
        root = tmp_path_factory.mktemp(f"fuzz_{name}")
        out[name] = reader.build(root)
    return out


# ---------------------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------------------


def _targets(path: Path) -> list[tuple[str, str | None]]:
    """Every dataset and every attribute of an HDF5 file, in a stable order."""
    found: list[tuple[str, str | None]] = []
    with h5py.File(path, "r") as f:
        found += [("/", a) for a in sorted(f.attrs)]

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                found.append((name, None))
            found.extend((name, a) for a in sorted(obj.attrs))

        f.visititems(visit)
    return found


def _mutated(value, how: str):
    arr = np.asarray(value)
    numeric = arr.dtype.kind in "fiub"
    if how == "text":
        if arr.ndim == 0:
            return "not a number"
        return np.array(["x"] * max(arr.size, 1), dtype=h5py.string_dtype())
    if how == "bytes":
        return np.bytes_(b"\xff\xfe garbage")
    if how == "empty":
        return np.zeros((0,) + arr.shape[1:], dtype=arr.dtype if numeric else float)
    if how == "scalar":
        return np.float64(3.0)
    if how == "extra_dim":
        return arr[..., None]
    if how == "flatten":
        return arr.reshape(-1)
    if how == "truncate":
        return arr[: max(arr.shape[0] // 2, 1) - 1] if arr.ndim else arr
    if not numeric:
        return np.float64({"nan": np.nan, "inf": np.inf, "negative": -1.0}.get(how, 1e300))
    out = arr.astype(np.float64) if how in ("nan", "inf") else arr.copy()
    flat = out.reshape(-1) if out.ndim else out
    if how == "nan":
        if out.ndim:
            flat[len(flat) // 2] = np.nan
        else:
            out = np.float64(np.nan)
    elif how == "inf":
        if out.ndim:
            flat[len(flat) // 2] = np.inf
        else:
            out = np.float64(np.inf)
    elif how == "negative":
        out = -np.abs(out.astype(np.float64) + 1) if out.dtype.kind in "ub" else -np.abs(out) - 1
    elif how == "huge":
        out = np.full_like(out, np.iinfo(np.int64).max if out.dtype.kind in "iu" else 1e300)
    elif how == "zero":
        out = np.zeros_like(out)
    return out


def _storable(value):
    """h5py stores text as its string dtype, not numpy's fixed-width unicode."""
    arr = np.asarray(value)
    if arr.dtype.kind in "UO" and arr.ndim:
        return np.array([str(v) for v in arr.reshape(-1)], dtype=h5py.string_dtype()).reshape(
            arr.shape
        )
    if arr.dtype.kind == "U":
        return str(arr)
    return value


def mutate_h5(path: Path, target: tuple[str, str | None], how: str) -> None:
    """Apply one mutation to a dataset (attribute None) or an attribute, in place."""
    name, attr = target
    with h5py.File(path, "r+") as f:
        obj = f[name]
        if attr is not None:
            if how == "delete":
                del obj.attrs[attr]
            else:
                obj.attrs[attr] = _storable(_mutated(obj.attrs[attr], how))
            return
        if how == "delete":
            del f[name]
            return
        new = _storable(_mutated(obj[()], how))
        attrs = dict(obj.attrs)
        del f[name]
        f[name] = new
        for k, v in attrs.items():
            f[name].attrs[k] = v


def damage_bytes(path: Path, offset_fraction: float, length: int, truncate: bool) -> None:
    data = bytearray(path.read_bytes())
    at = int(offset_fraction * (len(data) - 1))
    if truncate:
        path.write_bytes(bytes(data[:at]))
        return
    data[at : at + length] = bytes((b ^ 0x5A) for b in data[at : at + length])
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------------------------------
# the checks
# ---------------------------------------------------------------------------------------


def _expect_clean(read: Callable[[Path], object], path: Path, capsys) -> bool:
    """Read with the library and the CLI; True when the input was accepted everywhere."""
    try:
        read(path)
        library_ok = True
    except GerbilError:
        library_ok = False
    statuses = []
    for cmd in ("info", "validate"):
        status = main([cmd, str(path)])
        err = capsys.readouterr().err.strip()
        assert status in (0, 1), f"{cmd} {path}: exit {status}: {err}"
        assert "internal error" not in err and "Traceback" not in err, err
        if status:
            assert len(err.splitlines()) == 1, err
        statuses.append(status)
    return library_ok and statuses[1] == 0


def _copy(base: Path, tmp: Path) -> Path:
    """A fresh copy of a base input (sessions: with their referenced files)."""
    folder = tmp / f"case{len(list(tmp.iterdir()))}"
    shutil.copytree(base.parent, folder)
    return folder / base.name


@pytest.mark.parametrize("kind", sorted(READERS))
def test_fuzz_hdf5_fields(kind, bases, tmp_path, capsys):
    reader = READERS[kind]
    targets = _targets(bases[kind])

    @FUZZ
    @given(target=st.sampled_from(targets), how=st.sampled_from(MUTATIONS))
    def run(target, how):
        path = _copy(bases[kind], tmp_path)
        mutate_h5(path, target, how)
        _expect_clean(reader.read, path, capsys)

    run()


@pytest.mark.parametrize("kind", sorted(READERS))
def test_certainly_invalid_files_fail_validate(kind, bases, tmp_path, capsys):
    for target_name, attr, how in READERS[kind].must_fail:
        path = _copy(bases[kind], tmp_path)
        mutate_h5(path, (target_name, attr), how)
        assert not _expect_clean(READERS[kind].read, path, capsys), (target_name, attr, how)
        assert main(["validate", str(path)]) == 1, (target_name, attr, how)
        capsys.readouterr()


@pytest.mark.parametrize("kind", sorted(READERS))
def test_fuzz_corrupt_bytes(kind, bases, tmp_path, capsys):
    reader = READERS[kind]

    @settings(FUZZ, max_examples=max(EXAMPLES // 2, 5))
    @given(
        where=st.floats(0.0, 1.0),
        length=st.integers(1, 4096),
        truncate=st.booleans(),
    )
    def run(where, length, truncate):
        path = _copy(bases[kind], tmp_path)
        damage_bytes(path, where, length, truncate)
        _expect_clean(reader.read, path, capsys)

    run()


# ---------------------------------------------------------------------------------------
# model directories: manifest fields and checkpoint bytes
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz_model")
    data = write_small_vcl(root / "d.h5", n_calls=16)
    return train_tiny_model(data, root / "tiny")


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.integers(-5, 5), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _read_model(path: Path) -> None:
    from napari_gerbil.model.ensemble import load_ensemble

    ens = load_ensemble(path)
    ens.predict([np.random.default_rng(0).standard_normal((900, ens.metadata.n_channels))])


def test_fuzz_manifest_fields(model_dir, tmp_path, capsys):
    keys = sorted(json.loads((model_dir / "manifest.json").read_text()))

    @FUZZ
    @given(key=st.sampled_from([*keys, "members[0].file", "members[0].sha256"]), value=JSON_VALUES)
    def run(key, value):
        path = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        shutil.copytree(model_dir, path)
        manifest = json.loads((path / "manifest.json").read_text())
        if key.startswith("members[0]."):
            manifest["members"][0][key.split(".")[1]] = value
        else:
            manifest[key] = value
        (path / "manifest.json").write_text(json.dumps(manifest))
        _expect_clean(_read_model, path, capsys)

    run()


def test_fuzz_checkpoint_bytes(model_dir, tmp_path, capsys):
    @settings(FUZZ, max_examples=max(EXAMPLES // 2, 5))
    @given(where=st.floats(0.0, 1.0), length=st.integers(1, 512), truncate=st.booleans())
    def run(where, length, truncate):
        path = tmp_path / f"m{len(list(tmp_path.iterdir()))}"
        shutil.copytree(model_dir, path)
        damage_bytes(path / "member_00" / "best.pt", where, length, truncate)
        accepted = _expect_clean(_read_model, path, capsys)
        assert not accepted  # the checksum no longer matches the manifest

    run()


# ---------------------------------------------------------------------------------------
# call tables (CSV / TSV of start and stop seconds)
# ---------------------------------------------------------------------------------------

CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(2**70), 2**70).map(str),
    st.text(max_size=6),
)


def test_fuzz_call_tables(tmp_path):
    from napari_gerbil.signal.segments import read_segments_csv

    @FUZZ
    @given(
        header=st.sampled_from(
            ["start,stop", "onset\toffset", "Begin Time (s),End Time (s)", "a,b"]
        ),
        rows=st.lists(st.tuples(CELLS, CELLS), max_size=5),
        raw=st.binary(max_size=40),
    )
    def run(header, rows, raw):
        sep = "\t" if "\t" in header else ","
        text = header + "\n" + "\n".join(f"{a}{sep}{b}" for a, b in rows)
        path = tmp_path / "calls.csv"
        path.write_bytes(text.encode("utf-8", "surrogatepass") + raw)
        try:
            start, stop = read_segments_csv(path, 125000.0)
        except GerbilError:
            return
        assert (start >= 0).all() and (stop > start).all()  # never a wrapped index

    run()


# ---------------------------------------------------------------------------------------
# cage files (io.cage, the lead's): the hook — each key replaced by any YAML value
# ---------------------------------------------------------------------------------------


def test_fuzz_cage_file_fields(tmp_path, capsys):
    yaml = pytest.importorskip("yaml")
    cage_mod = pytest.importorskip("napari_gerbil.io.cage")
    base = tmp_path / "base.yaml"
    cage_mod.save_cage(cage_mod.builtin_cage("paper"), base)
    data = yaml.safe_load(base.read_text())

    @FUZZ
    @given(key=st.sampled_from(sorted(data)), value=JSON_VALUES)
    def run(key, value):
        path = tmp_path / "cage.yaml"
        path.write_text(yaml.safe_dump({**data, key: value}))
        for cmd in ("info", "validate"):
            status = main([cmd, str(path)])
            err = capsys.readouterr().err.strip()
            assert status in (0, 1) and "internal error" not in err, err
            assert status == 0 or len(err.splitlines()) == 1, err
        try:
            cage = cage_mod.load_cage(path)
        except GerbilError:
            return
        assert np.isfinite(cage.dims).all() and (cage.dims > 0).all()

    run()
