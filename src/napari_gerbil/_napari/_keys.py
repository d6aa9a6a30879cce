"""Review keys: window shortcuts that act on the review wherever the focus is.

napari gives key presses on the canvas to the active layer first (``2`` switches an
Image layer to transform mode, ``p`` starts a polygon on a Shapes layer), and a table
with focus searches its rows by the typed text. The review keys are therefore
:class:`QShortcut` objects of the main window: Qt matches shortcuts before any widget
sees the key, except text fields, which keep their typing (they claim the key first).
:meth:`ReviewShortcuts.close` deletes them when the dock closes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import QWidget

from napari_gerbil._napari._controls import report_errors
from napari_gerbil.io.session import AMBIGUOUS, UNASSIGNED


@dataclasses.dataclass(frozen=True)
class ReviewKey:
    """Keys of one review action."""

    keys: tuple[str, ...]
    action: str
    description: str


#: The review keys, in the order of the shortcut list (docs/napari.md has the same table).
REVIEW_KEYS: tuple[ReviewKey, ...] = (
    *(
        ReviewKey((str(d),), f"assign_{d}", f"attribute the call to animal {d}")
        for d in range(1, 10)
    ),
    ReviewKey(("0",), "unassigned", "no animal made it (unassigned)"),
    ReviewKey(("-",), "ambiguous", "ambiguous: more than one animal could have made it"),
    ReviewKey(("A",), "accept", "accept the predicted attribution"),
    ReviewKey(("N",), "next", "next call (table order, filter)"),
    ReviewKey(("P",), "previous", "previous call"),
    ReviewKey(("M",), "most_uncertain", "most uncertain call not reviewed"),
    ReviewKey(("U", "Ctrl+Z"), "undo", "undo"),
    ReviewKey(("R", "Ctrl+Shift+Z"), "redo", "redo"),
    ReviewKey(("X", "Delete"), "delete", "delete the call"),
    ReviewKey(("Z",), "zoom", "zoom to the call's set and the animals"),
    ReviewKey(("L",), "play", "listen to the call (slowed or heterodyned)"),
)


def keys_help_rows() -> list[tuple[str, str]]:
    """(keys, what they do) of the shortcut list; digits 1-9 in one row."""
    rows = [("1 – 9", "attribute the selected call to animal 1–9")]
    for key in REVIEW_KEYS:
        if not key.action.startswith("assign_"):
            rows.append(
                (" / ".join(k.lower() if len(k) == 1 else k for k in key.keys), key.description)
            )
    rows.append(("click a pose", "attribute the selected call to that animal"))
    rows.append(
        ("drag on the spectrogram", "a new call; from an edge of the selected call: its bounds")
    )
    return rows


def keys_hint() -> str:
    """The review keys in one line: napari's status-bar hint while the dock is active."""
    short = {
        "unassigned": "unassigned",
        "ambiguous": "ambiguous",
        "accept": "accept",
        "next": "next",
        "previous": "previous",
        "most_uncertain": "most uncertain",
        "undo": "undo",
        "redo": "redo",
        "delete": "delete",
        "zoom": "zoom to call",
        "play": "listen",
    }
    hints = ["review keys: <1>-<9> animal"]
    for key in REVIEW_KEYS:
        if key.action in short:
            hints.append(f"<{key.keys[0].lower()}> {short[key.action]}")
    return ", ".join(hints)


class ReviewShortcuts:
    """The review keys as shortcuts of ``window`` (the napari main window).

    Parameters
    ----------
    window
        Top-level widget whose shortcuts they are (active while it is the active window).
    handlers
        ``action name -> callable()`` for every :data:`REVIEW_KEYS` action.
    """

    def __init__(self, window: QWidget, handlers: dict[str, Callable[[], object]]) -> None:
        self.shortcuts: list[QShortcut] = []
        for key in REVIEW_KEYS:
            handler = handlers[key.action]
            for sequence in key.keys:
                shortcut = QShortcut(QKeySequence(sequence), window)
                shortcut.setObjectName(f"gerbil_key_{key.action}_{sequence}")
                shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
                shortcut.setAutoRepeat(False)
                shortcut.activated.connect(report_errors(handler))
                self.shortcuts.append(shortcut)

    def set_enabled(self, enabled: bool) -> None:
        """Turn the keys on (a session is open) or off."""
        for shortcut in self.shortcuts:
            shortcut.setEnabled(enabled)

    def close(self) -> None:
        """Delete the shortcuts: the keys go back to napari."""
        for shortcut in self.shortcuts:
            shortcut.setEnabled(False)
            shortcut.activated.disconnect()
            shortcut.setParent(None)
            shortcut.deleteLater()
        self.shortcuts = []


def review_key_handlers(dock) -> dict[str, Callable[[], object]]:
    """``action name -> callable()`` of every review key, acting on ``dock``.

    Each acts only while the dock is shown: hidden (Plugins > Review calls, its hide
    button), a key does nothing and says so, and does not reach napari either.
    """
    handlers: dict[str, Callable[[], object]] = {
        f"assign_{d}": functools.partial(dock.assign_current, d - 1) for d in range(1, 10)
    }
    handlers["unassigned"] = lambda: dock.assign_current(UNASSIGNED)
    handlers["ambiguous"] = lambda: dock.assign_current(AMBIGUOUS)
    handlers["next"] = lambda: dock.step_call(+1)
    handlers["previous"] = lambda: dock.step_call(-1)
    handlers.update(
        accept=dock.accept_current,
        most_uncertain=dock.next_uncertain,
        undo=dock.undo,
        redo=dock.redo,
        delete=dock.delete_current,
        zoom=dock.zoom_to_call,
        play=dock.play_current,
    )

    def when_shown(handler: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            if not dock.isVisible():  # hidden from the menu: no edit, and not napari's
                dock.viewer.status = (
                    "napari-gerbil: the review dock is hidden (Plugins > Review calls "
                    "shows it); key ignored"
                )
                return None
            return handler()

        return run

    return {name: when_shown(handler) for name, handler in handlers.items()}
