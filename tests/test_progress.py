"""The one progress/cancel protocol: records, tokens, terminal bars and thread streams."""

from __future__ import annotations

import math
import threading
import time

import pytest

from napari_gerbil.progress import (
    Cancelled,
    CancelToken,
    Progress,
    TqdmProgress,
    check_cancel,
    scaled,
    stream_progress,
)


def test_progress_fraction_is_clipped_and_nan_means_unknown():
    assert Progress(1.7).fraction == 1.0 and Progress(-0.2).fraction == 0.0
    assert math.isnan(Progress(float("nan"), "warming up").fraction)


def test_token_is_a_cancel_callable_and_resettable():
    token = CancelToken()
    check_cancel(token)
    assert token() is False
    token.cancel()
    assert token() is True and token.cancelled
    with pytest.raises(Cancelled, match="detection cancelled"):
        check_cancel(token, "detection")
    with pytest.raises(InterruptedError):  # code catching InterruptedError still works
        check_cancel(token)
    token.reset()
    assert not token()


def test_scaled_maps_a_sub_job_onto_a_range():
    seen: list[Progress] = []
    sub = scaled(seen.append, 0.5, 0.9)
    sub(Progress(0.0, "a"))
    sub(Progress(1.0, "b"))
    sub(Progress(float("nan"), "c"))
    assert [p.fraction for p in seen[:2]] == [0.5, 0.9] and math.isnan(seen[2].fraction)
    assert [p.message for p in seen] == ["a", "b", "c"]


def test_tqdm_bar_follows_the_records(capsys):
    with TqdmProgress("job") as bar:
        bar(Progress(0.25, "quarter"))
        bar(Progress(1.0, "done"))
        assert bar._bar.n == 1000
    assert "job" in capsys.readouterr().err


def _counting_job(n_steps, progress, cancel, started, steps_done):
    started.set()
    for k in range(n_steps):
        check_cancel(cancel, "counting")
        time.sleep(0.01)
        steps_done.append(k)
        progress(Progress((k + 1) / n_steps, f"step {k + 1}"))
    return "finished"


def test_stream_yields_records_and_returns_the_result():
    done: list[int] = []
    stream = stream_progress(_counting_job, 5, started=threading.Event(), steps_done=done)
    records = []
    while True:
        try:
            records.append(next(stream))
        except StopIteration as stop:
            result = stop.value
            break
    assert result == "finished" and [r.message for r in records][-1] == "step 5"


def test_closing_the_stream_stops_the_work_and_waits_for_it():
    done: list[int] = []
    started = threading.Event()
    stream = stream_progress(_counting_job, 10_000, started=started, steps_done=done)
    next(stream)
    stream.close()  # what a quitting worker does
    n = len(done)
    time.sleep(0.1)
    assert len(done) == n < 10_000  # the thread is gone, not running on


def test_the_job_error_is_raised_in_the_consumer():
    def failing(progress, cancel):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        list(stream_progress(failing))


def test_an_outside_token_cancels_the_streamed_job():
    token = CancelToken()
    done: list[int] = []
    stream = stream_progress(
        _counting_job, 10_000, cancel=token, started=threading.Event(), steps_done=done
    )
    next(stream)
    token.cancel()
    with pytest.raises(Cancelled):
        list(stream)
    assert len(done) < 10_000
