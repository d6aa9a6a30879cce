"""Retrain from the dock.

Refused below the minimum, judged on held-out reviewed calls, and the new model is used only
when the user clicks *Use new model*.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from gui_helpers import canvas, click, open_dock, press

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_retrain_reports_before_and_after_and_switches_only_when_asked(
    make_napari_viewer, session_path, qtbot, tiny_ensemble_dir
):
    viewer = make_napari_viewer(show=True)
    widget = open_dock(viewer, qtbot, session_path)
    for section in widget.sections.values():
        section.set_expanded(True)
    rate = widget.review.session.audio.sample_rate_hz
    starts = (np.array([0.45, 0.55, 0.9, 1.0, 1.35, 1.45, 1.8, 1.9, 2.3]) * rate).astype(int)
    widget.add_calls(starts, starts + int(0.02 * rate))  # 15 calls
    model_field = widget.model_section.model_dir
    model_field.setText(str(tiny_ensemble_dir))
    for index in range(widget.review.n_calls - 6):
        widget.select_call(index)
        press(qtbot, canvas(widget), str(index % 2 + 1))
    click(qtbot, widget, "retrain")  # 9 reviewed: refused, saying how many more
    assert "review 1 more" in widget.calls_section.status.text() and not widget.jobs.busy()
    for index in range(widget.review.n_calls - 6, widget.review.n_calls):
        widget.select_call(index)
        press(qtbot, canvas(widget), str(index % 2 + 1))
    widget.finetune_section.epochs.setValue(1)
    exported: list[str] = []
    notify = widget.notify
    widget.notify = lambda message: (exported.append(message), notify(message))  # type: ignore[method-assign]
    click(qtbot, widget, "retrain")
    assert widget.jobs.busy()
    qtbot.waitUntil(lambda: not widget.jobs.busy(), timeout=300000)
    finetune = widget.finetune_section
    new_dir = finetune.new_model_dir
    assert new_dir is not None and new_dir != tiny_ensemble_dir
    assert model_field.text() == str(tiny_ensemble_dir)  # not switched on its own
    text = finetune.result.text()
    assert "on 3 held-out reviewed calls" in text  # 15 reviewed, every 5th held out
    assert "before" in text and "after (calibrated" in text and "% of sources" in text
    assert "too few held-out calls to judge" in text  # 3 < 10: no verdict...
    assert "no verdict: 3 held-out calls, fewer than the 10 needed" in text  # ...said why
    assert "(not in use yet" in text
    # the export said what the command line says: the held-out calls too
    assert re.search(r"exported 12 reviewed calls to .*\(3 held out, 0 without", exported[0])
    manifest = json.loads((new_dir / "manifest.json").read_text())
    assert manifest["temperature"] >= 1.0
    assert manifest["heldout_calibration"]["before"]["n_calls"] == 3
    click(qtbot, widget, "use_finetuned_model")
    assert model_field.text() == str(new_dir)
    assert "now using" in widget.calls_section.status.text()
    text = finetune.result.text()
    assert "not in use" not in text and f"new model {new_dir.name} (in use)" in text
