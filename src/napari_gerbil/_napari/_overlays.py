"""What the review draws over the video: poses, 95% sets, estimates, per-animal evidence.

Sets are outlines in the attributed animal's colour (no animal: near-white on a dark
outline, visible on any video); the selected call's set is filled and labelled with its
call id; only calls near the current time are drawn. The sets are localization (*where
the call came from*); the attribution's evidence is drawn apart, at the animals: a disc
per animal filled as much as its probability, and a dot at the steered response's best
point near it. Layers are updated incrementally
(napari triangulates every polygon it is given) and only from the GUI thread.
"""

from __future__ import annotations

import numpy as np

from napari_gerbil._napari._layers import (
    ROLE_KEY,
    SESSION_KEY,
    arena_to_canvas,
    decimate_polygon,
    pose_points_window,
    tracks_window,
    window_covers,
)
from napari_gerbil._napari._styles import (
    ConfidenceSetStyle,
    EstimateStyle,
    PoseStyle,
    animal_color,
)
from napari_gerbil._napari._view_hooks import camera_of

#: Names of the layers the review adds (the reader adds video, tracks and arena).
LAYER_NAMES = {
    "poses": "poses",
    "sets": "where the call came from (95% set)",
    "estimates": "estimates",
    "evidence": "attribution: p per animal",
}
#: Diameter (mm) of an animal's evidence disc.
EVIDENCE_DISC_MM = 90.0


