"""The dock's Localize and Export go through the same core functions as the commands."""

from __future__ import annotations

import numpy as np
import pytest

import napari_gerbil.pipeline as pipeline
import napari_gerbil.review.export as review_export
from napari_gerbil._napari._widget import ReviewWidget
from napari_gerbil.io.session import load_session

pytestmark = pytest.mark.gui


@pytest.fixture
def widget(make_napari_viewer, session_path):
    viewer = make_napari_viewer()
    viewer.open(session_path, plugin="napari-gerbil")
    return ReviewWidget(viewer)


def test_localize_runs_the_pipeline_generator(widget, qtbot, tiny_ensemble_dir, monkeypatch):
    calls = []
    real = pipeline.localize_calls

    def spy(*args, **kwargs):
        calls.append(kwargs)
        yield from real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "localize_calls", spy)
    widget.model_section.model_dir.setText(str(tiny_ensemble_dir))
    worker = widget.model_section.localize_all()
    with qtbot.waitSignal(worker.finished, timeout=120000):
        pass
    qtbot.waitUntil(lambda: not widget.jobs.busy(), timeout=5000)
    assert len(calls) == 1 and calls[0]["poses"] is widget.poses
    assert load_session(widget.review.path).localized().all()


def test_export_runs_export_calls(widget, call_truth, tmp_path, monkeypatch):
    seen = []
    real = review_export.export_calls

    def spy(session, out_path, calls="reviewed", **kwargs):
        seen.append(calls)
        return real(session, out_path, calls, **kwargs)

    monkeypatch.setattr(review_export, "export_calls", spy)
    for row, (animal, _) in call_truth.items():
        widget.review.assign(row, animal)
    out = tmp_path / "exported.h5"
    widget.finetune_section.export_path.setText(str(out))
    assert widget.finetune_section.export() == out and seen == ["reviewed"]
    assert np.isfinite(load_session(widget.review.path).user.edit_time_s).sum() == 6
