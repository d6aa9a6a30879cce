"""Lazy, frame-accurate video reading through PyAV.

:class:`VideoReader` behaves like a read-only array of shape
``(n_frames, height, width, 3)`` (uint8 RGB): napari can show it as an Image layer
without ever loading the whole video. Frames are decoded on demand; stepping forward
continues the running decoder, any other jump seeks to the key frame before the target
and decodes forward to it. A few recently decoded frames are cached.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.inputs import check_input_file


class VideoReader:
    """Array-like lazy view of a video file.

    Parameters
    ----------
    path
        Any video file PyAV can decode (constant frame rate assumed).
    cache_frames
        Number of decoded frames kept in memory.

    Attributes
    ----------
    shape : tuple
        ``(n_frames, height, width, 3)``.
    dtype : numpy.dtype
        ``uint8``.
    fps : float
        Average frame rate of the stream.
    """

    def __init__(self, path: str | os.PathLike, cache_frames: int = 16) -> None:
        import av

        self.path = Path(path)
        check_input_file(self.path, "path", "video file")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, OSError) as exc:
            raise InvalidInputError(
                self.path, "container", "a video file PyAV can decode", str(exc)
            ) from exc
        if not self._container.streams.video:
            self._container.close()
            raise InvalidInputError(self.path, "streams", "a video stream", "none")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        if not rate:
            raise InvalidInputError(self.path, "frame rate", "a positive frame rate", "none")
        self._rate = Fraction(rate)
        self.fps = float(self._rate)
        self._time_base = Fraction(self._stream.time_base)  # type: ignore[arg-type]
        self._start_pts = self._stream.start_time or 0
        n_frames = int(self._stream.frames or 0)
        if n_frames <= 0:
            n_frames = self._count_frames()
        ctx = self._stream.codec_context
        self.shape = (n_frames, int(ctx.height), int(ctx.width), 3)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = max(1, int(cache_frames))
        self._lock = threading.RLock()
        self._decoder: Any = None
        self._next_index = -1  # index of the frame the running decoder yields next
        self.n_seeks = 0  # number of container seeks (tests and benchmarks read it)

    # -- array protocol ---------------------------------------------------------------
    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        """Number of elements (as numpy arrays have)."""
        return int(np.prod(self.shape))

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, (int, np.integer)):
            return self.frame(int(first))[rest] if rest else self.frame(int(first))
        indices = range(self.shape[0])[first]
        frames = np.stack([self.frame(i) for i in indices]) if len(indices) else None
        if frames is None:
            frames = np.zeros((0, *self.shape[1:]), self.dtype)
        index = (slice(None), *rest)
        return frames[index] if rest else frames

    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "VideoReader refuses to load the whole video into memory; index frames instead"
        )

    # -- decoding ---------------------------------------------------------------------
    def _index_of_pts(self, pts: int) -> int:
        return int(round(float((pts - self._start_pts) * self._time_base * self._rate)))

    def _pts_of_index(self, index: int) -> int:
        return self._start_pts + int(round(index / (self._rate * self._time_base)))

    def _count_frames(self) -> int:
        n = sum(1 for _ in self._container.decode(self._stream))
        self._container.seek(self._start_pts, stream=self._stream, backward=True)
        return n

    def frame(self, index: int) -> np.ndarray:
        """Decoded RGB frame ``index`` as a (height, width, 3) uint8 array."""
        n = self.shape[0]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"frame {index} out of range for a video of {n} frames")
        with self._lock:
            cached = self._cache.get(index)
            if cached is not None:
                self._cache.move_to_end(index)
                return cached
            if self._decoder is None or not (0 <= index - self._next_index <= 8):
                self._seek(index)
            for frame in self._decoder:
                got = self._index_of_pts(frame.pts) if frame.pts is not None else self._next_index
                self._next_index = got + 1
                if got < index:
                    continue
                image = frame.to_ndarray(format="rgb24")
                self._remember(got, image)
                if got >= index:
                    return image
            raise IndexError(f"{self.path}: frame {index} could not be decoded")

    def _seek(self, index: int) -> None:
        self._container.seek(self._pts_of_index(index), stream=self._stream, backward=True)
        self._decoder = self._container.decode(self._stream)
        self._next_index = -1
        self.n_seeks += 1

    def _remember(self, index: int, image: np.ndarray) -> None:
        image.setflags(write=False)
        self._cache[index] = image
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)

    def close(self) -> None:
        """Release the file."""
        with self._lock:
            self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoReader({str(self.path)!r}, shape={self.shape}, fps={self.fps:g})"


def write_video(
    path: str | os.PathLike, frames, fps: float, codec: str = "libx264", crf: int = 23
) -> Path:
    """Encode an iterable of (height, width, 3) uint8 frames to ``path`` (test helper).

    Every 10th frame is a key frame so that seeking is exercised on short clips.
    """
    import av

    from napari_gerbil.io.atomic import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as tmp, av.open(str(tmp), "w") as out:
        stream = None
        for image in frames:
            if stream is None:
                stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = image.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "g": "10", "bf": "0"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
    return path
