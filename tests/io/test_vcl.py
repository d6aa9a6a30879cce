"""VCL datasets: reading vocalocator files as they are, writing, merging, validating."""

from __future__ import annotations

import os
import pickle

import h5py
import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.vcl import (
    VCLDataset,
    VCLWriter,
    check_compatible,
    merge_vcl,
    validate_vcl,
    write_vcl,
)


def test_write_then_read_round_trip(make_vcl, cage):
    path, calls, locations = make_vcl(n_calls=7)
    ds = VCLDataset(path)
    assert len(ds) == ds.n_calls == 7
    assert ds.n_channels == 4
    assert ds.sample_rate_hz == 125000.0
    np.testing.assert_array_equal(ds.arena_dims_mm, cage.dims_mm)
    np.testing.assert_array_equal(ds.mic_positions_mm, cage.mic_positions_mm)
    assert ds.node_names == ["nose"]
    assert ds.scenario == "speaker"
    assert ds.provenance == {"made_by": "test"}
    assert ds.stimulus_classes == [f"class{i % 3}" for i in range(7)]
    np.testing.assert_array_equal(ds.call_lengths_samples, [len(c) for c in calls])
    np.testing.assert_array_equal(ds.locations_mm, locations)
    np.testing.assert_array_equal(ds.source_xy_mm("nose"), locations[:, 0])
    for i, call in enumerate(calls):
        got = ds.call_audio(i)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, call)
    np.testing.assert_array_equal(ds.call_audio(-1), calls[-1])
    with pytest.raises(IndexError):
        ds.call_audio(7)
    with h5py.File(path) as f:
        assert f.attrs["napari_gerbil_format"] == "vcl"
    assert validate_vcl(path)["n_calls"] == 7


def test_plain_vocalocator_file_needs_no_metadata(plain_vcl):
    path, calls, locations = plain_vcl
    ds = VCLDataset(path)
    assert ds.n_calls == len(calls)
    assert ds.sample_rate_hz is None
    assert ds.arena_dims_mm is None and ds.mic_positions_mm is None
    assert ds.scenario is None and ds.stimulus_classes is None and ds.provenance == {}
    assert ds.node_names == ["nose", "head"]
    np.testing.assert_array_equal(ds.source_xy_mm("head"), locations[:, 1])
    np.testing.assert_array_equal(ds.call_audio(2), calls[2])
    assert validate_vcl(path)["sample_rate_hz"] is None


def test_old_dataset_names_are_accepted(tmp_path, calls_maker, write_plain):
    calls, xy = calls_maker(3)
    path = write_plain(tmp_path / "old.h5", calls, xy[:, None], old_names=True)
    ds = VCLDataset(path)
    assert ds.n_calls == 3
    np.testing.assert_array_equal(ds.call_audio(1), calls[1])
    validate_vcl(path)


def test_multi_animal_locations(tmp_path, calls_maker, cage):
    calls, xy = calls_maker(4)
    locs = np.stack([xy, -xy], axis=1)[:, :, None, :]  # (n, 2 animals, 1 node, 2)
    path = write_vcl(
        tmp_path / "multi.h5",
        calls,
        locs,
        node_names=["nose"],
        sample_rate_hz=125000,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
    )
    ds = VCLDataset(path)
    assert ds.is_multi_animal
    assert ds.locations_mm.shape == (4, 2, 1, 2)
    np.testing.assert_array_equal(ds.locations_mm[:, 1, 0], -xy)
    with pytest.raises(InvalidInputError, match="multi-animal"):
        ds.source_xy_mm()
    validate_vcl(path)


def test_pickle_after_access_reopens_in_the_copy(make_vcl):
    path, calls, _ = make_vcl()
    ds = VCLDataset(path)
    first = ds.call_audio(0)  # opens the file
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._file is None  # the handle did not travel
    np.testing.assert_array_equal(clone.call_audio(0), first)
    np.testing.assert_array_equal(clone.call_audio(3), calls[3])
    ds.close()
    np.testing.assert_array_equal(ds.call_audio(1), calls[1])  # reopens after close


