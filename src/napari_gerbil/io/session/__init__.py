"""Session files (``*.gerbil.h5``): the plugin's working file.

A session references the recording (audio, video, pose tracks) by path, size and
checksum, and holds the arena geometry, the calls table, the ensemble predictions, the
predicted attributions and — kept apart, like SLEAP's user vs predicted instances — the
user's attributions with their edit times. It never holds raw audio, so saving is cheap
and atomic (temporary file, flush, fsync, ``os.replace``). Layout: docs/formats.md.

The package keeps the data model apart from the file format:
:mod:`~napari_gerbil.io.session.records` (file references, calls, predictions,
attributions, the format's constants), :mod:`~napari_gerbil.io.session.model`
(:class:`Session`), :mod:`~napari_gerbil.io.session.read` and
:mod:`~napari_gerbil.io.session.write` (HDF5). Import from ``napari_gerbil.io.session``.
"""

from napari_gerbil.io.session.model import Session
from napari_gerbil.io.session.read import is_session_file, load_session
from napari_gerbil.io.session.records import (
    AMBIGUOUS,
    CHECKSUM_BLOCK_BYTES,
    FORMAT_NAME,
    MAX_EDIT_TIME_S,
    NOT_REVIEWED,
    PREDICTION_FIELDS,
    SCHEMA_VERSION,
    SESSION_SUFFIX,
    UNASSIGNED,
    AudioRef,
    CallTable,
    FileRef,
    PredictedAttribution,
    Predictions,
    UserAttribution,
    file_checksum,
)
from napari_gerbil.io.session.write import save_session

__all__ = [
    "AMBIGUOUS",
    "CHECKSUM_BLOCK_BYTES",
    "FORMAT_NAME",
    "MAX_EDIT_TIME_S",
    "NOT_REVIEWED",
    "PREDICTION_FIELDS",
    "SCHEMA_VERSION",
    "SESSION_SUFFIX",
    "UNASSIGNED",
    "AudioRef",
    "CallTable",
    "FileRef",
    "PredictedAttribution",
    "Predictions",
    "Session",
    "UserAttribution",
    "file_checksum",
    "is_session_file",
    "load_session",
    "save_session",
]
