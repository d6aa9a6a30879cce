"""One progress and cancel protocol for all long work.

Detection, localization, export, training and the demo build all follow it.

A long function takes ``progress`` (a callable receiving :class:`Progress` records) and
``cancel`` (a :class:`CancelToken`, or any callable returning True once the work should
stop). It calls ``progress`` now and then and checks ``cancel`` between steps; when
cancelled it raises :class:`Cancelled` and leaves nothing half-written.

The same function feeds a terminal bar (:class:`TqdmProgress`) and a napari
``thread_worker`` (:func:`stream_progress` runs it in a thread and yields its records;
closing the generator cancels the work and waits for it to stop).
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, TypeVar

from napari_gerbil.errors import GerbilError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far a long job is.

    Parameters
    ----------
    fraction
        Share done in [0, 1]; NaN when unknown.
    message
        What is being done, for people.
    """

    fraction: float
    message: str = ""

    def __post_init__(self) -> None:
        fraction = float(self.fraction)
        if not math.isnan(fraction):
            fraction = min(max(fraction, 0.0), 1.0)
        object.__setattr__(self, "fraction", fraction)


#: What long functions call with each :class:`Progress`.
ProgressCallback = Callable[[Progress], None]
#: What long functions poll: True once the work should stop.
CancelCheck = Callable[[], bool]


class Cancelled(GerbilError, InterruptedError):
    """Long work stopped because its :class:`CancelToken` was cancelled."""


class CancelToken:
    """A thread-safe request to stop; calling the token returns whether it is set.

    Being callable, a token can be passed wherever a ``cancel() -> bool`` is expected.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._event.set()

    def reset(self) -> None:
        """Clear the request (reuse the token for the next job)."""
        self._event.clear()

    @property
    def cancelled(self) -> bool:
        """Whether the work was asked to stop."""
        return self._event.is_set()

    def __call__(self) -> bool:
        """Return :attr:`cancelled`."""
        return self.cancelled


def check_cancel(cancel: CancelCheck | None, what: str = "work") -> None:
    """Raise :class:`Cancelled` if ``cancel`` says so (None never cancels)."""
    if cancel is not None and cancel():
        raise Cancelled(f"{what} cancelled")


def report(progress: ProgressCallback | None, fraction: float, message: str = "") -> None:
    """Send ``Progress(fraction, message)`` to ``progress`` if there is one."""
    if progress is not None:
        progress(Progress(fraction, message))


def scaled(progress: ProgressCallback | None, start: float, stop: float) -> ProgressCallback:
    """A callback mapping a sub-job's fractions [0, 1] onto [start, stop] of ``progress``."""

    def forward(record: Progress) -> None:
        if progress is not None:
            f = record.fraction
            progress(Progress(f if math.isnan(f) else start + (stop - start) * f, record.message))

    return forward


class TqdmProgress:
    """A terminal progress bar fed with :class:`Progress` records (context manager).

    Parameters
    ----------
    desc
        Label in front of the bar.
    disable
        No bar (e.g. ``--quiet``).
    """

    def __init__(self, desc: str = "", disable: bool = False) -> None:
        self._desc, self._disable = desc, disable
        self._bar: Any = None  # opened on the first record: an early error prints one line

    def __call__(self, record: Progress) -> None:
        """Move the bar to ``record.fraction`` and show ``record.message``."""
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=1000,
                desc=self._desc,
                disable=self._disable,
                leave=True,
                # percent and times only: counts of thousandths ("‰/s") mean nothing
                bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}",
            )
        if record.message:  # before the move, which draws it: the bar says what is done
            self._bar.set_postfix_str(record.message, refresh=False)
        if not math.isnan(record.fraction):
            self._bar.update(int(round(record.fraction * 1000)) - self._bar.n)

    def close(self) -> None:
        """Close the bar (if it was ever opened)."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> TqdmProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def stream_progress(
    fn: Callable[..., T],
    *args: Any,
    cancel: CancelToken | None = None,
    poll_s: float = 0.1,
    **kwargs: Any,
) -> Generator[Progress, None, T]:
    """Run ``fn(*args, progress=..., cancel=token, **kwargs)`` in a thread; yield its records.

    Use inside a napari ``thread_worker`` generator as ``return (yield from
    stream_progress(fn, ...))``: the worker's ``yielded`` signal gets each
    :class:`Progress`, its ``returned`` signal ``fn``'s result; ``fn``'s error is raised.
    Closing the generator (the worker quits) or cancelling ``cancel`` stops ``fn`` at its
    next check, and the generator waits for the thread to end, so nothing keeps running
    (and writing) behind the caller's back.
    """
    token = cancel if cancel is not None else CancelToken()
    records: queue.Queue[Progress] = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args, progress=records.put, cancel=token, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"gerbil-{getattr(fn, '__name__', 'job')}")
    thread.start()
    try:
        while thread.is_alive() or not records.empty():
            try:
                yield records.get(timeout=poll_s)
            except queue.Empty:
                continue
    finally:
        if thread.is_alive():  # the consumer went away: stop the work, wait for it
            token.cancel()
            thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
