"""Data layer: VCL datasets, session files, arena geometry, audio and pose-track readers.

See docs/formats.md for the exact file layouts.
"""

from napari_gerbil.io.arena import ArenaGeometry, default_cage, fit_homography
from napari_gerbil.io.atomic import atomic_path
from napari_gerbil.io.audio import AudioSource
from napari_gerbil.io.session import (
    AudioRef,
    CallTable,
    FileRef,
    PredictedAttribution,
    Predictions,
    Session,
    UserAttribution,
    load_session,
    save_session,
)
from napari_gerbil.io.tracks import Poses, load_poses
from napari_gerbil.io.vcl import (
    VCLDataset,
    VCLWriter,
    check_compatible,
    merge_vcl,
    validate_vcl,
    write_vcl,
)

__all__ = [
    "ArenaGeometry",
    "AudioRef",
    "AudioSource",
    "CallTable",
    "FileRef",
    "Poses",
    "PredictedAttribution",
    "Predictions",
    "Session",
    "UserAttribution",
    "VCLDataset",
    "VCLWriter",
    "atomic_path",
    "check_compatible",
    "default_cage",
    "fit_homography",
    "load_poses",
    "load_session",
    "merge_vcl",
    "save_session",
    "validate_vcl",
    "write_vcl",
]
