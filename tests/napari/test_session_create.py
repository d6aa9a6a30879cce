"""Creating a session from audio + video + poses + clicked arena corners (no viewer)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.arena import default_cage, order_corners_px
from napari_gerbil.io.session import load_session
from napari_gerbil.io.session_create import create_session, read_mic_positions
from napari_gerbil.review import ReviewModel


def _inputs(built_session):
    folder = built_session[0].parent
    arena = load_session(built_session[0]).arena  # the calibration the video was drawn with
    corners_px = arena.to_pixels(arena.corners_mm())
    return folder / "audio.h5", folder / "video.mp4", folder / "poses.h5", corners_px, arena


def test_created_session_has_the_calibration_names_and_no_calls(built_session, tmp_path):
    audio, video, poses, corners_px, arena = _inputs(built_session)
    out = create_session(audio, video, poses, corners_px, tmp_path / "new.gerbil.h5")
    session = load_session(out)
    assert session.n_calls == 0 and session.fps == pytest.approx(20.0)
    assert session.animal_names == ["gerbil A", "gerbil B"]
    np.testing.assert_allclose(session.arena.mic_positions_mm, default_cage().mic_positions_mm)
    # the fitted transform maps arena points where the video drew them
    xy = np.array([[-150.0, -60.0], [100.0, 120.0]])
    np.testing.assert_allclose(session.arena.to_pixels(xy), arena.to_pixels(xy), atol=1e-6)
    assert session.tracks.path == poses.absolute() and session.video.path == video.absolute()
    model = ReviewModel.open(out)  # ready for review: calls can be added
    assert model.add_call(1000, 3000) == 0


def test_create_session_refuses_bad_inputs(built_session, tmp_path):
    audio, video, poses, corners_px, _ = _inputs(built_session)
    out = tmp_path / "new.gerbil.h5"
    with pytest.raises(InvalidInputError, match="gerbil.h5"):
        create_session(audio, video, poses, corners_px, tmp_path / "new.h5")
    with pytest.raises(InvalidInputError, match="inside the 130x180 frame"):
        create_session(audio, video, poses, corners_px + [0, 200], out)
    with pytest.raises(InvalidInputError, match="4 \\(row, col\\) points"):
        create_session(audio, video, poses, corners_px[:3], out)
    with pytest.raises(InvalidInputError, match="crossing sides"):
        create_session(audio, video, poses, corners_px[[0, 2, 1, 3]], out)
    with pytest.raises(InvalidInputError, match="convex quadrilateral"):
        inner = corners_px.copy()
        inner[2] = corners_px[[0, 1, 3]].mean(axis=0)  # a corner inside the other three
        create_session(audio, video, poses, inner, out)
    mirrored = tmp_path / "mirrored.gerbil.h5"  # the other way round is a mirrored video
    create_session(audio, video, poses, corners_px[[0, 3, 2, 1]], mirrored)
    assert mirrored.exists()
    with pytest.raises(InvalidInputError, match="one per microphone"):
        mics = default_cage().mic_positions_mm[:3]
        create_session(audio, video, poses, corners_px, out, mic_positions_mm=mics)
    with pytest.raises(InvalidInputError, match="3 animals"):
        create_session(audio, video, poses, corners_px, out, animal_names=["a", "b", "c"])
    assert not out.exists()
    create_session(audio, video, None, corners_px, out)
    with pytest.raises(InvalidInputError, match="a new file"):
        create_session(audio, video, None, corners_px, out)


def test_mic_positions_are_read_from_a_text_file(tmp_path):
    good = tmp_path / "mics.csv"
    good.write_text("x_mm,y_mm,z_mm\n-275, -175, 340\n275,-175,340 # mic 1\n\n275 175 340\n")
    np.testing.assert_allclose(read_mic_positions(good)[1], [275, -175, 340])
    assert read_mic_positions(good).shape == (3, 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,five,6\n")
    with pytest.raises(InvalidInputError, match="x y z"):
        read_mic_positions(bad)
    short = tmp_path / "short.csv"
    short.write_text("1,2\n")
    with pytest.raises(InvalidInputError, match="x, y, z"):
        read_mic_positions(short)


def test_clicked_corners_are_put_in_the_documented_order_from_the_first_click(built_session):
    import itertools

    *_, corners_px, arena = _inputs(built_session)  # documented order, ccw on screen
    for clicks in itertools.permutations(range(4)):
        ordered, order = order_corners_px(corners_px[list(clicks)])
        # the first click is (-x, -y); the others follow counter-clockwise on screen
        np.testing.assert_allclose(ordered, np.roll(corners_px, -clicks[0], axis=0))
        np.testing.assert_array_equal(np.asarray(clicks)[order], np.roll(range(4), -clicks[0]))
    _, order = order_corners_px(corners_px)
    assert order.tolist() == [0, 1, 2, 3]  # clicked right: taken as clicked
    # a mirrored video shows the documented order clockwise
    mirrored = corners_px * [1, -1] + [0, 180]
    assert order_corners_px(mirrored, mirrored=True)[1].tolist() == [0, 1, 2, 3]
    assert order_corners_px(mirrored)[1].tolist() == [0, 3, 2, 1]
    # with the documented order restored, the homography is the true one
    ordered, _ = order_corners_px(corners_px[[0, 2, 1, 3]])
    xy = np.array([[-150.0, -60.0], [100.0, 120.0]])
    fitted = arena.with_corners_px(ordered)
    np.testing.assert_allclose(fitted.to_pixels(xy), arena.to_pixels(xy), atol=1e-6)


def test_corners_that_are_no_convex_quadrilateral_are_refused(built_session):
    *_, corners_px, _ = _inputs(built_session)
    inside = corners_px.copy()
    inside[1] = corners_px.mean(axis=0)
    on_a_line = corners_px.copy()
    on_a_line[1] = (corners_px[0] + corners_px[2]) / 2
    repeated = corners_px[[0, 1, 2, 2]]
    for bad in (inside, on_a_line, repeated):
        with pytest.raises(InvalidInputError, match="convex quadrilateral, clicked \\(-x, -y\\)"):
            order_corners_px(bad)
    with pytest.raises(InvalidInputError, match="found 3 points"):
        order_corners_px(corners_px[:3])
    with pytest.raises(InvalidInputError, match="4 floor corners"):
        order_corners_px(np.where(np.eye(4, 2) > 0, np.nan, corners_px))


def test_a_cage_file_fills_the_new_session_microphones(qtbot, asymmetric_cage_file):
    """The napari "New session" section reads a cage file (a name or a path)."""
    from napari_gerbil._napari._create import NewSessionSection
    from napari_gerbil.io.cage import load_cage

    section = NewSessionSection(viewer=None, on_created=lambda path: None)
    qtbot.addWidget(section)
    section.cage.setText(str(asymmetric_cage_file))
    section.cage.editingFinished.emit()
    mics = np.array([float(v) for v in section.mics.text().replace(";", ",").split(",")])
    np.testing.assert_allclose(mics.reshape(-1, 3), load_cage(asymmetric_cage_file).mics)
    assert "571 x 356 x 368 mm" in section.status.text()
    section.cage.setText("no-such-cage")
    section.cage.editingFinished.emit()
    assert "built-in cages" in section.status.text()
