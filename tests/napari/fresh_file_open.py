"""File > Open of a session in a napari that never ran napari-gerbil (run as a script).

Run in a subprocess whose ``NAPARI_CONFIG`` names a settings file in a new folder: no
reader preference, no plugin activated. Opens ``argv[1]`` twice through the File menu as a
user does (the file dialog answered with the path), clicks OK in napari's reader chooser if
one is shown, and prints JSON: per open, the chooser's preselected reader (None: no
chooser), the notifications shown and the layers added with the plugin that read them;
then the saved reader preference.
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    from napari.qt import QtViewer
    from napari.settings import get_settings
    from napari.utils.notifications import notification_manager
    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import (
        QApplication,
        QDialogButtonBox,
        QFileDialog,
        QMainWindow,
        QRadioButton,
    )

    import napari

    assert get_settings().plugins.extension2reader == {}, "not a fresh napari"
    notification_manager.install_hooks()  # as napari.run(): errors become notifications
    shown: list[str] = []
    notification_manager.notification_ready.connect(lambda event: shown.append(event.message))
    viewer = napari.Viewer(show=True)
    window = next(
        w
        for w in QApplication.topLevelWidgets()
        if isinstance(w, QMainWindow) and w.findChild(QtViewer) is not None
    )
    QFileDialog.getOpenFileNames = staticmethod(lambda *args, **kwargs: ([path], ""))
    chooser: list[str | None] = []

    def answer_chooser() -> None:
        for widget in QApplication.topLevelWidgets():
            if widget.isVisible() and widget.objectName() == "Choose reader":
                checked = [b.text() for b in widget.findChildren(QRadioButton) if b.isChecked()]
                chooser.append(checked[0] if checked else "")
                ok = widget.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok)
                QTest.mouseClick(ok, Qt.MouseButton.LeftButton)  # the user's OK

    timer = QTimer()
    timer.timeout.connect(answer_chooser)
    timer.start(20)
    file_open = next(
        action
        for top in window.menuBar().actions()
        if top.text().replace("&", "") == "File"
        for action in top.menu().actions()
        if action.text() == "Open File(s)..."
    )
    opens = []
    for _ in range(2):
        chooser.clear()
        shown.clear()
        before = len(viewer.layers)
        file_open.trigger()
        QApplication.processEvents()
        added = list(viewer.layers)[before:]
        opens.append(
            {
                "chooser": chooser[0] if chooser else None,
                "notifications": list(shown),
                "layers": [layer.name for layer in added],
                "readers": sorted({layer.source.reader_plugin or "" for layer in added}),
            }
        )
    timer.stop()
    result = {"opens": opens, "preference": dict(get_settings().plugins.extension2reader)}
    print("RESULT " + json.dumps(result), flush=True)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1])
