"""The ``napari-gerbil demo`` window: a session, the demo ensemble, the first calls localized."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

#: Calls localized when the demo opens.
DEMO_CALLS = 12
#: Size of the demo window (width, height).
WINDOW_SIZE_PX = (1500, 950)


def run_demo(
    session_path: str | Path | None = None,
    model_dir: str | Path | None = None,
    screenshot: str | Path | None = None,
    n_calls: int = DEMO_CALLS,
    timeout_s: float = 600.0,
) -> int:
    """Open napari with a session and localize its first calls.

    With ``screenshot`` the window is saved to that PNG once the first confidence set is
    drawn, and the application exits (status 0 on success, 1 on failure or when
    localizing takes longer than ``timeout_s``).
    """
    from qtpy.QtCore import QTimer

    import napari
    from napari_gerbil._napari._sample_data import sample_session_path
    from napari_gerbil._napari._widget import ReviewWidget

    session_path = Path(session_path) if session_path else sample_session_path(terminal=True)
    viewer = napari.Viewer(title="napari-gerbil demo", show=True)
    viewer.window.resize(*WINDOW_SIZE_PX)
    widget = ReviewWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Review calls (napari-gerbil)", area="right")
    widget.open_session(session_path)
    status = {"code": 1}
    app = napari.qt.get_qapp()

    def finish(code: int) -> None:
        status["code"] = code
        viewer.close()
        app.quit()

    def on_localized() -> None:
        # show the most confident localized call (smallest 95% set) first
        area = np.where(widget.review.localized(), widget.review.set_area_mm2(), np.inf)
        widget.select_call(int(np.argmin(area)))
        viewer.reset_view()
        if screenshot is None:
            return
        sets = widget.overlays.layer("sets")
        if sets is None or sets.nshapes == 0:
            print("demo: no confidence set was drawn", flush=True)
            finish(1)
            return

        def save() -> None:
            viewer.screenshot(str(screenshot), canvas_only=False, flash=False)
            print(f"demo: screenshot saved to {screenshot}", flush=True)
            finish(0)

        QTimer.singleShot(1500, save)  # let the canvas and the docks paint

    def localize() -> None:
        if screenshot is not None:  # the time limit runs from here (not model building)
            QTimer.singleShot(int(timeout_s * 1000), lambda: finish(1))
        n = min(n_calls, widget.review.n_calls)
        worker = widget.model_section.localize(list(range(n)))
        if worker is None:
            print("demo: localization could not start", flush=True)
            if screenshot is not None:
                finish(1)
            return
        worker.finished.connect(lambda: QTimer.singleShot(0, on_localized))

    if model_dir:
        widget.model_section.model_dir.setText(str(model_dir))
        QTimer.singleShot(0, localize)
    else:
        building = build_demo_model(widget)
        if building is None:
            QTimer.singleShot(0, localize)
        else:
            building.finished.connect(lambda: QTimer.singleShot(0, localize))
    napari.run()
    return status["code"] if screenshot is not None else 0


def build_demo_model(widget) -> Any:
    """Start building the demo ensemble (first use) from ``widget``'s *Demo* button.

    Its progress shows in the dock and, as a tqdm bar, on stderr: a cold
    ``napari-gerbil demo`` is never silent in the terminal. Returns the worker (None when
    the ensemble exists: nothing to build).
    """
    from napari_gerbil._napari._jobs import progress_record
    from napari_gerbil.progress import TqdmProgress

    building = widget.model_section.use_demo_model()
    if building is None:
        return None
    print(
        "napari-gerbil: building the demo ensemble (first use: several minutes, once); "
        "progress here and in the window",
        file=sys.stderr,
        flush=True,
    )
    bar = TqdmProgress("napari-gerbil: demo ensemble")
    building.yielded.connect(lambda value: bar(progress_record(value)))
    building.finished.connect(bar.close)
    return building
