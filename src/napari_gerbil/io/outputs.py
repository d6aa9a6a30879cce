"""Output path rules shared by every command (docs/safety.md).

Inputs are checked by :func:`napari_gerbil.io.inputs.check_input_file`.

- :func:`check_output_path`: checked **before** any computation. An existing output is
  replaced only with ``overwrite=True``; never when it is an input of the same command
  or a file an input refers to (:func:`referenced_files`: a session's audio, video and
  poses; any file inside an input folder such as a model directory), nor when it is a
  session file holding user reviews, whatever ``overwrite`` says.
- :func:`output_lock`: one run at a time per output path (an advisory ``flock`` on a
  ``.NAME.lock`` file next to it); a second run fails at once with a clear error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from napari_gerbil.errors import InvalidInputError
from napari_gerbil.io.inputs import file_kind


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.absolute() == b.absolute()


def _has_user_reviews(path: Path) -> bool:
    from napari_gerbil.io.session import is_session_file

    if not is_session_file(path):
        return False
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as f:
            animal = np.asarray(f["attribution/user/animal"][()])
    except (OSError, KeyError, ValueError, TypeError):
        return True  # a session we cannot read is treated as precious
    from napari_gerbil.io.session import NOT_REVIEWED

    return bool((animal != NOT_REVIEWED).any())


def referenced_files(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """``(role, file)`` of an input and of every file it refers to.

    A session file refers to its audio files, video and pose file; any other file
    refers to nothing else. A folder (a model directory, a run folder) is returned as
    it is: everything inside it belongs to it. A session that cannot be read refers to
    nothing here (the command refuses it when it loads it).
    """
    path = Path(path)
    found = [("input", path)]
    if not path.is_file():
        return found
    from napari_gerbil.io.session import is_session_file, load_session

    if not is_session_file(path):
        return found
    try:
        session = load_session(path)
    except InvalidInputError:
        return found
    found += [(f"audio file {k}", ref.path) for k, ref in enumerate(session.audio.files)]
    for role, ref in (("video", session.video), ("poses", session.tracks)):
        if ref is not None:
            found.append((role, ref.path))
    return found


def _inside(path: Path, folder: Path) -> bool:
    try:
        return path.absolute().resolve().is_relative_to(folder.absolute().resolve())
    except OSError:
        return False


def check_not_an_input(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None],
    field: str = "--out",
    *,
    directory: bool = False,
    protected: Iterable[str] = (),
) -> Path:
    """Refuse an output that is an input, or a file an input refers to, or inside one.

    ``--overwrite`` never changes this: replacing a session's recording or a model's
    weights loses data nothing can rebuild. Inputs are expanded by
    :func:`referenced_files`. For a folder output (``directory``), the folder and the
    ``protected`` files in it are checked.
    """
    path = Path(path)
    protected = list(protected)
    for given in inputs:
        if given is None:
            continue
        for role, inp in referenced_files(given):
            if not inp.exists():
                continue
            if inp.is_dir():
                clash = _inside(path, inp)
            elif directory:
                clash = _same_file(path, inp) or any(
                    _same_file(path / name, inp) for name in protected if (path / name).exists()
                )
            else:
                clash = path.exists() and _same_file(path, inp)
            if clash:
                what = f"the input {inp}" if role == "input" else f"the {role} of {given}: {inp}"
                raise InvalidInputError(
                    path,
                    field,
                    "an output path different from every input of the command and the "
                    "files it refers to",
                    what,
                    hint="Write the output somewhere else; inputs are never replaced, nor "
                    "the recordings, poses and models they refer to, even with --overwrite.",
                )
    return path


def check_output_path(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike | None] = (),
    field: str = "--out",
    directory: bool = False,
    protected: Iterable[str] = (),
) -> Path:
    """Check that ``path`` may be written; raise :class:`InvalidInputError` otherwise.

    Parameters
    ----------
    path
        The output file (or folder when ``directory``).
    overwrite
        Whether an existing output may be replaced (``--overwrite``).
    inputs
        Inputs of the same command: the output may never be one of them, a file one
        refers to, or inside an input folder (:func:`check_not_an_input`).
    field
        The option naming the output, for the message.
    directory
        The output is a folder (created if missing); ``protected`` names the files in
        it that count as "existing output".
    protected
        For a folder output: names of the files the command writes there.

    Returns
    -------
    The path (unchanged).
    """
    path = Path(path)
    protected = list(protected)
    check_not_an_input(path, inputs, field, directory=directory, protected=protected)
    if not path.exists():
        if path.is_symlink():
            raise InvalidInputError(path, field, "a writable path", "a dangling symbolic link")
        parent = path.parent if str(path.parent) else Path(".")
        probe = parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise InvalidInputError(path, field, "a path inside a folder", f"{probe} is a file")
        if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
            raise InvalidInputError(path, field, "a writable folder", f"{probe} is not writable")
        return path
    mode = path.stat().st_mode
    if directory:
        if not stat.S_ISDIR(mode):
            raise InvalidInputError(path, field, "a folder (or a new path)", file_kind(mode))
        if not os.access(path, os.W_OK | os.X_OK):
            raise InvalidInputError(path, field, "a writable folder", "not writable")
        existing = [name for name in protected if (path / name).exists()]
        if existing and not overwrite:
            raise InvalidInputError(
                path,
                field,
                "a folder without earlier results (or --overwrite)",
                f"existing {', '.join(existing)}",
                hint="Pass --overwrite to replace them, or choose another folder.",
            )
        return path
    if not stat.S_ISREG(mode):
        raise InvalidInputError(path, field, "a file path (or a new path)", file_kind(mode))
    if _has_user_reviews(path):
        raise InvalidInputError(
            path,
            field,
            "a path that is not a session with user reviews",
            "a session file holding reviewed calls",
            hint="Reviewed sessions are never replaced, even with --overwrite; "
            "write elsewhere or move the session away first.",
        )
    if not overwrite:
        raise InvalidInputError(
            path,
            field,
            "a new file (or --overwrite)",
            "an existing file",
            hint="Pass --overwrite to replace it.",
        )
    if not os.access(path.parent if str(path.parent) else ".", os.W_OK | os.X_OK):
        raise InvalidInputError(path, field, "a writable folder", f"{path.parent} is not writable")
    return path


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output: ``.NAME.lock`` in the same folder."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, field: str = "--out") -> Iterator[Path]:
    """Hold an exclusive lock on output ``path`` for the duration of the block.

    A second process asking for the same output gets :class:`InvalidInputError` at
    once (no waiting). The lock is an advisory ``flock`` on ``.NAME.lock`` next to the
    output, released by the kernel when the process dies (a killed run never leaves a
    stale lock); the lock file is removed on a clean exit, and so is the output's folder
    when the lock created it and nothing was written there.
    """
    import fcntl

    path = Path(path)
    lock = lock_path(path)
    created = [] if lock.parent.exists() else [lock.parent]
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InvalidInputError(
                path, field, "a folder where a lock file can be created", str(exc.strerror)
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise InvalidInputError(
                    path,
                    field,
                    "an output no other run is writing",
                    f"locked by another napari-gerbil run ({lock})",
                    hint="Wait for that run to finish, or write elsewhere.",
                ) from None
            raise
        # the holder before us may have removed the lock file after we opened it
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)
        for folder in created:  # a run that failed early leaves no empty output folder
            with contextlib.suppress(OSError):
                folder.rmdir()
