"""Lazy, frame-accurate video reading."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.video import VideoReader, write_video

N_FRAMES = 60


def _frame(i: int) -> np.ndarray:
    """A frame whose brightness encodes its index (survives lossy coding)."""
    image = np.full((48, 64, 3), 20 + 3 * i, np.uint8)
    image[:8, : 1 + i] = 255  # a bar whose length is the index as well
    return image


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return write_video(path, (_frame(i) for i in range(N_FRAMES)), fps=30.0)


def _index_of(image: np.ndarray) -> int:
    return int(round((float(image[16:, :, :].mean()) - 20) / 3))


def test_shape_dtype_and_fps(video_path):
    reader = VideoReader(video_path)
    assert reader.shape == (N_FRAMES, 48, 64, 3)
    assert reader.dtype == np.uint8 and reader.ndim == 4 and len(reader) == N_FRAMES
    assert reader.fps == pytest.approx(30.0)


def test_random_access_is_frame_accurate(video_path):
    reader = VideoReader(video_path, cache_frames=2)
    order = [37, 3, 59, 0, 21, 22, 10, 45, 44]
    for i in order:
        assert _index_of(reader[i]) == i
    assert reader.n_seeks >= 4  # jumps seek instead of decoding from the start


def test_sequential_steps_do_not_seek(video_path):
    reader = VideoReader(video_path)
    reader[5]
    seeks = reader.n_seeks
    for i in range(6, 30):
        assert _index_of(reader[i]) == i
    assert reader.n_seeks == seeks


def test_indexing_forms(video_path):
    reader = VideoReader(video_path)
    assert reader[-1].shape == (48, 64, 3)
    assert _index_of(reader[-1]) == N_FRAMES - 1
    crop = reader[12, 10:20, 5:9]
    assert crop.shape == (10, 4, 3)
    stack = reader[2:8:2]
    assert stack.shape == (3, 48, 64, 3)
    assert [_index_of(f) for f in stack] == [2, 4, 6]
    with pytest.raises(IndexError):
        reader[N_FRAMES]
    with pytest.raises(TypeError):
        np.asarray(reader)


def test_bad_files_raise_invalid_input(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        VideoReader(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InvalidInputError, match="container"):
        VideoReader(bad)
