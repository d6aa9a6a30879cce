"""An edit made in the napari dock survives a SIGKILL of the whole application."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_gerbil.io.session import load_session

SIGKILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import napari
    from napari_gerbil._napari._widget import ReviewWidget

    viewer = napari.Viewer(show=False)
    widget = ReviewWidget(viewer)
    widget.open_session(sys.argv[1])
    widget.select_call(2)
    widget.assign_current(1)  # what key 2 does (the keys need a shown, active window)
    print("EDITED", flush=True)
    time.sleep(120)
    """
)


@pytest.mark.gui
def test_an_edit_survives_sigkill(session_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGKILL_SCRIPT, str(session_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        while "EDITED" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                pytest.fail(f"app died: {proc.stderr.read()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    session = load_session(session_path)
    assert session.user.animal[2] == 1
    assert np.isfinite(session.user.edit_time_s[2])