class _FirstSamples:
    """Map-style dataset over a VCLDataset, as a torch training set would use it."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        audio = self.ds.call_audio(i)[:100]
        own_handle = self.ds._pid == os.getpid() != self.ds._parent_pid
        return audio, own_handle


def test_dataloader_workers_open_their_own_file(make_vcl):
    torch = pytest.importorskip("torch")
    path, calls, _ = make_vcl(n_calls=4)
    ds = VCLDataset(path)
    ds.call_audio(0)  # the parent has an open handle before the workers start
    ds._parent_pid = os.getpid()
    loader = torch.utils.data.DataLoader(
        _FirstSamples(ds), batch_size=2, num_workers=2, multiprocessing_context="fork"
    )
    batches = list(loader)
    audio = torch.cat([b[0] for b in batches]).numpy()
    np.testing.assert_array_equal(audio, np.stack([c[:100] for c in calls]))
    assert all(bool(b[1].all()) for b in batches)


def test_writer_streams_and_commits_atomically(tmp_path, calls_maker, cage):
    calls, xy = calls_maker(20)
    path = tmp_path / "stream.h5"
    with VCLWriter(
        path,
        4,
        node_names=["nose"],
        sample_rate_hz=125000,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
        buffer_samples=1000,  # several flushes, resizing the datasets
    ) as writer:
        for call, loc in zip(calls, xy, strict=True):
            writer.append(call, loc)
        assert not path.exists()  # nothing visible before commit
    ds = VCLDataset(path)
    assert ds.n_calls == 20 and ds.stimulus_classes is None
    np.testing.assert_array_equal(ds.call_audio(13), calls[13])
    np.testing.assert_array_equal(ds.source_xy_mm(), xy)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left
    validate_vcl(path)


def test_aborted_writer_leaves_nothing_and_keeps_the_old_file(make_vcl, calls_maker, cage):
    path, calls, _ = make_vcl()
    before = path.read_bytes()
    new_calls, xy = calls_maker(3)
    with (
        pytest.raises(RuntimeError, match="boom"),
        VCLWriter(
            path,
            4,
            node_names=["nose"],
            sample_rate_hz=125000,
            arena_dims_mm=cage.dims_mm,
            mic_positions_mm=cage.mic_positions_mm,
            buffer_samples=10,
        ) as writer,
    ):
        writer.append(new_calls[0], xy[0])
        raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]


def test_writer_rejects_bad_calls(tmp_path, cage):
    with VCLWriter(
        tmp_path / "w.h5",
        4,
        node_names=["nose"],
        sample_rate_hz=125000,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
    ) as writer:
        with pytest.raises(InvalidInputError, match="audio"):
            writer.append(np.zeros((10, 3)), [0, 0])  # wrong channel count
        with pytest.raises(InvalidInputError, match="finite"):
            writer.append(np.full((10, 4), np.nan), [0, 0])
        with pytest.raises(InvalidInputError, match="audio"):
            writer.append(np.zeros((0, 4)), [0, 0])  # zero-length call
        writer.append(np.ones((10, 4)), [0, 0])
        with pytest.raises(InvalidInputError, match="like the first call"):
            writer.append(np.ones((10, 4)), [0, 0, 5])
    with pytest.raises(InvalidInputError, match="mic_positions_mm"):
        VCLWriter(
            tmp_path / "x.h5",
            3,
            node_names=["n"],
            sample_rate_hz=125000,
            arena_dims_mm=cage.dims_mm,
            mic_positions_mm=cage.mic_positions_mm,
        )
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"]


def test_merge_concatenates_and_keeps_metadata(make_vcl, tmp_path):
    a, calls_a, loc_a = make_vcl("a.h5", n_calls=3, scenario="speaker")
    b, calls_b, loc_b = make_vcl("b.h5", n_calls=4, scenario="robot", stimulus=False)
    out = merge_vcl([a, b], tmp_path / "merged.h5", provenance={"why": "test"})
    ds = VCLDataset(out)
    assert ds.n_calls == 7
    for i, call in enumerate(calls_a + calls_b):
        np.testing.assert_array_equal(ds.call_audio(i), call)
    np.testing.assert_array_equal(ds.locations_mm, np.concatenate([loc_a, loc_b]))
    assert ds.stimulus_classes[:3] == ["class0", "class1", "class2"]
    assert ds.stimulus_classes[3:] == [""] * 4
    assert ds.scenario == "mixed"
    assert [m["n_calls"] for m in ds.provenance["merged_from"]] == [3, 4]
    assert ds.provenance["why"] == "test"
    validate_vcl(out)


def test_merge_refuses_mismatched_files(make_vcl, tmp_path, calls_maker, cage, plain_vcl):
    a, _, _ = make_vcl("a.h5")
    calls, xy = calls_maker(2)
    other_rate = write_vcl(
        tmp_path / "rate.h5",
        calls,
        xy[:, None],
        node_names=["nose"],
        sample_rate_hz=250000,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
    )
    with pytest.raises(InvalidInputError, match="sample_rate_hz") as err:
        merge_vcl([a, other_rate], tmp_path / "m.h5")
    assert "rate.h5" in str(err.value)
    other_nodes = write_vcl(
        tmp_path / "nodes.h5",
        calls,
        xy[:, None],
        node_names=["tail"],
        sample_rate_hz=125000,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
    )
    with pytest.raises(InvalidInputError, match="node_names"):
        merge_vcl([a, other_nodes], tmp_path / "m.h5")
    with pytest.raises(InvalidInputError, match="sample_rate_hz"):
        merge_vcl([a, plain_vcl[0]], tmp_path / "m.h5")  # unknown metadata
    assert not (tmp_path / "m.h5").exists()


def test_check_compatible(make_vcl):
    ds = VCLDataset(make_vcl()[0])
    ds.check_compatible(n_channels=4, sample_rate_hz=125000, arena_dims_mm=[600, 400, 350])
    with pytest.raises(InvalidInputError, match="n_channels") as err:
        ds.check_compatible(n_channels=8)
    assert "8 channels" in str(err.value) and "4 channels" in str(err.value)
    with pytest.raises(InvalidInputError, match="sample_rate_hz"):
        ds.check_compatible(sample_rate_hz=250000)
    with pytest.raises(InvalidInputError, match="arena_dims_mm"):
        ds.check_compatible(arena_dims_mm=[1000, 400, 350])
    # unknown values pass
    check_compatible("x", n_channels=4, sample_rate_hz=None, expected_sample_rate_hz=125000)


# ------------------------------------------------------------------------------------
# validation: one test per malformation
# ------------------------------------------------------------------------------------


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def _replace(f, name, data):
    attrs = dict(f[name].attrs)
    del f[name]
    f[name] = data
    f[name].attrs.update(attrs)


def _expect_invalid(path, field, *fragments):
    with pytest.raises(InvalidInputError) as err:
        validate_vcl(path)
    msg = str(err.value)
    assert str(path) in msg and field in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return err.value


def test_missing_file_and_not_hdf5(tmp_path):
    _expect_invalid(tmp_path / "nope.h5", "<file>", "no such file")
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    _expect_invalid(bad, "<file>", "HDF5")


@pytest.mark.parametrize("name", ["audio", "length_idx"])
def test_missing_dataset(plain_vcl, name):
    path = _edit(plain_vcl[0], lambda f: f.__delitem__(name))
    _expect_invalid(path, f"/{name}", "no such dataset")


def test_missing_locations(plain_vcl):
    path = _edit(plain_vcl[0], lambda f: f.__delitem__("locations"))
    _expect_invalid(path, "/locations", "no such dataset")
    assert validate_vcl(path, require_locations=False)["n_calls"] == 5
    assert not VCLDataset(path).has_locations


def test_audio_wrong_shape_and_dtype(plain_vcl):
    path = plain_vcl[0]
    with h5py.File(path) as f:
        audio = f["audio"][()]
    _edit(path, lambda f: _replace(f, "audio", audio.reshape(-1)))
    _expect_invalid(path, "/audio", "(total_samples, n_channels)", f"shape ({audio.size},)")
    _edit(path, lambda f: _replace(f, "audio", audio.astype("S4")))
    _expect_invalid(path, "/audio", "numeric")


def test_length_idx_wrong_dtype(plain_vcl):
    path = plain_vcl[0]
    with h5py.File(path) as f:
        lidx = f["length_idx"][()]
    _edit(path, lambda f: _replace(f, "length_idx", lidx.astype(float)))
    _expect_invalid(path, "/length_idx", "integer", "float64")


def test_length_idx_not_starting_at_zero(plain_vcl):
    path = plain_vcl[0]
    _edit(path, lambda f: f["length_idx"].__setitem__(0, 5))
    _expect_invalid(path, "/length_idx", "first offset 0", "5")


def test_length_idx_not_monotone(plain_vcl):
    path = plain_vcl[0]
    with h5py.File(path) as f:
        lidx = f["length_idx"][()]
    lidx[2], lidx[3] = lidx[3], lidx[2]
    _edit(path, lambda f: f["length_idx"].__setitem__(slice(None), lidx))
    _expect_invalid(path, "/length_idx", "non-decreasing", "index 3")


def test_zero_length_call(plain_vcl):
    path = plain_vcl[0]
    with h5py.File(path) as f:
        lidx = f["length_idx"][()]
    lidx[2] = lidx[1]
    _edit(path, lambda f: f["length_idx"].__setitem__(slice(None), lidx))
    _expect_invalid(path, "/length_idx", "zero-length call 1")


def test_length_idx_not_ending_at_audio_length(plain_vcl):
    path = plain_vcl[0]
    with h5py.File(path) as f:
        total = f["audio"].shape[0]
    _edit(path, lambda f: f["length_idx"].__setitem__(-1, total - 7))
    _expect_invalid(path, "/length_idx", f"audio length {total}", str(total - 7))


def test_nan_and_inf_audio_found_in_chunks(plain_vcl):
    path = plain_vcl[0]

    def poison(f):
        f["audio"][f["audio"].shape[0] - 3, 2] = np.inf

    _edit(path, poison)
    with pytest.raises(InvalidInputError, match="NaN/inf at sample") as err:
        validate_vcl(path, chunk_samples=128)  # forces many chunks
    total = VCLDataset(path).total_samples
    assert f"sample {total - 3}" in str(err.value)


def test_locations_wrong_rows_shape_or_values(plain_vcl):
    path = plain_vcl[0]
    with h5py.File(path) as f:
        loc = f["locations"][()]
    _edit(path, lambda f: _replace(f, "locations", loc[:-1]))
    _expect_invalid(path, "/locations", "5 rows", "4 rows")
    _edit(path, lambda f: _replace(f, "locations", loc[..., :1]))
    _expect_invalid(path, "/locations", "2|3")
    bad = loc.copy()
    bad[1, 0, 0] = np.nan
    _edit(path, lambda f: _replace(f, "locations", bad))
    _expect_invalid(path, "/locations", "finite", "call 1")


def test_locations_outside_the_arena(make_vcl):
    path, _, loc = make_vcl()
    inside = loc.copy()
    inside[2, 0, 0] = 305.0  # 5 mm past the wall: within the tolerance
    _edit(path, lambda f: f["locations"].__setitem__(slice(None), inside))
    validate_vcl(path)
    outside = loc.copy()
    outside[4, 0, 1] = -260.0  # 60 mm past the y wall
    _edit(path, lambda f: f["locations"].__setitem__(slice(None), outside))
    _expect_invalid(path, "/locations", "inside the arena", "call 4")
    validate_vcl(path, tolerance_mm=100.0)


def test_node_names_mismatch(plain_vcl):
    path = _edit(plain_vcl[0], lambda f: _replace(f, "node_names", np.array([b"nose"])))
    _expect_invalid(path, "/node_names", "2 names", "1 names")


def test_channel_count_not_matching_mics(make_vcl):
    path, _, _ = make_vcl()

    def three_mics(f):
        f.attrs["mic_positions_mm"] = f.attrs["mic_positions_mm"][:3]

    _edit(path, three_mics)
    _expect_invalid(path, "mic_positions_mm", "one microphone per audio channel (4)", "3")
    with pytest.raises(InvalidInputError, match="mic_positions_mm"):
        len(VCLDataset(path))  # the lazy reader checks it too


def test_bad_sample_rate_attribute(make_vcl):
    path = _edit(make_vcl()[0], lambda f: f.attrs.__setitem__("sample_rate_hz", -1.0))
    _expect_invalid(path, "sample_rate_hz", "positive")


def test_stimulus_class_wrong_length(make_vcl):
    path = _edit(make_vcl()[0], lambda f: _replace(f, "stimulus_class", np.array([b"a", b"b"])))
    _expect_invalid(path, "/stimulus_class", "(6,)")


def test_failed_writer_setup_leaves_nothing(tmp_path, cage):
    with pytest.raises(TypeError):  # provenance that is not JSON-serializable as keys
        VCLWriter(
            tmp_path / "w.h5",
            4,
            node_names=["nose"],
            sample_rate_hz=125000,
            arena_dims_mm=cage.dims_mm,
            mic_positions_mm=cage.mic_positions_mm,
            provenance={("tuple", "key"): 1},
        )
    assert list(tmp_path.iterdir()) == []
    writer = VCLWriter(
        tmp_path / "w.h5",
        4,
        node_names=["nose"],
        sample_rate_hz=125000,
        arena_dims_mm=cage.dims_mm,
        mic_positions_mm=cage.mic_positions_mm,
    )
    writer.abort()
    writer.abort()  # idempotent
    writer.close()  # nothing to commit after an abort
    assert list(tmp_path.iterdir()) == []
