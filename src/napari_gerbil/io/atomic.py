"""Atomic file replacement: a crash leaves the old file or the new one, never a broken one."""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"


def _temp_prefix(target: Path) -> str:
    """``.NAME.HOST-PID.``: whose temporary file it is, so a dead writer's can be removed."""
    return f".{target.name}.{_host_tag()}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete temporary files of ``target`` left by writers (on this host) that died.

    A writer killed between creating its temporary file and the rename (SIGKILL, power
    loss) leaves ``.NAME.HOST-PID.XXXX<suffix>`` behind (``.tmp``, ``.h5.tmp``, a video
    writer's ``.mp4``); the next write of the same target removes it when process PID no
    longer exists, whatever its suffix. Returns the removed paths.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    # whatever the writer's suffix (.tmp, .h5.tmp, .mp4, ...): the prefix says whose it is
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.{re.escape(_host_tag())}-(\d+)\..+$")
    removed = []
    for entry in target.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
            entry.unlink()
            removed.append(entry)
    return removed


def _full_or_io(target: str | os.PathLike) -> int:
    """ENOSPC when the target's file system is (nearly) full, else EIO."""
    import errno
    import shutil

    try:
        free = shutil.disk_usage(Path(target).parent).free
    except OSError:
        return errno.EIO
    return errno.ENOSPC if free < (1 << 20) else errno.EIO


_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")


def write_error(exc: BaseException, target: str | os.PathLike) -> OSError | None:
    """An :class:`OSError` naming ``target`` for a failed write, or None if ``exc`` is not one.

    Operating-system errors (disk full, quota, I/O error, permission) come as
    :class:`OSError`, or from HDF5 as an ``OSError``/``RuntimeError`` whose text holds
    ``errno = N``; all become one ``OSError(errno, strerror, target)``, printed by the
    command line as one line naming the file.
    """
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if code is None and isinstance(exc, (OSError, RuntimeError)):
        match = _ERRNO_IN_TEXT.search(str(exc))
        code = int(match.group(1)) if match else None
    if code is None and isinstance(exc, RuntimeError) and "write failed" in str(exc).lower():
        code = _full_or_io(target)  # torch.save words a failed write without an errno
    if code is None:
        return None  # not an operating-system error (a cancelled job, a bug)
    if isinstance(exc, OSError) and getattr(exc, "filename", None) == str(target):
        return exc
    return OSError(code, os.strerror(code), str(target))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    Write the complete new file to the yielded path (e.g. with ``h5py.File(tmp, "w")``)
    and close it inside the ``with`` block. On leaving the block the temporary file is
    fsync'ed, renamed over ``path`` with :func:`os.replace` and the directory fsync'ed.
    If the block raises, the temporary file is removed and ``path`` is untouched; an
    operating-system error (disk full, I/O error) is raised again as one ``OSError``
    naming ``path`` (:func:`write_error`). Temporary files of ``path`` left by killed
    writers are removed first (:func:`remove_stale_temporaries`).

    Examples
    --------
    >>> with atomic_path("session.gerbil.h5") as tmp:  # doctest: +SKIP
    ...     with h5py.File(tmp, "w") as f:
    ...         f["x"] = 1
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        fd, tmp_name = tempfile.mkstemp(
            prefix=_temp_prefix(target), suffix=suffix or ".tmp", dir=target.parent
        )
    except OSError as exc:
        raise (write_error(exc, target) or exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        failed = write_error(exc, target) if isinstance(exc, Exception) else None
        if failed is not None and failed is not exc:
            raise failed from exc
        raise


class WriteGuard:
    """A file HDF5 writes through (h5py's file-object driver) that never fails a write.

    The first operating-system error of a write (disk full, I/O error) is kept in
    :attr:`error` and later writes are dropped, so the HDF5 library never sees a failed
    write (after one it could not close the file and crashed the interpreter). The
    writer checks :meth:`check` and discards the file.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w+b") -> None:
        self.path = Path(path)
        self._fh: Any = open(path, mode, buffering=0)  # noqa: SIM115 - closed by close()
        self.error: OSError | None = None

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset``."""
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        """The position."""
        return self._fh.tell()

    def read(self, size: int = -1) -> bytes:
        """Read ``size`` bytes."""
        return self._fh.read(size)

    def readinto(self, buffer: Any) -> int | None:
        """Read into ``buffer``."""
        return self._fh.readinto(buffer)

    def write(self, data: Any) -> int:
        """Write ``data``; after a failure, pretend to (see the class)."""
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    done += self._fh.write(view[done:]) or 0
                return len(view)
            except OSError as exc:
                self.error = exc
        self._fh.seek(len(view), os.SEEK_CUR)  # as if written: HDF5's offsets stay right
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        """Resize the file (pretended after a failure)."""
        if self.error is None:
            try:
                return self._fh.truncate(size)
            except OSError as exc:
                self.error = exc
        return self._fh.tell() if size is None else size

    def flush(self) -> None:
        """Nothing to flush: the file is unbuffered."""
        return None  # unbuffered

    def check(self) -> None:
        """Raise the first write error, naming the file."""
        if self.error is not None:
            raise write_error(self.error, self.path) or self.error

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def open_h5_for_write(tmp: str | os.PathLike, append: bool = False) -> tuple[Any, WriteGuard]:
    """An ``h5py.File`` writing ``tmp`` through a :class:`WriteGuard`.

    A new file, or with ``append`` the existing ``tmp`` opened for changes.
    """
    import h5py

    guard = WriteGuard(tmp, "r+b" if append else "w+b")
    try:
        return h5py.File(guard, "r+" if append else "w"), guard
    except BaseException:
        guard.close()
        raise


def close_h5_for_write(f: Any, guard: WriteGuard) -> None:
    """Close ``f`` and its guard; raise the first write error (naming the file)."""
    try:
        f.close()
    finally:
        guard.close()
    guard.check()


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[Any]:
    """Yield an ``h5py.File`` on a temporary file that replaces ``path`` on success.

    :func:`atomic_path` for HDF5 written in a stream (too large for memory), through a
    :class:`WriteGuard`: a full disk or an I/O error is one ``OSError`` naming ``path``,
    the temporary file is removed and ``path`` is untouched.
    """
    with atomic_path(path, suffix=".h5.tmp") as tmp:
        f, guard = open_h5_for_write(tmp)
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):
                close_h5_for_write(f, guard)
            raise
        close_h5_for_write(f, guard)


@contextlib.contextmanager
def atomic_h5_file(path: str | os.PathLike) -> Iterator[Any]:
    """Yield a new in-memory ``h5py.File``; on success it replaces ``path`` atomically.

    The HDF5 file is built in memory and written with one plain write
    (:func:`atomic_write_bytes`), so a full disk or an I/O error is one clean
    ``OSError`` naming ``path`` and never leaves HDF5 holding a half-written file (which
    made h5py crash the interpreter). For files that fit in memory (sessions).
    """
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
