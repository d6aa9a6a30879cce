"""Layer styles: small dataclasses so looks are defined in one place."""

from __future__ import annotations

import dataclasses

import numpy as np

#: One colour per animal (RGBA 0..1); animal i uses ANIMAL_COLORS[i % len].
ANIMAL_COLORS = np.array(
    [
        [0.12, 0.62, 1.00, 1.0],  # blue
        [1.00, 0.50, 0.05, 1.0],  # orange
        [0.20, 0.85, 0.30, 1.0],  # green
        [0.95, 0.25, 0.60, 1.0],  # pink
        [0.65, 0.45, 1.00, 1.0],  # violet
        [0.95, 0.90, 0.20, 1.0],  # yellow
        [0.10, 0.85, 0.85, 1.0],  # cyan
        [0.85, 0.35, 0.25, 1.0],  # brick
        [0.60, 0.80, 0.10, 1.0],  # lime
    ]
)
#: Colour of calls attributed to no animal (unassigned / ambiguous / not localized):
#: near-white; their sets also get a dark outline (ConfidenceSetStyle), so that they show
#: on bright and dark video alike.
NO_ANIMAL_COLOR = np.array([0.96, 0.96, 0.96, 1.0])


def animal_color(code: int) -> np.ndarray:
    """RGBA colour of an animal code (negative codes: near-white)."""
    if code < 0:
        return NO_ANIMAL_COLOR.copy()
    return ANIMAL_COLORS[code % len(ANIMAL_COLORS)].copy()


@dataclasses.dataclass(frozen=True)
class ConfidenceSetStyle:
    """Shapes layer of 95% confidence sets."""

    face_opacity: float = 0.0  # sets of other calls: outlines only (the animals show)
    edge_width_px: float = 1.5
    edited_edge_width_px: float = 3.0
    selected_face_opacity: float = 0.3  # the selected call's set is filled...
    selected_edge_width_px: float = 3.0
    label_size_pt: float = 11.0  # ...and labelled with its call id
    edited_edge_color: tuple = (1.0, 1.0, 1.0, 1.0)
    # sets attributed to no animal: a dark outline this much wider under the light edge
    no_animal_outline_color: tuple = (0.0, 0.0, 0.0, 0.9)
    no_animal_outline_extra_px: float = 3.0
    window_s: float = 0.3  # calls within this distance of the current time are drawn
    max_vertices: int = 120  # polygons are decimated to this (napari triangulates them)


@dataclasses.dataclass(frozen=True)
class EstimateStyle:
    """Points layer of point estimates."""

    size_px: float = 12.0
    symbol: str = "cross"
    edited_symbol: str = "star"


@dataclasses.dataclass(frozen=True)
class PoseStyle:
    """Points layer of the poses at the current frame, Tracks layer of their tails."""

    size_px: float = 9.0
    tail_length_frames: int = 30
    track_width_px: float = 3.0
    max_track_points: int = 6000  # Tracks layer window (all vertices are drawn per frame)
    max_pose_points: int = 20000  # poses layer window (napari slices it per frame)


@dataclasses.dataclass(frozen=True)
class SpectrogramStyle:
    """Spectrogram dock defaults."""

    window_s: float = 0.5
    db_min: float = -120.0
    db_max: float = -60.0
    khz_min: float = 2.0  # frequency band shown: gerbil calls from ~2 kHz (many below 15)
    khz_max: float = 100.0
    colormap: str = "magma"
    call_color: str = "#33c3ff"
    selected_call_color: str = "#ffffff"
    playhead_color: str = "#00ff7f"
