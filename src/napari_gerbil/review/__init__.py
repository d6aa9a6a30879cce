"""Review of a session, free of Qt.

Edits with undo/redo, call states, the review queue, export of reviewed calls as
training data and held-out evaluation.

The napari dock and the command line (``napari-gerbil export``, ``review-status``) both
use this module. Every edit of a :class:`ReviewModel` is written to the session file at
once, atomically (:func:`napari_gerbil.io.session.save_session`): nothing is lost on a
crash.

The package: :mod:`~napari_gerbil.review.state` (:class:`ReviewModel`, edits, undo log),
:mod:`~napari_gerbil.review.queries` (call states, review queue, status) and
:mod:`~napari_gerbil.review.export` (training data, held-out errors). Import from
``napari_gerbil.review``.
"""

from napari_gerbil.review.export import (
    CONFIDENT_PROBABILITY,
    EXPORT_SELECTIONS,
    HELDOUT_EVERY,
    ExportSelection,
    animal_positions_mm,
    export_calls,
    export_reviewed,
    heldout_errors,
    reviewed_calls,
    select_export_calls,
)
from napari_gerbil.review.queries import (
    STATES,
    call_states,
    code_name,
    predicted_animal,
    review_status,
    set_area_mm2,
    top_probability,
    uncertainty_order,
)
from napari_gerbil.review.state import (
    CallsEdit,
    Edit,
    PredictionsEdit,
    ReviewModel,
    add_new_calls,
)

__all__ = [
    "CONFIDENT_PROBABILITY",
    "EXPORT_SELECTIONS",
    "HELDOUT_EVERY",
    "STATES",
    "CallsEdit",
    "Edit",
    "ExportSelection",
    "PredictionsEdit",
    "ReviewModel",
    "add_new_calls",
    "animal_positions_mm",
    "call_states",
    "code_name",
    "export_calls",
    "export_reviewed",
    "heldout_errors",
    "predicted_animal",
    "review_status",
    "reviewed_calls",
    "select_export_calls",
    "set_area_mm2",
    "top_probability",
    "uncertainty_order",
]