class ReviewOverlays:
    """The review's layers of one session in ``viewer``."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.set_style = ConfidenceSetStyle()
        self.estimate_style = EstimateStyle()
        self.pose_style = PoseStyle()
        self.session_path: str | None = None
        self.poses = None
        self.track_points: np.ndarray | None = None
        self.pose_window: tuple[int, int] | None = None  # frames held by the poses layer
        self.n_pose_windows = 0  # how often the poses layer was refilled (tests/benchmarks)
        self._set_cache: dict[int, list[np.ndarray]] = {}
        self._cs_cache: dict[int, object] = {}
        self._drawn_style: dict[int, tuple] = {}  # call -> style of its drawn set
        self._shape_calls: list[int] = []  # call index of each shape in the sets layer
        self._signature: tuple | None = None

    # -- layers -----------------------------------------------------------------------
    def layer(self, role: str):
        """The layer of ``role`` belonging to this session (None if absent)."""
        if self.session_path is None:
            return None
        for layer in self.viewer.layers:
            meta = layer.metadata
            if meta.get(ROLE_KEY) == role and meta.get(SESSION_KEY) == self.session_path:
                return layer
        return None

    def session_layers(self, path: str | None = None) -> list:
        """Every layer of the session ``path`` (default: this one)."""
        path = self.session_path if path is None else path
        return [layer for layer in self.viewer.layers if layer.metadata.get(SESSION_KEY) == path]

    def attach(self, session, poses, track_points) -> None:
        """Draw ``session``: add the poses, sets and estimates layers if missing."""
        self.session_path = str(session.path)
        self.poses, self.track_points = poses, track_points
        self.pose_window = None
        self.forget()
        meta = {SESSION_KEY: self.session_path}
        if self.layer("poses") is None and poses is not None:
            self.viewer.add_points(
                np.zeros((0, 3)),  # (frame, row, col): napari shows the current frame's
                name=LAYER_NAMES["poses"],
                size=self.pose_style.size_px,
                border_color="white",
                border_width=0.1,
                metadata={**meta, ROLE_KEY: "poses"},
            )
        if self.layer("sets") is None:
            self.viewer.add_shapes(
                name=LAYER_NAMES["sets"],
                metadata={**meta, ROLE_KEY: "sets"},
                features={"call_id": np.zeros(0, int), "label": np.zeros(0, str)},
                text={
                    "string": "{label}",
                    "color": "white",
                    "size": self.set_style.label_size_pt,
                    "anchor": "upper_left",
                },
            )
        if self.layer("estimates") is None:
            self.viewer.add_points(
                np.zeros((0, 2)),
                name=LAYER_NAMES["estimates"],
                size=self.estimate_style.size_px,
                symbol=self.estimate_style.symbol,
                metadata={**meta, ROLE_KEY: "estimates"},
            )
        if self.layer("evidence") is None:
            self.viewer.add_points(
                np.zeros((0, 2)),
                name=LAYER_NAMES["evidence"],
                metadata={**meta, ROLE_KEY: "evidence"},
                features={"animal": np.zeros(0, int), "label": np.zeros(0, str)},
                text={"string": "{label}", "color": "white", "size": 10, "anchor": "center"},
            )
        for role in ("poses", "sets", "estimates", "evidence"):
            layer = self.layer(role)
            if layer is not None:
                layer.editable = False

    def remove_layers(self, path: str | None = None) -> None:
        """Remove every layer of session ``path`` (default: this one)."""
        for layer in self.session_layers(path):
            self.viewer.layers.remove(layer)

    # -- poses and tracks -------------------------------------------------------------
    def update_poses(self, frame: int) -> None:
        """Keep the poses (and long sessions' Tracks) layer on frames around ``frame``.

        napari slices the 3-D poses layer itself, so a frame step costs nothing here.
        """
        self._update_tracks(frame)
        layer = self.layer("poses")
        if layer is None or self.poses is None:
            return
        frames = self.poses.frame_indices
        data_range = (frames.min(), frames.max()) if len(frames) else (0, 0)
        if self.pose_window is not None and window_covers(self.pose_window, frame, data_range):
            return
        points, animal, self.pose_window = pose_points_window(
            self.poses, frame, self.pose_style.max_pose_points
        )
        layer.data = points
        layer.features = {"animal": animal}
        palette = np.array([animal_color(a) for a in range(max(1, self.poses.n_tracks))])
        layer.face_color = palette[animal] if len(animal) else "white"
        self.n_pose_windows += 1

    def _update_tracks(self, frame: int) -> None:
        layer = self.layer("tracks")
        full = self.track_points
        if layer is None or full is None or len(full) <= self.pose_style.max_track_points:
            return
        shown = layer.data[:, 1]
        data_range = (full[0, 1], full[-1, 1]) if len(full) else (0, 0)
        if len(shown) and window_covers((shown.min(), shown.max()), frame, data_range):
            return
        layer.data = tracks_window(full, frame, self.pose_style.max_track_points)

    # -- confidence sets and point estimates ------------------------------------------
    def confidence_set(self, session, index: int):
        """Call ``index``'s 95% :class:`~napari_gerbil.model.confidence.ConfidenceSet`."""
        from napari_gerbil.model.confidence import confidence_set

        cs = self._cs_cache.get(index)
        if cs is None:
            pred = session.predictions
            cs = confidence_set(
                pred.member_means_mm[index], pred.member_chol_mm[index], session.arena.dims_mm
            )
            self._cs_cache[index] = cs
        return cs

    def set_polygons_px(self, session, index: int) -> list[np.ndarray]:
        """Canvas polygons of call ``index``'s 95% set (cached)."""
        polys = self._set_cache.get(index)
        if polys is None:
            cs = self.confidence_set(session, index)
            polys = [
                arena_to_canvas(session.arena, decimate_polygon(p, self.set_style.max_vertices))
                for p in cs.polygons_mm
            ]
            self._set_cache[index] = polys
        return polys

    def forget(self, indices=None) -> None:
        """Mark the sets of calls ``indices`` (all if None) as stale: redrawn next time."""
        self._signature = None
        if indices is None:
            self._drawn_style.clear()
            self._set_cache.clear()
            self._cs_cache.clear()
            self._shape_calls = []
            layer = self.layer("sets")
            if layer is not None and len(layer.data):
                layer.data = []
        else:
            for i in indices:
                self._set_cache.pop(int(i), None)
                self._cs_cache.pop(int(i), None)
                if int(i) in self._drawn_style:
                    self._drawn_style[int(i)] = ()  # drawn with an outdated set: redraw

    def draw(self, review, visible: np.ndarray, current: int | None) -> None:
        """Draw the sets and estimates of calls ``visible`` (call rows)."""
        session = review.session
        animal = session.effective_attribution()
        edited = review.edited()
        signature = (tuple(visible), tuple(animal[visible]), tuple(edited[visible]), current)
        if signature == self._signature:
            return
        self._signature = signature
        self._draw_sets(review, visible, animal, edited, current)
        self._draw_estimates(session, visible, animal, edited)

    def _draw_sets(self, review, visible, animal, edited, current) -> None:
        layer = self.layer("sets")
        if layer is None:
            return
        style, session = self.set_style, review.session
        top_p = review.top_probability()
        wanted = {
            int(i): (int(animal[i]), bool(edited[i]), int(i) == current, float(top_p[i]))
            for i in visible
        }
        shape_calls = self._shape_calls
        if len(shape_calls) != len(layer.data):  # the layer was changed elsewhere
            shape_calls, self._drawn_style = [], {}
            layer.data = []
        stale = {i for i, key in self._drawn_style.items() if wanted.get(i) != key}
        if stale:
            layer.selected_data = {k for k, i in enumerate(shape_calls) if i in stale}
            layer.remove_selected()
            shape_calls = [i for i in shape_calls if i not in stale]
            for i in stale:
                del self._drawn_style[i]
        polys, faces, edges, widths, new_calls = [], [], [], [], []
        for i, (code, was_edited, selected, _) in wanted.items():
            if i in self._drawn_style:
                continue
            color = animal_color(code)
            face = color.copy()
            face[3] = style.selected_face_opacity if selected else style.face_opacity
            edge = np.array(style.edited_edge_color) if was_edited else color
            width = style.edited_edge_width_px if was_edited else style.edge_width_px
            if selected:
                width = max(width, style.selected_edge_width_px)
            outline = code < 0  # no animal: a light edge on a dark one
            for poly in self.set_polygons_px(session, i):
                if outline:
                    polys.append(poly)
                    faces.append(np.zeros(4))
                    edges.append(np.array(style.no_animal_outline_color))
                    widths.append(width + style.no_animal_outline_extra_px)
                    new_calls.append(i)
                polys.append(poly)
                faces.append(face)
                edges.append(edge)
                widths.append(width)
                new_calls.append(i)
            self._drawn_style[i] = wanted[i]
        if polys:
            layer.add(
                polys,
                shape_type="polygon",
                edge_width=widths,
                edge_color=np.array(edges),
                face_color=np.array(faces),
            )
        self._shape_calls = shape_calls + new_calls
        calls = np.array(self._shape_calls, np.int64)
        call_id = session.calls.call_id[calls]
        first = np.zeros(len(calls), bool)  # label one piece of the selected call's set
        if current is not None and (calls == current).any():
            first[np.argmax(calls == current)] = True
        layer.features = {
            "call_id": call_id,
            "animal": animal[calls].astype(int),
            "probability": top_p[calls].astype(float),
            "label": np.where(first, [f"call {c}" for c in call_id], ""),
        }
        layer.refresh_text()

    def _draw_estimates(self, session, visible, animal, edited) -> None:
        layer = self.layer("estimates")
        if layer is None:
            return
        points = (
            arena_to_canvas(session.arena, session.predictions.point_mm[visible])
            if visible.size
            else np.zeros((0, 2))
        )
        layer.data = points
        if visible.size:
            layer.face_color = np.array([animal_color(int(a)) for a in animal[visible]])
            layer.symbol = [
                self.estimate_style.edited_symbol if e else self.estimate_style.symbol
                for e in edited[visible]
            ]
        layer.features = {"call_id": session.calls.call_id[visible], "animal": animal[visible]}

    def draw_evidence(self, session, evidence) -> None:
        """Draw the selected call's evidence at the animals (None: nothing).

        A disc per tracked animal in its colour, filled in proportion to its stored
        probability and labelled with it; a dot at the steered response's best point.
        """
        layer = self.layer("evidence")
        if layer is None:
            return
        points, faces, borders, sizes, animals, labels = [], [], [], [], [], []
        if evidence is not None:
            known = np.isfinite(evidence.positions_mm).all(axis=1)
            rc = arena_to_canvas(session.arena, np.where(known[:, None], evidence.positions_mm, 0))
            ends = arena_to_canvas(session.arena, np.array([[0.0, 0.0], [EVIDENCE_DISC_MM, 0.0]]))
            disc = float(np.linalg.norm(ends[1] - ends[0]))
            for a in np.flatnonzero(known):
                p = float(evidence.probabilities[a])
                color = animal_color(int(a))
                face = color.copy()
                face[3] = 0.85 * p if np.isfinite(p) else 0.0
                points.append(rc[a])
                faces.append(face)
                borders.append(color)
                sizes.append(disc)
                animals.append(int(a))
                value = f"{p:.2f}" if np.isfinite(p) else "–"
                labels.append(f"{a + 1} {evidence.names[a]} p {value}")
                if evidence.best_mm is not None and np.isfinite(evidence.best_mm[a]).all():
                    points.append(arena_to_canvas(session.arena, evidence.best_mm[a])[0])
                    faces.append(color)
                    borders.append(np.array([0.0, 0.0, 0.0, 1.0]))
                    sizes.append(max(disc / 8, 2.0))
                    animals.append(int(a))
                    labels.append("")
        layer.data = np.array(points).reshape(-1, 2)
        layer.features = {"animal": np.array(animals, int), "label": np.array(labels, str)}
        if sizes:  # each label centred above its disc (not running off the canvas' edge)
            layer.text.translation = np.array([-0.7 * max(sizes), 0.0])
        if points:
            layer.size = np.array(sizes)
            layer.face_color = np.array(faces)
            layer.border_color = np.array(borders)
            layer.border_width = 0.08
        layer.refresh_text()

    # -- view -------------------------------------------------------------------------
    def zoom_to(self, points_rc: np.ndarray, margin: float = 0.25) -> None:
        """Centre the view on the bounding box of ``points_rc`` (K, 2) and zoom to it."""
        points_rc = np.asarray(points_rc, float).reshape(-1, 2)
        points_rc = points_rc[np.isfinite(points_rc).all(axis=1)]
        if not len(points_rc):
            return
        low, high = points_rc.min(axis=0), points_rc.max(axis=0)
        size = np.maximum(high - low, 20.0) * (1 + 2 * margin)
        canvas = np.asarray(self.viewer.canvas.size, float)  # (height, width) px
        camera = camera_of(self.viewer)
        camera.center = tuple((low + high) / 2)
        camera.zoom = float(np.min(canvas / size))
