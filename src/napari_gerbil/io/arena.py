"""Arena geometry: cage size, microphone positions and the arena <-> video-pixel map.

Arena frame: millimetres, origin at the centre of the arena floor, x along the long
side, y along the short side, z height above the floor. Video pixels are napari
(row, col). ``arena_to_pixels`` is a 3x3 homography mapping homogeneous
(x_mm, y_mm, 1) to (row, col, 1), fitted from the four floor corners clicked on the video.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from napari_gerbil.errors import InvalidInputError

#: Default cage (the built-in ``paper`` cage): length x width x height in mm, the
#: paper's cage as fitted by vocalocator (``room_configs/e1_1M.yaml``).
DEFAULT_DIMS_MM = (571.5, 355.6, 368.3)
#: Default horizontal distance (x, y) of each microphone from the two nearest walls (mm).
DEFAULT_MIC_INSET_MM = (20.64812, 50.17473)
#: Default distance of the microphones below the ceiling (mm).
DEFAULT_MIC_DROP_MM = 78.61742


def _as_points(points: Any, name: str, source: str | None = None) -> np.ndarray:
    """``points`` as a float (N, 2) array (a single (2,) point becomes (1, 2))."""
    arr = np.asarray(points, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InvalidInputError(source, name, "an (N, 2) array of points", f"shape {arr.shape}")
    return arr


def _normalizer(points: np.ndarray) -> np.ndarray:
    """Similarity transform moving ``points`` to zero mean and mean distance sqrt(2)."""
    centre = points.mean(axis=0)
    spread = np.sqrt(((points - centre) ** 2).sum(axis=1)).mean()
    scale = np.sqrt(2.0) / spread if spread > 0 else 1.0
    return np.array(
        [[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]], [0.0, 0.0, 1.0]]
    )


def apply_homography(matrix: np.ndarray, points: Any) -> np.ndarray:
    """Map (N, 2) points through a 3x3 homography; returns (N, 2)."""
    pts = _as_points(points, "points")
    homog = np.c_[pts, np.ones(len(pts))] @ np.asarray(matrix, dtype=float).T
    return homog[:, :2] / homog[:, 2:3]


def fit_homography(corners_mm: Any, corners_px: Any) -> np.ndarray:
    """Fit the homography mapping arena (x_mm, y_mm) to pixels (row, col).

    Normalized direct linear transform (Hartley & Zisserman, alg. 4.2).

    Parameters
    ----------
    corners_mm
        (K, 2) points on the arena floor in mm, K >= 4 (usually the four corners).
    corners_px
        (K, 2) the same points on the video as (row, col) pixels.

    Returns
    -------
    ndarray
        (3, 3) matrix ``arena_to_pixels`` with ``H[2, 2] == 1``.
    """
    src = _as_points(corners_mm, "corners_mm")
    dst = _as_points(corners_px, "corners_px")
    if len(src) < 4 or len(src) != len(dst):
        raise InvalidInputError(
            None,
            "corners_px",
            f"as many points as corners_mm, at least 4 (got {len(src)} arena points)",
            f"{len(dst)} pixel points",
        )
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise InvalidInputError(None, "corners_px", "finite coordinates", "NaN or inf")
    t_src, t_dst = _normalizer(src), _normalizer(dst)
    s = apply_homography(t_src, src)
    d = apply_homography(t_dst, dst)
    rows = []
    for (x, y), (u, v) in zip(s, d, strict=True):
        rows.append([-x, -y, -1.0, 0.0, 0.0, 0.0, u * x, u * y, u])
        rows.append([0.0, 0.0, 0.0, -x, -y, -1.0, v * x, v * y, v])
    _, sing, vt = np.linalg.svd(np.asarray(rows))
    # A rank below 8 means the points do not pin down a homography (collinear points).
    if sing[7] < 1e-9 * sing[0]:
        raise InvalidInputError(
            None,
            "corners_px",
            "4 points with no 3 on a line (arena corners in order)",
            "degenerate (collinear or repeated) points",
        )
    h_norm = vt[-1].reshape(3, 3)
    matrix = np.linalg.inv(t_dst) @ h_norm @ t_src
    if abs(matrix[2, 2]) < 1e-12:
        raise InvalidInputError(
            None, "corners_px", "a finite homography", "a map sending points to infinity"
        )
    return matrix / matrix[2, 2]


@dataclasses.dataclass(eq=False)
class ArenaGeometry:
    """Cage dimensions, microphone positions and the arena -> pixel homography.

    Parameters
    ----------
    dims_mm
        (3,) length (x), width (y), height (z) of the arena in mm.
    mic_positions_mm
        (n_mics, 3) microphone positions in the arena frame.
    arena_to_pixels
        (3, 3) homography (x_mm, y_mm, 1) -> (row, col, 1), or None when no video
        calibration is known.
    """

    dims_mm: np.ndarray
    mic_positions_mm: np.ndarray
    arena_to_pixels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.dims_mm = np.asarray(self.dims_mm, dtype=float).reshape(-1)
        if self.dims_mm.shape != (3,) or not (np.isfinite(self.dims_mm).all()):
            raise InvalidInputError(
                None, "dims_mm", "3 finite lengths (mm)", f"{self.dims_mm.tolist()}"
            )
        if (self.dims_mm <= 0).any():
            raise InvalidInputError(
                None, "dims_mm", "positive lengths (mm)", f"{self.dims_mm.tolist()}"
            )
        self.mic_positions_mm = np.asarray(self.mic_positions_mm, dtype=float)
        mics = self.mic_positions_mm
        if mics.ndim != 2 or mics.shape[1] != 3 or len(mics) < 1 or not np.isfinite(mics).all():
            raise InvalidInputError(
                None, "mic_positions_mm", "a finite (n_mics, 3) array (mm)", f"shape {mics.shape}"
            )
        if self.arena_to_pixels is not None:
            h = np.asarray(self.arena_to_pixels, dtype=float)
            if h.shape != (3, 3) or not np.isfinite(h).all():
                raise InvalidInputError(
                    None, "arena_to_pixels", "a finite 3x3 matrix", f"shape {h.shape}"
                )
            if abs(np.linalg.det(h)) < 1e-15 * max(np.abs(h).max(), 1.0) ** 3:
                raise InvalidInputError(
                    None, "arena_to_pixels", "an invertible 3x3 matrix", "a singular matrix"
                )
            self.arena_to_pixels = h

    @property
    def n_mics(self) -> int:
        """Number of microphones."""
        return len(self.mic_positions_mm)

    @property
    def half_extent_mm(self) -> np.ndarray:
        """(2,) half length and half width: the floor spans ``[-h, h]`` on each axis."""
        return self.dims_mm[:2] / 2.0

    def corners_mm(self) -> np.ndarray:
        """(4, 2) floor corners, counter-clockwise from (-x, -y)."""
        hx, hy = self.half_extent_mm
        return np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])

    def contains(self, xy_mm: Any, margin_mm: float = 0.0) -> np.ndarray:
        """(N,) bool: whether each (x, y) lies on the floor, grown by ``margin_mm``."""
        pts = _as_points(xy_mm, "xy_mm")
        return (np.abs(pts) <= self.half_extent_mm + margin_mm).all(axis=1)

    def _require_homography(self) -> np.ndarray:
        if self.arena_to_pixels is None:
            raise InvalidInputError(
                None,
                "arena_to_pixels",
                "a calibrated arena (3x3 homography)",
                "None",
                hint="Click the four arena corners on the video (with_corners_px).",
            )
        return self.arena_to_pixels

    def to_pixels(self, xy_mm: Any) -> np.ndarray:
        """Arena (x, y) in mm -> video (row, col) pixels; (N, 2)."""
        return apply_homography(self._require_homography(), xy_mm)

    def to_arena(self, rc_px: Any) -> np.ndarray:
        """Video (row, col) pixels -> arena (x, y) in mm; (N, 2)."""
        return apply_homography(np.linalg.inv(self._require_homography()), rc_px)

    def with_corners_px(self, corners_px: Any) -> ArenaGeometry:
        """A copy calibrated from the floor corners in pixels, ordered as ``corners_mm()``."""
        matrix = fit_homography(self.corners_mm(), corners_px)
        return ArenaGeometry(self.dims_mm.copy(), self.mic_positions_mm.copy(), matrix)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (JSON / HDF5 attributes)."""
        return {
            "dims_mm": self.dims_mm.tolist(),
            "mic_positions_mm": self.mic_positions_mm.tolist(),
            "arena_to_pixels": None
            if self.arena_to_pixels is None
            else self.arena_to_pixels.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> ArenaGeometry:
        """Inverse of :meth:`to_dict`; errors name ``source``."""
        for key in ("dims_mm", "mic_positions_mm"):
            if key not in data:
                raise InvalidInputError(source, key, "a value", "nothing (missing key)")
        try:
            return cls(data["dims_mm"], data["mic_positions_mm"], data.get("arena_to_pixels"))
        except InvalidInputError as exc:
            raise InvalidInputError(source, exc.field, exc.expected, exc.found) from None
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(source, "arena", "numeric arrays", str(exc)) from None

    def equals(self, other: ArenaGeometry) -> bool:
        """Exact equality of all arrays."""
        if (self.arena_to_pixels is None) != (other.arena_to_pixels is None):
            return False
        same_h = (
            self.arena_to_pixels is None
            or other.arena_to_pixels is None
            or np.array_equal(self.arena_to_pixels, other.arena_to_pixels)
        )
        return (
            np.array_equal(self.dims_mm, other.dims_mm)
            and np.array_equal(self.mic_positions_mm, other.mic_positions_mm)
            and same_h
        )

    __eq__ = equals  # type: ignore[assignment]


def default_cage(
    dims_mm: Any = DEFAULT_DIMS_MM,
    mic_inset_mm: Any = DEFAULT_MIC_INSET_MM,
    mic_drop_mm: float = DEFAULT_MIC_DROP_MM,
) -> ArenaGeometry:
    """The default cage's geometry (built-in ``paper``): 571.5 x 355.6 x 368.3 mm, 4 mics.

    Each microphone sits ``mic_inset_mm`` from the two nearest walls (x, y: 20.6 and
    50.2 mm; a scalar for both) and ``mic_drop_mm`` (78.6 mm) below the ceiling, ordered
    like :meth:`ArenaGeometry.corners_mm`; other ``dims_mm`` keep these distances.
    """
    dims = np.asarray(dims_mm, dtype=float)
    hx, hy = dims[:2] / 2.0 - np.broadcast_to(np.asarray(mic_inset_mm, dtype=float), (2,))
    z = dims[2] - mic_drop_mm
    mics = np.array([[-hx, -hy, z], [hx, -hy, z], [hx, hy, z], [-hx, hy, z]])
    return ArenaGeometry(dims, mics)


#: The order of :meth:`ArenaGeometry.corners_mm`, in words.
CORNERS_ORDER = "(-x, -y), (+x, -y), (+x, +y), (-x, +y)"


def order_corners_px(corners_px, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Clicked arena corners in the documented order, and the click order taken.

    The first click is the (-x, -y) corner; the other three follow it around the
    quadrilateral counter-clockwise on screen (a camera above the arena), clockwise if
    ``mirrored``. Corners clicked in another order (crossing sides, or going round the
    other way) are so reordered: with the first corner and the direction known, four
    corners of a convex quadrilateral can be ordered only one way.

    Parameters
    ----------
    corners_px
        (4, 2) clicked corners as napari (row, col) pixels, in click order.
    mirrored
        The video is mirrored (e.g. filmed from below the floor).

    Returns
    -------
    corners
        (4, 2) the corners in the order of ``ArenaGeometry.corners_mm``.
    order
        (4,) click index of each returned corner (``[0, 1, 2, 3]``: taken as clicked).

    Raises
    ------
    InvalidInputError
        Not 4 finite points, or they are not the corners of a convex quadrilateral (a
        corner inside the triangle of the other three, three on a line, a repeat).
    """
    expected = f"4 floor corners of a convex quadrilateral, clicked {CORNERS_ORDER}"
    points = np.asarray(corners_px, float)
    if points.shape != (4, 2) or not np.isfinite(points).all():
        found = f"{len(points)} points" if points.ndim == 2 else f"shape {points.shape}"
        raise InvalidInputError(None, "arena corners", expected, found)
    screen = np.column_stack([points[:, 1], -points[:, 0]])  # x right, y up
    offset = screen - screen.mean(axis=0)
    angle = np.arctan2(offset[:, 1], offset[:, 0])
    order = np.argsort((angle - angle[0]) % (2 * np.pi), kind="stable")  # starts at click 0
    if mirrored:
        order = np.r_[order[0], order[1:][::-1]]
    polygon = screen[order]
    edges = np.roll(polygon, -1, axis=0) - polygon
    after = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * after[:, 1] - edges[:, 1] * after[:, 0]  # > 0: a left turn
    turns = -turns if mirrored else turns
    scale = np.ptp(screen, axis=0).max() ** 2
    if not np.all(turns > 1e-6 * scale):
        raise InvalidInputError(
            None,
            "arena corners",
            expected,
            "a corner inside the triangle of the other three, three on a line or a repeat "
            f"({np.round(points, 1).tolist()}); click the corners again",
        )
    return points[order], order
