"""A full disk (or any I/O error) while writing: one error naming the file, no
temporary file left, the old file intact, no crash (issue 20, item 7).

``OSError(ENOSPC)`` is injected into the files napari-gerbil writes through
``io.atomic`` (so HDF5 sees it exactly as on a full disk); where a tmpfs can be
mounted (root) the same commands also run on a real 200 kB file system. Each run is a
subprocess: a regression (h5py crashing the interpreter) fails the test, not pytest.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hostile_data import write_small_vcl, write_wav_session
from napari_gerbil.io.atomic import atomic_path, atomic_write_text

SRC = str(Path(__file__).resolve().parents[2] / "src")

#: Runs ``main(argv)`` with every write through io.atomic failing after BUDGET bytes.
RUNNER = textwrap.dedent(
    """
    import builtins, errno, io, sys
    import napari_gerbil.io.atomic as atomic

    BUDGET = int(sys.argv[1])
    written = [0]

    class FullDisk(io.FileIO):
        def write(self, data):
            n = len(memoryview(data).cast("B"))
            if written[0] + n > BUDGET:
                raise OSError(errno.ENOSPC, "No space left on device")
            written[0] += n
            return super().write(data)

    def fake_open(path, mode="r", buffering=-1, **kw):
        if "w" in mode or "+" in mode or "a" in mode:
            raw = FullDisk(path, mode.replace("b", "").replace("t", "") or "r")
            if buffering == 0:
                return raw
            return io.BufferedRandom(raw) if "+" in mode else io.BufferedWriter(raw)
        return builtins.open(path, mode, buffering, **kw)

    atomic.open = fake_open
    from napari_gerbil.cli.main import main
    sys.exit(main(sys.argv[2:]))
    """
)


def _run(argv, budget, cwd):
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(budget), *map(str, argv)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
    )  # fmt: skip


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith("tmp"))


def test_atomic_path_names_the_target_and_removes_the_temporary(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(OSError) as err, atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert target.read_text() == "old" and _leftovers(tmp_path) == []
    with pytest.raises(OSError) as err, atomic_path(target):  # as HDF5 words it
        raise RuntimeError("Can't write data (file write failed: errno = 28, ...)")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)


@pytest.mark.parametrize("budget", [3000])
def test_writers_fail_cleanly_on_a_full_disk(tmp_path, budget):
    session = write_wav_session(tmp_path / "rec", calls=((100, 900),), reviewed=False)
    before = session.read_bytes()
    table = tmp_path / "calls.csv"
    table.write_text("start,stop\n" + "".join(f"{0.1 + i * 0.002:.4f},"
                     f"{0.1 + i * 0.002 + 0.001:.4f}\n" for i in range(400)))  # fmt: skip
    data = write_small_vcl(tmp_path / "d.h5", n_calls=40)
    out = tmp_path / "out"
    out.mkdir()
    commands = [
        (["import-calls", session, table], session),
        (["predict", "--baseline", "gcc-phat", "--data", data, "--out", out / "p.h5"],
         out / "p.h5"),
        (["simulate", "speaker", "--n-calls", "20", "--out", out / "sim.h5", "--quiet"],
         out / "sim.h5"),
    ]  # fmt: skip
    for argv, target in commands:
        result = _run(argv, budget, tmp_path)
        assert result.returncode == 1, (argv, result.returncode, result.stderr[-2000:])
        lines = [ln for ln in result.stderr.splitlines() if "error" in ln]
        assert lines == [f"napari-gerbil {argv[0]}: error: {target}: No space left on device"]
        assert "Traceback" not in result.stderr
    assert session.read_bytes() == before
    assert _leftovers(tmp_path / "rec") == [] and _leftovers(out) == []
    assert sorted(p.name for p in out.iterdir()) == []


def test_export_fails_cleanly_on_a_full_disk(session_path, call_truth, tmp_path):
    from napari_gerbil.io.session import load_session, save_session

    session = load_session(session_path)
    for row, (animal, _) in call_truth.items():
        session.set_user_attribution(row, animal)
    save_session(session, session_path)
    out = tmp_path / "export"
    out.mkdir()
    argv = ["export", session_path, "--out", out / "x.h5", "--no-holdout", "--quiet"]
    result = _run(argv, 50_000, tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"error: {out / 'x.h5'}: No space left on device" in result.stderr
    assert list(out.iterdir()) == []


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 200 kB tmpfs (root only); None where it cannot be mounted."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)],
            capture_output=True,
        ).returncode
        == 0
    )
    yield folder if mounted else None
    if mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_real_full_disk_when_a_tmpfs_can_be_mounted(tiny_tmpfs, tmp_path):
    """On a real full file system (else the injected one: the test never skips)."""
    session = write_wav_session(tmp_path / "rec", calls=(), reviewed=False)
    table = tmp_path / "calls.csv"
    table.write_text("start,stop\n" + "".join(f"{i * 0.002:.4f},{i * 0.002 + 0.001:.4f}\n"
                                              for i in range(450)))  # fmt: skip
    folder = tiny_tmpfs if tiny_tmpfs is not None else tmp_path / "fake"
    folder.mkdir(exist_ok=True)
    target = folder / "s.gerbil.h5"
    target.write_bytes(session.read_bytes())
    # the session refers to its audio by absolute path too: it opens from the tmpfs
    if tiny_tmpfs is not None:
        free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
        (folder / "filler").write_bytes(b"x" * max(0, free - 4096 - target.stat().st_size))
        env = {**os.environ, "PYTHONPATH": SRC}
        argv = [sys.executable, "-m", "napari_gerbil", "import-calls", str(target), str(table)]
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    else:
        result = _run(["import-calls", target, table], 4096, tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"error: {target}: No space left on device" in result.stderr
    assert _leftovers(folder) == []
    assert np.isclose(len(session.read_bytes()), target.stat().st_size)


def test_a_failed_torch_save_names_the_checkpoint(tmp_path, monkeypatch):
    """torch.save words a full disk as a RuntimeError without an errno."""
    import shutil

    from napari_gerbil.io.atomic import write_error

    monkeypatch.setattr(shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 0))
    exc = RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter "
                       "failed writing file data/0: file write failed")  # fmt: skip
    err = write_error(exc, tmp_path / "best.pt")
    assert err is not None and err.errno == errno.ENOSPC
    assert err.filename == str(tmp_path / "best.pt")
    assert write_error(RuntimeError("a bug"), tmp_path / "best.pt") is None
