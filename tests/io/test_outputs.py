"""Output rules (no silent overwrite, never an input, never a reviewed session), the
output lock, FIFOs as inputs and temporary files left by killed writers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hostile_data import write_wav_session
from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.atomic import atomic_write_text, remove_stale_temporaries
from napari_gerbil.io.inputs import check_input_file
from napari_gerbil.io.outputs import check_output_path, lock_path, output_lock


def test_existing_file_needs_overwrite(tmp_path):
    out = tmp_path / "p.h5"
    assert check_output_path(out) == out  # new: fine
    out.write_bytes(b"old")
    with pytest.raises(InvalidInputError, match=r"--overwrite") as err:
        check_output_path(out)
    assert str(out) in str(err.value) and err.value.field == "--out"
    assert check_output_path(out, overwrite=True) == out


def test_an_input_is_never_replaced_even_with_overwrite(tmp_path):
    data = tmp_path / "data.h5"
    data.write_bytes(b"x")
    link = tmp_path / "same.h5"
    link.symlink_to(data)
    for out in (data, link, tmp_path / "." / "data.h5"):
        with pytest.raises(InvalidInputError, match="different from every input"):
            check_output_path(out, overwrite=True, inputs=[data])


def test_a_reviewed_session_is_never_replaced(tmp_path):
    reviewed = write_wav_session(tmp_path / "a", reviewed=True)
    with pytest.raises(InvalidInputError, match="reviewed"):
        check_output_path(reviewed, overwrite=True)
    fresh = write_wav_session(tmp_path / "b", reviewed=False)
    assert check_output_path(fresh, overwrite=True) == fresh


def test_output_that_is_a_directory_or_inside_a_file_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(InvalidInputError, match="a directory"):
        check_output_path(tmp_path / "d", overwrite=True)
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        check_output_path(tmp_path / "f" / "out.h5")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_folder_is_refused_before_computing(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(InvalidInputError, match="not writable"):
            check_output_path(ro / "out.h5")
    finally:
        ro.chmod(0o700)


def test_folder_outputs_protect_earlier_results(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="found a file"):
        check_output_path(tmp_path / "file", directory=True)
    out = tmp_path / "eval"
    out.mkdir()
    assert check_output_path(out, directory=True, protected=("metrics.json",)) == out
    (out / "metrics.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="metrics.json"):
        check_output_path(out, directory=True, protected=("metrics.json",))
    check_output_path(out, directory=True, protected=("metrics.json",), overwrite=True)


def test_fifo_input_is_refused_not_read(tmp_path):
    fifo = tmp_path / "data.h5"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInputError, match="FIFO"):
        check_input_file(fifo, "--data")
    from napari_gerbil.io.vcl import VCLDataset

    with pytest.raises(InvalidInputError, match="FIFO"):
        _ = VCLDataset(fifo).n_calls  # would block forever in h5py without the check
    with pytest.raises(InvalidInputError, match="a directory"):
        check_input_file(tmp_path, "--data")
    with pytest.raises(InvalidInputError, match="no such file"):
        check_input_file(tmp_path / "nope.h5", "--data")


def test_lock_refuses_a_second_writer_and_is_released(tmp_path):
    out = tmp_path / "p.h5"
    with output_lock(out):
        assert lock_path(out).exists()
        with pytest.raises(InvalidInputError, match="locked by another"), output_lock(out):
            pass
    assert not lock_path(out).exists()
    with output_lock(out):  # free again
        pass


def test_lock_held_by_another_process(tmp_path):
    out = tmp_path / "p.h5"
    code = textwrap.dedent(
        f"""
        import sys, time
        from napari_gerbil.io.outputs import output_lock
        with output_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(30)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"locked"
        with pytest.raises(InvalidInputError, match="locked by another"), output_lock(out):
            pass
    finally:
        proc.kill()
        proc.wait()
    with output_lock(out):  # the kernel released the dead holder's lock
        pass


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    target = tmp_path / "s.gerbil.h5"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer exists
    from napari_gerbil.io.atomic import _host_tag

    stale = tmp_path / f".s.gerbil.h5.{_host_tag()}-{proc.pid}.abc123.h5.tmp"
    stale.write_bytes(b"half written")
    alive = tmp_path / f".s.gerbil.h5.{_host_tag()}-{os.getpid()}.def456.h5.tmp"
    alive.write_bytes(b"being written")
    other = tmp_path / ".other.h5.host-1.x.tmp"
    other.write_bytes(b"not ours")
    assert remove_stale_temporaries(target) == [stale]
    assert alive.exists() and other.exists()
    stale.write_bytes(b"again")
    atomic_write_text(target, "new")  # every atomic write cleans up first
    assert not stale.exists() and target.read_text() == "new"


@pytest.mark.parametrize("suffix", [".mp4", ".h5.tmp", ".json", ".pt"])
def test_temporaries_of_dead_writers_are_removed_whatever_their_suffix(tmp_path, suffix):
    """Issue 25: a killed ``simulate session`` left ``.session.mp4.HOST-PID.XXXX.mp4``."""
    from napari_gerbil.io.atomic import _host_tag, atomic_path

    target = tmp_path / "session.mp4"
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that no longer exists
    stale = tmp_path / f".session.mp4.{_host_tag()}-{proc.pid}.k2j4x8{suffix}"
    stale.write_bytes(b"half a video")
    with atomic_path(target, suffix=".mp4") as tmp:  # the video writer's next run
        tmp.write_bytes(b"a video")
    assert not stale.exists() and target.read_bytes() == b"a video"


def test_failed_run_leaves_no_empty_output_folder(tmp_path):
    out = tmp_path / "new_model" / "manifest.json"
    with pytest.raises(RuntimeError), output_lock(out):
        raise RuntimeError("validation failed")
    assert not (tmp_path / "new_model").exists()
    with output_lock(out):
        out.write_text("{}")
    assert out.exists()  # a folder with results stays


def test_temporary_of_a_sigkilled_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "pred.h5"
    code = textwrap.dedent(
        f"""
        import os, signal
        from napari_gerbil.io.atomic import atomic_path
        with atomic_path({str(target)!r}, suffix=".h5.tmp") as tmp:
            tmp.write_bytes(b"half of a prediction file")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env)
    assert proc.returncode == -9
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".pred.h5.")]
    assert len(left) == 1 and not target.exists()
    atomic_write_text(target, "complete")
    assert [p.name for p in tmp_path.iterdir()] == ["pred.h5"]


def test_output_on_a_session_audio_file_is_refused(tmp_path, capsys):
    from napari_gerbil.cli.main import main

    session = write_wav_session(tmp_path, reviewed=False)
    wav = tmp_path / "rec.wav"
    before = wav.read_bytes()
    argv = ["predict", "--baseline", "muse", "--data", str(session), "--out", str(wav)]
    assert main([*argv, "--overwrite"]) == 1
    assert "different from every input" in capsys.readouterr().err
    assert wav.read_bytes() == before


def test_output_inside_an_input_folder_is_refused_even_with_overwrite(tmp_path):
    from napari_gerbil.io.outputs import check_output_path

    model = tmp_path / "model"
    model.mkdir()
    weights = model / "member0.pt"
    weights.write_bytes(b"weights")
    for target in (weights, model / "new.h5"):
        with pytest.raises(InvalidInputError, match="never replaced") as err:
            check_output_path(target, overwrite=True, inputs=[model])
        assert err.value.field == "--out"
    check_output_path(tmp_path / "elsewhere.h5", overwrite=True, inputs=[model])
    assert weights.read_bytes() == b"weights"
